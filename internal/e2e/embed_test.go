package e2e

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
)

const (
	embedModelID = "dsmil-random-tiny-encoder"
	embedProfile = "embed-tiny"
)

// embedPlane writes the tiny encoder and serves it with the real
// dsmil-embed process under the plugin manager, router and shim, with
// max_batch 2 (so that a request of five inputs takes three ONNX Runtime
// runs) and matryoshka on. It returns the shim's URL and the encoder's
// reference forward pass.
func embedPlane(t *testing.T) (string, *mkmodel.EncoderResult, *mkmodel.EncoderReference) {
	t.Helper()
	dir := t.TempDir()
	enc, ref := writeEncoder(t, dir)
	p := startHCL(t, dir, embedBlock(49, embedProfile, enc.Dir, embedModelID, "matryoshka = true")+tenantT())
	return p.serveShim(t), enc, ref
}

// writeEncoder writes the tiny text encoder (seed 11) in dir and makes its
// reference forward pass.
func writeEncoder(t *testing.T, dir string) (*mkmodel.EncoderResult, *mkmodel.EncoderReference) {
	t.Helper()
	if os.Getenv(ortLibEnv) == "" {
		t.Skip(ortLibEnv + " is not set: make test sets it to the `make ort` cache")
	}
	spec, err := mkmodel.EncoderPreset("tiny-encoder")
	if err != nil {
		t.Fatal(err)
	}
	spec.Seed = 11
	enc, err := mkmodel.WriteEncoder(filepath.Join(dir, "tiny-encoder"), spec)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := mkmodel.NewEncoderReference(enc.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return enc, ref
}

// embedBlock is the dsmil.hcl text serving the model in modelDir as modelID
// on profile with the real dsmil-embed process (one thread, max_batch 2),
// the extra settings lines added to its plugin block.
func embedBlock(device int, profile, modelDir, modelID, extra string) string {
	return fmt.Sprintf(`
plugin "embed-%[1]d" {
  path         = %[2]q
  device_id    = %[1]d
  profiles     = [%[3]q]
  max_restarts = 0
  pass_env     = ["DSMIL_ORT_LIB"]
  model        = %[4]q
  model_name   = %[5]q
  threads      = 1
  max_batch    = 2
  %[6]s
}
model %[5]q { profile = %[3]q }
`, device, embedBin, profile, modelDir, modelID, extra)
}

// tenantT is tenant T, holding the tests' API key, allowed every model.
func tenantT() string {
	return fmt.Sprintf(`
tenant "T" {
  api_key_sha256 = ["%x"]
  compartments   = ["SOC"]
  models         = ["*"]
}
`, sha256.Sum256([]byte(testAPIKey)))
}

// wordIDs are the ids of [CLS] words [SEP] in the generated vocabulary
// (words the tiny tokenizer has whole).
func wordIDs(t *testing.T, vocab []string, text string) []int64 {
	t.Helper()
	index := map[string]int64{}
	for i, v := range vocab {
		index[v] = int64(i)
	}
	ids := []int64{index["[CLS]"]}
	for _, w := range strings.Fields(text) {
		id, ok := index[w]
		if !ok {
			t.Fatalf("%q is not a whole token of the generated vocabulary", w)
		}
		ids = append(ids, id)
	}
	return append(ids, index["[SEP]"])
}

// refVector is what the model card promises: the mean of the last hidden
// state over the tokens, unit length.
func refVector(t *testing.T, ref *mkmodel.EncoderReference, ids []int64) []float64 {
	t.Helper()
	h, err := ref.Forward(ids, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float64, len(h[0]))
	for _, row := range h {
		for i, x := range row {
			v[i] += float64(x) / float64(len(h))
		}
	}
	return unit(v)
}

func unit(v []float64) []float64 {
	var s float64
	for _, x := range v {
		s += x * x
	}
	n := math.Sqrt(s)
	for i := range v {
		v[i] /= n
	}
	return v
}

type embedAnswer struct {
	Object string `json:"object"`
	Model  string `json:"model"`
	Data   []struct {
		Object    string          `json:"object"`
		Index     int             `json:"index"`
		Embedding json.RawMessage `json:"embedding"`
	} `json:"data"`
	Usage struct {
		PromptTokens int `json:"prompt_tokens"`
		TotalTokens  int `json:"total_tokens"`
	} `json:"usage"`
	Meta struct {
		DeviceID  int    `json:"device_id"`
		L7Profile string `json:"l7_profile"`
	} `json:"dsmil_metadata"`
}

func postEmbed(t *testing.T, base, body string) (int, *embedAnswer, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/embeddings", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAPIKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a embedAnswer
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(b, &a); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
	}
	return resp.StatusCode, &a, string(b)
}

// vectors decodes the answer's embeddings, float arrays or base64.
func (a *embedAnswer) vectors(t *testing.T) [][]float64 {
	t.Helper()
	out := make([][]float64, len(a.Data))
	for i, d := range a.Data {
		if d.Index != i || d.Object != "embedding" {
			t.Fatalf("data[%d] has index %d, object %q", i, d.Index, d.Object)
		}
		var s string
		if json.Unmarshal(d.Embedding, &s) == nil {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				t.Fatal(err)
			}
			for j := 0; j+4 <= len(b); j += 4 {
				out[i] = append(out[i], float64(math.Float32frombits(binary.LittleEndian.Uint32(b[j:]))))
			}
			continue
		}
		if err := json.Unmarshal(d.Embedding, &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func maxDiff(a, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = max(d, math.Abs(a[i]-b[i]))
	}
	return d
}

// TestEmbedPlugin sends /v1/embeddings through the shim, the router and
// the real dsmil-embed process running the tiny encoder on ONNX Runtime:
// five texts in one request (three batches of at most two) agree with the
// Go reference forward pass; the same inputs as token ids give the same
// vectors; base64 decodes to the float answer; dimensions truncates and
// re-normalises; too long an input and too many dimensions are 400s.
func TestEmbedPlugin(t *testing.T) {
	base, enc, ref := embedPlane(t)
	texts := []string{"the model reads the prompt", "hello world", "nothing leaves the host",
		"the worker streams the text back as it is produced", "it checks the graph"}
	body, _ := json.Marshal(map[string]any{"model": embedModelID, "input": texts, "encoding_format": "float"})
	status, floats, raw := postEmbed(t, base, string(body))
	if status != 200 || floats.Object != "list" || floats.Model != embedModelID || len(floats.Data) != len(texts) {
		t.Fatalf("%d %s", status, raw)
	}
	if floats.Meta.DeviceID != 49 || floats.Meta.L7Profile != embedProfile {
		t.Errorf("dsmil_metadata %+v", floats.Meta)
	}
	got := floats.vectors(t)
	tokens, idLists := 0, make([][]int64, len(texts))
	worst := 0.0
	for i, text := range texts {
		idLists[i] = wordIDs(t, enc.Vocab, text)
		tokens += len(idLists[i])
		d := maxDiff(got[i], refVector(t, ref, idLists[i]))
		worst = max(worst, d)
		if d > 1e-4 {
			t.Errorf("text %d %q: differs from the reference by %g", i, text, d)
		}
	}
	t.Logf("largest difference from the Go reference: %.2g", worst)
	if floats.Usage.PromptTokens != tokens || floats.Usage.TotalTokens != tokens {
		t.Errorf("usage %+v, want %d input tokens", floats.Usage, tokens)
	}

	// The same inputs as token ids, and base64 (the openai clients' default).
	body, _ = json.Marshal(map[string]any{"model": embedModelID, "input": idLists, "encoding_format": "base64"})
	status, b64, raw := postEmbed(t, base, string(body))
	if status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	for i, v := range b64.vectors(t) {
		if d := maxDiff(v, got[i]); d > 1e-6 {
			t.Errorf("input %d: token ids in base64 differ from the text in float by %g", i, d)
		}
	}

	// Matryoshka truncation: the first 8 values, unit length again.
	status, short, raw := postEmbed(t, base, fmt.Sprintf(`{"model":%q,"input":%q,"dimensions":8}`, embedModelID, texts[0]))
	if status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	if d := maxDiff(short.vectors(t)[0], unit(append([]float64(nil), got[0][:8]...))); d > 1e-5 {
		t.Errorf("dimensions=8 differs from the cut, re-normalised vector by %g", d)
	}

	long := strings.Repeat("the ", enc.Spec.MaxSeqLength)
	for _, tc := range []struct{ body, param, msg string }{
		{fmt.Sprintf(`{"model":%q,"input":["ok",%q]}`, embedModelID, long), "input", "input 1: 66 tokens; the model takes at most 64"},
		{fmt.Sprintf(`{"model":%q,"input":"x","dimensions":33}`, embedModelID), "dimensions", "gives 32 dimensions; dimensions=33 is more"},
		{fmt.Sprintf(`{"model":%q,"input":[[2,%d,3]]}`, embedModelID, enc.Spec.Vocab), "input", "outside the vocabulary"},
	} {
		status, _, raw := postEmbed(t, base, tc.body)
		var e struct {
			Error struct {
				Message string `json:"message"`
				Param   string `json:"param"`
			} `json:"error"`
		}
		json.Unmarshal([]byte(raw), &e)
		if status != 400 || e.Error.Param != tc.param || !strings.Contains(e.Error.Message, tc.msg) {
			t.Errorf("%s: %d %s", tc.body[:min(len(tc.body), 60)], status, raw)
		}
	}
}
