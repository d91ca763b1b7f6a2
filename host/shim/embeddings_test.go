package shim

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

type embeddingsJSON struct {
	Object string `json:"object"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Model string         `json:"model"`
	Usage map[string]int `json:"usage"`
}

// vectors decodes every embedding of an answer, float arrays or base64.
func (e *embeddingsJSON) vectors(t *testing.T) [][]float32 {
	t.Helper()
	out := make([][]float32, len(e.Data))
	for i, d := range e.Data {
		if d.Object != "embedding" || d.Index != i {
			t.Fatalf("data[%d]: object %q index %d", i, d.Object, d.Index)
		}
		var s string
		if json.Unmarshal(d.Embedding, &s) == nil {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil || len(b)%4 != 0 {
				t.Fatalf("data[%d]: base64 %q: %v", i, s, err)
			}
			for j := 0; j < len(b); j += 4 {
				out[i] = append(out[i], math.Float32frombits(binary.LittleEndian.Uint32(b[j:])))
			}
			continue
		}
		if err := json.Unmarshal(d.Embedding, &out[i]); err != nil {
			t.Fatalf("data[%d]: %s: %v", i, d.Embedding, err)
		}
	}
	return out
}

func postEmbeddings(t *testing.T, base, key, body string) (int, *embeddingsJSON, []byte) {
	t.Helper()
	resp, b := call(t, "POST", base+"/v1/embeddings", key, body)
	var e embeddingsJSON
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return resp.StatusCode, &e, b
}

// TestEmbeddings sends /v1/embeddings through the real shim, router and
// echo plugin process: every input shape, float and base64 answers that
// decode to the same vectors, usage, dimensions, and the plugin's 400.
func TestEmbeddings(t *testing.T) {
	_, base := startShim(t, nil)
	status, one, body := postEmbeddings(t, base, keyT, `{"model":"dsmil-echo","input":"the quick brown fox"}`)
	if status != 200 || one.Object != "list" || one.Model != "dsmil-echo" || len(one.Data) != 1 {
		t.Fatalf("%d %s", status, body)
	}
	if one.Usage["prompt_tokens"] != 4 || one.Usage["total_tokens"] != 4 || len(one.Usage) != 2 {
		t.Fatalf("usage: %s", body)
	}
	v := one.vectors(t)[0]
	if len(v) != 8 {
		t.Fatalf("echo vectors have 8 dimensions: %s", body)
	}

	status, many, body := postEmbeddings(t, base, keyT,
		`{"model":"dsmil-echo","input":["a b","the quick brown fox","a b"],"encoding_format":"base64","user":"u1"}`)
	if status != 200 || len(many.Data) != 3 || many.Usage["prompt_tokens"] != 2+4+2 {
		t.Fatalf("%d %s", status, body)
	}
	if !strings.Contains(string(many.Data[0].Embedding), `"`) {
		t.Fatalf("base64 answer is not a string: %s", body)
	}
	mv := many.vectors(t)
	if !equalVec(mv[1], v) || !equalVec(mv[0], mv[2]) || equalVec(mv[0], mv[1]) {
		t.Fatalf("same text must give the same vector in float and base64: %v vs %v", mv, v)
	}

	status, toks, body := postEmbeddings(t, base, keyT, `{"model":"dsmil-echo","input":[[1,2,3],[4]],"encoding_format":"float"}`)
	if status != 200 || len(toks.Data) != 2 || toks.Usage["prompt_tokens"] != 4 {
		t.Fatalf("%d %s", status, body)
	}
	status, flat, body := postEmbeddings(t, base, keyT, `{"model":"dsmil-echo","input":[1,2,3]}`)
	if status != 200 || len(flat.Data) != 1 || !equalVec(flat.vectors(t)[0], toks.vectors(t)[0]) {
		t.Fatalf("an array of ids is one input, as [[ids]]: %d %s", status, body)
	}

	status, short, body := postEmbeddings(t, base, keyT, `{"model":"dsmil-echo","input":"the quick brown fox","dimensions":3}`)
	if status != 200 || len(short.vectors(t)[0]) != 3 {
		t.Fatalf("%d %s", status, body)
	}
	resp, body := call(t, "POST", base+"/v1/embeddings", keyT, `{"model":"dsmil-echo","input":"x","dimensions":9}`)
	if e := apiErr(t, resp, body); resp.StatusCode != 400 || str(e.Param) != "dimensions" || !strings.Contains(e.Message, "8 dimensions") {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func equalVec(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(float64(a[i])-float64(b[i])) > 1e-6 {
			return false
		}
	}
	return true
}

// TestEmbeddingsErrors: precise 400s for bad input, and the router's
// policy, claim and quota answers as for chat.
func TestEmbeddingsErrors(t *testing.T) {
	_, base := startShim(t, nil)
	many := `"x"` + strings.Repeat(`,"x"`, maxEmbedInputs)
	for _, tc := range []struct {
		name, key, body string
		status          int
		param, msg      string
	}{
		{"no model", keyT, `{"input":"x"}`, 400, "model", "you must provide a model parameter"},
		{"unknown model", keyT, `{"model":"nope","input":"x"}`, 404, "model", "does not exist"},
		{"no input", keyT, `{"model":"dsmil-echo"}`, 400, "input", "you must provide an input parameter"},
		{"empty string", keyT, `{"model":"dsmil-echo","input":""}`, 400, "input", "the string is empty"},
		{"empty array", keyT, `{"model":"dsmil-echo","input":[]}`, 400, "input", "the array is empty"},
		{"empty element", keyT, `{"model":"dsmil-echo","input":["a",""]}`, 400, "input", "input[1] is an empty string"},
		{"mixed", keyT, `{"model":"dsmil-echo","input":["a",[1]]}`, 400, "input", "input[1]: the elements of an array must all be"},
		{"object", keyT, `{"model":"dsmil-echo","input":{"text":"a"}}`, 400, "input", "Invalid 'input.type': \"\"; the only object input is an image"},
		{"image type", keyT, `{"model":"dsmil-echo","input":["a",{"type":"text","text":"a"}]}`, 400, "input", "Invalid 'input[1].type': \"text\""},
		{"image no url", keyT, `{"model":"dsmil-echo","input":[{"type":"image_url","image_url":{}}]}`, 400, "input[0].image_url.url", "needs image_url.url"},
		{"image http", keyT, `{"model":"dsmil-echo","input":["a",{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}`, 400, "input[1].image_url.url", "Only data: URLs are accepted"},
		{"image not base64", keyT, `{"model":"dsmil-echo","input":{"type":"image_url","image_url":{"url":"data:image/png,abc"}}}`, 400, "input.image_url.url", "must be base64 encoded"},
		{"image bad base64", keyT, `{"model":"dsmil-echo","input":[{"type":"image_url","image_url":{"url":"data:image/png;base64,!!!"}}]}`, 400, "input[0].image_url.url", "not valid base64"},
		{"image empty", keyT, `{"model":"dsmil-echo","input":[{"type":"image_url","image_url":{"url":"data:image/png;base64,"}}]}`, 400, "input[0].image_url.url", "is empty"},
		{"image mixed", keyT, `{"model":"dsmil-echo","input":["a",{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBO"}},[1]]}`, 400, "input", "input[2]: the elements of an array must all be"},
		{"number", keyT, `{"model":"dsmil-echo","input":5}`, 400, "input", "expected a string"},
		{"negative id", keyT, `{"model":"dsmil-echo","input":[1,-2]}`, 400, "input", "Invalid 'input[1]': \"-2\" is not a token id"},
		{"fractional id", keyT, `{"model":"dsmil-echo","input":[[1],[2.5]]}`, 400, "input", "Invalid 'input[1][0]'"},
		{"huge id", keyT, `{"model":"dsmil-echo","input":[4294967296]}`, 400, "input", "is not a token id"},
		{"empty ids", keyT, `{"model":"dsmil-echo","input":[[1],[]]}`, 400, "input", "Invalid 'input[1]': the token array is empty"},
		{"too many inputs", keyT, `{"model":"dsmil-echo","input":[` + many + `]}`, 400, "input", "2049 inputs; at most 2048"},
		{"too many ids", keyT, `{"model":"dsmil-echo","input":[0` + strings.Repeat(",0", maxEmbedTokenIDs) + `]}`, 400, "input", "8193 token ids; at most 8192"},
		{"format", keyT, `{"model":"dsmil-echo","input":"x","encoding_format":"int8"}`, 400, "encoding_format", "Supported values are: 'float' and 'base64'"},
		{"dimensions zero", keyT, `{"model":"dsmil-echo","input":"x","dimensions":0}`, 400, "dimensions", "positive integer"},
		{"dimensions type", keyT, `{"model":"dsmil-echo","input":"x","dimensions":"8"}`, 400, "dimensions", "expected an integer"},
		{"policy", keyDenied, `{"model":"dsmil-echo","input":"x"}`, 403, "", "DENIED: tenant DENIED may not use Layer 7"},
		{"kinetic", keyKinetic, `{"model":"dsmil-echo","input":"x"}`, 403, "", "builtin.kinetic"},
		{"claim", keyNoClaim, `{"model":"dsmil-echo","input":"x"}`, 401, "", "claim token missing"},
		{"rate limited", keyRated, `{"model":"dsmil-echo","input":"x"}`, 429, "", ""},
		{"no worker", keyT, `{"model":"dsmil-down","input":"x"}`, 503, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := call(t, "POST", base+"/v1/embeddings", tc.key, tc.body)
			e := apiErr(t, resp, body)
			if resp.StatusCode != tc.status || (e.Param == nil) != (tc.param == "") || (e.Param != nil && *e.Param != tc.param) || !strings.Contains(e.Message, tc.msg) {
				t.Fatalf("%d %s", resp.StatusCode, body)
			}
		})
	}
	resp, body := call(t, "GET", base+"/v1/embeddings", keyT, "")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET: %d %s", resp.StatusCode, body)
	}
}

// FuzzDecodeEmbeddings feeds arbitrary bodies to the embeddings parser: no
// panic, refusals are 4xx with a message, and an accepted body becomes an
// L7_EMBED_REQ whose payload is exactly the parsed request, with every
// input a non-empty text or a non-empty sequence of non-negative ids.
func FuzzDecodeEmbeddings(f *testing.F) {
	cfg, diags := config.Parse(filepath.Join(f.TempDir(), "dsmil.hcl"), []byte(fuzzHCL))
	if diags.HasErrors() {
		f.Fatal(diags)
	}
	s, err := New(Config{Shim: cfg.Shim, Tenants: cfg.Tenants, Models: cfg.Models, Router: &capture{}})
	if err != nil {
		f.Fatal(err)
	}
	tenant := cfg.Tenants[0]
	for _, seed := range []string{
		`{"model":"dsmil-echo","input":"hi"}`,
		`{"model":"dsmil-echo","input":["a","b"],"encoding_format":"base64","dimensions":4,"user":"u"}`,
		`{"model":"dsmil-echo","input":[1,2,3]}`, `{"model":"dsmil-echo","input":[[1],[2,3]]}`,
		`{"model":"dsmil-echo","input":[-1]}`, `{"model":"dsmil-echo","input":[1e3]}`, `{"model":"dsmil-echo","input":[[]]}`,
		`{"model":"dsmil-echo","input":null}`, `{"model":1}`, `[]`, `{`, ``,
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte) {
		call, e := s.decodeEmbeddings(body, tenant)
		if e != nil {
			if e.status < 400 || e.status > 499 || e.message == "" || e.typ == "" {
				t.Fatalf("refusal %d %q %q for %q", e.status, e.typ, e.message, body)
			}
			return
		}
		ins := call.params.GetInputs()
		if len(ins) == 0 || len(ins) > maxEmbedInputs {
			t.Fatalf("%q accepted with %d inputs", body, len(ins))
		}
		for i, in := range ins {
			switch x := in.GetInput().(type) {
			case *l7v1.EmbedInput_Text:
				if x.Text == "" {
					t.Fatalf("%q: input %d is an empty text", body, i)
				}
			case *l7v1.EmbedInput_Tokens:
				if len(x.Tokens.GetIds()) == 0 || len(x.Tokens.GetIds()) > maxEmbedTokenIDs {
					t.Fatalf("%q: input %d has %d ids", body, i, len(x.Tokens.GetIds()))
				}
				for _, id := range x.Tokens.GetIds() {
					if id < 0 {
						t.Fatalf("%q: negative id", body)
					}
				}
			default:
				t.Fatalf("%q: input %d is empty", body, i)
			}
		}
		fr, err := s.requestFrame(dbe.MsgEmbedReq, call.params, call.model, tenant, [16]byte{1}, now)
		if err != nil {
			t.Fatal(err)
		}
		if err := dbe.CheckRequired(fr); err != nil {
			t.Fatal(err)
		}
		wire, err := fr.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		back, err := dbe.Decode(wire)
		if err != nil || !bytes.Equal(back.Payload, fr.Payload) {
			t.Fatalf("frame for %q does not decode: %v", body, err)
		}
		var p l7v1.L7EmbedRequest
		if err := proto.Unmarshal(back.Payload, &p); err != nil || !proto.Equal(&p, call.params) {
			t.Fatalf("payload for %q: %v", body, err)
		}
	})
}

// TestEmbedImageInput: image_url elements (a DSMIL extension) travel as
// the decoded file, among strings or token arrays, in input order.
func TestEmbedImageInput(t *testing.T) {
	img := `{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo="}}`
	for _, tc := range []struct {
		raw  string
		kind []string
	}{
		{img, []string{"image"}},
		{`["a photo of a cat",` + img + `,"a dog"]`, []string{"text", "image", "text"}},
		{`[[1,2],` + img + `]`, []string{"tokens", "image"}},
	} {
		ins, e := decodeEmbedInput(json.RawMessage(tc.raw))
		if e != nil {
			t.Fatalf("%s: %v", tc.raw, e.message)
		}
		if len(ins) != len(tc.kind) {
			t.Fatalf("%s: %d inputs", tc.raw, len(ins))
		}
		for i, in := range ins {
			got := ""
			switch x := in.GetInput().(type) {
			case *l7v1.EmbedInput_Text:
				got = "text"
			case *l7v1.EmbedInput_Tokens:
				got = "tokens"
			case *l7v1.EmbedInput_Image:
				got = "image"
				if string(x.Image.GetData()) != "\x89PNG\r\n\x1a\n" || x.Image.GetMimeType() != "image/png" {
					t.Errorf("%s: image %q %q", tc.raw, x.Image.GetData(), x.Image.GetMimeType())
				}
			}
			if got != tc.kind[i] {
				t.Errorf("%s: input %d is %s, want %s", tc.raw, i, got, tc.kind[i])
			}
		}
	}
}

// The response as encoding/json writes it from structs: the oracle of
// TestEmbeddingsJSON for appendEmbeddings, which writes it by hand.
type refEmbeddingList struct {
	Object string             `json:"object"`
	Data   []refEmbeddingJSON `json:"data"`
	Model  string             `json:"model"`
	Usage  refEmbedUsage      `json:"usage"`
	Meta   *metadata          `json:"dsmil_metadata,omitempty"`
}

type refEmbeddingJSON struct {
	Object    string `json:"object"`
	Index     uint32 `json:"index"`
	Embedding any    `json:"embedding"`
}

type refEmbedUsage struct {
	PromptTokens uint32 `json:"prompt_tokens"`
	TotalTokens  uint32 `json:"total_tokens"`
}

func refEmbeddings(call *embedCall, resp *l7v1.L7EmbedResponse) []byte {
	out := refEmbeddingList{
		Object: "list",
		Data:   make([]refEmbeddingJSON, len(resp.GetData())),
		Model:  call.model.ID,
		Usage:  refEmbedUsage{PromptTokens: resp.GetUsage().GetPromptTokens(), TotalTokens: resp.GetUsage().GetPromptTokens()},
		Meta:   toMetadata(resp.GetDeviceId(), resp.GetLatencyMs(), resp.GetL7Profile(), call.model.Profile),
	}
	for i, d := range resp.GetData() {
		var v any = d.GetValues()
		if call.base64 {
			raw := make([]byte, 4*len(d.GetValues()))
			for k, x := range d.GetValues() {
				binary.LittleEndian.PutUint32(raw[4*k:], math.Float32bits(x))
			}
			v = base64.StdEncoding.EncodeToString(raw)
		}
		out.Data[i] = refEmbeddingJSON{Object: "embedding", Index: d.GetIndex(), Embedding: v}
	}
	b, err := json.Marshal(out)
	if err != nil {
		panic(err)
	}
	return b
}

// TestEmbeddingsJSON: the hand-written response body is byte for byte
// what encoding/json writes for the same response, floats of every
// magnitude (exponent forms, -0, subnormals, float32 extremes) and
// strings that need escaping included, in both encodings; a value JSON
// cannot carry is an error.
func TestEmbeddingsJSON(t *testing.T) {
	specials := []float32{0, float32(math.Copysign(0, -1)), 1, -1, 0.1, 1e-6, 9.99e-7, -1e-7, 1e-30, 1e-45, 1e20, 1e21, -3.4e38,
		math.MaxFloat32, math.SmallestNonzeroFloat32, 123456.79, 0.33333334, 5e-324 * 0, 1.5e-10, 2.5e25}
	rng := uint64(1)
	random := func() float32 {
		rng = rng*6364136223846793005 + 1442695040888963407
		bits := uint32(rng >> 32)
		f := math.Float32frombits(bits)
		if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
			return 0.5
		}
		return f
	}
	var data []*l7v1.Embedding
	// Lengths on both sides of appendFloat32Base64's 96-float chunks.
	for i, n := range []int{64, 97, 384, 193, 250} {
		v := make([]float32, 0, n)
		if i == 0 {
			v = append(v, specials...)
		}
		for len(v) < cap(v) {
			if i%2 == 0 {
				v = append(v, random())
			} else {
				v = append(v, (random()-0.5)/float32(1+i*1000))
			}
		}
		data = append(data, &l7v1.Embedding{Index: uint32(i), Values: v})
	}
	for _, tc := range []struct {
		model, profile, respProfile string
		latency                     float32
		data                        []*l7v1.Embedding
	}{
		{"all-minilm-l6-v2", "embed", "embed", 2.4567891, data},
		{`odd "model" <&> ü\n`, "fallback<profile>", "", 0, data[:1]},
		{"m", "p", "q", 1e-9, nil},
		{"m", "p", "q", 3e25, data[3:]},
	} {
		resp := &l7v1.L7EmbedResponse{Data: tc.data, Usage: &l7v1.Usage{PromptTokens: 77}, DeviceId: 49, LatencyMs: tc.latency, L7Profile: tc.respProfile}
		for _, b64 := range []bool{false, true} {
			call := &embedCall{model: &config.Model{ID: tc.model, Profile: tc.profile}, base64: b64}
			got, err := appendEmbeddings(nil, call, resp)
			if err != nil {
				t.Fatal(err)
			}
			if want := refEmbeddings(call, resp); !bytes.Equal(got, want) {
				i := 0
				for i < min(len(got), len(want)) && got[i] == want[i] {
					i++
				}
				t.Errorf("model %q base64 %v: differs from encoding/json at byte %d:\n got …%s\nwant …%s", tc.model, b64, i, got[max(i-40, 0):min(i+40, len(got))], want[max(i-40, 0):min(i+40, len(want))])
			}
			if n := embeddingsSize(call, resp); len(got) > n && b64 {
				t.Errorf("base64 body of %d bytes; embeddingsSize guessed %d", len(got), n)
			}
		}
	}
	bad := &l7v1.L7EmbedResponse{Data: []*l7v1.Embedding{{Values: []float32{1, float32(math.NaN())}}}}
	if _, err := appendEmbeddings(nil, &embedCall{model: &config.Model{ID: "m"}}, bad); err == nil || !strings.Contains(err.Error(), "value 1 is NaN") {
		t.Errorf("NaN: %v", err)
	}
}

func BenchmarkEmbeddingsJSON(b *testing.B) {
	v := make([]float32, 384)
	for i := range v {
		v[i] = float32(math.Sin(float64(i))) / 20
	}
	resp := &l7v1.L7EmbedResponse{Data: []*l7v1.Embedding{{Values: v}}, Usage: &l7v1.Usage{PromptTokens: 16}, DeviceId: 49, LatencyMs: 2.5, L7Profile: "embed"}
	for _, b64 := range []bool{true, false} {
		call := &embedCall{model: &config.Model{ID: "all-minilm-l6-v2", Profile: "embed"}, base64: b64}
		name := map[bool]string{true: "base64", false: "float"}[b64]
		b.Run(name+"/append", func(b *testing.B) {
			for b.Loop() {
				_, _ = appendEmbeddings(make([]byte, 0, embeddingsSize(call, resp)), call, resp)
			}
		})
		b.Run(name+"/encoding-json", func(b *testing.B) {
			for b.Loop() {
				refEmbeddings(call, resp)
			}
		})
	}
}

// TestSizedAnswers: answers larger than net/http's buffer carry their
// Content-Length (no chunked framing): embeddings (400 inputs, float) and
// a JSON answer through writeJSON (a non-streamed chat completion echoing
// a 12 KB prompt).
func TestSizedAnswers(t *testing.T) {
	_, base := startShim(t, nil)
	in := make([]string, 400)
	for i := range in {
		in[i] = fmt.Sprintf("text number %d", i)
	}
	body, _ := json.Marshal(map[string]any{"model": "dsmil-echo", "input": in})
	long := strings.Repeat("word ", 2400)
	chat, _ := json.Marshal(map[string]any{"model": "dsmil-echo", "messages": []map[string]string{{"role": "user", "content": long}}})
	for _, c := range []struct{ path, body string }{{"/v1/embeddings", string(body)}, {"/v1/chat/completions", string(chat)}} {
		resp, b := call(t, "POST", base+c.path, keyT, c.body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.path, resp.StatusCode, b)
		}
		if len(b) < 8<<10 || resp.ContentLength != int64(len(b)) || len(resp.TransferEncoding) != 0 {
			t.Errorf("%s: %d bytes, Content-Length %d, Transfer-Encoding %v; want a sized answer of over 8 KiB", c.path, len(b), resp.ContentLength, resp.TransferEncoding)
		}
	}
}
