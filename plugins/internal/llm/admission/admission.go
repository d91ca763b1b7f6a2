package admission

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"sync"
)

var (
	// ErrTooLarge reports a request that needs more than the whole budget.
	ErrTooLarge = errors.New("admission: request exceeds the budget")

	// ErrQueueFull reports a request that would have to wait while the
	// queue is full.
	ErrQueueFull = errors.New("admission: queue full")
)

// Controller admits requests. It is safe for concurrent use.
type Controller struct {
	slots, queueLen int
	budget          int64

	mu      sync.Mutex
	active  int
	used    int64
	waiting list.List // of *waiter, oldest first
}

type waiter struct {
	need    int64
	granted chan struct{} // closed when admitted
}

// New returns a controller that runs at most slots requests at once
// (≥ 1), reserves at most budget bytes in total and lets at most queueLen
// requests wait (0: none wait).
func New(slots int, budget int64, queueLen int) *Controller {
	return &Controller{slots: max(slots, 1), budget: budget, queueLen: max(queueLen, 0)}
}

// Acquire admits a request that needs need bytes of the budget, waiting
// in the queue while it cannot start. It fails at once with ErrTooLarge
// when need exceeds the whole budget and with ErrQueueFull when the
// request would have to wait and the queue is full; while waiting, with
// ctx's error when ctx ends. The returned release, to be called once when
// the request ends, frees its slot and memory.
func (c *Controller) Acquire(ctx context.Context, need int64) (release func(), err error) {
	if need > c.budget {
		return nil, fmt.Errorf("%w: needs %d bytes, the budget is %d", ErrTooLarge, need, c.budget)
	}
	need = max(need, 0)
	c.mu.Lock()
	if c.waiting.Len() == 0 && c.fits(need) {
		c.admit(need)
		c.mu.Unlock()
		return c.releaser(need), nil
	}
	if c.waiting.Len() >= c.queueLen {
		active, queued := c.active, c.waiting.Len()
		c.mu.Unlock()
		return nil, fmt.Errorf("%w: %d running, %d waiting", ErrQueueFull, active, queued)
	}
	w := &waiter{need: need, granted: make(chan struct{})}
	e := c.waiting.PushBack(w)
	c.mu.Unlock()

	select {
	case <-w.granted:
		return c.releaser(need), nil
	case <-ctx.Done():
	}
	c.mu.Lock()
	select {
	case <-w.granted: // admitted just as ctx ended: give it back
		c.mu.Unlock()
		c.releaser(need)()
	default:
		c.waiting.Remove(e)
		c.grant() // the new head may fit
		c.mu.Unlock()
	}
	return nil, ctx.Err()
}

func (c *Controller) fits(need int64) bool {
	return c.active < c.slots && c.used+need <= c.budget
}

func (c *Controller) admit(need int64) {
	c.active++
	c.used += need
}

// grant admits waiters from the head of the queue while they fit. c.mu
// is held.
func (c *Controller) grant() {
	for e := c.waiting.Front(); e != nil; e = c.waiting.Front() {
		w := e.Value.(*waiter)
		if !c.fits(w.need) {
			return
		}
		c.waiting.Remove(e)
		c.admit(w.need)
		close(w.granted)
	}
}

func (c *Controller) releaser(need int64) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			c.active--
			c.used -= need
			c.grant()
			c.mu.Unlock()
		})
	}
}

// Stats is a snapshot of a controller.
type Stats struct {
	// Active requests are running; Waiting ones are queued.
	Active, Waiting int
	// Slots and QueueLen are the limits.
	Slots, QueueLen int
	// Used bytes of Budget are reserved by the active requests.
	Used, Budget int64
}

// Stats returns the controller's state.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return Stats{Active: c.active, Waiting: c.waiting.Len(), Slots: c.slots, QueueLen: c.queueLen, Used: c.used, Budget: c.budget}
}

// Load is the share of the capacity in use, from 0 (idle) to 1 (every
// slot busy and the queue full).
func (s Stats) Load() float64 {
	cap := s.Slots + s.QueueLen
	if cap == 0 {
		return 0
	}
	return min(float64(s.Active+s.Waiting)/float64(cap), 1)
}
