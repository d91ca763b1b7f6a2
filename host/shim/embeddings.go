package shim

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strconv"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/internal/slicepool"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// Limits of /v1/embeddings (documented in docs/clients.md). The body as a
// whole is bounded by shim.max_body_bytes; how many tokens one input may
// have is the model's (the plugin answers a 400 naming the input).
const (
	// maxEmbedInputs is how many inputs one request may carry (OpenAI's
	// 2048).
	maxEmbedInputs = 2048
	// maxEmbedTokenIDs bounds one token-id input (OpenAI's 8192 tokens per
	// input, the longest of its models).
	maxEmbedTokenIDs = 8192
)

// embeddingsRequest is the body of POST /v1/embeddings. input is kept raw
// and decoded by decodeEmbedInput.
type embeddingsRequest struct {
	Model          *string         `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat *string         `json:"encoding_format"`
	Dimensions     *int64          `json:"dimensions"`
	User           *string         `json:"user"`
}

// embedCall is a validated embeddings request, ready to become a frame.
type embedCall struct {
	model  *config.Model
	params *l7v1.L7EmbedRequest
	base64 bool // encoding_format "base64"
}

// embeddings serves POST /v1/embeddings.
func (s *Server) embeddings(w http.ResponseWriter, r *http.Request, rq *request) {
	body, e := s.readBody(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	call, e := s.decodeEmbeddings(body, rq.tenant)
	if e != nil {
		writeError(w, e)
		return
	}
	f, err := s.requestFrame(dbe.MsgEmbedReq, call.params, call.model, rq.tenant, rq.id, rq.start)
	if err != nil {
		s.fail(w, rq, &mux.Error{Code: dbe.CodeInternal, Message: err.Error()})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Shim.RequestTimeout)
	defer cancel()
	rp := s.forward(ctx, f)
	defer rp.cancel()
	ev, derr := rp.final(ctx)
	if derr == nil && ev.embed == nil {
		derr = &mux.Error{Code: dbe.CodeWorkerFailed, Message: "the worker did not answer an embeddings request with L7_EMBED_RESP"}
	}
	if derr == nil && len(ev.embed.GetData()) != len(call.params.GetInputs()) {
		derr = &mux.Error{Code: dbe.CodeWorkerFailed, Message: "the worker returned a different number of embeddings than inputs"}
	}
	if derr != nil {
		s.fail(w, rq, derr)
		return
	}
	buf := bodyBufs.Get(embeddingsSize(call, ev.embed))
	defer bodyBufs.Put(buf)
	body, err = appendEmbeddings((*buf)[:0], call, ev.embed)
	if err != nil {
		s.fail(w, rq, &mux.Error{Code: dbe.CodeWorkerFailed, Message: "the worker's answer: " + err.Error()})
		return
	}
	body = append(body, '\n')
	*buf = body
	writeJSONBody(w, http.StatusOK, body)
}

// bodyBufs keeps answers' body buffers for the next answer: a 32-input
// answer is 66 KB of base64, written and done with at once.
var bodyBufs slicepool.Pool[byte]

// embeddingsSize is about the size of the response body: 256 bytes of
// frame, ~60 per vector, and each value's 4 bytes as 5⅓ of base64 or up
// to 16 characters as a JSON number.
func embeddingsSize(call *embedCall, resp *l7v1.L7EmbedResponse) int {
	per := 16
	if call.base64 {
		per = 6
	}
	n := 256
	for _, d := range resp.GetData() {
		n += 64 + per*len(d.GetValues())
	}
	return n
}

// decodeEmbeddings parses and validates an embeddings request body for t.
func (s *Server) decodeEmbeddings(body []byte, t *config.Tenant) (*embedCall, *apiError) {
	var req embeddingsRequest
	if e := decodeJSON(body, &req); e != nil {
		return nil, e
	}
	if req.Model == nil || *req.Model == "" {
		return nil, invalidRequest("model", "missing_required_parameter", "you must provide a model parameter")
	}
	call := &embedCall{model: s.models[*req.Model], params: &l7v1.L7EmbedRequest{}}
	if call.model == nil || !t.AllowsModel(call.model.ID) {
		return nil, modelNotFound(*req.Model)
	}
	call.params.Model = call.model.ID
	inputs, e := decodeEmbedInput(req.Input)
	if e != nil {
		return nil, e
	}
	call.params.Inputs = inputs
	if req.EncodingFormat != nil {
		switch *req.EncodingFormat {
		case "float":
		case "base64":
			call.base64 = true
		default:
			return nil, invalidRequest("encoding_format", "invalid_value",
				"Invalid value for 'encoding_format': %s. Supported values are: 'float' and 'base64'.", quoteClip(*req.EncodingFormat))
		}
	}
	if req.Dimensions != nil {
		if *req.Dimensions < 1 || *req.Dimensions > math.MaxInt32 {
			return nil, invalidRequest("dimensions", "invalid_value", "Invalid 'dimensions': %d; it must be a positive integer.", *req.Dimensions)
		}
		call.params.Dimensions = uint32(*req.Dimensions)
	}
	if req.User != nil {
		call.params.User = *req.User
	}
	return call, nil
}

// decodeEmbedInput reads OpenAI's input: a string, an array of strings, an
// array of token ids, or an array of arrays of token ids. Every string and
// token sequence must be non-empty, token ids non-negative 32-bit integers.
// As a DSMIL extension an image, {"type": "image_url", "image_url": {"url":
// "data:image/png;base64,..."}}, may stand alone or be any element of an
// array of strings or of token arrays; it travels decoded from base64 and
// the worker reads it (a model that embeds no images refuses it).
func decodeEmbedInput(raw json.RawMessage) ([]*l7v1.EmbedInput, *apiError) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return nil, invalidRequest("input", "missing_required_parameter", "you must provide an input parameter")
	}
	bad := func(format string, args ...any) *apiError {
		return invalidRequest("input", "invalid_value", "Invalid 'input': "+format, args...)
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, bad("%v.", err)
		}
		if s == "" {
			return nil, bad("the string is empty.")
		}
		return []*l7v1.EmbedInput{textInput(s)}, nil
	case '{':
		in, e := imageInput(raw, "")
		if e != nil {
			return nil, e
		}
		return []*l7v1.EmbedInput{in}, nil
	case '[':
	default:
		return nil, bad("expected a string, an array of strings, an array of token ids or an array of arrays of token ids (or, a DSMIL extension, image_url objects).")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, bad("%v.", err)
	}
	if len(items) == 0 {
		return nil, bad("the array is empty.")
	}
	// An array of numbers is one token sequence.
	if first := bytes.TrimSpace(items[0]); len(first) > 0 && (first[0] == '-' || first[0] >= '0' && first[0] <= '9') {
		ids, e := tokenIDs(raw, "")
		if e != nil {
			return nil, e
		}
		return []*l7v1.EmbedInput{tokensInput(ids)}, nil
	}
	if len(items) > maxEmbedInputs {
		return nil, bad("%d inputs; at most %d are allowed per request.", len(items), maxEmbedInputs)
	}
	out := make([]*l7v1.EmbedInput, len(items))
	for i, it := range items {
		it = bytes.TrimSpace(it)
		switch {
		case len(it) > 0 && it[0] == '"':
			var s string
			if err := json.Unmarshal(it, &s); err != nil {
				return nil, bad("input[%d]: %v.", i, err)
			}
			if s == "" {
				return nil, bad("input[%d] is an empty string.", i)
			}
			out[i] = textInput(s)
		case len(it) > 0 && it[0] == '[':
			ids, e := tokenIDs(it, "["+strconv.Itoa(i)+"]")
			if e != nil {
				return nil, e
			}
			out[i] = tokensInput(ids)
		case len(it) > 0 && it[0] == '{':
			in, e := imageInput(it, "["+strconv.Itoa(i)+"]")
			if e != nil {
				return nil, e
			}
			out[i] = in
		default:
			return nil, bad("input[%d] is neither a string, an array of token ids nor an image_url object; the elements of an array must all be strings or all be arrays of token ids (images may be among either).", i)
		}
	}
	// Strings and token arrays do not mix (images go with either).
	text, tokens := -1, -1
	for i, in := range out {
		switch in.GetInput().(type) {
		case *l7v1.EmbedInput_Text:
			text = max(text, i)
		case *l7v1.EmbedInput_Tokens:
			tokens = max(tokens, i)
		}
	}
	if text >= 0 && tokens >= 0 {
		return nil, bad("input[%d]: the elements of an array must all be strings or all be arrays of token ids.", max(text, tokens))
	}
	return out, nil
}

// embedImageJSON is an image element of input (the chat image_url part's
// shape).
type embedImageJSON struct {
	Type     string `json:"type"`
	ImageURL *struct {
		URL    string `json:"url"`
		Detail string `json:"detail"`
	} `json:"image_url"`
}

// imageInput reads one image element; where names it in errors ("" or
// "[3]"). Only data: URLs are taken: the plane fetches nothing.
func imageInput(raw json.RawMessage, where string) (*l7v1.EmbedInput, *apiError) {
	param := "input" + where
	var im embedImageJSON
	if err := json.Unmarshal(raw, &im); err != nil {
		return nil, invalidRequest("input", "invalid_value", "Invalid '%s': %v.", param, err)
	}
	if im.Type != "image_url" {
		return nil, invalidRequest("input", "invalid_value", "Invalid '%s.type': %s; the only object input is an image, {\"type\": \"image_url\", \"image_url\": {\"url\": \"data:...\"}}.", param, quoteClip(im.Type))
	}
	if im.ImageURL == nil || im.ImageURL.URL == "" {
		return nil, invalidRequest(param+".image_url.url", "missing_required_parameter", "An image_url input needs image_url.url.")
	}
	part, e := imagePart(im.ImageURL.URL, im.ImageURL.Detail, param+".image_url.url")
	if e != nil {
		return nil, e
	}
	data := part.GetImageData()
	if data == nil {
		return nil, invalidRequest(param+".image_url.url", "invalid_value",
			"Only data: URLs are accepted for images to embed (data:image/png;base64,...): the plane fetches no URLs.")
	}
	if len(data.GetData()) == 0 {
		return nil, invalidRequest(param+".image_url.url", "invalid_value", "The image data: URL is empty.")
	}
	return &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Image{Image: data}}, nil
}

// tokenIDs reads one token sequence; where names it in errors ("" or
// "[3]").
func tokenIDs(raw json.RawMessage, where string) ([]int32, *apiError) {
	var nums []json.Number
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&nums); err != nil {
		return nil, invalidRequest("input", "invalid_value", "Invalid 'input%s': token ids must be integers: %v.", where, err)
	}
	switch {
	case len(nums) == 0:
		return nil, invalidRequest("input", "invalid_value", "Invalid 'input%s': the token array is empty.", where)
	case len(nums) > maxEmbedTokenIDs:
		return nil, invalidRequest("input", "invalid_value", "Invalid 'input%s': %d token ids; at most %d are allowed per input.", where, len(nums), maxEmbedTokenIDs)
	}
	ids := make([]int32, len(nums))
	for i, n := range nums {
		v, err := n.Int64()
		if err != nil || v < 0 || v > math.MaxInt32 {
			return nil, invalidRequest("input", "invalid_value", "Invalid 'input%s[%d]': %s is not a token id (an integer from 0 to %d).", where, i, quoteClip(n.String()), math.MaxInt32)
		}
		ids[i] = int32(v)
	}
	return ids, nil
}

func textInput(s string) *l7v1.EmbedInput {
	return &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Text{Text: s}}
}

func tokensInput(ids []int32) *l7v1.EmbedInput {
	return &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Tokens{Tokens: &l7v1.TokenIDs{Ids: ids}}}
}

// Responses, in OpenAI's shape: {"object": "list", "data": [{"object":
// "embedding", "index": i, "embedding": [floats] or "base64"}], "model",
// "usage": {"prompt_tokens", "total_tokens"}, "dsmil_metadata"}. The body
// is appended by hand rather than by encoding/json's reflection: the
// same bytes (TestEmbeddingsJSON), in a fraction of the time, which counts
// on the one-short-input path (bench/embed).

// appendEmbeddings appends the response body for resp. A value that is
// not finite (which JSON cannot carry) is an error.
func appendEmbeddings(b []byte, call *embedCall, resp *l7v1.L7EmbedResponse) ([]byte, error) {
	meta := toMetadata(resp.GetDeviceId(), resp.GetLatencyMs(), resp.GetL7Profile(), call.model.Profile)
	b = append(b, `{"object":"list","data":[`...)
	for i, d := range resp.GetData() {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendUint(b, uint64(d.GetIndex()), 10)
		b = append(b, `,"embedding":`...)
		if call.base64 {
			b = append(b, '"')
			b = appendFloat32Base64(b, d.GetValues())
			b = append(b, '"')
		} else {
			b = append(b, '[')
			for k, x := range d.GetValues() {
				if k > 0 {
					b = append(b, ',')
				}
				var ok bool
				if b, ok = appendJSONFloat(b, float64(x), 32); !ok {
					return nil, fmt.Errorf("embedding %d value %d is %v, which JSON cannot carry", i, k, x)
				}
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	b = appendJSONString(b, call.model.ID)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	n := uint64(resp.GetUsage().GetPromptTokens())
	b = strconv.AppendUint(b, n, 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendUint(b, n, 10)
	b = append(b, `},"dsmil_metadata":{"device_id":`...)
	b = strconv.AppendUint(b, uint64(meta.DeviceID), 10)
	b = append(b, `,"latency_ms":`...)
	var ok bool
	if b, ok = appendJSONFloat(b, meta.LatencyMS, 64); !ok {
		return nil, fmt.Errorf("latency_ms is %v", meta.LatencyMS)
	}
	b = append(b, `,"l7_profile":`...)
	b = appendJSONString(b, meta.L7Profile)
	return append(b, '}', '}'), nil
}

// appendJSONFloat appends f as encoding/json writes a float32 (bits 32) or
// float64: shortest round-trip digits, exponent form below 1e-6 and from
// 1e21, "e-07" written "e-7". It reports false for NaN and infinities.
func appendJSONFloat(b []byte, f float64, bits int) ([]byte, bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 {
		if bits == 64 && (abs < 1e-6 || abs >= 1e21) || bits == 32 && (float32(abs) < 1e-6 || float32(abs) >= 1e21) {
			format = 'e'
		}
	}
	b = strconv.AppendFloat(b, f, format, -1, bits)
	if format == 'e' {
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

// appendJSONString appends s as encoding/json quotes it (HTML-safe).
func appendJSONString(b []byte, s string) []byte {
	q, _ := json.Marshal(s) // a string always marshals
	return append(b, q...)
}

// appendFloat32Base64 appends what the openai clients decode for
// encoding_format "base64": the little-endian IEEE 754 float32 bytes,
// base64 (standard alphabet, padded).
func appendFloat32Base64(dst []byte, v []float32) []byte {
	// The bytes go through a buffer on the stack, 96 floats at a time: no
	// allocation per vector, and 384 bytes are a multiple of 3, so the
	// chunks' encodings join into the whole's (padding only at the end).
	const chunk = 96
	var raw [4 * chunk]byte
	for len(v) > 0 {
		n := min(len(v), chunk)
		for i, x := range v[:n] {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
		}
		dst = base64.StdEncoding.AppendEncode(dst, raw[:4*n])
		v = v[n:]
	}
	return dst
}
