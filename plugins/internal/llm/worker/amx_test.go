package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/plugins/internal/llm/llmtest"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/sdktest"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
)

// TestConformance runs the SDK's conformance harness with greedy decoding
// (deterministic) and with seeded sampling (deterministic too).
func TestConformance(t *testing.T) {
	needORT(t)
	cancelReq := &l7v1.L7ChatRequest{
		Messages:    []*l7v1.Message{{Role: "user", Content: "Count from one to two thousand, in words."}},
		Temperature: f32(0), MaxTokens: 4000,
	}
	for _, tc := range []struct {
		name string
		req  *l7v1.L7ChatRequest
	}{
		{"greedy", &l7v1.L7ChatRequest{
			Messages: []*l7v1.Message{
				{Role: "system", Content: "You are being tested by the DSMIL L7 conformance harness."},
				{Role: "user", Content: "Say hello to the conformance harness."},
			},
			Temperature: f32(0), MaxTokens: 64,
		}},
		{"seeded", &l7v1.L7ChatRequest{
			Messages:    []*l7v1.Message{{Role: "user", Content: "Say hello to the conformance harness."}},
			Temperature: f32(0.9), TopP: f32(0.95), Seed: i64(1234), MaxTokens: 64,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sdktest.Run(t, New(testPlugin), &sdk.Config{
				Name: "llm-amx", DeviceID: 47, Profiles: []string{"llm-7b-amx"},
				Settings: baseSettings(t, map[string]any{"ignore_eos": true}),
			}, sdktest.WithRequest(tc.req), sdktest.WithCancelRequest(cancelReq))
		})
	}
}

func TestInfo(t *testing.T) {
	w := New(testPlugin)
	info, err := w.Info(context.Background())
	if err != nil || info.Validate() != nil {
		t.Fatalf("%+v %v %v", info, err, info.Validate())
	}
	if info.DeviceID != 47 || !info.Has(sdk.CapChat) || !info.Has(sdk.CapStream) || len(info.Models) != 0 ||
		(info.Accelerator != "cpu" && info.Accelerator != "cpu-amx") {
		t.Fatalf("before Configure: %+v", info)
	}
	for _, name := range []string{"model", "variant", "model_name", "threads", "graph_optimization", "max_context",
		"max_tokens", "kv_budget", "parallelism", "batching", "queue", "ort_library", "ignore_eos"} {
		if !slices.ContainsFunc(info.Settings, func(s sdk.SettingSpec) bool { return s.Name == name }) {
			t.Errorf("setting %q not reported", name)
		}
	}
	needORT(t)
	w, _ = configured(t, nil)
	info, _ = w.Info(context.Background())
	if info.Validate() != nil || strings.Join(info.Models, ",") != "tiny-test" || strings.Join(info.Profiles, ",") != "llm-test" ||
		info.MemoryBudget == 0 {
		t.Fatalf("after Configure: %+v", info)
	}
	if err := w.Configure(context.Background(), &sdk.Config{Settings: baseSettings(t, nil)}); !errors.Is(err, ErrConfigured) {
		t.Fatalf("second Configure: %v", err)
	}
}

func TestConfigureRejects(t *testing.T) {
	needORT(t)
	dir := tiny(t).Dir
	weights := int64(0)
	{
		w, _ := configured(t, nil)
		weights = w.st.Load().eng.Model.Files.WeightBytes
	}
	for _, tc := range []struct {
		name     string
		settings map[string]any
		budget   uint64
		param    string
		want     string
	}{
		{"no model", map[string]any{"model": ""}, 0, "model", "required"},
		{"missing model", map[string]any{"model": dir + "-nowhere"}, 0, "model", "not a directory"},
		{"unknown setting", map[string]any{"colour": "blue"}, 0, "colour", "no setting"},
		{"threads not a number", map[string]any{"threads": "two"}, 0, "threads", "number"},
		{"negative threads", map[string]any{"threads": float64(-1)}, 0, "threads", "whole number"},
		{"graph optimization", map[string]any{"graph_optimization": "max"}, 0, "graph_optimization", "max"},
		{"kv_budget", map[string]any{"kv_budget": "lots"}, 0, "kv_budget", "invalid size"},
		{"parallelism 0", map[string]any{"parallelism": float64(0)}, 0, "parallelism", "whole number from 1"},
		{"max_context over the model's", map[string]any{"max_context": float64(5000)}, 0, "max_context", "max_position_embeddings"},
		{"ignore_eos", map[string]any{"ignore_eos": "yes"}, 0, "ignore_eos", "bool"},
		{"weights over memory_budget", nil, uint64(weights / 2), "model", "memory_budget"},
		{"kv_budget over memory_budget", map[string]any{"kv_budget": "1GiB"}, uint64(weights + 1<<20), "kv_budget", "memory_budget"},
		{"another ORT library", map[string]any{"ort_library": "/nonexistent/libonnxruntime.so"}, 0, "ort_library", "already loaded"},
		{"bad variant", map[string]any{"variant": "fp16"}, 0, "model", "model_fp16.onnx"},
		{"prefill_chunk negative", map[string]any{"prefill_chunk": float64(-1)}, 0, "prefill_chunk", "whole number"},
		{"prefill memory over memory_budget", nil, uint64(weights + 1<<20), "prefill_chunk", "prefill working memory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := New(testPlugin).Configure(context.Background(), &sdk.Config{Settings: baseSettings(t, tc.settings), MemoryBudget: tc.budget})
			var e *mux.Error
			if !errors.As(err, &e) || e.Code != dbe.CodeInvalidRequest || e.Param != tc.param || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("err = %v (%#v), want INVALID_REQUEST on %s mentioning %q", err, e, tc.param, tc.want)
			}
		})
	}
	// A memory budget the weights and one prefill chunk at max_context
	// fit: the KV budget is the rest.
	w := New(testPlugin)
	budget := weights + 256<<20
	if err := w.Configure(context.Background(), &sdk.Config{Settings: baseSettings(t, nil), MemoryBudget: uint64(budget)}); err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	st := w.st.Load()
	if want := st.eng.PrefillBytes(st.eng.MaxContext(), st.eng.MaxContext()); st.prefillBytes != want || want <= 0 {
		t.Fatalf("prefill memory %d, want %d", st.prefillBytes, want)
	}
	// A quarter of the rest is the prefix cache's.
	rest := budget - weights - st.prefillBytes
	if st.kvBudget != rest-rest/4 || st.memory != uint64(budget) || st.eng.Prefix == nil || st.eng.Prefix.Stats().Capacity != rest/4 {
		t.Fatalf("kv budget %d, memory %d, prefix cache %v", st.kvBudget, st.memory, st.eng.Prefix)
	}
}

// TestDeterminism: greedy and seeded requests give the same answer twice;
// unseeded sampling need not.
func TestDeterminism(t *testing.T) {
	w, _ := configured(t, map[string]any{"ignore_eos": true})
	for _, tc := range []struct {
		name string
		edit func(*l7v1.L7ChatRequest)
	}{
		{"greedy", func(p *l7v1.L7ChatRequest) { p.Temperature = f32(0) }},
		{"greedy with penalties", func(p *l7v1.L7ChatRequest) {
			p.Temperature, p.RepetitionPenalty, p.PresencePenalty, p.FrequencyPenalty = f32(0), f32(1.3), f32(0.5), f32(0.5)
		}},
		{"seed", func(p *l7v1.L7ChatRequest) { p.Seed = i64(99) }},
		{"seed, top-k, min-p", func(p *l7v1.L7ChatRequest) { p.Seed, p.TopK, p.MinP = i64(-5), i32(10), f32(0.05) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := user("Tell me a story about the plane.")
			p.MaxTokens = 40
			tc.edit(p)
			a, _, err := chat(t, w, p)
			if err != nil {
				t.Fatal(err)
			}
			b, _, _ := chat(t, w, p)
			if a != b || a == "" {
				t.Fatalf("two runs:\n%q\n%q", a, b)
			}
		})
	}
	// Different seeds, different stories.
	p := user("Tell me a story.")
	p.MaxTokens, p.Seed = 40, i64(1)
	a, _, _ := chat(t, w, p)
	p.Seed = i64(2)
	if b, _, _ := chat(t, w, p); a == b {
		t.Fatalf("seeds 1 and 2: %q", a)
	}
}

// TestUsageAndLimits: usage counts the rendered prompt, max_tokens ends
// with LENGTH, stop sequences are cut and never sent.
func TestUsageAndLimits(t *testing.T) {
	w, _ := configured(t, map[string]any{"ignore_eos": true})
	eng := w.st.Load().eng
	p := user("How long is this prompt?")
	p.Temperature, p.MaxTokens = f32(0), 9
	text, res, err := chat(t, w, p)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := eng.ChatPrompt(must(messages(p.Messages, "")), nil)
	u := res.Usage
	if res.FinishReason != l7v1.FinishReason_FINISH_REASON_LENGTH || u.CompletionTokens != 9 ||
		int(u.PromptTokens) != len(ids) || u.TotalTokens != u.PromptTokens+9 || res.Model != "tiny-test" {
		t.Fatalf("result %+v usage %v", res, u)
	}
	// A stop sequence from the middle of that answer.
	if len(text) < 8 {
		t.Fatalf("answer too short to cut: %q", text)
	}
	stop := text[3:6]
	p.Stop = []string{stop}
	cut, res, err := chat(t, w, p)
	if err != nil || cut != text[:strings.Index(text, stop)] || res.FinishReason != l7v1.FinishReason_FINISH_REASON_STOP {
		t.Fatalf("stop %q in %q: got %q, %v, %v", stop, text, cut, res, err)
	}
	// A raw prompt (completions) is tokenized as is.
	_, res, err = chat(t, w, &l7v1.L7ChatRequest{Prompt: "Once upon a time", MaxTokens: 3})
	if err != nil || int(res.Usage.PromptTokens) != len(eng.TextPrompt("Once upon a time")) {
		t.Fatalf("prompt: %v %v", res, err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestStreamingMatches: through the SDK, the chunks of a streamed answer
// concatenate to the non-streamed answer, stop sequences included.
func TestStreamingMatches(t *testing.T) {
	needORT(t)
	c := sdktest.Connect(t, New(testPlugin))
	ctx := context.Background()
	if err := c.Control.Configure(ctx, &sdk.Config{Name: "llm-amx", DeviceID: 47, Profiles: []string{"llm-test"},
		Settings: baseSettings(t, nil)}); err != nil {
		t.Fatal(err)
	}
	p := user("Stream this, please.")
	p.Seed, p.MaxTokens, p.Stop = i64(7), 60, []string{"\n\n", "the"}
	f, _ := sdktest.ChatFrame("llm-test", p)
	frames, err := sdktest.Call(ctx, c.Client, f)
	if err != nil {
		t.Fatal(err)
	}
	var resp l7v1.L7ChatResponse
	proto.Unmarshal(frames[0].Payload, &resp)
	want := resp.GetChoices()[0].GetMessage().GetContent()

	p.Stream, p.IncludeUsage = true, true
	f, _ = sdktest.ChatFrame("llm-test", p)
	frames, err = sdktest.Call(ctx, c.Client, f)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	var last l7v1.L7ChatChunk
	for _, fr := range frames {
		last.Reset()
		proto.Unmarshal(fr.Payload, &last)
		got.WriteString(last.GetDelta())
	}
	if got.String() != want || last.GetUsage().GetCompletionTokens() != resp.GetUsage().GetCompletionTokens() ||
		last.GetFinishReason() != resp.GetChoices()[0].GetFinishReason() {
		t.Fatalf("stream %q (%v, %v)\nsingle %q (%v, %v)", got.String(), last.GetFinishReason(), last.GetUsage(),
			want, resp.GetChoices()[0].GetFinishReason(), resp.GetUsage())
	}
	if len(frames) < 3 {
		t.Errorf("%d frames: not streamed per token", len(frames))
	}
}

// TestBudgetRejection: requests that cannot fit the context or the KV
// budget are refused with INVALID_REQUEST naming the field to change.
func TestBudgetRejection(t *testing.T) {
	// 512 bytes per token (2 layers × 2 KV heads × 16 × 2 × 4), doubled:
	// 100 KiB holds 100 tokens.
	w, _ := configured(t, map[string]any{"kv_budget": "100KiB", "max_context": float64(300)})
	long := strings.Repeat("many words ", 200)
	for _, tc := range []struct {
		name  string
		p     *l7v1.L7ChatRequest
		param string
		want  string
	}{
		{"max_tokens over the context", &l7v1.L7ChatRequest{Prompt: "hi", MaxTokens: 300}, "max_tokens", "maximum context length is 300"},
		{"max_tokens over the KV budget", &l7v1.L7ChatRequest{Prompt: "hi", MaxTokens: 200}, "max_tokens", "kv_budget"},
		{"prompt over the context", user(long), "messages", "maximum context length"},
		{"prompt over the KV budget", &l7v1.L7ChatRequest{Prompt: strings.Repeat("x y ", 60)}, "prompt", "kv_budget"},
		{"bad top_p", &l7v1.L7ChatRequest{Prompt: "hi", TopP: f32(1.5)}, "top_p", "top_p"},
		{"logit bias outside the vocabulary", &l7v1.L7ChatRequest{Prompt: "hi", LogitBias: map[int32]float32{100000: 1}}, "logit_bias", "vocabulary"},
		{"tools on a raw prompt", &l7v1.L7ChatRequest{Prompt: "hi", Tools: []*l7v1.Tool{{Function: &l7v1.FunctionDef{Name: "f"}}}}, "tools", "messages"},
		{"unsupported schema keyword", &l7v1.L7ChatRequest{Prompt: "hi", ResponseFormat: &l7v1.ResponseFormat{Type: "json_schema",
			SchemaJson: `{"type":"object","properties":{"a":{"type":"object","patternProperties":{"x":{}}}}}`}}, "response_format", `(keyword "patternProperties") at JSON pointer "/properties/a/patternProperties"`},
		{"unsatisfiable parameters", &l7v1.L7ChatRequest{Messages: []*l7v1.Message{{Role: "user", Content: "hi"}}, Tools: []*l7v1.Tool{{Function: &l7v1.FunctionDef{Name: "f",
			ParametersJson: `{"type":"array","minItems":3,"maxItems":1}`}}}, ToolChoice: &l7v1.ToolChoice{Mode: l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED}},
			"tools", "tools[0].function.parameters"},
		{"too many stops", &l7v1.L7ChatRequest{Prompt: "hi", Stop: make([]string, 17)}, "stop", "at most 16"},
		{"long stop", &l7v1.L7ChatRequest{Prompt: "hi", Stop: []string{strings.Repeat("x", 1025)}}, "stop", "at most 1024"},
		{"image", &l7v1.L7ChatRequest{Model: "tiny-test", Messages: []*l7v1.Message{{Role: "user", Parts: []*l7v1.ContentPart{
			{Part: &l7v1.ContentPart_ImageUrl{ImageUrl: &l7v1.ImageURL{Url: "http://x/y.png"}}}}}}}, "messages", `image; model "tiny-test"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := chat(t, w, tc.p)
			var e *mux.Error
			if !errors.As(err, &e) || e.Code != dbe.CodeInvalidRequest || e.Param != tc.param || !strings.Contains(e.Message, tc.want) {
				t.Fatalf("err = %v (%#v), want INVALID_REQUEST on %s mentioning %q", err, e, tc.param, tc.want)
			}
		})
	}
	// Without max_tokens, the completion is limited to what the budget holds.
	_, res, err := chat(t, w, &l7v1.L7ChatRequest{Prompt: "hi", Temperature: f32(0)})
	if err != nil || res.Usage.PromptTokens+res.Usage.CompletionTokens > 100 {
		t.Fatalf("no max_tokens: %v %v", res, err)
	}
}

// TestQueueFull: with one slot and a queue of one, a third request is
// refused with OVERLOADED and a retry hint; the queued one runs after the
// first.
func TestQueueFull(t *testing.T) {
	w, _ := configured(t, map[string]any{"parallelism": float64(1), "queue": float64(1), "ignore_eos": true})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The first request holds the slot: its stream blocks after the first
	// delta until the test ends it.
	started, hold := make(chan struct{}), make(chan struct{})
	var once sync.Once
	long := user("Go on.")
	long.Temperature, long.MaxTokens = f32(0), 100
	first := make(chan error, 1)
	go func() {
		s := &stream{onDelta: func(int) {
			once.Do(func() { close(started) })
			<-hold
		}}
		_, err := w.Chat(ctx, &sdk.ChatRequest{Params: long}, s)
		first <- err
	}()
	<-started
	second := make(chan error, 1)
	go func() {
		_, _, err := chat(t, w, &l7v1.L7ChatRequest{Prompt: "queued", MaxTokens: 2})
		second <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st, _ := w.Status(ctx)
		if st.QueueDepth == 1 && st.InFlight == 1 {
			if st.Load != 1 || st.MemoryUsed == 0 {
				t.Errorf("status %+v", st)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("second request not queued: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
	_, _, err := chat(t, w, &l7v1.L7ChatRequest{Prompt: "refused", MaxTokens: 2})
	var e *mux.Error
	if !errors.As(err, &e) || e.Code != dbe.CodeOverloaded || e.RetryAfterMS == 0 {
		t.Fatalf("third request: %v (%#v), want OVERLOADED with retry_after", err, e)
	}
	cancel()
	close(hold)
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("first: %v", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("queued request: %v", err)
	}
}

// TestConcurrentStreams: with parallelism 2, two requests stream at the
// same time: each one's first delta waits until the other has sent one,
// which only happens if neither waits for the other to finish.
func TestConcurrentStreams(t *testing.T) {
	w, _ := configured(t, map[string]any{"parallelism": float64(2), "ignore_eos": true})
	p := user("Talk.")
	p.Temperature, p.MaxTokens = f32(0), 50
	arrived := [2]chan struct{}{make(chan struct{}), make(chan struct{})}
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var once sync.Once
			s := &stream{onDelta: func(int) {
				once.Do(func() {
					close(arrived[i])
					select {
					case <-arrived[1-i]:
					case <-time.After(10 * time.Second):
						t.Errorf("request %d streamed alone for 10 s: request %d did not start", i, 1-i)
					}
				})
			}}
			if _, err := w.Chat(context.Background(), &sdk.ChatRequest{Params: p}, s); err != nil {
				t.Error(err)
			}
		}(i)
	}
	wg.Wait()
}

// TestRequestLog: one log line per request with the token counts and
// timings, and never the text.
func TestRequestLog(t *testing.T) {
	w, logs := configured(t, nil)
	const secret = "my-secret-prompt-text"
	p := user(secret)
	p.MaxTokens = 5
	if _, _, err := chat(t, w, p); err != nil {
		t.Fatal(err)
	}
	var line map[string]any
	n := 0
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["@message"] == "request" {
			line = m
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d request lines in\n%s", n, logs)
	}
	for _, k := range []string{"prompt_tokens", "completion_tokens", "ttft_ms", "tokens_per_s", "finish", "request_id"} {
		if _, ok := line[k]; !ok {
			t.Errorf("request log line lacks %s: %v", k, line)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Error("the prompt text is in the log")
	}
	if !strings.Contains(logs.String(), "cpu_features") || !strings.Contains(logs.String(), "random-weight") {
		t.Errorf("start-up log lacks the CPU features or the random-weight warning:\n%s", logs)
	}
}

func TestNotConfigured(t *testing.T) {
	w := New(testPlugin)
	if err := w.Health(context.Background()); !errors.Is(err, sdk.ErrNotConfigured) {
		t.Fatalf("health %v", err)
	}
	if _, err := w.Chat(context.Background(), &sdk.ChatRequest{Params: user("x")}, &stream{}); !errors.Is(err, sdk.ErrNotConfigured) {
		t.Fatalf("chat %v", err)
	}
	if st, err := w.Status(context.Background()); err != nil || st.MemoryUsed == 0 {
		t.Fatalf("status %+v %v", st, err)
	}
}

// TestTools: with tools (tool_choice auto) the chat template renders them
// into the prompt and the reply goes through the tool-call parser (the
// random model writes no envelope, so it is content); a model whose
// template cannot render tools refuses them with a 400 naming the model.
func TestTools(t *testing.T) {
	w, _ := configured(t, nil)
	ask := func(w *Workload, tools []*l7v1.Tool) (string, *sdk.ChatResult, error) {
		return chat(t, w, &l7v1.L7ChatRequest{Model: "tiny-test", Messages: []*l7v1.Message{{Role: "user", Content: "Weather in Paris?"}},
			Tools: tools, MaxTokens: 8, Temperature: f32(0)})
	}
	tools := []*l7v1.Tool{{Type: "function", Function: &l7v1.FunctionDef{Name: "get_weather", Description: "Current weather.",
		ParametersJson: `{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}`}}}
	text, with, err := ask(w, tools)
	if err != nil {
		t.Fatal(err)
	}
	_, without, err := ask(w, nil)
	if err != nil {
		t.Fatal(err)
	}
	if with.Usage.PromptTokens <= without.Usage.PromptTokens+20 || text == "" ||
		with.FinishReason == l7v1.FinishReason_FINISH_REASON_TOOL_CALLS {
		t.Fatalf("prompt tokens with tools %d, without %d; reply %q (%v)", with.Usage.PromptTokens, without.Usage.PromptTokens, text, with.FinishReason)
	}

	// The same model with a chat template that knows nothing of tools.
	dir := llmtest.CopyDir(t, tiny(t).Dir)
	cfgPath := filepath.Join(dir, "tokenizer_config.json")
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	var tc map[string]any
	if err := json.Unmarshal(raw, &tc); err != nil {
		t.Fatal(err)
	}
	tc["chat_template"] = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
	raw, _ = json.Marshal(tc)
	if err := os.WriteFile(cfgPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	plain, _ := configured(t, map[string]any{"model": dir})
	_, _, err = ask(plain, tools)
	var e *mux.Error
	if !errors.As(err, &e) || e.Code != dbe.CodeInvalidRequest || e.Param != "tools" || !strings.Contains(e.Message, `"tiny-test"`) {
		t.Fatalf("tools with a template that cannot render them: %v", err)
	}
}

// TestBatchingSetting: greedy requests running together give the same
// answers with batching on (the default) and off, and the start-up log
// says which.
func TestBatchingSetting(t *testing.T) {
	texts := map[bool][]string{}
	for _, batching := range []bool{true, false} {
		w, logs := configured(t, map[string]any{"batching": batching, "ignore_eos": true})
		out := make([]string, 3)
		var wg sync.WaitGroup
		for i := range out {
			wg.Add(1)
			go func() {
				defer wg.Done()
				p := user(strings.Repeat("Tell me more. ", i+1))
				p.Temperature, p.MaxTokens = f32(0), int32(20+10*i)
				text, _, err := chat(t, w, p)
				if err != nil {
					t.Error(err)
				}
				out[i] = text
			}()
		}
		wg.Wait()
		texts[batching] = out
		if want := fmt.Sprintf(`"batching":%v`, batching); !strings.Contains(logs.String(), want) {
			t.Errorf("start-up log lacks %s:\n%s", want, logs)
		}
	}
	for i := range texts[true] {
		if texts[true][i] == "" || texts[true][i] != texts[false][i] {
			t.Errorf("request %d: batched %q, unbatched %q", i, texts[true][i], texts[false][i])
		}
	}
}

// TestLogprobs: a request with logprobs gets one TokenLogprob per
// generated token (a final EOS excepted) with the deltas; greedy, each
// token is its position's most likely, top_logprobs are sorted, and the
// tokens' bytes concatenate to the text (bytes that form no character are
// U+FFFD in the text).
func TestLogprobs(t *testing.T) {
	w, _ := configured(t, nil)
	s := &stream{}
	p := user("Tell me about the mountains.")
	p.Temperature, p.MaxTokens, p.Logprobs, p.TopLogprobs = f32(0), 12, true, 3
	res, err := w.Chat(context.Background(), &sdk.ChatRequest{Profile: "llm-test", Params: p}, s)
	if err != nil {
		t.Fatal(err)
	}
	var all []*l7v1.TokenLogprob
	var b []byte
	for _, lps := range s.lps {
		all = append(all, lps...)
	}
	for i, lp := range all {
		b = append(b, lp.GetBytes()...)
		top := lp.GetTopLogprobs()
		if len(top) != 3 || top[0].GetToken() != lp.GetToken() || top[0].GetLogprob() != lp.GetLogprob() || string(top[0].GetBytes()) != string(lp.GetBytes()) {
			t.Fatalf("token %d: %v: the greedy token is not the first of top_logprobs", i, lp)
		}
		if top[1].GetLogprob() > top[0].GetLogprob() || top[2].GetLogprob() > top[1].GetLogprob() {
			t.Fatalf("token %d: top_logprobs not sorted: %v", i, top)
		}
		if lp.GetToken() != strings.ToValidUTF8(string(lp.GetBytes()), "\uFFFD") || len(lp.GetBytes()) == 0 {
			t.Fatalf("token %d: token %q, bytes %q", i, lp.GetToken(), lp.GetBytes())
		}
	}
	n := int(res.Usage.GetCompletionTokens())
	if len(all) != n && !(len(all) == n-1 && res.FinishReason == l7v1.FinishReason_FINISH_REASON_STOP) {
		t.Fatalf("%d log probabilities for %d tokens (%v)", len(all), n, res.FinishReason)
	}
	// The text has U+FFFD for each byte that never forms a character.
	if string([]rune(string(b))) != s.text() {
		t.Fatalf("the tokens' bytes %q, the text %q", b, s.text())
	}
	t.Logf("%q: %d tokens", s.text(), len(all))
}

// TestChoices: n choices are each what the request gives alone with seed
// + i, usage counts all of their tokens and the prompt once, each has its
// finish reason; n whose KV caches exceed the budget is refused on n.
func TestChoices(t *testing.T) {
	w, logs := configured(t, map[string]any{"ignore_eos": true, "kv_budget": "200KiB"})
	if got := w.MaxChoices(); got != 8 {
		t.Fatalf("MaxChoices %d, want parallelism 8", got)
	}
	req := func(n int32, seed int64) *l7v1.L7ChatRequest {
		p := user("Three takes on the radio log.")
		p.Temperature, p.Seed, p.MaxTokens, p.N = f32(1), i64(seed), 10, n
		return p
	}
	var alone []string
	for i := range 3 {
		text, _, err := chat(t, w, req(1, 40+int64(i)))
		if err != nil {
			t.Fatal(err)
		}
		alone = append(alone, text)
	}
	s := &stream{}
	res, err := w.Chat(context.Background(), &sdk.ChatRequest{Profile: "llm-test", Params: req(3, 40)}, s)
	if err != nil {
		t.Fatal(err)
	}
	got := []string{s.text(), s.choices[1].text(), s.choices[2].text()}
	for i := range got {
		if got[i] != alone[i] {
			t.Errorf("choice %d: %q; alone with seed %d: %q", i, got[i], 40+i, alone[i])
		}
	}
	if got[0] == got[1] && got[1] == got[2] {
		t.Errorf("three equal choices %q", got[0])
	}
	if res.Usage.GetCompletionTokens() != 30 || len(res.Finishes) != 3 || res.Finishes[2] != l7v1.FinishReason_FINISH_REASON_LENGTH {
		t.Fatalf("result %+v", res)
	}
	if !strings.Contains(logs.String(), `"completion_tokens":30`) {
		t.Errorf("the request log does not count every choice:\n%s", logs.String())
	}
	// 200 KiB holds 200 tokens: 8 choices of ~30 + 10 do not fit.
	_, _, err = chat(t, w, req(8, 1))
	var e *mux.Error
	if !errors.As(err, &e) || e.Code != dbe.CodeInvalidRequest || e.Param != "n" {
		t.Fatalf("n over the KV budget: %v", err)
	}
}

// TestPrefillGraphMemory: with prefill_graph, the weights counted against
// memory_budget are both graphs' files with the embedding table they
// share once (the prefill session reads it from the main file), so the
// KV budget is the memory_budget minus that, and the log says so.
func TestPrefillGraphMemory(t *testing.T) {
	needORT(t)
	res := llmtest.Tiny(t, "tiny-prefill", func(s *mkmodel.Spec) {
		s.Seed, s.MaxPositions, s.DType, s.PrefillGraph = 3, 4096, mkmodel.Int4, true
	})
	var files int64
	for _, f := range res.Files {
		if !strings.HasSuffix(f, ".onnx") && !strings.HasSuffix(f, ".onnx_data") {
			continue
		}
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		files += st.Size()
	}
	emb := int64(res.Spec.Vocab * res.Spec.Hidden * 4)
	budget := files + 256<<20
	logs := &testutil.SyncBuffer{}
	w := New(testPlugin)
	cfg := &sdk.Config{Settings: baseSettings(t, map[string]any{"model": res.Dir, "prefill_graph": true}), MemoryBudget: uint64(budget),
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info, JSONFormat: true})}
	if err := w.Configure(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	defer w.Close(context.Background())
	st := w.st.Load()
	m := st.eng.Model
	if m.PrefillFile == "" || m.SharedBytes != emb || m.Files.WeightBytes != files-emb {
		t.Fatalf("prefill %q, shared %d bytes (embedding %d), weights %d (files %d)", m.PrefillFile, m.SharedBytes, emb,
			m.Files.WeightBytes, files)
	}
	cache := int64(0)
	if st.eng.Prefix != nil {
		cache = st.eng.Prefix.Stats().Capacity
	}
	if got, want := st.kvBudget+cache, budget-(files-emb)-st.prefillBytes; got != want {
		t.Fatalf("KV budget + prefix cache %d, want memory_budget - weights - prefill memory = %d", got, want)
	}
	if !strings.Contains(logs.String(), `"prefill_shared_weights":"`) {
		t.Fatalf("log: %s", logs.String())
	}
}

// TestPrefillGraphAuto: prefill_graph "auto" (the default) opens the
// model's prefill graph when its file is there and goes on without one
// when it is not; false never opens it; true without the file, or a value
// other than true, false and "auto", is an INVALID_REQUEST on
// prefill_graph.
func TestPrefillGraphAuto(t *testing.T) {
	needORT(t)
	with := llmtest.Tiny(t, "tiny-prefill", func(s *mkmodel.Spec) {
		s.Seed, s.DType, s.PrefillGraph = 3, mkmodel.Int4, true
	})
	without := llmtest.Tiny(t, "tiny-noprefill", func(s *mkmodel.Spec) { s.Seed, s.DType = 3, mkmodel.Int4 })
	configure := func(settings map[string]any) (*Workload, error) {
		w := New(testPlugin)
		err := w.Configure(context.Background(), &sdk.Config{Settings: baseSettings(t, settings)})
		if err != nil {
			return nil, err
		}
		t.Cleanup(func() { w.Close(context.Background()) })
		return w, nil
	}
	for _, tc := range []struct {
		dir     string
		setting any // nil: left out
		want    bool
	}{
		{with.Dir, nil, true},
		{with.Dir, "auto", true},
		{with.Dir, true, true},
		{with.Dir, false, false},
		{without.Dir, nil, false},
		{without.Dir, "auto", false},
	} {
		settings := map[string]any{"model": tc.dir}
		if tc.setting != nil {
			settings["prefill_graph"] = tc.setting
		}
		w, err := configure(settings)
		if err != nil {
			t.Fatalf("%s, prefill_graph %v: %v", filepath.Base(tc.dir), tc.setting, err)
		}
		if got := w.st.Load().eng.Model.PrefillFile != ""; got != tc.want {
			t.Errorf("%s, prefill_graph %v: prefill graph open %v, want %v", filepath.Base(tc.dir), tc.setting, got, tc.want)
		}
	}
	for _, v := range []any{true, "yes", 1.0} {
		_, err := configure(map[string]any{"model": without.Dir, "prefill_graph": v})
		var e *mux.Error
		if !errors.As(err, &e) || e.Code != dbe.CodeInvalidRequest || e.Param != "prefill_graph" {
			t.Errorf("prefill_graph %v on a model without one: %v, want INVALID_REQUEST on prefill_graph", v, err)
		}
	}
}

// TestStopSpinningDefault: in the LLM plugins force_spinning_stop and
// ONNX Runtime's memory arena are on unless the block turns them off, and
// the plugin info says so.
func TestStopSpinningDefault(t *testing.T) {
	env := func(string) string { return "/opt/ort/libonnxruntime.so" }
	p := testPlugin
	s, err := parseSettings(map[string]any{"model": "m"}, env, &p)
	if err != nil || !s.Session.StopSpinningAfterRun || s.Session.DisableSpinning || s.Session.DisableArena {
		t.Fatalf("defaults: %v, stop spinning after a run %v, spinning %v, arena %v; want all on", err, s.Session.StopSpinningAfterRun,
			!s.Session.DisableSpinning, !s.Session.DisableArena)
	}
	if s, err := parseSettings(map[string]any{"model": "m", "memory_arena": false}, env, &p); err != nil || !s.Session.DisableArena {
		t.Fatalf("memory_arena = false: %v, arena %v", err, !s.Session.DisableArena)
	}
	s, err = parseSettings(map[string]any{"model": "m", "force_spinning_stop": false}, env, &p)
	if err != nil || s.Session.StopSpinningAfterRun {
		t.Fatalf("force_spinning_stop = false: %v, stop spinning after a run %v", err, s.Session.StopSpinningAfterRun)
	}
	for _, spec := range settingSpecs {
		if (spec.Name == "force_spinning_stop" || spec.Name == "memory_arena") && !strings.Contains(spec.Description, "Default true") {
			t.Errorf("%s's description does not give its default: %s", spec.Name, spec.Description)
		}
	}
}
