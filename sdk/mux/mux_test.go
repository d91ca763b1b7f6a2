package mux_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	"github.com/dsmil/l7/sdk/sdktest"
	"github.com/dsmil/l7/sdk/session"
)

// pair connects a mux.Client and a mux.Server over a real Unix socket with
// plain frames (what is tested here is multiplexing, not authentication).
func pair(t testing.TB, h mux.Handler) (*mux.Client, *mux.Server, *session.Session, *session.Session) {
	t.Helper()
	return sdktest.PlainPair(t, h, "cli", "srv")
}

func reqFrame() *dbe.Frame {
	f := &dbe.Frame{Type: dbe.MsgChatReq}
	f.SetRequestID([16]byte{1, 2, 3})
	return f
}

// streamer answers with n chunks then END_STREAM, n taken from the payload.
var streamer = mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
	n := int(req.Payload[0])
	for i := range n {
		_ = w.Send(&dbe.Frame{Type: dbe.MsgChatChunk, Payload: []byte{byte(i)}})
	}
	_ = w.Send(&dbe.Frame{Type: dbe.MsgChatChunk, Flags: dbe.FlagEndStream})
})

func TestStreamedCall(t *testing.T) {
	c, _, _, _ := pair(t, streamer)
	req := reqFrame()
	req.Payload = []byte{5}
	var got []byte
	err := c.Call(context.Background(), req, func(f *dbe.Frame) error {
		if id, _ := f.RequestID(); id != [16]byte{1, 2, 3} {
			t.Errorf("chunk lost its REQUEST_ID")
		}
		got = append(got, f.Payload...)
		return nil
	})
	if err != nil || string(got) != "\x00\x01\x02\x03\x04" {
		t.Fatalf("%v %x", err, got)
	}
	if c.InFlight() != 0 {
		t.Fatal("call not forgotten")
	}
}

func TestConcurrentCalls(t *testing.T) {
	c, _, _, _ := pair(t, streamer)
	var wg sync.WaitGroup
	var bad atomic.Int32
	for g := range 64 {
		wg.Go(func() {
			for i := range 50 {
				n := (g + i) % 7
				req := reqFrame()
				req.Payload = []byte{byte(n)}
				count := 0
				err := c.Call(context.Background(), req, func(f *dbe.Frame) error { count++; return nil })
				if err != nil || count != n+1 {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d calls went wrong", bad.Load())
	}
}

func TestErrorFrame(t *testing.T) {
	c, _, _, _ := pair(t, mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		_ = w.Fail(&mux.Error{Code: dbe.CodePolicyDenied, Message: "KINETIC compartment not allowed in Layer 7", Rule: "kinetic"})
	}))
	err := c.Call(context.Background(), reqFrame(), func(*dbe.Frame) error { return nil })
	var e *mux.Error
	if !errors.As(err, &e) || e.Code != dbe.CodePolicyDenied || e.Rule != "kinetic" {
		t.Fatalf("err %v", err)
	}
}

func TestHandlerWithoutFinalFrame(t *testing.T) {
	c, _, _, _ := pair(t, mux.HandlerFunc(func(context.Context, *dbe.Frame, *mux.ResponseWriter) {}))
	err := c.Call(context.Background(), reqFrame(), func(*dbe.Frame) error { return nil })
	if mux.CodeOf(err) != dbe.CodeInternal {
		t.Fatalf("err %v", err)
	}
}

// TestCancelReachesHandler: when the caller's context ends, the handler's
// context is cancelled through a CANCEL frame.
func TestCancelReachesHandler(t *testing.T) {
	cancelled := make(chan struct{})
	c, srv, _, _ := pair(t, mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		_ = w.Send(&dbe.Frame{Type: dbe.MsgChatChunk})
		<-ctx.Done()
		close(cancelled)
	}))
	ctx, cancel := context.WithCancel(context.Background())
	err := c.Call(ctx, reqFrame(), func(*dbe.Frame) error { cancel(); return nil })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("handler never saw the cancel")
	}
	for srv.Active() != 0 {
		time.Sleep(time.Millisecond)
	}
}

func TestTimeoutTLV(t *testing.T) {
	c, _, _, _ := pair(t, mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		<-ctx.Done()
	}))
	req := reqFrame()
	req.SetTimeout(30 * time.Millisecond)
	start := time.Now()
	err := c.Call(context.Background(), req, func(*dbe.Frame) error { return nil })
	if mux.CodeOf(err) != dbe.CodeDeadlineExceeded || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

// TestSessionDeath: calls in flight fail promptly when the session dies.
func TestSessionDeath(t *testing.T) {
	c, _, _, ss := pair(t, mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		time.Sleep(time.Hour)
	}))
	errc := make(chan error, 1)
	go func() { errc <- c.Call(context.Background(), reqFrame(), func(*dbe.Frame) error { return nil }) }()
	time.Sleep(20 * time.Millisecond)
	ss.Close()
	select {
	case err := <-errc:
		if err == nil {
			t.Fatal("nil error")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("call hangs after the session died")
	}
	if err := c.Call(context.Background(), reqFrame(), func(*dbe.Frame) error { return nil }); err == nil {
		t.Fatal("call on a dead session succeeded")
	}
}

func TestOnFrameError(t *testing.T) {
	c, _, _, _ := pair(t, streamer)
	req := reqFrame()
	req.Payload = []byte{100}
	stop := fmt.Errorf("enough")
	n := 0
	err := c.Call(context.Background(), req, func(*dbe.Frame) error { n++; return stop })
	if err != stop || n != 1 {
		t.Fatalf("%v after %d", err, n)
	}
}

func BenchmarkCall(b *testing.B) {
	c, _, _, _ := pair(b, mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		_ = w.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: req.Payload})
	}))
	b.SetParallelism(32)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := reqFrame()
			req.Payload = []byte("hello")
			if err := c.Call(context.Background(), req, func(*dbe.Frame) error { return nil }); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCallSerial: one call at a time over a Unix socket, the round
// trip of a lone request (the embeddings path's two DBE hops).
func BenchmarkCallSerial(b *testing.B) {
	c, _, _, _ := pair(b, mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		_ = w.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: req.Payload})
	}))
	b.ReportAllocs()
	for b.Loop() {
		req := reqFrame()
		req.Payload = []byte("hello")
		if err := c.Call(context.Background(), req, func(*dbe.Frame) error { return nil }); err != nil {
			b.Fatal(err)
		}
	}
}

// TestCallWithinHungHandler: a handler that ignores every cancellation
// cannot hold a CallWithin past its deadline.
func TestCallWithinHungHandler(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c, _, _, _ := pair(t, mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		<-release
	}))
	start := time.Now()
	err := c.CallWithin(context.Background(), 50*time.Millisecond, reqFrame(), func(*dbe.Frame) error { return nil })
	if !errors.Is(err, context.DeadlineExceeded) || mux.CodeOf(err) != dbe.CodeDeadlineExceeded {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > time.Second {
		t.Fatalf("returned after %v", d)
	}
	if c.InFlight() != 0 {
		t.Fatal("call not forgotten")
	}
}

// TestCallWithinDeadlineOrder: deadlines are kept by one timer armed for the
// earliest: a shorter deadline set after a longer one still ends first and
// on time, the longer one is not ended early, and a client keeps working
// after its calls expired.
func TestCallWithinDeadlineOrder(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	c, _, _, _ := pair(t, mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		<-release
	}))
	type result struct {
		name string
		d    time.Duration
		err  error
	}
	out := make(chan result, 3)
	start := time.Now()
	call := func(name string, d time.Duration) {
		var err error
		if d == 0 {
			err = c.Call(context.Background(), reqFrame(), func(*dbe.Frame) error { return nil })
		} else {
			err = c.CallWithin(context.Background(), d, reqFrame(), func(*dbe.Frame) error { return nil })
		}
		out <- result{name, time.Since(start), err}
	}
	go call("long", 600*time.Millisecond)
	time.Sleep(20 * time.Millisecond) // the long deadline is armed first
	go call("short", 60*time.Millisecond)
	go call("none", 0) // no deadline: ends only when the client closes
	for _, want := range []struct {
		name     string
		min, max time.Duration
	}{{"short", 80 * time.Millisecond, 550 * time.Millisecond}, {"long", 600 * time.Millisecond, 3 * time.Second}} {
		r := <-out
		if r.name != want.name || !errors.Is(r.err, mux.ErrDeadline) {
			t.Fatalf("got %s after %v (%v), want %s to end next with ErrDeadline", r.name, r.d, r.err, want.name)
		}
		if r.d < want.min || r.d > want.max {
			t.Fatalf("%s ended after %v, want within [%v, %v]", r.name, r.d, want.min, want.max)
		}
	}
	select {
	case r := <-out:
		t.Fatalf("%s ended (%v) though it has no deadline", r.name, r.err)
	case <-time.After(100 * time.Millisecond):
	}
	// The timer re-arms for later calls.
	err := c.CallWithin(context.Background(), 30*time.Millisecond, reqFrame(), func(*dbe.Frame) error { return nil })
	if !errors.Is(err, mux.ErrDeadline) {
		t.Fatalf("later call: %v", err)
	}
}

// TestGo: the callback API delivers frames in order, ends exactly once,
// and its cancel reaches the handler.
func TestGo(t *testing.T) {
	c, _, _, _ := pair(t, streamer)
	req := reqFrame()
	req.Payload = []byte{4}
	type ev struct {
		f   *dbe.Frame
		err error
	}
	evs := make(chan ev, 10)
	c.Go(req, time.Second, func(f *dbe.Frame, err error) { evs <- ev{f, err} })
	var got []byte
	for e := range evs {
		if e.err != nil {
			t.Fatal(e.err)
		}
		got = append(got, e.f.Payload...)
		if e.f.Flags&dbe.FlagEndStream != 0 {
			break
		}
	}
	if string(got) != "\x00\x01\x02\x03" || c.InFlight() != 0 {
		t.Fatalf("%x, %d in flight", got, c.InFlight())
	}

	// Errors, deadline and cancel.
	cancelled := make(chan struct{})
	c2, _, _, _ := pair(t, mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		if req.Payload[0] == 1 {
			_ = w.Fail(mux.Errorf(dbe.CodeOverloaded, "busy"))
			return
		}
		<-ctx.Done()
		if req.Payload[0] == 3 {
			close(cancelled)
		}
	}))
	finals := make(chan error, 3)
	once := func(f *dbe.Frame, err error) {
		if err != nil || f.Flags&dbe.FlagEndStream != 0 {
			finals <- err
		}
	}
	r1 := reqFrame()
	r1.Payload = []byte{1}
	c2.Go(r1, 0, once)
	if err := <-finals; mux.CodeOf(err) != dbe.CodeOverloaded {
		t.Fatalf("ERROR frame: %v", err)
	}
	r2 := reqFrame()
	r2.Payload = []byte{2}
	c2.Go(r2, 30*time.Millisecond, once)
	if err := <-finals; !errors.Is(err, mux.ErrDeadline) {
		t.Fatalf("deadline: %v", err)
	}
	r3 := reqFrame()
	r3.Payload = []byte{3}
	cancel := c2.Go(r3, 0, once)
	time.Sleep(20 * time.Millisecond)
	cancel()
	cancel()
	if err := <-finals; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancel: %v", err)
	}
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("handler not cancelled")
	}
	select {
	case err := <-finals:
		t.Fatalf("a second final delivery: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
}
