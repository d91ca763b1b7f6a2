package router

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"google.golang.org/protobuf/proto"
)

// testWorker is a worker reached over a real Unix socket and DBE session;
// its far end runs handler.
type testWorker struct {
	id      string
	dev     uint8
	healthy atomic.Bool
	load    atomic.Value // float64
	client  *mux.Client
	calls   atomic.Int32
}

func (w *testWorker) ID() string      { return w.id }
func (w *testWorker) DeviceID() uint8 { return w.dev }
func (w *testWorker) Healthy() bool   { return w.healthy.Load() }
func (w *testWorker) Load() float64   { return w.load.Load().(float64) }
func (w *testWorker) Call(ctx context.Context, req *dbe.Frame, on func(*dbe.Frame) error) error {
	w.calls.Add(1)
	if d, ok := req.Timeout(); ok {
		return w.client.CallWithin(ctx, d, req, on)
	}
	return w.client.Call(ctx, req, on)
}

// Go makes testWorker an AsyncWorker, as pluginmgr instances are.
func (w *testWorker) Go(req *dbe.Frame, timeout time.Duration, fn func(*dbe.Frame, error)) func() {
	w.calls.Add(1)
	return w.client.Go(req, timeout, fn)
}

var _ AsyncWorker = (*testWorker)(nil)

func newWorker(t testing.TB, id string, h mux.Handler) *testWorker {
	t.Helper()
	path := filepath.Join(t.TempDir(), "w.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srvCh := make(chan session.Channel, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srvCh <- nil
			return
		}
		srvCh <- session.NewPlainChannel(c, 0, session.Peer{Name: "router"})
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	cch := session.NewPlainChannel(c, 0, session.Peer{Name: id})
	cs := session.New(cch, nil)
	cl := mux.NewClient(cs)
	cs.SetHandler(func(f *dbe.Frame, _ error) { cl.Dispatch(f) })
	go func() { <-cs.Done(); cl.Close(cs.Err()) }()
	ss := session.New(<-srvCh, nil)
	srv := mux.NewServer(ss, h)
	ss.SetHandler(srv.Dispatch)
	t.Cleanup(func() { cs.Close(); ss.Close(); srv.Close(time.Second) })
	w := &testWorker{id: id, dev: 47, client: cl}
	w.healthy.Store(true)
	w.load.Store(0.0)
	return w
}

type registry map[string][]Worker

func (r registry) Workers(p string) ([]Worker, bool) { ws, ok := r[p]; return ws, ok }

// echoHandler answers with the request's payload in two chunks, checking
// that the router set DEVICE_ID_DST and TIMEOUT_MS.
var echoHandler = mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
	if d, _ := req.DeviceIDDst(); d != 47 {
		_ = w.Fail(mux.Errorf(dbe.CodeInvalidRequest, "DEVICE_ID_DST %d", d))
		return
	}
	if _, ok := req.Timeout(); !ok {
		_ = w.Fail(mux.Errorf(dbe.CodeInvalidRequest, "no TIMEOUT_MS"))
		return
	}
	_ = w.Send(&dbe.Frame{Type: dbe.MsgChatChunk, Payload: req.Payload})
	_ = w.Send(&dbe.Frame{Type: dbe.MsgChatChunk, Flags: dbe.FlagEndStream, Payload: []byte("!")})
})

var testReqID = [16]byte{0xAA, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

func chatReq(profile string) *dbe.Frame {
	f := &dbe.Frame{Type: dbe.MsgChatReq, Payload: []byte("hello")}
	f.SetTenantID("T")
	f.SetCompartmentMask(dbe.CompartmentSOC)
	f.SetClassification(dbe.Unclas)
	f.SetROELevel(dbe.AnalysisOnly)
	f.SetProfile(profile)
	f.SetRequestID(testReqID)
	return f
}

type collector struct {
	mu     sync.Mutex
	frames []*dbe.Frame
}

func (c *collector) out(f *dbe.Frame) error {
	c.mu.Lock()
	c.frames = append(c.frames, f)
	c.mu.Unlock()
	return nil
}

func (c *collector) last() *dbe.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.frames) == 0 {
		return nil
	}
	return c.frames[len(c.frames)-1]
}

func newRouter(t testing.TB, reg Registry, cfg Config) *Router {
	t.Helper()
	cfg.Registry = reg
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRouteStreams(t *testing.T) {
	w := newWorker(t, "echo#0", echoHandler)
	r := newRouter(t, registry{"echo": {w}}, Config{})
	var c collector
	if err := r.Route(context.Background(), chatReq("echo"), c.out); err != nil {
		t.Fatal(err)
	}
	if len(c.frames) != 2 || string(c.frames[0].Payload) != "hello" || c.last().Flags&dbe.FlagEndStream == 0 {
		t.Fatalf("frames %v", c.frames)
	}
	for _, f := range c.frames {
		if id, _ := f.RequestID(); id != testReqID {
			t.Fatal("chunk without the request's REQUEST_ID")
		}
	}
	if st := r.Stats(); st.Served != 1 || st.InFlight != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func errCode(t *testing.T, c *collector) *mux.Error {
	t.Helper()
	f := c.last()
	if f == nil || f.Type != dbe.MsgError || f.Flags&dbe.FlagEndStream == 0 {
		t.Fatalf("last frame %v, want ERROR with END_STREAM", f)
	}
	if id, _ := f.RequestID(); id != testReqID {
		t.Fatal("ERROR without REQUEST_ID")
	}
	return mux.ParseError(f)
}

func TestRouteErrors(t *testing.T) {
	w := newWorker(t, "echo#0", echoHandler)
	sick := newWorker(t, "sick#0", echoHandler)
	sick.healthy.Store(false)
	busy := newWorker(t, "busy#0", echoHandler)
	busy.load.Store(1.0)
	reg := registry{"echo": {w}, "sick": {sick}, "busy": {busy}, "empty": nil}
	r := newRouter(t, reg, Config{})
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
			req := chatReq("echo")
			tc.mod(req)
			var c collector
			err := r.Route(context.Background(), req, c.out)
			e := errCode(t, &c)
			if e.Code != tc.code || mux.CodeOf(err) != tc.code || e.Rule != tc.rule {
				t.Fatalf("got %v (rule %q), want %v %q", e, e.Rule, tc.code, tc.rule)
			}
		})
	}
	if sick.calls.Load() != 0 || busy.calls.Load() != 0 {
		t.Fatal("routed to an unhealthy or full worker")
	}
}

func TestLeastLoaded(t *testing.T) {
	a := newWorker(t, "a", echoHandler)
	b := newWorker(t, "b", echoHandler)
	c := newWorker(t, "c", echoHandler)
	a.load.Store(0.95)
	b.load.Store(0.2)
	c.healthy.Store(false)
	r := newRouter(t, registry{"echo": {a, b, c}}, Config{})
	for range 20 {
		var col collector
		if err := r.Route(context.Background(), chatReq("echo"), col.out); err != nil {
			t.Fatal(err)
		}
	}
	if a.calls.Load() != 0 || b.calls.Load() != 20 || c.calls.Load() != 0 {
		t.Fatalf("calls a=%d b=%d c=%d", a.calls.Load(), b.calls.Load(), c.calls.Load())
	}
	// Equal loads share the work.
	a.load.Store(0.2)
	for range 20 {
		var col collector
		_ = r.Route(context.Background(), chatReq("echo"), col.out)
	}
	if a.calls.Load() < 5 {
		t.Fatalf("equal loads not shared: a=%d b=%d", a.calls.Load(), b.calls.Load())
	}
}

func TestDeadlineAndCancel(t *testing.T) {
	cancelled := make(chan struct{}, 4)
	slow := mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		<-ctx.Done()
		cancelled <- struct{}{}
	})
	w := newWorker(t, "slow", slow)
	r := newRouter(t, registry{"slow": {w}}, Config{RequestTimeout: 100 * time.Millisecond})

	var c collector
	start := time.Now()
	err := r.Route(context.Background(), chatReq("slow"), c.out)
	if mux.CodeOf(err) != dbe.CodeDeadlineExceeded || errCode(t, &c).Code != dbe.CodeDeadlineExceeded {
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
	req := chatReq("slow")
	req.SetTimeout(20 * time.Millisecond)
	r2 := newRouter(t, registry{"slow": {w}}, Config{RequestTimeout: time.Hour})
	var c2 collector
	if err := r2.Route(context.Background(), req, c2.out); mux.CodeOf(err) != dbe.CodeDeadlineExceeded {
		t.Fatalf("TIMEOUT_MS ignored: %v", err)
	}
	<-cancelled

	// The caller going away cancels the worker and sends nothing.
	ctx, cancel := context.WithCancel(context.Background())
	var c3 collector
	done := make(chan error, 1)
	go func() { done <- r2.Route(ctx, chatReq("slow"), c3.out) }()
	time.Sleep(30 * time.Millisecond)
	cancel()
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("worker not cancelled when the caller left")
	}
	<-done
	if f := c3.last(); f != nil {
		t.Fatalf("sent %v to a caller that left", f)
	}
}

// TestWorkerDies: a worker whose session dies mid-request yields
// WORKER_FAILED promptly.
func TestWorkerDies(t *testing.T) {
	var w *testWorker
	w = newWorker(t, "dying", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
		_ = rw.Send(&dbe.Frame{Type: dbe.MsgChatChunk, Payload: []byte("part")})
		time.Sleep(50 * time.Millisecond)
		w.client.Close(errors.New("connection reset"))
	}))
	r := newRouter(t, registry{"d": {w}}, Config{})
	var c collector
	start := time.Now()
	err := r.Route(context.Background(), chatReq("d"), c.out)
	if mux.CodeOf(err) != dbe.CodeWorkerFailed || errCode(t, &c).Code != dbe.CodeWorkerFailed || time.Since(start) > time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

type denyAll struct{}

func (denyAll) Decide(context.Context, *dbe.Frame) error {
	return &mux.Error{Code: dbe.CodePolicyDenied, Rule: "test.deny", Message: "denied by test"}
}

func TestPolicyHook(t *testing.T) {
	w := newWorker(t, "echo", echoHandler)
	r := newRouter(t, registry{"echo": {w}}, Config{Policy: denyAll{}})
	var c collector
	_ = r.Route(context.Background(), chatReq("echo"), c.out)
	if e := errCode(t, &c); e.Code != dbe.CodePolicyDenied || e.Rule != "test.deny" || w.calls.Load() != 0 {
		t.Fatalf("%v", e)
	}
}

type obsRecord struct {
	profile            string
	device             uint8
	code               dbe.Code
	prompt, completion int64
}

type recObserver struct {
	mu      sync.Mutex
	started int
	done    []obsRecord
}

func (o *recObserver) Started() { o.mu.Lock(); o.started++; o.mu.Unlock() }
func (o *recObserver) Finished(p string, d uint8, c dbe.Code, _ time.Duration, pt, ct int64) {
	o.mu.Lock()
	o.done = append(o.done, obsRecord{p, d, c, pt, ct})
	o.mu.Unlock()
}

type recLimiter struct {
	mu       sync.Mutex
	admitted int
	released []int64
	refuse   bool
}

func (l *recLimiter) Admit(ctx context.Context, f *dbe.Frame) (func(int64), error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.refuse {
		return nil, &mux.Error{Code: dbe.CodeRateLimited, RetryAfterMS: 1500, Message: "requests per minute"}
	}
	l.admitted++
	return func(n int64) { l.mu.Lock(); l.released = append(l.released, n); l.mu.Unlock() }, nil
}

// TestObserverAndLimiter: the router reports device, code and usage to its
// observer and reconciles the limiter with the real usage.
func TestObserverAndLimiter(t *testing.T) {
	w := newWorker(t, "u", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
		b, _ := proto.Marshal(&l7v1.L7ChatResponse{Usage: &l7v1.Usage{PromptTokens: 7, CompletionTokens: 5, TotalTokens: 12}})
		_ = rw.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: b})
	}))
	obs, lim := &recObserver{}, &recLimiter{}
	r := newRouter(t, registry{"u": {w}}, Config{Observer: obs, Limiter: lim})
	var c collector
	if err := r.Route(context.Background(), chatReq("u"), c.out); err != nil {
		t.Fatal(err)
	}
	lim.refuse = true
	var c2 collector
	err := r.Route(context.Background(), chatReq("u"), c2.out)
	if e := errCode(t, &c2); e.Code != dbe.CodeRateLimited || e.RetryAfterMS != 1500 || mux.CodeOf(err) != dbe.CodeRateLimited {
		t.Fatalf("refusal: %v", e)
	}
	want := []obsRecord{{"u", 47, dbe.CodeUnspecified, 7, 5}, {"u", 0, dbe.CodeRateLimited, 0, 0}}
	if obs.started != 2 || len(obs.done) != 2 || obs.done[0] != want[0] || obs.done[1] != want[1] {
		t.Fatalf("observer %d %+v", obs.started, obs.done)
	}
	if lim.admitted != 1 || len(lim.released) != 1 || lim.released[0] != 12 {
		t.Fatalf("limiter %d %v", lim.admitted, lim.released)
	}
}

// TestWorkerCannotClaimRouterCodes: a worker that answers POLICY_DENIED or
// RATE_LIMITED is reported as failed; only the router gives those.
func TestWorkerCannotClaimRouterCodes(t *testing.T) {
	for _, code := range []dbe.Code{dbe.CodePolicyDenied, dbe.CodeRateLimited, dbe.CodeClaimTokenInvalid, dbe.CodeUnauthenticated} {
		w := newWorker(t, "liar", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
			_ = rw.Fail(&mux.Error{Code: code, Message: "says the worker", RetryAfterMS: 99999})
		}))
		r := newRouter(t, registry{"liar": {w}}, Config{})
		var c collector
		_ = r.Route(context.Background(), chatReq("liar"), c.out)
		if e := errCode(t, &c); e.Code != dbe.CodeWorkerFailed || e.RetryAfterMS != 0 {
			t.Fatalf("worker's %s came out as %v", code, e)
		}
	}
	w := newWorker(t, "busy", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
		_ = rw.Fail(&mux.Error{Code: dbe.CodeOverloaded, RetryAfterMS: 500})
	}))
	r := newRouter(t, registry{"busy": {w}}, Config{})
	var c collector
	_ = r.Route(context.Background(), chatReq("busy"), c.out)
	if e := errCode(t, &c); e.Code != dbe.CodeOverloaded || e.RetryAfterMS != 500 {
		t.Fatalf("OVERLOADED not passed on: %v", e)
	}
}

// blockingWorker hides testWorker's Go: the router serves it through its
// blocking Call on a goroutine.
type blockingWorker struct{ Worker }

// noFinal is a worker whose Call returns without a final frame.
type noFinal struct{ Worker }

func (noFinal) Call(_ context.Context, _ *dbe.Frame, on func(*dbe.Frame) error) error {
	return on(&dbe.Frame{Type: dbe.MsgChatChunk, Payload: []byte("part")})
}

// TestBlockingWorker: a Worker that is not an AsyncWorker goes through the
// same lifecycle: its frames, a call that ends without a final frame as
// WORKER_FAILED, cancellation that reaches the worker, the observer.
func TestBlockingWorker(t *testing.T) {
	cancelled := make(chan struct{}, 1)
	slow := newWorker(t, "slow", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		<-ctx.Done()
		cancelled <- struct{}{}
	}))
	w := newWorker(t, "echo#0", echoHandler)
	obs := &recObserver{}
	r := newRouter(t, registry{"echo": {blockingWorker{w}}, "cut": {noFinal{w}}, "slow": {blockingWorker{slow}}},
		Config{Observer: obs})

	var c collector
	if err := r.Route(context.Background(), chatReq("echo"), c.out); err != nil {
		t.Fatal(err)
	}
	if len(c.frames) != 2 || string(c.frames[0].Payload) != "hello" || c.last().Flags&dbe.FlagEndStream == 0 {
		t.Fatalf("frames %v", c.frames)
	}

	var c2 collector
	err := r.Route(context.Background(), chatReq("cut"), c2.out)
	if e := errCode(t, &c2); e.Code != dbe.CodeWorkerFailed || mux.CodeOf(err) != dbe.CodeWorkerFailed ||
		!strings.Contains(e.Message, ErrNoResponse.Error()) || len(c2.frames) != 2 {
		t.Fatalf("a call without a final frame: %v, frames %v", e, c2.frames)
	}

	var c3 collector
	cancel := r.Forward(context.Background(), chatReq("slow"), func(f *dbe.Frame, _ proto.Message) { _ = c3.out(f) })
	time.Sleep(20 * time.Millisecond)
	cancel()
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("worker not cancelled")
	}
	deadline := time.Now().Add(2 * time.Second)
	for r.Stats().InFlight != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if f := c3.last(); f != nil {
		t.Fatalf("sent %v to a caller that left", f)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	want := []obsRecord{{"echo", 47, dbe.CodeUnspecified, 0, 0}, {"cut", 47, dbe.CodeWorkerFailed, 0, 0}, {"slow", 47, dbe.CodeCancelled, 0, 0}}
	if obs.started != 3 || len(obs.done) != 3 || obs.done[0] != want[0] || obs.done[1] != want[1] || obs.done[2] != want[2] {
		t.Fatalf("observer %d %+v", obs.started, obs.done)
	}
}

// TestCallerDeadline: the caller's deadline is the request's budget: the
// worker gets it as TIMEOUT_MS, is cancelled when it passes, and the caller
// gets DEADLINE_EXCEEDED as an ERROR frame.
func TestCallerDeadline(t *testing.T) {
	budget := make(chan time.Duration, 1)
	cancelled := make(chan struct{}, 1)
	w := newWorker(t, "slow", mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, rw *mux.ResponseWriter) {
		d, _ := req.Timeout()
		budget <- d
		<-ctx.Done()
		cancelled <- struct{}{}
	}))
	r := newRouter(t, registry{"slow": {w}}, Config{RequestTimeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 80*time.Millisecond)
	defer cancel()
	var c collector
	err := r.Route(ctx, chatReq("slow"), c.out)
	if mux.CodeOf(err) != dbe.CodeDeadlineExceeded || errCode(t, &c).Code != dbe.CodeDeadlineExceeded {
		t.Fatalf("err %v", err)
	}
	if d := <-budget; d <= 0 || d > 80*time.Millisecond {
		t.Fatalf("TIMEOUT_MS %v, want the caller's 80ms at most", d)
	}
	select {
	case <-cancelled:
	case <-time.After(2 * time.Second):
		t.Fatal("worker not cancelled at the caller's deadline")
	}
	// A deadline already gone reaches no worker.
	var c2 collector
	err = r.Route(ctx, chatReq("slow"), c2.out)
	if mux.CodeOf(err) != dbe.CodeDeadlineExceeded || errCode(t, &c2).Code != dbe.CodeDeadlineExceeded || w.calls.Load() != 1 {
		t.Fatalf("err %v, %d calls", err, w.calls.Load())
	}
}

// TestForwardFrameTimeout: TIMEOUT_MS is the budget rounded up to the
// millisecond (dbe.Frame.SetTimeout), never cut short.
func TestForwardFrameTimeout(t *testing.T) {
	for _, tc := range []struct{ budget, want time.Duration }{
		{1500 * time.Microsecond, 2 * time.Millisecond},
		{time.Microsecond, time.Millisecond},
		{3 * time.Second, 3 * time.Second},
	} {
		f := forwardFrame(chatReq("echo"), 47, tc.budget)
		if d, ok := f.Timeout(); !ok || d != tc.want {
			t.Errorf("budget %v: TIMEOUT_MS %v, want %v", tc.budget, d, tc.want)
		}
	}
}
