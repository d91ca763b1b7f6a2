// Package widerun measures where a lone sequence is better run wide — one
// ONNX Runtime run whose operators use every thread — than narrow, on one
// thread. The embed plugin runs batches narrow, one per core side by side;
// a lone sequence cannot be split over cores that way, and from some
// length on a wide run embeds it sooner (docs/performance.md, "Wide and
// narrow runs"). Where depends on the graph: dynamically quantized
// MiniLM-L6 on 2 cores gains only from ≈ 128 tokens, its fp32 graph from
// 16. The plugin (concurrent_runs and wide_min_tokens "auto") and
// bench/embed's raw baseline both call MinTokens.
package widerun

import (
	"context"
	"math"
	"time"
)

// Lengths are the lone-sequence lengths MinTokens tries, in turn.
var Lengths = []int{16, 32, 64, 128, 256, 512}

// Rounds is how many timed runs of each kind MinTokens takes per length,
// after one to warm up; it keeps the fastest.
const Rounds = 5

// Gain is how much sooner a wide run must be to count: at most Gain of the
// narrow run's time.
const Gain = 0.90

// None is what MinTokens returns when no length up to maxLen runs wide
// sooner: no lone sequence runs wide.
const None = math.MaxInt

// RunFunc embeds one sequence of n tokens.
type RunFunc func(ctx context.Context, n int) error

// MinTokens returns the shortest of Lengths (up to maxLen) at which the
// fastest of Rounds wide runs takes at most Gain of the fastest narrow
// one, the two interleaved, or None.
func MinTokens(ctx context.Context, maxLen int, narrow, wide RunFunc) (int, error) {
	for _, n := range Lengths {
		if n > maxLen {
			break
		}
		best := [2]time.Duration{math.MaxInt64, math.MaxInt64}
		for round := range Rounds + 1 {
			for k, run := range []RunFunc{narrow, wide} {
				start := time.Now()
				if err := run(ctx, n); err != nil {
					return 0, err
				}
				if round > 0 {
					best[k] = min(best[k], time.Since(start))
				}
			}
		}
		if float64(best[1]) <= Gain*float64(best[0]) {
			return n, nil
		}
	}
	return None, nil
}
