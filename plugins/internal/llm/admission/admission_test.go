package admission

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// acquireAsync starts an Acquire and returns a channel with its outcome.
func acquireAsync(c *Controller, ctx context.Context, need int64) chan func() {
	ch := make(chan func(), 1)
	go func() {
		rel, err := c.Acquire(ctx, need)
		if err != nil {
			close(ch)
			return
		}
		ch <- rel
	}()
	return ch
}

func waitStats(t *testing.T, c *Controller, cond func(Stats) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(c.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("stats %+v", c.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestSlots(t *testing.T) {
	c := New(2, 100, 4)
	ctx := context.Background()
	r1, err := c.Acquire(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := c.Acquire(ctx, 10)
	third := acquireAsync(c, ctx, 10)
	waitStats(t, c, func(s Stats) bool { return s.Active == 2 && s.Waiting == 1 && s.Used == 20 })
	if l := c.Stats().Load(); l != 0.5 {
		t.Fatalf("load %v, want 3/6", l)
	}
	r1()
	r1() // idempotent
	r3 := <-third
	if r3 == nil {
		t.Fatal("third not admitted")
	}
	waitStats(t, c, func(s Stats) bool { return s.Active == 2 && s.Waiting == 0 && s.Used == 20 })
	r2()
	r3()
	if s := c.Stats(); s.Active != 0 || s.Used != 0 {
		t.Fatalf("after release: %+v", s)
	}
}

func TestBudget(t *testing.T) {
	c := New(8, 100, 4)
	ctx := context.Background()
	if _, err := c.Acquire(ctx, 101); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over budget: %v", err)
	}
	big, _ := c.Acquire(ctx, 70)
	second := acquireAsync(c, ctx, 40) // waits for memory, not for a slot
	waitStats(t, c, func(s Stats) bool { return s.Waiting == 1 })
	// FIFO: a small request does not overtake the waiting one.
	third := acquireAsync(c, ctx, 10)
	waitStats(t, c, func(s Stats) bool { return s.Waiting == 2 })
	big()
	r2, r3 := <-second, <-third
	if r2 == nil || r3 == nil {
		t.Fatal("not admitted after release")
	}
	if s := c.Stats(); s.Used != 50 || s.Active != 2 {
		t.Fatalf("stats %+v", s)
	}
	r2()
	r3()
}

func TestQueueFull(t *testing.T) {
	c := New(1, 100, 1)
	ctx := context.Background()
	r1, _ := c.Acquire(ctx, 1)
	waiting := acquireAsync(c, ctx, 1)
	waitStats(t, c, func(s Stats) bool { return s.Waiting == 1 })
	if _, err := c.Acquire(ctx, 1); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("queue full: %v", err)
	}
	if l := c.Stats().Load(); l != 1 {
		t.Fatalf("load %v", l)
	}
	r1()
	(<-waiting)()
	// No queue at all: refuse whenever it cannot start now.
	c = New(1, 100, 0)
	r, _ := c.Acquire(ctx, 1)
	if _, err := c.Acquire(ctx, 1); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("queue 0: %v", err)
	}
	r()
}

func TestCancelWhileWaiting(t *testing.T) {
	c := New(1, 100, 4)
	r1, _ := c.Acquire(context.Background(), 60)
	ctx, cancel := context.WithCancel(context.Background())
	waiter := acquireAsync(c, ctx, 60)
	behind := acquireAsync(c, context.Background(), 10)
	waitStats(t, c, func(s Stats) bool { return s.Waiting == 2 })
	cancel()
	if r := <-waiter; r != nil {
		t.Fatal("cancelled waiter admitted")
	}
	waitStats(t, c, func(s Stats) bool { return s.Waiting == 1 })
	r1()
	(<-behind)()
	if s := c.Stats(); s.Active != 0 || s.Used != 0 || s.Waiting != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// TestStress: many goroutines; the limits always hold and everything is
// released in the end.
func TestStress(t *testing.T) {
	c := New(3, 100, 1000)
	var active, peak atomic.Int64
	var used atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			need := int64(i%7*10 + 5)
			ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*time.Millisecond+time.Millisecond)
			defer cancel()
			if i%3 == 0 {
				ctx = context.Background()
			}
			rel, err := c.Acquire(ctx, need)
			if err != nil {
				return
			}
			n := active.Add(1)
			u := used.Add(need)
			if n > 3 || u > 100 {
				t.Errorf("%d active, %d used", n, u)
			}
			for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
			}
			time.Sleep(100 * time.Microsecond)
			active.Add(-1)
			used.Add(-need)
			rel()
		}(i)
	}
	wg.Wait()
	if s := c.Stats(); s.Active != 0 || s.Used != 0 || s.Waiting != 0 {
		t.Fatalf("stats %+v", s)
	}
}
