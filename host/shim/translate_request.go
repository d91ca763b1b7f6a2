package shim

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// endpoint is which OpenAI API a request came in on.
type endpoint int

const (
	chatEndpoint endpoint = iota // POST /v1/chat/completions
	textEndpoint                 // POST /v1/completions
)

// Edge limits (documented in docs/clients.md).
const (
	// maxStop is how many stop sequences a request may give (OpenAI's 4).
	maxStop = 4
	// maxInt32 is the largest max_tokens and top_k the wire carries; larger
	// values are clamped to it.
	maxInt32 = math.MaxInt32
	// maxLogitBias is how many entries logit_bias may have (OpenAI's 300).
	maxLogitBias = 300
	// maxBias bounds every logit_bias value: [-maxBias, maxBias] (OpenAI's).
	maxBias = 100
)

// openaiRequest is the body of both completion endpoints. Polymorphic
// fields are kept raw and decoded by validate. Fields that are not listed
// here are ignored.
type openaiRequest struct {
	Model               *string         `json:"model"`
	Messages            json.RawMessage `json:"messages"`
	Prompt              json.RawMessage `json:"prompt"`
	Temperature         *float64        `json:"temperature"`
	TopP                *float64        `json:"top_p"`
	TopK                *int64          `json:"top_k"`
	MinP                *float64        `json:"min_p"`
	Seed                *int64          `json:"seed"`
	Stop                json.RawMessage `json:"stop"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	PresencePenalty     *float64        `json:"presence_penalty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty"`
	RepetitionPenalty   *float64        `json:"repetition_penalty"`
	N                   *int64          `json:"n"`
	Stream              *bool           `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
	User                *string         `json:"user"`
	LogitBias           json.RawMessage `json:"logit_bias"`
	Logprobs            json.RawMessage `json:"logprobs"` // bool (chat) or int (completions)
	TopLogprobs         *int64          `json:"top_logprobs"`
	ResponseFormat      json.RawMessage `json:"response_format"`
	Tools               json.RawMessage `json:"tools"`
	ToolChoice          json.RawMessage `json:"tool_choice"`
	Functions           json.RawMessage `json:"functions"`
	FunctionCall        json.RawMessage `json:"function_call"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls"`
	Modalities          json.RawMessage `json:"modalities"`
	Audio               json.RawMessage `json:"audio"`
	Prediction          json.RawMessage `json:"prediction"`
	Echo                *bool           `json:"echo"`
	BestOf              *int64          `json:"best_of"`
	Suffix              *string         `json:"suffix"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

type message struct {
	Role       *string         `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       string          `json:"name"`
	ToolCallID string          `json:"tool_call_id"`
	ToolCalls  []toolCall      `json:"tool_calls"`
}

type toolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type contentPart struct {
	Type     string  `json:"type"`
	Text     *string `json:"text"`
	ImageURL *struct {
		URL    string `json:"url"`
		Detail string `json:"detail"`
	} `json:"image_url"`
}

// chatCall is a validated request, ready to become a frame.
type chatCall struct {
	endpoint     endpoint
	model        *config.Model
	params       *l7v1.L7ChatRequest
	stream       bool
	includeUsage bool
}

// decodeRequest parses and validates a completion request body for t.
func (s *Server) decodeRequest(body []byte, ep endpoint, t *config.Tenant) (*chatCall, *apiError) {
	var req openaiRequest
	if e := decodeJSON(body, &req); e != nil {
		return nil, e
	}
	call := &chatCall{endpoint: ep, params: &l7v1.L7ChatRequest{}}
	p := call.params

	if req.Model == nil || *req.Model == "" {
		return nil, invalidRequest("model", "missing_required_parameter", "you must provide a model parameter")
	}
	call.model = s.models[*req.Model]
	if call.model == nil || !t.AllowsModel(call.model.ID) {
		return nil, modelNotFound(*req.Model)
	}
	p.Model = call.model.ID

	switch ep {
	case chatEndpoint:
		if !isNull(req.Prompt) {
			return nil, unsupported("prompt", "prompt belongs to /v1/completions; /v1/chat/completions takes messages")
		}
		if e := decodeMessages(req.Messages, p); e != nil {
			return nil, e
		}
	case textEndpoint:
		if !isNull(req.Messages) {
			return nil, unsupported("messages", "messages belongs to /v1/chat/completions; /v1/completions takes prompt")
		}
		prompt, e := decodePrompt(req.Prompt)
		if e != nil {
			return nil, e
		}
		p.Prompt = prompt
	}
	if e := sampling(&req, p); e != nil {
		return nil, e
	}
	if e := logprobs(&req, ep, p); e != nil {
		return nil, e
	}
	if e := noOps(&req, ep); e != nil {
		return nil, e
	}
	if e := structured(&req, ep, p); e != nil {
		return nil, e
	}
	if e := checkToolMessages(p.Messages); e != nil {
		return nil, e
	}
	if req.Stream != nil {
		call.stream = *req.Stream
	}
	if req.StreamOptions != nil {
		if !call.stream {
			return nil, invalidRequest("stream_options", "invalid_value", "stream_options is only allowed when stream is true")
		}
		call.includeUsage = req.StreamOptions.IncludeUsage
	}
	// Plugins always report usage on a stream's last chunk, so that the
	// router can reconcile token quotas and count tokens; the shim passes it
	// on to the client only when stream_options.include_usage asked for it.
	p.Stream, p.IncludeUsage = call.stream, call.stream
	if req.User != nil {
		p.User = *req.User
	}
	return call, nil
}

// decodeJSON unmarshals a request body, naming the offending field of a
// type error.
func decodeJSON(body []byte, v any) *apiError {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return invalidRequest("", "invalid_json", "The request body must be a JSON object.")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	err := dec.Decode(v)
	if err == nil && dec.More() {
		err = errors.New("data after the JSON object")
	}
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return invalidRequest(te.Field, "invalid_type", "Invalid type for '%s': expected %s, got %s.", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	}
	return invalidRequest("", "invalid_json", "We could not parse the JSON body of your request: %v.", err)
}

func jsonKind(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"):
		return "an integer"
	case strings.HasPrefix(goKind, "float"):
		return "a number"
	case goKind == "bool":
		return "a boolean"
	case goKind == "string":
		return "a string"
	case goKind == "slice":
		return "an array"
	}
	return "an object"
}

func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// validRoles are the chat roles the shim passes on.
var validRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true}

func decodeMessages(raw json.RawMessage, p *l7v1.L7ChatRequest) *apiError {
	if isNull(raw) {
		return invalidRequest("messages", "missing_required_parameter", "you must provide a messages parameter")
	}
	var msgs []message
	if err := json.Unmarshal(raw, &msgs); err != nil {
		return invalidRequest("messages", "invalid_type", "messages must be an array of message objects: %v", err)
	}
	if len(msgs) == 0 {
		return invalidRequest("messages", "invalid_value", "messages must contain at least one message")
	}
	p.Messages = make([]*l7v1.Message, len(msgs))
	for i, m := range msgs {
		at := fmt.Sprintf("messages[%d]", i)
		if m.Role == nil || !validRoles[*m.Role] {
			role := "<missing>"
			if m.Role != nil {
				role = *m.Role
			}
			return invalidRequest(at+".role", "invalid_value",
				"Invalid role %s: want one of system, developer, user, assistant, tool.", quoteClip(role))
		}
		pm := &l7v1.Message{Role: *m.Role, Name: m.Name, ToolCallId: m.ToolCallID}
		if e := decodeContent(m.Content, *m.Role, at, pm); e != nil {
			return e
		}
		for _, tc := range m.ToolCalls {
			pm.ToolCalls = append(pm.ToolCalls, &l7v1.ToolCall{Id: tc.ID, Type: tc.Type, Name: tc.Function.Name, ArgumentsJson: tc.Function.Arguments})
		}
		p.Messages[i] = pm
	}
	return nil
}

// decodeContent reads a message's content: a string, an array of text and
// image_url parts, or null (assistant and tool-call turns only).
func decodeContent(raw json.RawMessage, role, at string, pm *l7v1.Message) *apiError {
	raw = bytes.TrimSpace(raw)
	switch {
	case isNull(raw):
		if role != "assistant" {
			return invalidRequest(at+".content", "missing_required_parameter", "%s.content is required for role %s", at, role)
		}
		return nil
	case raw[0] == '"':
		return unmarshalField(raw, &pm.Content, at+".content")
	case raw[0] != '[':
		return invalidRequest(at+".content", "invalid_type", "%s.content must be a string or an array of content parts", at)
	}
	var parts []contentPart
	if e := unmarshalField(raw, &parts, at+".content"); e != nil {
		return e
	}
	for j, part := range parts {
		pat := fmt.Sprintf("%s.content[%d]", at, j)
		switch part.Type {
		case "text":
			if part.Text == nil {
				return invalidRequest(pat+".text", "missing_required_parameter", "a text part needs text")
			}
			pm.Parts = append(pm.Parts, &l7v1.ContentPart{Part: &l7v1.ContentPart_Text{Text: *part.Text}})
		case "image_url":
			if part.ImageURL == nil || part.ImageURL.URL == "" {
				return invalidRequest(pat+".image_url.url", "missing_required_parameter", "an image_url part needs image_url.url")
			}
			cp, e := imagePart(part.ImageURL.URL, part.ImageURL.Detail, pat+".image_url.url")
			if e != nil {
				return e
			}
			pm.Parts = append(pm.Parts, cp)
		default:
			return invalidRequest(pat+".type", "unsupported_value",
				"Content part type %s is not supported; use text or image_url.", quoteClip(part.Type))
		}
	}
	return nil
}

// imagePart turns an image URL into a content part: a base64 data: URL is
// decoded into ImageData so plugins need not; any other URL is passed on.
func imagePart(url, detail, param string) (*l7v1.ContentPart, *apiError) {
	rest, ok := strings.CutPrefix(url, "data:")
	if !ok {
		return &l7v1.ContentPart{Part: &l7v1.ContentPart_ImageUrl{ImageUrl: &l7v1.ImageURL{Url: url, Detail: detail}}}, nil
	}
	meta, data, ok := strings.Cut(rest, ",")
	mime, isB64 := strings.CutSuffix(meta, ";base64")
	if !ok || !isB64 {
		return nil, invalidRequest(param, "invalid_value", "An image data: URL must be base64 encoded (data:image/png;base64,...).")
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, invalidRequest(param, "invalid_value", "The image data: URL is not valid base64: %v", err)
	}
	return &l7v1.ContentPart{Part: &l7v1.ContentPart_ImageData{ImageData: &l7v1.ImageData{Data: b, MimeType: mime, Detail: detail}}}, nil
}

// decodePrompt reads /v1/completions' prompt: a string, or an array of
// exactly one string. Token arrays and several prompts (which would each
// need their own choice) are refused.
func decodePrompt(raw json.RawMessage) (string, *apiError) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return "", invalidRequest("prompt", "missing_required_parameter", "you must provide a prompt parameter")
	}
	var prompt string
	if raw[0] == '[' {
		var list []json.RawMessage
		if json.Unmarshal(raw, &list) != nil || len(list) != 1 || json.Unmarshal(list[0], &prompt) != nil {
			return "", unsupported("prompt", "prompt must be a string or an array of one string; token arrays and several prompts per request are not supported")
		}
	} else if json.Unmarshal(raw, &prompt) != nil {
		return "", invalidRequest("prompt", "invalid_type", "prompt must be a string or an array of one string")
	}
	if prompt == "" {
		return "", invalidRequest("prompt", "invalid_value", "prompt must not be empty")
	}
	return prompt, nil
}

func unmarshalField(raw json.RawMessage, v any, param string) *apiError {
	if err := json.Unmarshal(raw, v); err != nil {
		return invalidRequest(param, "invalid_type", "Invalid value for '%s': %v", param, err)
	}
	return nil
}

// sampling validates the numeric and sampling fields and copies them into
// p. Out-of-range values are refused with a 400 naming the field;
// max_tokens and top_k above the wire's int32 are clamped.
func sampling(req *openaiRequest, p *l7v1.L7ChatRequest) *apiError {
	for _, f := range []struct {
		name     string
		v        *float64
		min, max float64
		minOpen  bool
		dst      **float32
	}{
		{"temperature", req.Temperature, 0, 2, false, &p.Temperature},
		{"top_p", req.TopP, 0, 1, false, &p.TopP},
		{"min_p", req.MinP, 0, 1, false, &p.MinP},
		{"presence_penalty", req.PresencePenalty, -2, 2, false, &p.PresencePenalty},
		{"frequency_penalty", req.FrequencyPenalty, -2, 2, false, &p.FrequencyPenalty},
		{"repetition_penalty", req.RepetitionPenalty, 0, 2, true, &p.RepetitionPenalty},
	} {
		if f.v == nil {
			continue
		}
		if v := *f.v; v < f.min || v > f.max || (f.minOpen && v == f.min) {
			lo := "["
			if f.minOpen {
				lo = "("
			}
			return invalidRequest(f.name, "invalid_value", "Invalid '%s': %v is outside %s%g, %g].", f.name, v, lo, f.min, f.max)
		}
		*f.dst = proto.Float32(float32(*f.v))
	}
	if req.TopK != nil {
		if *req.TopK < 0 {
			return invalidRequest("top_k", "invalid_value", "Invalid 'top_k': %d is negative (0 disables top-k).", *req.TopK)
		}
		p.TopK = proto.Int32(int32(min(*req.TopK, maxInt32)))
	}
	if req.Seed != nil {
		p.Seed = proto.Int64(*req.Seed)
	}
	maxTokens, param := req.MaxTokens, "max_tokens"
	if m := req.MaxCompletionTokens; m != nil {
		if maxTokens != nil && *maxTokens != *m {
			return invalidRequest("max_tokens", "invalid_value", "max_tokens (%d) and max_completion_tokens (%d) disagree; send one of them.", *maxTokens, *m)
		}
		maxTokens, param = m, "max_completion_tokens"
	}
	if maxTokens != nil {
		if *maxTokens < 1 {
			return invalidRequest(param, "invalid_value", "Invalid '%s': %d is below the minimum of 1.", param, *maxTokens)
		}
		p.MaxTokens = int32(min(*maxTokens, maxInt32))
	}
	if req.N != nil {
		if *req.N < 1 || *req.N > maxChoices {
			return invalidRequest("n", "invalid_value", "Invalid 'n': %d; it must be between 1 and %d.", *req.N, maxChoices)
		}
		// n > 1 reaches the plugin, which generates that many choices or
		// refuses (400 on n) when it cannot; 1 is the wire's default.
		if *req.N > 1 {
			p.N = int32(*req.N)
		}
	}
	stop, e := decodeStop(req.Stop)
	if e != nil {
		return e
	}
	p.Stop = stop
	bias, e := decodeLogitBias(req.LogitBias)
	if e != nil {
		return e
	}
	p.LogitBias = bias
	return nil
}

// decodeLogitBias reads logit_bias: null, or an object of at most
// maxLogitBias entries whose keys are token ids of the served model's
// tokenizer written as JSON strings of non-negative integers that fit the
// wire's int32, and whose values are numbers in [-maxBias, maxBias]. Keys
// are checked in sorted order so that the error for a request with several
// bad entries is always the same. Whether an id is inside the model's
// vocabulary is the plugin's check: the shim does not know the tokenizer.
func decodeLogitBias(raw json.RawMessage) (map[int32]float32, *apiError) {
	const param = "logit_bias"
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return nil, nil
	}
	var entries map[string]json.RawMessage
	if raw[0] != '{' || json.Unmarshal(raw, &entries) != nil {
		return nil, invalidRequest(param, "invalid_type",
			"Invalid type for 'logit_bias': expected an object mapping token ids (strings of integers) to numbers, got %s.", clip(string(raw)))
	}
	if len(entries) == 0 {
		return nil, nil
	}
	if len(entries) > maxLogitBias {
		return nil, invalidRequest(param, "invalid_value",
			"Invalid 'logit_bias': %d entries; at most %d are allowed.", len(entries), maxLogitBias)
	}
	bias := make(map[int32]float32, len(entries))
	keyOf := make(map[int32]string, len(entries))
	for _, k := range slices.Sorted(maps.Keys(entries)) {
		id, err := strconv.ParseInt(k, 10, 64)
		var ne *strconv.NumError
		tooBig := errors.As(err, &ne) && ne.Err == strconv.ErrRange
		switch {
		case tooBig && strings.HasPrefix(k, "-"), err == nil && id < 0:
			return nil, invalidRequest(param, "invalid_value",
				"Invalid key in 'logit_bias': %s is negative; keys are token ids, integers from 0 to %d.", quoteClip(k), maxInt32)
		case tooBig, err == nil && id > maxInt32:
			return nil, invalidRequest(param, "invalid_value",
				"Invalid key in 'logit_bias': %s is above %d, the largest token id.", quoteClip(k), maxInt32)
		case err != nil:
			return nil, invalidRequest(param, "invalid_value",
				"Invalid key in 'logit_bias': %s is not an integer; keys are token ids, integers from 0 to %d written as strings.", quoteClip(k), maxInt32)
		}
		v := entries[k]
		var b float64
		if isNull(v) || json.Unmarshal(v, &b) != nil {
			return nil, invalidRequest(param, "invalid_type",
				"Invalid value for 'logit_bias' key %s: expected a number between %d and %d, got %s.", quoteClip(k), -maxBias, maxBias, clip(string(v)))
		}
		if b < -maxBias || b > maxBias {
			return nil, invalidRequest(param, "invalid_value",
				"Invalid value for 'logit_bias' key %s: %v is outside [%d, %d].", quoteClip(k), b, -maxBias, maxBias)
		}
		if prev, dup := keyOf[int32(id)]; dup {
			return nil, invalidRequest(param, "invalid_value",
				"Invalid 'logit_bias': keys %s and %s are the same token id, %d.", quoteClip(prev), quoteClip(k), id)
		}
		keyOf[int32(id)] = k
		bias[int32(id)] = float32(b)
	}
	return bias, nil
}

// decodeStop reads stop: null, a string or an array of at most four
// strings.
func decodeStop(raw json.RawMessage) ([]string, *apiError) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return nil, nil
	}
	var stop []string
	if raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) != nil {
			return nil, invalidRequest("stop", "invalid_type", "stop must be a string or an array of strings")
		}
		stop = []string{s}
	} else if json.Unmarshal(raw, &stop) != nil {
		return nil, invalidRequest("stop", "invalid_type", "stop must be a string or an array of strings")
	}
	if len(stop) > maxStop {
		return nil, invalidRequest("stop", "invalid_value", "Invalid 'stop': %d sequences; at most %d are allowed.", len(stop), maxStop)
	}
	return stop, nil
}

// maxChoices is OpenAI's limit on n.
const maxChoices = 128

// OpenAI's limits on the alternatives per position: chat's top_logprobs,
// completions' logprobs.
const (
	maxTopLogprobs     = 20
	maxTextTopLogprobs = 5
)

// logprobs reads chat's logprobs (bool) and top_logprobs (0–20, only with
// logprobs), or completions' logprobs (0–5: the sampled token's and that
// many alternatives'), into the request. A plugin that has no log
// probabilities refuses them with a 400.
func logprobs(req *openaiRequest, ep endpoint, p *l7v1.L7ChatRequest) *apiError {
	if ep == textEndpoint {
		if req.TopLogprobs != nil {
			return unsupported("top_logprobs", "top_logprobs belongs to /v1/chat/completions; /v1/completions takes logprobs: <n>")
		}
		if isNull(req.Logprobs) {
			return nil
		}
		var n int64
		if json.Unmarshal(req.Logprobs, &n) != nil {
			return invalidRequest("logprobs", "invalid_type", "logprobs must be an integer")
		}
		if n < 0 || n > maxTextTopLogprobs {
			return invalidRequest("logprobs", "invalid_value", "Invalid 'logprobs': %d; it must be between 0 and %d.", n, maxTextTopLogprobs)
		}
		p.Logprobs, p.TopLogprobs = true, int32(n)
		return nil
	}
	if !isNull(req.Logprobs) && json.Unmarshal(req.Logprobs, &p.Logprobs) != nil {
		return invalidRequest("logprobs", "invalid_type", "logprobs must be a boolean")
	}
	if req.TopLogprobs != nil {
		n := *req.TopLogprobs
		switch {
		case n < 0 || n > maxTopLogprobs:
			return invalidRequest("top_logprobs", "invalid_value", "Invalid 'top_logprobs': %d; it must be between 0 and %d.", n, maxTopLogprobs)
		case n > 0 && !p.Logprobs:
			return invalidRequest("top_logprobs", "invalid_value", "top_logprobs requires logprobs to be true.")
		}
		p.TopLogprobs = int32(n)
	}
	return nil
}

// noOps checks the parameters no plugin behind the shim implements yet:
// each is accepted only with a value that asks for nothing (the default),
// and refused with a 400 naming it otherwise — never ignored.
func noOps(req *openaiRequest, ep endpoint) *apiError {
	if !isNull(req.Modalities) && !rawIs(req.Modalities, `["text"]`) {
		return unsupported("modalities", "only text output is supported")
	}
	if !isNull(req.Audio) {
		return unsupported("audio", "audio output is not supported")
	}
	if !isNull(req.Prediction) {
		return unsupported("prediction", "predicted outputs are not supported")
	}
	if ep == textEndpoint {
		if req.Echo != nil && *req.Echo {
			return unsupported("echo", "echo is not supported")
		}
		if req.BestOf != nil && *req.BestOf != 1 {
			return unsupported("best_of", "best_of is not supported")
		}
		if req.Suffix != nil && *req.Suffix != "" {
			return unsupported("suffix", "suffix (insertion) is not supported")
		}
	}
	return nil
}

// rawIs reports whether raw is one of the given JSON texts, ignoring
// whitespace.
func rawIs(raw json.RawMessage, texts ...string) bool {
	var compact bytes.Buffer
	if json.Compact(&compact, raw) != nil {
		return false
	}
	for _, t := range texts {
		if compact.String() == t {
			return true
		}
	}
	return false
}

// DBE addressing of the frames the shim sends.
const (
	// shimDevice is DEVICE_ID_SRC: the shim is not a DSMIL device.
	shimDevice = 0
	// routerDevice is DEVICE_ID_DST: the L7 router.
	routerDevice = 43
)

// frame builds the L7_CHAT_REQ for call on behalf of t.
func (s *Server) frame(call *chatCall, t *config.Tenant, reqID [16]byte, now time.Time) (*dbe.Frame, error) {
	return s.requestFrame(dbe.MsgChatReq, call.params, call.model, t, reqID, now)
}

// requestFrame builds a request frame of type typ for model on behalf of
// t: the TLVs in registry order, then params as the payload.
func (s *Server) requestFrame(typ dbe.MsgType, params proto.Message, model *config.Model, t *config.Tenant, reqID [16]byte, now time.Time) (*dbe.Frame, error) {
	payload, err := proto.Marshal(params)
	if err != nil {
		return nil, fmt.Errorf("shim: marshal %s payload: %w", typ, err)
	}
	f := &dbe.Frame{Type: typ, TLVs: make([]dbe.TLV, 0, 11), Payload: payload}
	f.SetTenantID(t.Name)
	f.SetCompartmentMask(t.CompartmentMask())
	f.SetClassification(t.Classification)
	f.SetROELevel(t.ROE)
	f.SetDeviceIDSrc(shimDevice)
	f.SetDeviceIDDst(routerDevice)
	f.SetProfile(model.Profile)
	if s.cfg.ClaimSource != nil {
		if tok := s.cfg.ClaimSource(t); len(tok) > 0 {
			f.SetClaimToken(tok)
		}
	}
	f.SetTimestamp(now)
	f.SetRequestID(reqID)
	f.SetTimeout(s.cfg.Shim.RequestTimeout)
	return f, nil
}
