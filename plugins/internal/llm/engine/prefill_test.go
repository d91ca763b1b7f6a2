package engine

import (
	"context"
	"errors"
	"testing"
	"time"
)

// longPrompt is a prompt of n ids from the tokenizer's vocabulary.
func longPrompt(e *Engine, n, seed int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = (i*7+seed*31)%(e.SampleVocab()-1) + 1
	}
	return p
}

// TestChunkedPrefillMatches: a prompt prefilled in chunks of 1, 5 and 64
// tokens (batched and unbatched) gives exactly the greedy tokens of the
// prompt prefilled in one run.
func TestChunkedPrefillMatches(t *testing.T) {
	initORT(t)
	e, err := Load(tiny(t).Dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	prompt := longPrompt(e, 150, 1)
	gen := func(chunk int, unbatched bool) string {
		e.PrefillChunk, e.Unbatched = chunk, unbatched
		pieces, res := run(t, e, &Request{Prompt: prompt, MaxTokens: 24, IgnoreEOS: true})
		if res.CompletionTokens != 24 {
			t.Fatalf("chunk %d: %d tokens", chunk, res.CompletionTokens)
		}
		s := ""
		for _, p := range pieces {
			s += p
		}
		return s
	}
	want := gen(-1, true)
	if want == "" {
		t.Fatal("no text")
	}
	for _, chunk := range []int{1, 5, 64} {
		for _, unbatched := range []bool{true, false} {
			if got := gen(chunk, unbatched); got != want {
				t.Errorf("chunk %d, unbatched %v:\n got %q\nwant %q", chunk, unbatched, got, want)
			}
		}
	}
}

// TestPrefillTakesTurns: with Interleave, while a stream decodes in the
// batch, a 64-token prompt prefilled in chunks of 4 takes turns with the
// batch's steps — at least one decode step between consecutive chunks, so
// the stream keeps going during the prefill.
func TestPrefillTakesTurns(t *testing.T) {
	initORT(t)
	e, err := Load(tiny(t).Dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.PrefillChunk, e.Interleave = 4, true
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		n := 0
		_, err := e.Generate(ctx, &Request{Prompt: longPrompt(e, 8, 2), MaxTokens: 3000, IgnoreEOS: true}, func(string) error {
			if n++; n == 5 {
				close(started)
			}
			return nil
		})
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("the decoding stream ended: %v", err)
	}
	// The batch's step count after each chunk: a decode step runs between
	// any two chunks (they take turns; more than one step may run while
	// the prefill waits for its turn on a slow machine, never zero).
	var at []int64
	e.afterChunk = func() { at = append(at, e.BatchStats().Steps) }
	_, res := run(t, e, &Request{Prompt: longPrompt(e, 64, 3), MaxTokens: 1, IgnoreEOS: true})
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("decoding stream: %v", err)
	}
	t.Logf("steps after each of %d chunks: %v (prefill %v)", len(at), at, res.FirstToken.Sub(res.Start).Round(time.Microsecond))
	if len(at) != 16 {
		t.Fatalf("%d chunks, want 16", len(at))
	}
	for i := 1; i < len(at); i++ {
		if d := at[i] - at[i-1]; d < 1 {
			t.Errorf("no decode step between chunks %d and %d: they did not take turns", i, i+1)
		}
	}
}

// TestPrefillCancel: a prefill whose context ends between or during its
// chunks returns the context's error and leaves the scheduler working.
func TestPrefillCancel(t *testing.T) {
	initORT(t)
	e, err := Load(tiny(t).Dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	e.PrefillChunk = 2
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err = e.Generate(ctx, &Request{Prompt: longPrompt(e, 2000, 4), MaxTokens: 4, IgnoreEOS: true}, func(string) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("cancelled prefill: %v", err)
	}
	_, res := run(t, e, &Request{Prompt: longPrompt(e, 9, 5), MaxTokens: 4, IgnoreEOS: true})
	if res.CompletionTokens != 4 {
		t.Errorf("after a cancelled prefill: %d tokens", res.CompletionTokens)
	}
}
