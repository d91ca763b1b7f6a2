package engine

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/dsmil/l7/plugins/internal/llm/sampler"
)

// TestGenerateN: n choices of one prompt are prefilled once and each is
// what Generate gives alone with its own sampling: greedy choices equal,
// seeded ones equal to the same seed alone (so the copied KV cache is the
// prompt's); their log probabilities and texts stay apart.
func TestGenerateN(t *testing.T) {
	e := tinyEngine(t)
	prompt := chatPrompt(t, e, "Three answers about the radio log, please.")
	const n = 3
	seeds := []uint64{7, 8, 9}
	var alone []string
	for _, seed := range seeds {
		p, _ := run(t, e, &Request{Prompt: prompt, MaxTokens: 16, IgnoreEOS: true, Sampling: sampler.Params{Temperature: 1, Seed: seed}})
		alone = append(alone, strings.Join(p, ""))
	}
	if alone[0] == alone[1] && alone[1] == alone[2] {
		t.Fatalf("three seeds gave the same text %q: the test cannot tell choices apart", alone[0])
	}

	reqs := make([]*Request, n)
	emits := make([]func(string) error, n)
	texts := make([]strings.Builder, n)
	var mu sync.Mutex
	lps := make([]int, n)
	for i := range reqs {
		reqs[i] = &Request{Prompt: prompt, MaxTokens: 16, IgnoreEOS: true, Sampling: sampler.Params{Temperature: 1, Seed: seeds[i]}}
		if i == 2 {
			reqs[i].Logprobs = func(s string, l []Logprob) error {
				mu.Lock()
				defer mu.Unlock()
				texts[i].WriteString(s)
				lps[i] += len(l)
				return nil
			}
		}
		emits[i] = func(s string) error {
			mu.Lock()
			defer mu.Unlock()
			texts[i].WriteString(s)
			return nil
		}
	}
	before := e.prefills.Load()
	results, err := e.GenerateN(context.Background(), reqs, emits)
	if err != nil {
		t.Fatal(err)
	}
	if got := e.prefills.Load() - before; got != 1 {
		t.Fatalf("%d prefills for %d choices, want 1", got, n)
	}
	for i := range reqs {
		if texts[i].String() != alone[i] {
			t.Errorf("choice %d (seed %d): %q; alone: %q", i, seeds[i], texts[i].String(), alone[i])
		}
		if r := results[i]; r.CompletionTokens != 16 || r.Finish != FinishLength || r.PromptTokens != len(prompt) {
			t.Errorf("choice %d: %+v", i, r)
		}
	}
	if lps[2] != 16 || lps[0] != 0 {
		t.Errorf("log probabilities: %v, want 16 for choice 2 only", lps)
	}

	// One choice failing ends them all, with its error.
	boom := errors.New("boom")
	emits[1] = func(string) error { return boom }
	reqs[2].Logprobs = nil
	if _, err := e.GenerateN(context.Background(), reqs, emits); !errors.Is(err, boom) {
		t.Fatalf("a failing choice: %v, want %v", err, boom)
	}
	// Choices must share the prompt.
	other := *reqs[0]
	other.Prompt = prompt[1:]
	if _, err := e.GenerateN(context.Background(), []*Request{reqs[0], &other}, emits[:2]); !errors.Is(err, ErrChoices) {
		t.Fatalf("different prompts: %v", err)
	}
}
