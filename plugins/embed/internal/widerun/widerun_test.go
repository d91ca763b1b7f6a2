package widerun

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"
)

// sleeper is a RunFunc that takes d(n) and records the lengths it ran.
func sleeper(d func(n int) time.Duration, ran *[]int) RunFunc {
	return func(_ context.Context, n int) error {
		*ran = append(*ran, n)
		time.Sleep(d(n))
		return nil
	}
}

// wideFrom is a wide run time: fast (1 ms, a quarter of narrow's 4 ms) at
// the lengths in fast, slow (6 ms) elsewhere.
func wideFrom(fast func(n int) bool) func(n int) time.Duration {
	return func(n int) time.Duration {
		if fast(n) {
			return time.Millisecond
		}
		return 6 * time.Millisecond
	}
}

// TestMinTokens: the first length from which wide takes at most Gain of
// narrow's time, confirmed by the next length, is the answer; one lucky
// length alone is not; the last length up to maxLen needs no confirmation;
// none gives None; an error stops it.
func TestMinTokens(t *testing.T) {
	narrowTime := func(int) time.Duration { return 4 * time.Millisecond }
	for _, c := range []struct {
		name       string
		maxLen     int
		fast       func(n int) bool
		want, last int // the answer, and the longest length tried
	}{
		{"wide from 64", 512, func(n int) bool { return n >= 64 }, 64, 128},
		{"a lone lucky 16", 512, func(n int) bool { return n == 16 || n >= 128 }, 128, 256},
		{"the last length", 100, func(n int) bool { return n >= 64 }, 64, 64},
		{"never", 100, func(int) bool { return false }, None, 64},
	} {
		var narrow, wide []int
		got, err := MinTokens(context.Background(), c.maxLen, sleeper(narrowTime, &narrow), sleeper(wideFrom(c.fast), &wide))
		if err != nil || got != c.want {
			t.Errorf("%s: MinTokens = %d, %v; want %d", c.name, got, err, c.want)
			continue
		}
		if slices.Max(wide) != c.last || slices.Max(narrow) != c.last {
			t.Errorf("%s: tried up to %d (narrow) and %d (wide) tokens, want %d", c.name, slices.Max(narrow), slices.Max(wide), c.last)
		}
	}

	boom := errors.New("boom")
	var narrow []int
	if _, err := MinTokens(context.Background(), 512, sleeper(narrowTime, &narrow), func(context.Context, int) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("a failing run: %v, want boom", err)
	}
}

// TestMeasureRounds: at least Rounds timed runs of each kind after a
// warm-up, more until each kind has taken Budget, and the two kinds take
// turns going first.
func TestMeasureRounds(t *testing.T) {
	var order []string
	run := func(name string, d time.Duration) RunFunc {
		return func(context.Context, int) error {
			order = append(order, name)
			time.Sleep(d)
			return nil
		}
	}
	// Narrow 1 ms, wide 10 ms: wide's Rounds runs pass Budget, narrow's
	// do not, so narrow sets how many rounds there are.
	ratio, err := measure(context.Background(), 16, run("n", time.Millisecond), run("w", 10*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	rounds := len(order) / 2
	// Each timed narrow run takes at least 1 ms, so Budget is met after
	// at most Budget/1 ms timed rounds (plus the warm-up), and Rounds
	// alone would have stopped far sooner.
	if rounds <= Rounds+1 || rounds > int(Budget/time.Millisecond)+1 {
		t.Errorf("%d rounds: want more than %d (Rounds and the warm-up) and at most %d (Budget %v of 1 ms runs)", rounds, Rounds+1, int(Budget/time.Millisecond)+1, Budget)
	}
	for r := range rounds {
		want := []string{"n", "w"}
		if r%2 == 1 {
			want = []string{"w", "n"}
		}
		if got := order[2*r : 2*r+2]; !slices.Equal(got, want) {
			t.Fatalf("round %d ran %v, want %v (order %v)", r, got, want, order)
		}
	}
	if ratio < 5 || ratio > 15 {
		t.Errorf("ratio %.2f, want ≈ 10 (10 ms wide over 1 ms narrow)", ratio)
	}
}
