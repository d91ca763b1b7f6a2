package engine

import (
	"context"
	"os"
	"strconv"
	"testing"
	"time"
)

// BenchmarkTTFT compares, on $DSMIL_BENCH_MODEL, the time to the first
// token and to the first text of engine.Generate (the plugin's path:
// admission, the chunked prefill, the first step of the continuous batch,
// sampling, the streaming decoder) with the bare model path bench/llm's
// raw loop times (one Sequence.Step of the prompt, then one-token steps,
// argmax over the tokenizer's ids), for a prompt of $DSMIL_BENCH_PROMPT tokens (default 128), in
// $DSMIL_BENCH_ROUNDS (default 15) alternating rounds. Both stop at the
// first token whose text the streaming decoder gives out.
//
//	DSMIL_BENCH_MODEL=/tmp/pg-q05new DSMIL_BENCH_PREFILL_GRAPH=1 go test -run '^$' -bench TTFT -benchtime 1x ./plugins/internal/llm/engine/
func BenchmarkTTFT(b *testing.B) {
	e := benchEngine(b, false)
	defer e.Close()
	envInt := func(name string, def int) int {
		if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
			return n
		}
		return def
	}
	rounds, n := envInt("DSMIL_BENCH_ROUNDS", 15), envInt("DSMIL_BENCH_PROMPT", 128)
	ctx := context.Background()
	var engFirst, engText, rawFirst, rawText []float64
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
	for b.Loop() {
		for r := range rounds {
			prompt := longPrompt(e, n, 300+r)
			// The engine, as the plugin runs it.
			start := time.Now()
			var text time.Time
			res, err := e.Generate(ctx, &Request{Prompt: prompt, MaxTokens: 8, IgnoreEOS: true, Tenant: "T"}, func(s string) error {
				if text.IsZero() && s != "" {
					text = time.Now()
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			engFirst, engText = append(engFirst, ms(res.FirstToken.Sub(start))), append(engText, ms(text.Sub(start)))
			// The bare model path.
			dec := e.Tokenizer.NewStreamDecoder()
			feed := make([]int64, len(prompt))
			for i, id := range prompt {
				feed[i] = int64(id)
			}
			start = time.Now()
			seq, err := e.Model.NewSequence(len(prompt) + 8)
			if err != nil {
				b.Fatal(err)
			}
			logits, err := seq.Step(ctx, feed)
			if err != nil {
				b.Fatal(err)
			}
			v := e.Model.Vocab()
			vocab := min(v, e.Tokenizer.VocabSize())
			next := argmaxF(logits[len(logits)-v:][:vocab])
			first := time.Now()
			text = time.Time{}
			for i := 0; i < 8 && text.IsZero(); i++ {
				if dec.Add(next) != "" {
					text = time.Now()
					break
				}
				if logits, err = seq.Step(ctx, []int64{int64(next)}); err != nil {
					b.Fatal(err)
				}
				next = argmaxF(logits[:vocab])
			}
			seq.Close()
			if text.IsZero() {
				b.Fatal("the bare model path gave no text in 8 tokens")
			}
			rawFirst, rawText = append(rawFirst, ms(first.Sub(start))), append(rawText, ms(text.Sub(start)))
		}
	}
	b.Logf("%d-token prompt, %d rounds, medians: engine first token %.1f ms, first text %.1f ms; bare model first token %.1f ms, first text %.1f ms; engine/bare %.3f× (token), %.3f× (text)",
		n, rounds, pct(engFirst, 0.5), pct(engText, 0.5), pct(rawFirst, 0.5), pct(rawText, 0.5),
		pct(engFirst, 0.5)/pct(rawFirst, 0.5), pct(engText, 0.5)/pct(rawText, 0.5))
}

func argmaxF(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}
