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

// Rounds is the fewest timed runs of each kind MinTokens takes per length,
// after one of each to warm up; it keeps the fastest. It goes on, runs of
// the two kinds alternating which goes first, until each kind has taken
// Budget as well, so short lengths (a millisecond a run) get many samples.
const Rounds = 5

// Budget is the least time MinTokens spends timing each kind per length.
const Budget = 20 * time.Millisecond

// Gain is how much sooner a wide run must be to count: at most Gain of the
// narrow run's time.
const Gain = 0.90

// None is what MinTokens returns when no length up to maxLen runs wide
// sooner: no lone sequence runs wide.
const None = math.MaxInt

// RunFunc embeds one sequence of n tokens.
type RunFunc func(ctx context.Context, n int) error

// MinTokens returns the shortest of Lengths (up to maxLen) from which wide
// runs take at most Gain of the narrow runs' time, or None. A length counts
// when the next length tried counts as well (or when it is the last one
// tried): near the crossover the ratio of one length moves by ±10 % from
// one measurement to the next on a 2-core machine, and the answer must
// not hang on one lucky length. Each length's ratio is of the fastest of
// its wide and narrow runs.
func MinTokens(ctx context.Context, maxLen int, narrow, wide RunFunc) (int, error) {
	candidate := None // a length that counted, waiting for the next to confirm
	for _, n := range Lengths {
		if n > maxLen {
			break
		}
		ratio, err := measure(ctx, n, narrow, wide)
		if err != nil {
			return 0, err
		}
		switch {
		case ratio > Gain:
			candidate = None
		case candidate != None:
			return candidate, nil
		default:
			candidate = n
		}
	}
	return candidate, nil
}

// measure times runs of n tokens, narrow and wide in turn, and returns the
// fastest wide run's time over the fastest narrow run's.
func measure(ctx context.Context, n int, narrow, wide RunFunc) (float64, error) {
	best := [2]time.Duration{math.MaxInt64, math.MaxInt64}
	var spent [2]time.Duration
	runs := [2]RunFunc{narrow, wide}
	for round := 0; round <= Rounds || min(spent[0], spent[1]) < Budget; round++ {
		for i := range 2 {
			k := (i + round) % 2 // alternate which kind goes first
			start := time.Now()
			if err := runs[k](ctx, n); err != nil {
				return 0, err
			}
			if d := time.Since(start); round > 0 {
				best[k], spent[k] = min(best[k], d), spent[k]+d
			}
		}
	}
	return float64(best[1]) / float64(best[0]), nil
}
