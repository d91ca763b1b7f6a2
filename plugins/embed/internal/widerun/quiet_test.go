package widerun

import (
	"context"
	"errors"
	"runtime"
	"testing"
	"time"
)

// fakeTimes replays CPU times: each step adds busy and idle ticks.
type fakeTimes struct {
	steps       [][2]uint64 // {idle, busy} ticks added per call after the first
	idle, total uint64
	calls       int
}

func (f *fakeTimes) times() (uint64, uint64, bool) {
	if f.calls > 0 {
		s := f.steps[min(f.calls-1, len(f.steps)-1)]
		f.idle += s[0]
		f.total += s[0] + s[1]
	}
	f.calls++
	return f.idle, f.total, true
}

// TestWaitQuiet: a machine busy for two windows, then quiet, is waited
// for; one that stays busy is given up on at maxWait with the last
// window's idle share; maxWait 0 and a machine without CPU times do not
// wait; a cancelled context ends the wait.
func TestWaitQuiet(t *testing.T) {
	ctx := context.Background()
	f := &fakeTimes{steps: [][2]uint64{{50, 50}, {60, 40}, {95, 5}}}
	share, quiet, err := waitQuiet(ctx, time.Minute, time.Millisecond, f.times)
	if err != nil || !quiet || share != 0.95 || f.calls != 4 {
		t.Errorf("busy, busy, quiet: share %v quiet %v err %v after %d reads; want 0.95 true after 4", share, quiet, err, f.calls)
	}

	f = &fakeTimes{steps: [][2]uint64{{30, 70}}}
	start := time.Now()
	share, quiet, err = waitQuiet(ctx, 50*time.Millisecond, 5*time.Millisecond, f.times)
	if err != nil || quiet || share != 0.3 {
		t.Errorf("always busy: share %v quiet %v err %v; want 0.3 false", share, quiet, err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 5*time.Second {
		t.Errorf("always busy: gave up after %v, want maxWait (50ms)", d)
	}

	f = &fakeTimes{steps: [][2]uint64{{0, 100}}}
	if share, quiet, _ := waitQuiet(ctx, 0, time.Millisecond, f.times); !quiet || share != 1 || f.calls != 0 {
		t.Errorf("maxWait 0: share %v quiet %v after %d reads; want 1 true, no read", share, quiet, f.calls)
	}
	none := func() (uint64, uint64, bool) { return 0, 0, false }
	if share, quiet, _ := waitQuiet(ctx, time.Minute, time.Millisecond, none); !quiet || share != 1 {
		t.Errorf("no CPU times: share %v quiet %v; want 1 true at once", share, quiet)
	}

	cctx, cancel := context.WithCancel(ctx)
	cancel()
	f = &fakeTimes{steps: [][2]uint64{{0, 100}}}
	if _, _, err := waitQuiet(cctx, time.Minute, time.Millisecond, f.times); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v, want context.Canceled", err)
	}
}

// TestCPUTimes reads the real /proc/stat: the totals grow, and a spinning
// goroutine on every CPU makes the idle share of a window drop below
// QuietIdle, so WaitQuiet gives up.
func TestCPUTimes(t *testing.T) {
	idle0, total0, ok := CPUTimes()
	if !ok {
		if runtime.GOOS == "linux" {
			t.Fatal("no CPU times from /proc/stat on Linux")
		}
		t.Skip("no /proc/stat on " + runtime.GOOS)
	}
	stop := make(chan struct{})
	defer close(stop)
	for range runtime.NumCPU() {
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
			}
		}()
	}
	share, quiet, err := WaitQuiet(context.Background(), 2*QuietWindow)
	idle1, total1, _ := CPUTimes()
	if err != nil || quiet || share >= QuietIdle {
		t.Errorf("every CPU spinning: share %v quiet %v err %v; want below %v", share, quiet, err, QuietIdle)
	}
	if total1 <= total0 || idle1 < idle0 || idle1-idle0 > total1-total0 {
		t.Errorf("CPU times went from idle %d total %d to %d %d", idle0, total0, idle1, total1)
	}
}
