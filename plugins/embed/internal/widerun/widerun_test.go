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

// TestMinTokens: the first length at which wide takes at most Gain of
// narrow's time is the answer, and no longer length is tried; lengths
// beyond maxLen are not tried; none gives None; an error stops it.
func TestMinTokens(t *testing.T) {
	narrowTime := func(int) time.Duration { return 4 * time.Millisecond }
	var narrow, wide []int
	// Wide is slower below 64 tokens and half the time from 64.
	got, err := MinTokens(context.Background(), 512, sleeper(narrowTime, &narrow), sleeper(func(n int) time.Duration {
		if n < 64 {
			return 6 * time.Millisecond
		}
		return 2 * time.Millisecond
	}, &wide))
	if err != nil || got != 64 {
		t.Fatalf("MinTokens = %d, %v; want 64", got, err)
	}
	if slices.Max(wide) != 64 || len(wide) != 3*(Rounds+1) {
		t.Errorf("wide ran %v: want %d runs each of 16, 32, 64", wide, Rounds+1)
	}

	// Never faster: None, and only lengths up to maxLen tried.
	narrow, wide = nil, nil
	got, err = MinTokens(context.Background(), 100, sleeper(narrowTime, &narrow), sleeper(narrowTime, &wide))
	if err != nil || got != None {
		t.Fatalf("MinTokens = %d, %v; want None", got, err)
	}
	if slices.Max(narrow) != 64 {
		t.Errorf("narrow ran up to %d tokens, want 64 (maxLen 100)", slices.Max(narrow))
	}

	boom := errors.New("boom")
	if _, err := MinTokens(context.Background(), 512, sleeper(narrowTime, &narrow), func(context.Context, int) error { return boom }); !errors.Is(err, boom) {
		t.Errorf("a failing run: %v, want boom", err)
	}
}
