package engine

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/plugins/internal/llm/chattmpl"
	"github.com/dsmil/l7/plugins/internal/llm/model"
	"github.com/dsmil/l7/plugins/internal/llm/sampler"
	"github.com/dsmil/l7/plugins/internal/tokenizer"
)

// run generates req and returns the emitted pieces.
func run(t *testing.T, e *Engine, req *Request) ([]string, *Result) {
	t.Helper()
	var pieces []string
	res, err := e.Generate(context.Background(), req, func(s string) error {
		pieces = append(pieces, s)
		return nil
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return pieces, res
}

func chatPrompt(t *testing.T, e *Engine, text string) []int {
	t.Helper()
	ids, err := e.ChatPrompt([]chattmpl.Message{{Role: "system", Content: "Be brief."}, {Role: "user", Content: text}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestChatPrompt(t *testing.T) {
	e := tinyEngine(t)
	ids := chatPrompt(t, e, "Hello!")
	want := "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"
	if got := e.Tokenizer.Decode(ids, false); got != want {
		t.Fatalf("rendered prompt %q, want %q", got, want)
	}
	if got := e.TextPrompt("Hello"); e.Tokenizer.Decode(got, false) != "Hello" {
		t.Fatalf("text prompt %v", got)
	}
}

// TestGreedyMatchesRecompute: greedy generation with the KV cache draws
// the same tokens as recomputing the whole sequence from scratch for
// every token, and is deterministic.
func TestGreedyMatchesRecompute(t *testing.T) {
	e := tinyEngine(t)
	prompt := chatPrompt(t, e, "Count the layers of the decoder.")
	const n = 24
	pieces, res := run(t, e, &Request{Prompt: prompt, MaxTokens: n, IgnoreEOS: true})
	if res.Finish != FinishLength || res.CompletionTokens != n || res.PromptTokens != len(prompt) {
		t.Fatalf("result %+v", res)
	}
	again, _ := run(t, e, &Request{Prompt: prompt, MaxTokens: n, IgnoreEOS: true})
	if strings.Join(pieces, "") != strings.Join(again, "") {
		t.Fatalf("greedy is not deterministic:\n%q\n%q", pieces, again)
	}

	// Reference: a fresh sequence over all tokens for every new token.
	ids := append([]int(nil), prompt...)
	dec := e.Tokenizer.NewStreamDecoder(tokenizer.SkipSpecial())
	var want strings.Builder
	v := e.Model.Vocab()
	for i := 0; i < n; i++ {
		seq, err := e.Model.NewSequence(0)
		if err != nil {
			t.Fatal(err)
		}
		feed := make([]int64, len(ids))
		for j, id := range ids {
			feed[j] = int64(id)
		}
		logits, err := seq.Step(context.Background(), feed)
		seq.Close()
		if err != nil {
			t.Fatal(err)
		}
		next := sampler.New(sampler.Params{}, e.SampleVocab()).Sample(logits[len(logits)-v:])
		ids = append(ids, next)
		want.WriteString(dec.Add(next))
	}
	want.WriteString(dec.Flush())
	if got := strings.Join(pieces, ""); got != want.String() {
		t.Fatalf("with the KV cache: %q\nrecomputed:        %q", got, want.String())
	}
}

func TestSeedDeterminism(t *testing.T) {
	e := tinyEngine(t)
	prompt := chatPrompt(t, e, "Tell me about the weather in the mountains.")
	gen := func(seed uint64) string {
		p, _ := run(t, e, &Request{Prompt: prompt, MaxTokens: 40, IgnoreEOS: true,
			Sampling: sampler.Params{Temperature: 1, TopP: 0.95, Seed: seed}})
		return strings.Join(p, "")
	}
	a, b, c := gen(1), gen(1), gen(2)
	if a != b {
		t.Fatalf("seed 1 twice:\n%q\n%q", a, b)
	}
	if a == c {
		t.Fatalf("seeds 1 and 2 gave the same text %q", a)
	}
}

func TestMaxTokensAndEOS(t *testing.T) {
	e := tinyEngine(t)
	prompt := chatPrompt(t, e, "Hi")
	_, res := run(t, e, &Request{Prompt: prompt, MaxTokens: 7, IgnoreEOS: true, Sampling: sampler.Params{Temperature: 1, Seed: 3}})
	if res.Finish != FinishLength || res.CompletionTokens != 7 {
		t.Fatalf("max_tokens 7: %+v", res)
	}
	// Force the EOS token: generation stops at once, with nothing emitted.
	eos := e.Model.Config.EOS[0]
	pieces, res := run(t, e, &Request{Prompt: prompt, MaxTokens: 50,
		Sampling: sampler.Params{LogitBias: map[int]float32{eos: 1000}}})
	if res.Finish != FinishStop || res.CompletionTokens != 1 || strings.Join(pieces, "") != "" {
		t.Fatalf("forced EOS: %+v %q", res, pieces)
	}
	// IgnoreEOS goes on past it.
	_, res = run(t, e, &Request{Prompt: prompt, MaxTokens: 5, IgnoreEOS: true,
		Sampling: sampler.Params{LogitBias: map[int]float32{eos: 1000}}})
	if res.Finish != FinishLength || res.CompletionTokens != 5 {
		t.Fatalf("ignore EOS: %+v", res)
	}
}

// TestStopAcrossTokens picks stop sequences that straddle token
// boundaries of a greedy answer and checks the answer is cut before them.
func TestStopAcrossTokens(t *testing.T) {
	e := tinyEngine(t)
	prompt := chatPrompt(t, e, "The quick brown fox jumps over the lazy dog.")
	req := &Request{Prompt: prompt, MaxTokens: 48, IgnoreEOS: true, Sampling: sampler.Params{Temperature: 0.8, Seed: 5}}
	pieces, _ := run(t, e, req)
	full := strings.Join(pieces, "")
	tested := 0
	pos := 0
	for k := 0; k+1 < len(pieces) && tested < 4; k++ {
		pos += len(pieces[k])
		a, b := pieces[k], pieces[k+1]
		if len(a) < 2 || len(b) < 1 {
			continue
		}
		stop := a[len(a)-2:] + b[:1] // straddles the boundary after piece k
		if !isUTF8(stop) {
			continue
		}
		tested++
		req2 := *req
		req2.Stop = []string{stop, "never-generated-§"}
		got, res := run(t, e, &req2)
		want := full[:strings.Index(full, stop)]
		if strings.Join(got, "") != want || res.Finish != FinishStop {
			t.Errorf("stop %q: got %q (%v), want %q", stop, strings.Join(got, ""), res.Finish, want)
		}
		for _, p := range got {
			if strings.Contains(p, stop) {
				t.Errorf("stop %q emitted in %q", stop, p)
			}
		}
	}
	if tested == 0 {
		t.Fatalf("no token boundary to test in %q", pieces)
	}
}

func isUTF8(s string) bool {
	return strings.ToValidUTF8(s, "") == s && !strings.ContainsRune(s, '\uFFFD')
}

// TestCancel: a context cancelled between tokens ends generation before
// the next step; one cancelled during a step stops ONNX Runtime in it.
func TestCancel(t *testing.T) {
	e := tinyEngine(t)
	prompt := chatPrompt(t, e, "Go on forever.")
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	res, err := e.Generate(ctx, &Request{Prompt: prompt, MaxTokens: 1000, IgnoreEOS: true}, func(string) error {
		n++
		if n == 3 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || res.CompletionTokens != 3 {
		t.Fatalf("cancelled after 3 tokens: err %v, %d tokens generated", err, res.CompletionTokens)
	}

	// A long prefill, cancelled 20 ms in: ONNX Runtime stops inside the
	// run (the step reports model.ErrTerminated), rather than the engine
	// noticing the cancellation after the prefill has finished. The
	// prefill runs in chunks, and a deadline may land between two of them
	// (or, on a loaded machine, before the first starts), where the engine
	// stops without a run to terminate: every attempt must end with the
	// deadline, and one of a few, at growing deadlines, inside a run.
	long := make([]int, 3000)
	for i := range long {
		long[i] = (i*31 + 7) % 500
	}
	var errs []error
	for _, ms := range []time.Duration{20, 27, 36, 48, 64} {
		ctx, cancel := context.WithTimeout(context.Background(), ms*time.Millisecond)
		_, err = e.Generate(ctx, &Request{Prompt: long, MaxTokens: 1}, func(string) error { return nil })
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("prefill cancelled %d ms in: %v, want the deadline", ms, err)
		}
		if errors.Is(err, model.ErrTerminated) {
			return
		}
		errs = append(errs, err)
	}
	t.Fatalf("no prefill was terminated inside its ONNX Runtime run (model.ErrTerminated): %v", errs)
}

func TestEmitError(t *testing.T) {
	e := tinyEngine(t)
	boom := errors.New("client gone")
	_, err := e.Generate(context.Background(), &Request{Prompt: chatPrompt(t, e, "x"), MaxTokens: 50, IgnoreEOS: true},
		func(string) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("err %v", err)
	}
}

func TestLimits(t *testing.T) {
	e := tinyEngine(t)
	emit := func(string) error { return nil }
	if _, err := e.Generate(context.Background(), &Request{MaxTokens: 5}, emit); !errors.Is(err, ErrEmptyPrompt) {
		t.Errorf("empty prompt: %v", err)
	}
	p := chatPrompt(t, e, "x")
	for _, max := range []int{0, e.MaxContext() - len(p) + 1} {
		if _, err := e.Generate(context.Background(), &Request{Prompt: p, MaxTokens: max}, emit); !errors.Is(err, ErrTooLong) {
			t.Errorf("max_tokens %d: %v", max, err)
		}
	}
	// Exactly the context: fine.
	res, err := e.Generate(context.Background(), &Request{Prompt: p, MaxTokens: e.MaxContext() - len(p), IgnoreEOS: true}, emit)
	if err != nil || res.CompletionTokens != e.MaxContext()-len(p) {
		t.Fatalf("whole context: %v %+v", err, res)
	}
	if want := e.KVBytes(e.MaxContext()); res.KVBytes > want {
		t.Errorf("KV cache %d bytes > the %d budgeted", res.KVBytes, want)
	}
}

// TestMalformed: broken model directories fail to load with errors that
// say what is wrong.
func TestMalformed(t *testing.T) {
	initORT(t)
	src := tiny(t).Dir
	for _, tc := range []struct {
		name   string
		break_ func(dir string) error
		is     error
		want   string
	}{
		{"not a directory", func(dir string) error { return os.RemoveAll(dir) }, model.ErrLayout, "not a directory"},
		{"no tokenizer.json", func(dir string) error { return os.Remove(filepath.Join(dir, "tokenizer.json")) }, model.ErrLayout, "tokenizer.json"},
		{"no config.json", func(dir string) error { return os.Remove(filepath.Join(dir, "config.json")) }, model.ErrLayout, "config.json"},
		{"no onnx", func(dir string) error { return os.RemoveAll(filepath.Join(dir, "onnx")) }, model.ErrLayout, "onnx"},
		{"layers disagree", func(dir string) error {
			return editJSON(filepath.Join(dir, "config.json"), func(m map[string]any) { m["num_hidden_layers"] = 3 })
		}, model.ErrGraph, "num_hidden_layers"},
		{"bad tokenizer.json", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "tokenizer.json"), []byte("{not json"), 0o644)
		}, tokenizer.ErrInvalid, "tokenizer.json"},
		{"tokenizer larger than the model", func(dir string) error {
			return editJSON(filepath.Join(dir, "tokenizer.json"), func(m map[string]any) {
				m["added_tokens"] = append(m["added_tokens"].([]any), map[string]any{"id": 900, "content": "<|extra|>", "special": true})
			})
		}, ErrMismatch, "vocabulary"},
		{"broken chat template", func(dir string) error {
			return editJSON(filepath.Join(dir, "tokenizer_config.json"), func(m map[string]any) { m["chat_template"] = "{% for %}" })
		}, chattmpl.ErrTemplate, "template"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, src)
			if err := tc.break_(dir); err != nil {
				t.Fatal(err)
			}
			e, err := Load(dir, testOptions)
			if err == nil {
				e.Close()
				t.Fatal("loaded")
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %v mentioning %q", err, tc.is, tc.want)
			}
		})
	}
}

func editJSON(path string, edit func(map[string]any)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return err
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// setConstraint allows the ids in allowed, can end after min tokens and is
// done after max tokens.
type setConstraint struct {
	allowed  map[int]bool
	min, max int
	n        int
	bad      []int // ids advanced that were not allowed
}

func (c *setConstraint) FillMask(m []uint64) {
	clear(m)
	for id := range c.allowed {
		m[id>>6] |= 1 << (id & 63)
	}
}

func (c *setConstraint) Advance(id int) error {
	if !c.allowed[id] {
		c.bad = append(c.bad, id)
		return errors.New("not allowed")
	}
	c.n++
	return nil
}

func (c *setConstraint) CanEnd() bool { return c.n >= c.min }
func (c *setConstraint) Done() bool   { return c.n >= c.max }

// TestConstraint: with a constraint, every drawn token is one it allows
// (greedy and sampled, with a logit_bias pushing a forbidden token), EOS
// comes only where it can end, Done ends the generation with "stop", and a
// constraint that allows nothing is an ErrConstraint, not a hang.
func TestConstraint(t *testing.T) {
	e := tinyEngine(t)
	prompt := chatPrompt(t, e, "Spell it.")
	ids := map[int]bool{}
	for _, s := range []string{"a", "b", "c"} {
		id, ok := e.Tokenizer.TokenID(s)
		if !ok {
			t.Fatalf("no token %q", s)
		}
		ids[id] = true
	}
	forbidden, _ := e.Tokenizer.TokenID("d")
	for seed := range uint64(12) {
		sp := sampler.Params{Temperature: 0.9, Seed: seed, LogitBias: map[int]float32{forbidden: 100}}
		if seed == 0 {
			sp = sampler.Params{} // greedy
		}
		c := &setConstraint{allowed: ids, min: 2, max: 6}
		pieces, res := run(t, e, &Request{Prompt: prompt, MaxTokens: 20, Sampling: sp, Constraint: c})
		text := strings.Join(pieces, "")
		if len(c.bad) > 0 || strings.Trim(text, "abc") != "" {
			t.Fatalf("seed %d: %q (refused ids %v)", seed, text, c.bad)
		}
		if res.Finish != FinishStop || c.n < c.min || c.n > c.max || res.CompletionTokens > c.max+1 {
			t.Fatalf("seed %d: finish %v after %d constrained tokens (%d drawn), text %q", seed, res.Finish, c.n, res.CompletionTokens, text)
		}
	}
	dead := &setConstraint{allowed: map[int]bool{}, min: 1, max: 2}
	_, err := e.Generate(context.Background(), &Request{Prompt: prompt, MaxTokens: 4, Constraint: dead}, func(string) error { return nil })
	if !errors.Is(err, ErrConstraint) {
		t.Fatalf("a constraint that allows nothing: %v", err)
	}
}

// TestChatPromptTools: the generated model's template renders tools in the
// system turn, an assistant turn's tool calls as <tool_call> envelopes and
// tool results as <tool_response>s in one user turn, as Qwen2.5's does.
func TestChatPromptTools(t *testing.T) {
	e := tinyEngine(t)
	tools := []any{map[string]any{"type": "function", "function": map[string]any{
		"name": "get_weather", "parameters": map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}}
	call := func(id, args string) map[string]any {
		return map[string]any{"id": id, "type": "function", "function": map[string]any{"name": "get_weather", "arguments": args}}
	}
	msgs := []chattmpl.Message{
		{Role: "system", Content: "Be brief."},
		{Role: "user", Content: "Weather in Paris and Oslo?"},
		{Role: "assistant", Extra: map[string]any{"tool_calls": []any{call("c1", `{"city": "Paris"}`), call("c2", `{"city": "Oslo"}`)}}},
		{Role: "tool", Content: "18C", Extra: map[string]any{"tool_call_id": "c1"}},
		{Role: "tool", Content: "9C", Extra: map[string]any{"tool_call_id": "c2"}},
	}
	ids, err := e.ChatPrompt(msgs, tools)
	if err != nil {
		t.Fatal(err)
	}
	want := "<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n" +
		"You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n" +
		`{"function": {"name": "get_weather", "parameters": {"properties": {"city": {"type": "string"}}, "type": "object"}}, "type": "function"}` +
		"\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n" +
		"<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}\n</tool_call><|im_end|>\n" +
		"<|im_start|>user\nWeather in Paris and Oslo?<|im_end|>\n" +
		"<|im_start|>assistant\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n" +
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call><|im_end|>\n" +
		"<|im_start|>user\n<tool_response>\n18C\n</tool_response>\n<tool_response>\n9C\n</tool_response><|im_end|>\n" +
		"<|im_start|>assistant\n"
	if got := e.Tokenizer.Decode(ids, false); got != want {
		t.Fatalf("rendered\n%s\nwant\n%s", got, want)
	}
}

// halfMask allows every other id.
type halfMask struct{}

func (halfMask) FillMask(m []uint64) {
	for i := range m {
		m[i] = 0x5555555555555555
	}
}
func (halfMask) Advance(int) error { return nil }
func (halfMask) CanEnd() bool      { return true }
func (halfMask) Done() bool        { return false }

// BenchmarkConstrainRow: what applying a constraint's mask to one row of
// Qwen2.5's logits (151 936 ids) costs per token, beyond the constraint's
// own FillMask.
func BenchmarkConstrainRow(b *testing.B) {
	const vocab = 151936
	e := &Engine{eos: map[int]bool{151643: true, 151645: true}, eosIDs: []int{151643, 151645}, vocab: 151665}
	row := make([]float32, vocab)
	mask := make([]uint64, (vocab+63)/64)
	for b.Loop() {
		if err := e.constrain(halfMask{}, row, mask); err != nil {
			b.Fatal(err)
		}
	}
}
