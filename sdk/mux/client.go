package mux

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
)

var (
	errContextCanceled = context.Canceled
	errContextDeadline = context.DeadlineExceeded
)

// Sender writes frames to a session.
type Sender interface {
	Send(*dbe.Frame) error
}

// ErrSessionClosed is returned by calls whose session ended before their
// response did.
var ErrSessionClosed = errors.New("mux: session closed")

// Client sends requests over one session and routes response frames back by
// correlation id. It is safe for concurrent use.
type Client struct {
	s      Sender
	nextID atomic.Uint64

	mu      sync.Mutex
	pending map[uint64]*call
	closed  error
	// Deadlines: one timer per Client, armed for the earliest deadline it
	// knows of (next, unix ns; 0 = not armed). It fires only when a
	// deadline may have passed, so a client whose calls finish in time
	// costs no periodic wake-ups (on a virtual machine each one costs the
	// process ~0.15 ms of CPU, taken from a model's decode on the same
	// cores).
	timer *time.Timer
	next  int64
}

// ErrDeadline is returned by CallWithin when the deadline passed first. It
// wraps context.DeadlineExceeded.
var ErrDeadline = fmt.Errorf("mux: call deadline passed: %w", context.DeadlineExceeded)

// NewClient returns a Client that sends with s. Feed it the session's
// frames with Dispatch.
func NewClient(s Sender) *Client {
	return &Client{s: s, pending: make(map[uint64]*call)}
}

// call is one request in flight: an unbounded queue of response frames, so
// a slow caller never blocks the read loop.
type call struct {
	mu       sync.Mutex
	queue    []*dbe.Frame
	err      error
	ready    chan struct{} // 1-buffered: "the queue changed"
	deadline int64         // unix nanoseconds; 0 = none

	// Set for calls made with Go: frames go straight to fn.
	fn       func(*dbe.Frame, error)
	finished bool // fn has had its final delivery (guarded by mu)
}

// deliver hands an async call one frame or its final error, in order and
// exactly once for the final one. It reports whether this was the final
// delivery.
func (c *call) deliver(f *dbe.Frame, err error) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		return false
	}
	if err == nil && f.Type == dbe.MsgError {
		f, err = nil, ParseError(f)
	}
	final := err != nil || f.Flags&dbe.FlagEndStream != 0
	c.finished = final
	c.fn(f, err)
	return final
}

func (c *call) push(f *dbe.Frame, err error) {
	c.mu.Lock()
	if f != nil {
		c.queue = append(c.queue, f)
	}
	if err != nil && c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
	select {
	case c.ready <- struct{}{}:
	default:
	}
}

func (c *call) pop() ([]*dbe.Frame, error) {
	c.mu.Lock()
	q, err := c.queue, c.err
	c.queue = nil
	c.mu.Unlock()
	return q, err
}

// InFlight is the number of requests awaiting their last frame.
func (c *Client) InFlight() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending)
}

// Call sends req (its CorrelationID is assigned here) and calls onFrame for
// each response frame in order, the last being the one with END_STREAM. An
// ERROR frame is returned as an *Error instead of being passed to onFrame.
// If ctx ends first, Call sends CANCEL and returns ctx.Err(); if onFrame
// returns an error, Call sends CANCEL and returns it.
func (c *Client) Call(ctx context.Context, req *dbe.Frame, onFrame func(*dbe.Frame) error) error {
	return c.call(ctx, 0, req, onFrame)
}

// CallWithin is Call with a deadline d from now, enforced by one timer per
// Client instead of a timer or context per call. When it passes,
// CallWithin sends CANCEL and returns ErrDeadline.
func (c *Client) CallWithin(ctx context.Context, d time.Duration, req *dbe.Frame, onFrame func(*dbe.Frame) error) error {
	return c.call(ctx, time.Now().Add(d).UnixNano(), req, onFrame)
}

func (c *Client) call(ctx context.Context, deadline int64, req *dbe.Frame, onFrame func(*dbe.Frame) error) error {
	cl := &call{ready: make(chan struct{}, 1), deadline: deadline}
	id := c.nextID.Add(1)
	c.mu.Lock()
	if c.closed != nil {
		c.mu.Unlock()
		return c.closed
	}
	c.pending[id] = cl
	if deadline != 0 {
		c.arm(deadline)
	}
	c.mu.Unlock()
	defer c.forget(id)

	req.CorrelationID = id
	if err := c.s.Send(req); err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			c.cancel(id)
			return ctx.Err()
		case <-cl.ready:
		}
		frames, err := cl.pop()
		for _, f := range frames {
			if f.Type == dbe.MsgError {
				return ParseError(f)
			}
			if e := onFrame(f); e != nil {
				if f.Flags&dbe.FlagEndStream == 0 {
					c.cancel(id)
				}
				return e
			}
			if f.Flags&dbe.FlagEndStream != 0 {
				return nil
			}
		}
		if err != nil {
			if err == ErrDeadline {
				c.cancel(id)
			}
			return err
		}
	}
}

// Go sends req and delivers its response frames to fn, in order, from the
// session's read loop: fn must not block. The final delivery is either a
// frame with END_STREAM (err nil) or an error (f nil): an ERROR frame
// arrives as a *Error, a passed deadline as ErrDeadline, a dead session as
// its error. timeout <= 0 means no deadline. The returned cancel sends
// CANCEL and ends the call with context.Canceled; it may be called any
// number of times, also after the call ended.
//
// Go costs no goroutine, timer or context per request: it is the router's
// fast path.
func (c *Client) Go(req *dbe.Frame, timeout time.Duration, fn func(f *dbe.Frame, err error)) (cancel func()) {
	var deadline int64
	if timeout > 0 {
		deadline = time.Now().Add(timeout).UnixNano()
	}
	cl := &call{deadline: deadline, fn: fn}
	id := c.nextID.Add(1)
	c.mu.Lock()
	if c.closed != nil {
		err := c.closed
		c.mu.Unlock()
		cl.deliver(nil, err)
		return func() {}
	}
	c.pending[id] = cl
	if deadline != 0 {
		c.arm(deadline)
	}
	c.mu.Unlock()
	req.CorrelationID = id
	if err := c.s.Send(req); err != nil {
		c.forget(id)
		cl.deliver(nil, err)
		return func() {}
	}
	return func() {
		if cl.deliver(nil, context.Canceled) {
			c.forget(id)
			c.cancel(id)
		}
	}
}

// arm makes the timer fire by deadline. Called with mu held. A deadline
// later than the one armed changes nothing: the sweep it triggers re-arms
// for the earliest deadline still pending.
func (c *Client) arm(deadline int64) {
	if c.next != 0 && c.next <= deadline {
		return
	}
	c.next = deadline
	d := time.Duration(deadline - time.Now().UnixNano())
	if c.timer == nil {
		c.timer = time.AfterFunc(d, c.sweep)
	} else {
		c.timer.Reset(d)
	}
}

// sweep fails the calls whose deadline passed and re-arms the timer for the
// earliest deadline left.
func (c *Client) sweep() {
	var expired []expiredCall
	now := time.Now().UnixNano()
	c.mu.Lock()
	c.next = 0
	var earliest int64
	for id, cl := range c.pending {
		switch {
		case cl.deadline == 0:
		case now >= cl.deadline:
			cl.deadline = 0
			if cl.fn != nil {
				expired = append(expired, expiredCall{id, cl})
			} else {
				cl.push(nil, ErrDeadline)
			}
		case earliest == 0 || cl.deadline < earliest:
			earliest = cl.deadline
		}
	}
	if earliest != 0 && c.closed == nil {
		c.arm(earliest)
	}
	c.mu.Unlock()
	for _, e := range expired {
		if e.cl.deliver(nil, ErrDeadline) {
			c.forget(e.id)
			c.cancel(e.id)
		}
	}
}

type expiredCall struct {
	id uint64
	cl *call
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Interrupt sends CANCEL for the request on correlation id (the
// CorrelationID Go or Call gave its frame) without ending the call: the
// responder's frames up to its final one are still delivered. An agent
// task answers CANCEL with its partial result (docs/dbe.md §8). A call
// that has ended is not affected.
func (c *Client) Interrupt(id uint64) {
	c.mu.Lock()
	_, live := c.pending[id]
	c.mu.Unlock()
	if live {
		c.cancel(id)
	}
}

func (c *Client) cancel(id uint64) {
	_ = c.s.Send(&dbe.Frame{Type: dbe.MsgCancel, CorrelationID: id})
}

// Dispatch delivers one frame read from the session. It reports whether the
// frame belonged to a request of this client.
func (c *Client) Dispatch(f *dbe.Frame) bool {
	id := f.CorrelationID // fn may reuse f, correlation id included
	c.mu.Lock()
	cl := c.pending[id]
	c.mu.Unlock()
	if cl == nil {
		return false
	}
	if cl.fn != nil {
		if cl.deliver(f, nil) {
			c.forget(id)
		}
		return true
	}
	cl.push(f, nil)
	return true
}

// Close fails every request in flight and every later Call with err (or
// ErrSessionClosed).
func (c *Client) Close(err error) {
	if err == nil {
		err = ErrSessionClosed
	}
	c.mu.Lock()
	if c.closed == nil {
		c.closed = err
	}
	if c.timer != nil {
		c.timer.Stop()
		c.next = 0
	}
	calls := make([]*call, 0, len(c.pending))
	for _, cl := range c.pending {
		calls = append(calls, cl)
	}
	c.mu.Unlock()
	for _, cl := range calls {
		if cl.fn != nil {
			cl.deliver(nil, err)
		} else {
			cl.push(nil, err)
		}
	}
	c.mu.Lock()
	clear(c.pending)
	c.mu.Unlock()
}
