package worker

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/internal/llm/schematest"
	"github.com/dsmil/l7/plugins/internal/llm/toolcall"
	"github.com/dsmil/l7/sdk"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// corpusDir is the constrain package's schema corpus.
const corpusDir = "../constrain/testdata/schemas"

// unboundedSchemas may grow without bound: a random model may run out of
// max_tokens before the value can end, and then says so with "length".
var unboundedSchemas = map[string]bool{
	"unconstrained-strings": true, "any-value": true, "json-object": true, "additional-true": true,
	"additional-schema": true, "true-schema-items": true, "recursive-tree": true, "recursive-root": true,
	"definitions-linked-list": true, "number-unbounded": true,
}

// validate checks out against schema with an independent validator.
func validate(t *testing.T, name string, schema []byte, out string) error {
	return schematest.Validate(t, name, schema, out)
}

// TestStructuredCorpus: the random-weight model, sampling at temperature 1
// with 10 seeds, answers every schema of the corpus with JSON that an
// independent validator accepts, ending with "stop" whenever the schema
// bounds its output; where nothing bounds it, a "length" finish is honest.
func TestStructuredCorpus(t *testing.T) {
	w, _ := configured(t, nil)
	files, err := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if err != nil || len(files) < 30 {
		t.Fatalf("corpus: %d schemas, %v", len(files), err)
	}
	stops, lengths := 0, 0
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		schema, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for seed := range int64(10) {
			p := &l7v1.L7ChatRequest{Model: "tiny-test", Messages: []*l7v1.Message{{Role: "user", Content: "Answer in JSON."}},
				ResponseFormat: &l7v1.ResponseFormat{Type: "json_schema", Name: "x", SchemaJson: string(schema)},
				Temperature:    f32(1), Seed: &seed, MaxTokens: 400}
			text, res, err := chat(t, w, p)
			if err != nil {
				t.Fatalf("%s seed %d: %v", name, seed, err)
			}
			switch res.FinishReason {
			case l7v1.FinishReason_FINISH_REASON_STOP:
				stops++
				if err := validate(t, name, schema, text); err != nil {
					t.Fatalf("%s seed %d: %q does not validate: %v", name, seed, text, err)
				}
			case l7v1.FinishReason_FINISH_REASON_LENGTH:
				lengths++
				if !unboundedSchemas[name] {
					t.Fatalf("%s seed %d: bounded schema ended with length after %d tokens: %q", name, seed, res.Usage.CompletionTokens, text)
				}
			default:
				t.Fatalf("%s seed %d: finish %v", name, seed, res.FinishReason)
			}
		}
	}
	t.Logf("%d schemas × 10 seeds: %d stop (all valid), %d length (unbounded schemas)", len(files), stops, lengths)

	// json_object: any JSON object.
	for seed := range int64(5) {
		text, res, err := chat(t, w, &l7v1.L7ChatRequest{Model: "tiny-test", Messages: []*l7v1.Message{{Role: "user", Content: "JSON!"}},
			ResponseFormat: &l7v1.ResponseFormat{Type: "json_object"}, Temperature: f32(1), Seed: &seed, MaxTokens: 200})
		var obj map[string]any
		if err != nil || (res.FinishReason == l7v1.FinishReason_FINISH_REASON_STOP && json.Unmarshal([]byte(text), &obj) != nil) {
			t.Fatalf("json_object seed %d: %q (%v), %v", seed, text, res.FinishReason, err)
		}
	}
}

// TestForcedToolCalls: tool_choice "required" and a named function make
// the random model call tools in the template's envelope, parsed back into
// tool-call deltas whose arguments validate against the tool's parameters;
// parallel_tool_calls false allows one call.
func TestForcedToolCalls(t *testing.T) {
	w, _ := configured(t, nil)
	weather := `{"type":"object","properties":{"city":{"type":"string","maxLength":12},"unit":{"enum":["c","f"]}},"required":["city","unit"],"additionalProperties":false}`
	tools := []*l7v1.Tool{
		{Type: "function", Function: &l7v1.FunctionDef{Name: "get_weather", ParametersJson: weather}},
		{Type: "function", Function: &l7v1.FunctionDef{Name: "get_time", ParametersJson: `{"type":"object","properties":{"tz":{"enum":["UTC","CET"]}},"required":["tz"]}`}},
	}
	schemas := map[string]string{"get_weather": weather, "get_time": `{"type":"object","properties":{"tz":{"enum":["UTC","CET"]}},"required":["tz"]}`}
	no := false
	for seed := range int64(10) {
		choice := &l7v1.ToolChoice{Mode: l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED}
		var parallel *bool
		if seed%2 == 1 {
			choice = &l7v1.ToolChoice{Mode: l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_FUNCTION, FunctionName: "get_weather"}
			parallel = &no
		}
		s := &stream{}
		res, err := w.Chat(t.Context(), &sdk.ChatRequest{Profile: "llm-test", Params: &l7v1.L7ChatRequest{Model: "tiny-test",
			Messages: []*l7v1.Message{{Role: "user", Content: "Weather in Paris?"}}, Tools: tools, ToolChoice: choice,
			ParallelToolCalls: parallel, Temperature: f32(1), Seed: &seed, MaxTokens: 400}}, s)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		if res.FinishReason != l7v1.FinishReason_FINISH_REASON_TOOL_CALLS || strings.TrimSpace(s.text()) != "" {
			t.Fatalf("seed %d: finish %v, content %q, calls %v", seed, res.FinishReason, s.text(), s.calls)
		}
		var names, args []string
		for _, d := range s.calls {
			if d.GetId() != "" {
				names, args = append(names, d.GetName()), append(args, "")
			}
			args[d.GetIndex()] += d.GetArgumentsJson()
		}
		if len(names) == 0 || (parallel != nil && len(names) != 1) {
			t.Fatalf("seed %d: calls %v", seed, names)
		}
		for i, n := range names {
			if seed%2 == 1 && n != "get_weather" {
				t.Fatalf("seed %d: called %s, not the named function", seed, n)
			}
			if err := validate(t, n, []byte(schemas[n]), args[i]); err != nil {
				t.Fatalf("seed %d: %s(%s): %v", seed, n, args[i], err)
			}
		}
	}
}

// TestAutoToolCalls: with tool_choice "auto" the reply is free text until
// the model opens a call, and from there a valid call. The random model
// left alone mostly answers in prose (its 512-token vocabulary has
// <tool_call> as one token, which it draws now and then); pushed by
// logit_bias towards <tool_call> it opens a call at once, which the lazy
// grammar completes into valid arguments, parsed back into tool-call deltas
// with finish "tool_calls".
func TestAutoToolCalls(t *testing.T) {
	w, _ := configured(t, nil)
	weather := `{"type":"object","properties":{"city":{"type":"string","maxLength":12}},"required":["city"],"additionalProperties":false}`
	tools := []*l7v1.Tool{{Type: "function", Function: &l7v1.FunctionDef{Name: "get_weather", ParametersJson: weather}}}
	open := int32(tiny(t).Tokenizer.Added[mkmodel.ToolCallOpen])
	run := func(p *l7v1.L7ChatRequest) (*sdk.ChatResult, *stream) {
		t.Helper()
		s := &stream{}
		res, err := w.Chat(t.Context(), &sdk.ChatRequest{Profile: "llm-test", Params: p}, s)
		if err != nil {
			t.Fatalf("seed %d, bias %v: %v", p.GetSeed(), p.LogitBias, err)
		}
		var args []string
		for _, d := range s.calls {
			if d.GetId() != "" {
				if d.GetName() != "get_weather" {
					t.Fatalf("seed %d: called %q", p.GetSeed(), d.GetName())
				}
				args = append(args, "")
			}
			args[d.GetIndex()] += d.GetArgumentsJson()
		}
		for _, a := range args {
			if err := validate(t, "get_weather", []byte(weather), a); err != nil {
				t.Fatalf("seed %d: get_weather(%s): %v", p.GetSeed(), a, err)
			}
		}
		return res, s
	}
	prose := 0
	for seed := range int64(8) {
		p := &l7v1.L7ChatRequest{Model: "tiny-test", Messages: []*l7v1.Message{{Role: "user", Content: "Weather in Paris?"}},
			Tools: tools, Temperature: f32(1), Seed: &seed, MaxTokens: 60}
		if res, s := run(p); len(s.calls) == 0 {
			if s.text() == "" || res.FinishReason == l7v1.FinishReason_FINISH_REASON_TOOL_CALLS {
				t.Fatalf("free, seed %d: finish %v, content %q", seed, res.FinishReason, s.text())
			}
			prose++
		}

		p.LogitBias = map[int32]float32{open: 100}
		p.MaxTokens = 300
		res, s := run(p)
		if res.FinishReason != l7v1.FinishReason_FINISH_REASON_TOOL_CALLS || strings.TrimSpace(s.text()) != "" || len(s.calls) == 0 {
			t.Fatalf("biased, seed %d: finish %v, content %q, calls %v", seed, res.FinishReason, s.text(), s.calls)
		}
	}
	if prose == 0 {
		t.Error("no free reply was prose: the grammar constrains before the model opens a call")
	}
}

// TestGrammarCache: a request with the same schema (or the same tools)
// reuses the compiled grammar; anything grammar reads makes another key;
// the cache keeps the most recently used grammarCacheSize.
func TestGrammarCache(t *testing.T) {
	st := &state{}
	rf := func(schema string) *l7v1.L7ChatRequest {
		return &l7v1.L7ChatRequest{ResponseFormat: &l7v1.ResponseFormat{Type: "json_schema", SchemaJson: schema}}
	}
	a, _, err := st.cachedGrammar(rf(`{"type":"integer"}`), toolUse{})
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := st.cachedGrammar(rf(`{"type":"integer"}`), toolUse{})
	c, _, _ := st.cachedGrammar(rf(`{"type":"string"}`), toolUse{})
	if a != b || a == c {
		t.Fatalf("same schema: same grammar %v; other schema: other grammar %v", a == b, a != c)
	}
	if _, _, err := st.cachedGrammar(rf(`{"type":"nope"}`), toolUse{}); err == nil {
		t.Fatal("bad schema accepted")
	}
	weather := &l7v1.Tool{Type: "function", Function: &l7v1.FunctionDef{Name: "w", ParametersJson: `{"type":"object"}`}}
	tools := func(mode l7v1.ToolChoiceMode) *l7v1.L7ChatRequest {
		return &l7v1.L7ChatRequest{Tools: []*l7v1.Tool{weather}, ToolChoice: &l7v1.ToolChoice{Mode: mode}}
	}
	use := toolUse{call: true, format: toolcall.Hermes}
	req, lazyReq, _ := st.cachedGrammar(tools(l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED), use)
	auto, lazyAuto, _ := st.cachedGrammar(tools(l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_AUTO), use)
	if req == auto || lazyReq || !lazyAuto {
		t.Fatalf("required and auto: distinct %v, lazy %v/%v", req != auto, lazyReq, lazyAuto)
	}
	for i := range grammarCacheSize + 5 {
		st.cachedGrammar(rf(`{"type":"integer","maximum":`+itoa(i)+`}`), toolUse{})
	}
	if len(st.grammars.m) != grammarCacheSize || len(st.grammars.order) != grammarCacheSize {
		t.Fatalf("cache holds %d (%d in order), want %d", len(st.grammars.m), len(st.grammars.order), grammarCacheSize)
	}
	if again, _, _ := st.cachedGrammar(rf(`{"type":"integer"}`), toolUse{}); again == a {
		t.Fatal("the least recently used grammar was not evicted")
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestForcedToolCallCutShort: tool_choice "required" cut off by max_tokens
// inside the first call answers finish "length" with neither content nor
// a call: the start of an unfinished envelope is not content.
func TestForcedToolCallCutShort(t *testing.T) {
	w, _ := configured(t, nil)
	tools := []*l7v1.Tool{{Type: "function", Function: &l7v1.FunctionDef{Name: "get_time", ParametersJson: `{"type":"object","properties":{"tz":{"enum":["UTC","CET"]}},"required":["tz"]}`}}}
	for seed := range int64(12) {
		for _, max := range []int32{1, 2, 4} {
			s := &stream{}
			res, err := w.Chat(t.Context(), &sdk.ChatRequest{Profile: "llm-test", Params: &l7v1.L7ChatRequest{Model: "tiny-test",
				Messages: []*l7v1.Message{{Role: "user", Content: "Time?"}}, Tools: tools,
				ToolChoice:  &l7v1.ToolChoice{Mode: l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED},
				Temperature: f32(1), Seed: &seed, MaxTokens: max}}, s)
			if err != nil {
				t.Fatalf("seed %d max %d: %v", seed, max, err)
			}
			if res.FinishReason != l7v1.FinishReason_FINISH_REASON_LENGTH || s.text() != "" || len(s.calls) != 0 {
				t.Fatalf("seed %d max %d: finish %v, content %q, calls %v", seed, max, res.FinishReason, s.text(), s.calls)
			}
		}
	}
}
