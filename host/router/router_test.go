package router_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/router/routertest"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

func TestRouteStreams(t *testing.T) {
	w := routertest.NewWorker(t, "echo#0", routertest.EchoHandler)
	r := routertest.NewRouter(t, routertest.Registry{"echo": {w}}, router.Config{})
	var c routertest.Collector
	if err := r.Route(context.Background(), routertest.ChatReq("echo"), c.Out); err != nil {
		t.Fatal(err)
	}
	if len(c.Frames) != 2 || string(c.Frames[0].Payload) != "hello" || c.Last().Flags&dbe.FlagEndStream == 0 {
		t.Fatalf("frames %v", c.Frames)
	}
	for _, f := range c.Frames {
		if id, _ := f.RequestID(); id != routertest.ReqID {
			t.Fatal("chunk without the request's REQUEST_ID")
		}
	}
	if st := r.Stats(); st.Served != 1 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRouteErrors(t *testing.T) {
	w := routertest.NewWorker(t, "echo#0", routertest.EchoHandler)
	sick := routertest.NewWorker(t, "sick#0", routertest.EchoHandler)
	sick.SetHealthy(false)
	busy := routertest.NewWorker(t, "busy#0", routertest.EchoHandler)
	busy.SetLoad(1.0)
	reg := routertest.Registry{"echo": {w}, "sick": {sick}, "busy": {busy}, "empty": nil}
	r := routertest.NewRouter(t, reg, router.Config{})
	cases := []struct {
		name string
		mod  func(*dbe.Frame)
		code dbe.Code
		rule string
	}{
		{"kinetic", func(f *dbe.Frame) { f.SetCompartmentMask(dbe.CompartmentSOC | dbe.CompartmentKINETIC) }, dbe.CodePolicyDenied, "builtin.kinetic"},
		{"exec", func(f *dbe.Frame) { f.SetClassification(dbe.Exec) }, dbe.CodePolicyDenied, "builtin.exec"},
		{"missing tenant", func(f *dbe.Frame) { f.Del(dbe.TLVTenantID) }, dbe.CodeInvalidRequest, ""},
		{"unknown profile", func(f *dbe.Frame) { f.SetProfile("nope") }, dbe.CodeNotFound, ""},
		{"unhealthy only", func(f *dbe.Frame) { f.SetProfile("sick") }, dbe.CodeNoWorkerAvailable, ""},
		{"full load", func(f *dbe.Frame) { f.SetProfile("busy") }, dbe.CodeNoWorkerAvailable, ""},
		{"no replicas", func(f *dbe.Frame) { f.SetProfile("empty") }, dbe.CodeNoWorkerAvailable, ""},
		{"response type", func(f *dbe.Frame) { f.Type = dbe.MsgChatResp }, dbe.CodeInvalidRequest, ""},
		{"unknown type", func(f *dbe.Frame) { f.Type = 0x7E }, dbe.CodeUnknownMsgType, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := routertest.ChatReq("echo")
			tc.mod(req)
			var c routertest.Collector
			err := r.Route(context.Background(), req, c.Out)
			e := routertest.ErrCode(t, &c)
			if e.Code != tc.code || mux.CodeOf(err) != tc.code || e.Rule != tc.rule {
				t.Fatalf("got %v (rule %q), want %v %q", e, e.Rule, tc.code, tc.rule)
			}
		})
	}
	if sick.Calls.Load() != 0 || busy.Calls.Load() != 0 {
		t.Fatal("routed to an unhealthy or full worker")
	}
}

func TestLeastLoaded(t *testing.T) {
	a := routertest.NewWorker(t, "a", routertest.EchoHandler)
	b := routertest.NewWorker(t, "b", routertest.EchoHandler)
	c := routertest.NewWorker(t, "c", routertest.EchoHandler)
	a.SetLoad(0.95)
	b.SetLoad(0.2)
	c.SetHealthy(false)
	r := routertest.NewRouter(t, routertest.Registry{"echo": {a, b, c}}, router.Config{})
	for range 20 {
		var col routertest.Collector
		if err := r.Route(context.Background(), routertest.ChatReq("echo"), col.Out); err != nil {
			t.Fatal(err)
		}
	}
	if a.Calls.Load() != 0 || b.Calls.Load() != 20 || c.Calls.Load() != 0 {
		t.Fatalf("calls a=%d b=%d c=%d", a.Calls.Load(), b.Calls.Load(), c.Calls.Load())
	}
	// Equal loads share the work.
	a.SetLoad(0.2)
	for range 20 {
		var col routertest.Collector
		_ = r.Route(context.Background(), routertest.ChatReq("echo"), col.Out)
	}
	if a.Calls.Load() < 5 {
		t.Fatalf("equal loads not shared: a=%d b=%d", a.Calls.Load(), b.Calls.Load())
	}
}

func TestDeadlineAndCancel(t *testing.T) {
	cancelled := make(chan time.Duration, 4)
	w := routertest.NewWorker(t, "slow", routertest.Hang(cancelled))
	r := routertest.NewRouter(t, routertest.Registry{"slow": {w}}, router.Config{RequestTimeout: 100 * time.Millisecond})

	var c routertest.Collector
	start := time.Now()
	err := r.Route(context.Background(), routertest.ChatReq("slow"), c.Out)
	if mux.CodeOf(err) != dbe.CodeDeadlineExceeded || routertest.ErrCode(t, &c).Code != dbe.CodeDeadlineExceeded {
		t.Fatalf("err %v", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("deadline took %v", d)
	}
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("worker not cancelled at the deadline")
	}

	// TIMEOUT_MS shortens the deadline.
	req := routertest.ChatReq("slow")
	req.SetTimeout(20 * time.Millisecond)
	r2 := routertest.NewRouter(t, routertest.Registry{"slow": {w}}, router.Config{RequestTimeout: time.Hour})
	var c2 routertest.Collector
	if err := r2.Route(context.Background(), req, c2.Out); mux.CodeOf(err) != dbe.CodeDeadlineExceeded {
		t.Fatalf("TIMEOUT_MS ignored: %v", err)
	}
	<-cancelled

	leave(t, r2, "slow", cancelled)
}

// leave routes a request for profile and goes away while it is served: the
// worker must be cancelled (it reports on cancelled), the request end as
// CANCELLED and the caller get nothing.
func leave(t *testing.T, r *router.Router, profile string, cancelled <-chan time.Duration) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var c routertest.Collector
	done := make(chan error, 1)
	go func() { done <- r.Route(ctx, routertest.ChatReq(profile), c.Out) }()
	time.Sleep(30 * time.Millisecond)
	cancel()
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("worker not cancelled when the caller left")
	}
	if err := <-done; mux.CodeOf(err) != dbe.CodeCancelled {
		t.Fatalf("Route returned %v, want CANCELLED", err)
	}
	if f := c.Last(); f != nil {
		t.Fatalf("sent %v to a caller that left", f)
	}
}

// TestWorkerDies: a worker whose session dies mid-request yields
// WORKER_FAILED promptly.
func TestWorkerDies(t *testing.T) {
	var w *routertest.Worker
	w = routertest.NewWorker(t, "dying", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
		_ = rw.Send(&dbe.Frame{Type: dbe.MsgChatChunk, Payload: []byte("part")})
		time.Sleep(50 * time.Millisecond)
		w.Client.Close(errors.New("connection reset"))
	}))
	r := routertest.NewRouter(t, routertest.Registry{"d": {w}}, router.Config{})
	var c routertest.Collector
	start := time.Now()
	err := r.Route(context.Background(), routertest.ChatReq("d"), c.Out)
	if mux.CodeOf(err) != dbe.CodeWorkerFailed || routertest.ErrCode(t, &c).Code != dbe.CodeWorkerFailed || time.Since(start) > time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

type denyAll struct{}

func (denyAll) Decide(context.Context, *dbe.Frame) error {
	return &mux.Error{Code: dbe.CodePolicyDenied, Rule: "test.deny", Message: "denied by test"}
}

func TestPolicyHook(t *testing.T) {
	w := routertest.NewWorker(t, "echo", routertest.EchoHandler)
	r := routertest.NewRouter(t, routertest.Registry{"echo": {w}}, router.Config{Policy: denyAll{}})
	var c routertest.Collector
	_ = r.Route(context.Background(), routertest.ChatReq("echo"), c.Out)
	if e := routertest.ErrCode(t, &c); e.Code != dbe.CodePolicyDenied || e.Rule != "test.deny" || w.Calls.Load() != 0 {
		t.Fatalf("%v", e)
	}
}

// TestObserverAndLimiter: the router reports device, code and usage to its
// observer and reconciles the limiter with the real usage.
func TestObserverAndLimiter(t *testing.T) {
	w := routertest.NewWorker(t, "u", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
		b, _ := proto.Marshal(&l7v1.L7ChatResponse{Usage: &l7v1.Usage{PromptTokens: 7, CompletionTokens: 5, TotalTokens: 12}})
		_ = rw.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: b})
	}))
	obs, lim := &routertest.Observer{}, &routertest.Limiter{}
	r := routertest.NewRouter(t, routertest.Registry{"u": {w}}, router.Config{Observer: obs, Limiter: lim})
	var c routertest.Collector
	if err := r.Route(context.Background(), routertest.ChatReq("u"), c.Out); err != nil {
		t.Fatal(err)
	}
	lim.Refuse.Store(true)
	var c2 routertest.Collector
	err := r.Route(context.Background(), routertest.ChatReq("u"), c2.Out)
	if e := routertest.ErrCode(t, &c2); e.Code != dbe.CodeRateLimited || e.RetryAfterMS != 1500 || mux.CodeOf(err) != dbe.CodeRateLimited {
		t.Fatalf("refusal: %v", e)
	}
	want := []routertest.Finished{{Profile: "u", Device: 47, Prompt: 7, Completion: 5}, {Profile: "u", Code: dbe.CodeRateLimited}}
	if started, done := obs.Seen(); started != 2 || !slices.Equal(done, want) {
		t.Fatalf("observer %d %+v", started, done)
	}
	if admitted, released := lim.Seen(); admitted != 1 || !slices.Equal(released, []int64{12}) {
		t.Fatalf("limiter %d %v", admitted, released)
	}
}

// TestAccountedBeforeTheEnd: the caller gets a request's final frame (or
// its ERROR frame) only after the limiter got its slot back and the observer
// counted it, so a client that sends its next request the moment it sees
// the end is never refused for the one it just finished (a tenant with
// max_concurrent = 1 streaming one chat after another).
func TestAccountedBeforeTheEnd(t *testing.T) {
	var fail atomic.Bool
	w := routertest.NewWorker(t, "u", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
		if fail.Load() {
			_ = rw.Fail(mux.Errorf(dbe.CodeInternal, "boom"))
			return
		}
		b, _ := proto.Marshal(&l7v1.L7ChatResponse{Usage: &l7v1.Usage{PromptTokens: 3, CompletionTokens: 4, TotalTokens: 7}})
		_ = rw.Send(&dbe.Frame{Type: dbe.MsgChatResp, Payload: b})
		_ = rw.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: b})
	}))
	obs, lim := &routertest.Observer{}, &routertest.Limiter{}
	r := routertest.NewRouter(t, routertest.Registry{"u": {w}}, router.Config{Observer: obs, Limiter: lim})
	for i, f := range []bool{false, true} {
		fail.Store(f)
		var frames, atEnd int
		var released []int64
		var done []routertest.Finished
		// Forward hands frames over as they come (Route queues them for
		// its own goroutine, which could hide the order).
		ended := make(chan struct{})
		r.Forward(context.Background(), routertest.ChatReq("u"), func(fr *dbe.Frame, _ proto.Message) {
			frames++
			if fr.Flags&dbe.FlagEndStream != 0 || fr.Type == dbe.MsgError {
				atEnd = frames
				_, released = lim.Seen()
				_, done = obs.Seen()
				close(ended)
			}
		})
		select {
		case <-ended:
		case <-time.After(10 * time.Second):
			t.Fatalf("request %d: no final frame", i)
		}
		if atEnd == 0 || len(released) != i+1 || len(done) != i+1 {
			t.Fatalf("request %d (fail %v): at its final frame (#%d of %d) the limiter had %v released and the observer %v finished",
				i, f, atEnd, frames, released, done)
		}
	}
}

// TestWorkerCannotClaimRouterCodes: a worker that answers POLICY_DENIED or
// RATE_LIMITED is reported as failed; only the router gives those.
func TestWorkerCannotClaimRouterCodes(t *testing.T) {
	for _, code := range []dbe.Code{dbe.CodePolicyDenied, dbe.CodeRateLimited, dbe.CodeClaimTokenInvalid, dbe.CodeUnauthenticated} {
		w := routertest.NewWorker(t, "liar", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
			_ = rw.Fail(&mux.Error{Code: code, Message: "says the worker", RetryAfterMS: 99999})
		}))
		r := routertest.NewRouter(t, routertest.Registry{"liar": {w}}, router.Config{})
		var c routertest.Collector
		_ = r.Route(context.Background(), routertest.ChatReq("liar"), c.Out)
		if e := routertest.ErrCode(t, &c); e.Code != dbe.CodeWorkerFailed || e.RetryAfterMS != 0 {
			t.Fatalf("worker's %s came out as %v", code, e)
		}
	}
	w := routertest.NewWorker(t, "busy", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
		_ = rw.Fail(&mux.Error{Code: dbe.CodeOverloaded, RetryAfterMS: 500})
	}))
	r := routertest.NewRouter(t, routertest.Registry{"busy": {w}}, router.Config{})
	var c routertest.Collector
	_ = r.Route(context.Background(), routertest.ChatReq("busy"), c.Out)
	if e := routertest.ErrCode(t, &c); e.Code != dbe.CodeOverloaded || e.RetryAfterMS != 500 {
		t.Fatalf("OVERLOADED not passed on: %v", e)
	}
}

// blockingWorker hides testWorker's Go: the router serves it through its
// blocking Call on a goroutine.
type blockingWorker struct{ router.Worker }

// noFinal is a worker whose Call returns without a final frame.
type noFinal struct{ router.Worker }

func (noFinal) Call(_ context.Context, _ *dbe.Frame, on func(*dbe.Frame) error) error {
	return on(&dbe.Frame{Type: dbe.MsgChatChunk, Payload: []byte("part")})
}

// TestBlockingWorker: a Worker that is not an AsyncWorker goes through the
// same lifecycle: its frames, a call that ends without a final frame as
// WORKER_FAILED, cancellation that reaches the worker, the observer.
func TestBlockingWorker(t *testing.T) {
	cancelled := make(chan time.Duration, 1)
	slow := routertest.NewWorker(t, "slow", routertest.Hang(cancelled))
	w := routertest.NewWorker(t, "echo#0", routertest.EchoHandler)
	obs := &routertest.Observer{}
	r := routertest.NewRouter(t, routertest.Registry{"echo": {blockingWorker{w}}, "cut": {noFinal{w}}, "slow": {blockingWorker{slow}}},
		router.Config{Observer: obs})

	var c routertest.Collector
	if err := r.Route(context.Background(), routertest.ChatReq("echo"), c.Out); err != nil {
		t.Fatal(err)
	}
	if len(c.Frames) != 2 || string(c.Frames[0].Payload) != "hello" || c.Last().Flags&dbe.FlagEndStream == 0 {
		t.Fatalf("frames %v", c.Frames)
	}

	var c2 routertest.Collector
	err := r.Route(context.Background(), routertest.ChatReq("cut"), c2.Out)
	if e := routertest.ErrCode(t, &c2); e.Code != dbe.CodeWorkerFailed || mux.CodeOf(err) != dbe.CodeWorkerFailed ||
		!strings.Contains(e.Message, router.ErrNoResponse.Error()) || len(c2.Frames) != 2 {
		t.Fatalf("a call without a final frame: %v, frames %v", e, c2.Frames)
	}

	leave(t, r, "slow", cancelled)
	want := []routertest.Finished{{Profile: "echo", Device: 47}, {Profile: "cut", Device: 47, Code: dbe.CodeWorkerFailed},
		{Profile: "slow", Device: 47, Code: dbe.CodeCancelled}}
	if started, done := obs.Seen(); started != 3 || !slices.Equal(done, want) {
		t.Fatalf("observer %d %+v", started, done)
	}
}

// TestCallerDeadline: the caller's deadline is the request's budget: the
// worker gets it as TIMEOUT_MS, is cancelled when it passes, and the caller
// gets DEADLINE_EXCEEDED as an ERROR frame.
func TestCallerDeadline(t *testing.T) {
	cancelled := make(chan time.Duration, 1)
	w := routertest.NewWorker(t, "slow", routertest.Hang(cancelled))
	r := routertest.NewRouter(t, routertest.Registry{"slow": {w}}, router.Config{RequestTimeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Millisecond)
	defer cancel()
	var c routertest.Collector
	err := r.Route(ctx, routertest.ChatReq("slow"), c.Out)
	if mux.CodeOf(err) != dbe.CodeDeadlineExceeded || routertest.ErrCode(t, &c).Code != dbe.CodeDeadlineExceeded {
		t.Fatalf("err %v", err)
	}
	select {
	case d := <-cancelled:
		if d <= 0 || d > 80*time.Millisecond {
			t.Fatalf("TIMEOUT_MS %v, want the caller's 80ms at most", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("worker not cancelled at the caller's deadline")
	}
	// A deadline already gone reaches no worker.
	var c2 routertest.Collector
	err = r.Route(ctx, routertest.ChatReq("slow"), c2.Out)
	if mux.CodeOf(err) != dbe.CodeDeadlineExceeded || routertest.ErrCode(t, &c2).Code != dbe.CodeDeadlineExceeded || w.Calls.Load() != 1 {
		t.Fatalf("err %v, %d calls", err, w.Calls.Load())
	}
}
