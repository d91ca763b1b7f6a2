// Package routertest is what the tests of the router (host/router) and of
// its Unix socket (host/routersock) share: workers reached over real Unix
// sockets and DBE sessions, request frames, a frame collector, an observer
// and a limiter that record what the router tells them, and the real
// policy engine for the L7_POLICY_CHECK dry runs.
package routertest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/config/configtest"
	"github.com/dsmil/l7/host/policy"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/sdktest"
	"google.golang.org/protobuf/proto"
)

// Worker is a worker reached over a real Unix socket and DBE session; its
// far end runs a mux.Handler. It is an AsyncWorker, as pluginmgr instances
// are. A new Worker is healthy, idle, device 47.
type Worker struct {
	Name   string
	Device uint8
	Client *mux.Client
	Calls  atomic.Int32 // requests forwarded to it, by Call or Go
	down   atomic.Bool
	load   atomic.Value // float64
}

var _ router.AsyncWorker = (*Worker)(nil)

func (w *Worker) ID() string      { return w.Name }
func (w *Worker) DeviceID() uint8 { return w.Device }
func (w *Worker) Healthy() bool   { return !w.down.Load() }

// Load is the load SetLoad set, 0 at first.
func (w *Worker) Load() float64 {
	if l, ok := w.load.Load().(float64); ok {
		return l
	}
	return 0
}

// SetHealthy sets what Healthy reports.
func (w *Worker) SetHealthy(ok bool) { w.down.Store(!ok) }

// SetLoad sets what Load reports.
func (w *Worker) SetLoad(l float64) { w.load.Store(l) }

func (w *Worker) Call(ctx context.Context, req *dbe.Frame, on func(*dbe.Frame) error) error {
	w.Calls.Add(1)
	if d, ok := req.Timeout(); ok {
		return w.Client.CallWithin(ctx, d, req, on)
	}
	return w.Client.Call(ctx, req, on)
}

func (w *Worker) Go(req *dbe.Frame, timeout time.Duration, fn func(*dbe.Frame, error)) func() {
	w.Calls.Add(1)
	return w.Client.Go(req, timeout, fn)
}

// NewWorker starts a worker whose far end runs h, over a plain Unix socket.
func NewWorker(t testing.TB, id string, h mux.Handler) *Worker {
	t.Helper()
	cl, _, _, _ := sdktest.PlainPair(t, h, "router", id)
	return &Worker{Name: id, Device: 47, Client: cl}
}

// Registry is a router.Registry: profile → replicas.
type Registry map[string][]router.Worker

func (r Registry) Workers(p string) ([]router.Worker, bool) { ws, ok := r[p]; return ws, ok }

// NewRouter returns a router on reg configured by cfg.
func NewRouter(t testing.TB, reg router.Registry, cfg router.Config) *router.Router {
	t.Helper()
	cfg.Registry = reg
	r, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// EchoHandler answers with the request's payload and "!" in two chunks,
// checking that the router set DEVICE_ID_DST and TIMEOUT_MS.
var EchoHandler = mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
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

// Hang is a handler that answers nothing: it waits for its request to be
// cancelled, then sends the request's TIMEOUT_MS (0 if it had none) on
// cancelled, when cancelled is not nil.
func Hang(cancelled chan<- time.Duration) mux.Handler {
	return mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
		<-ctx.Done()
		if cancelled != nil {
			d, _ := req.Timeout()
			cancelled <- d
		}
	})
}

// ReplyHandler answers with one L7_CHAT_RESP carrying the request's
// payload: the benchmarks' worker.
var ReplyHandler = mux.HandlerFunc(func(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
	_ = w.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: req.Payload})
})

// ReqID is the REQUEST_ID of ChatReq's and PolicyCheck's frames.
var ReqID = [16]byte{0xAA, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// ChatReq is an L7_CHAT_REQ from tenant T for profile.
func ChatReq(profile string) *dbe.Frame {
	f := &dbe.Frame{Type: dbe.MsgChatReq, Payload: []byte("hello")}
	f.SetTenantID("T")
	f.SetCompartmentMask(dbe.CompartmentSOC)
	f.SetClassification(dbe.Unclas)
	f.SetROELevel(dbe.AnalysisOnly)
	f.SetProfile(profile)
	f.SetRequestID(ReqID)
	return f
}

// Collector keeps the frames Route sends it.
type Collector struct {
	mu     sync.Mutex
	Frames []*dbe.Frame
}

// Out is Route's out.
func (c *Collector) Out(f *dbe.Frame) error {
	c.mu.Lock()
	c.Frames = append(c.Frames, f)
	c.mu.Unlock()
	return nil
}

// Last is the last frame collected, or nil.
func (c *Collector) Last() *dbe.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.Frames) == 0 {
		return nil
	}
	return c.Frames[len(c.Frames)-1]
}

// ErrCode checks that the last frame collected is an ERROR with END_STREAM
// and the request's REQUEST_ID, and returns it.
func ErrCode(t testing.TB, c *Collector) *mux.Error {
	t.Helper()
	f := c.Last()
	if f == nil || f.Type != dbe.MsgError || f.Flags&dbe.FlagEndStream == 0 {
		t.Fatalf("last frame %v, want ERROR with END_STREAM", f)
	}
	if id, _ := f.RequestID(); id != ReqID {
		t.Fatal("ERROR without REQUEST_ID")
	}
	return mux.ParseError(f)
}

// Finished is one request as a router.Observer is told of it.
type Finished struct {
	Profile            string
	Device             uint8
	Code               dbe.Code
	Prompt, Completion int64
}

// Observer records what the router tells its router.Observer.
type Observer struct {
	mu      sync.Mutex
	started int
	done    []Finished
}

func (o *Observer) Started() { o.mu.Lock(); o.started++; o.mu.Unlock() }

func (o *Observer) Finished(p string, d uint8, c dbe.Code, _ time.Duration, pt, ct int64) {
	o.mu.Lock()
	o.done = append(o.done, Finished{p, d, c, pt, ct})
	o.mu.Unlock()
}

// Seen returns how many requests started and the ones that finished.
func (o *Observer) Seen() (started int, done []Finished) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.started, append([]Finished(nil), o.done...)
}

// Limiter is a router.Limiter that admits every request (or refuses every
// one with RATE_LIMITED while Refuse is set) and records the releases.
type Limiter struct {
	Refuse   atomic.Bool
	mu       sync.Mutex
	admitted int
	released []int64
}

func (l *Limiter) Admit(ctx context.Context, f *dbe.Frame) (func(int64), error) {
	if l.Refuse.Load() {
		return nil, &mux.Error{Code: dbe.CodeRateLimited, RetryAfterMS: 1500, Message: "requests per minute"}
	}
	l.mu.Lock()
	l.admitted++
	l.mu.Unlock()
	return func(n int64) { l.mu.Lock(); l.released = append(l.released, n); l.mu.Unlock() }, nil
}

// Seen returns how many requests were admitted and the tokens each release
// reported.
func (l *Limiter) Seen() (admitted int, released []int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.admitted, append([]int64(nil), l.released...)
}

// PolicyHCL is the configuration LoadEngine loads the real policy engine
// from: tenants T (SOC, CRYPTO; SECRET; SOC_ASSIST) and OTHER, and a custom
// rule crypto-requires-secret.
var PolicyHCL = configtest.EchoPlane("bin/dsmil-echo",
	configtest.Tenant{KeySHA256: "0000000000000000000000000000000000000000000000000000000000000001",
		Compartments: []string{"SOC", "CRYPTO"}, Classification: "SECRET", ROE: "SOC_ASSIST"},
	configtest.Tenant{Name: "OTHER", KeySHA256: "0000000000000000000000000000000000000000000000000000000000000002",
		Classification: "UNCLAS", ROE: "ANALYSIS_ONLY"},
) + `
policy "crypto-requires-secret" {
  effect   = "deny"
  priority = 100
  when     = contains(request.compartments, "CRYPTO") && request.classification == "UNCLAS"
  reason   = "DENIED: CRYPTO compartment requests must be classified SECRET or above"
}
`

// LoadEngine is the real policy engine on PolicyHCL.
func LoadEngine(t testing.TB) *policy.Engine {
	t.Helper()
	cfg, diags := config.Parse("check.hcl", []byte(PolicyHCL), config.WithGetenv(func(string) string { return "" }))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	eng, diags := policy.New(cfg, nil)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return eng
}

// PolicyCheck is an L7_POLICY_CHECK from tenant T that its grant allows.
func PolicyCheck(op string) *dbe.Frame {
	f := &dbe.Frame{Type: dbe.MsgPolicyCheck}
	f.SetTenantID("T")
	f.SetCompartmentMask(dbe.CompartmentSOC)
	f.SetClassification(dbe.Secret)
	f.SetROELevel(dbe.SOCAssist)
	f.SetProfile("echo")
	f.SetRequestID(ReqID)
	f.Payload, _ = proto.Marshal(&l7v1.L7PolicyCheck{Operation: op, Model: "dsmil-echo"})
	return f
}

// PolicyResult checks f is an L7_POLICY_RESULT with END_STREAM and returns
// its payload.
func PolicyResult(t testing.TB, f *dbe.Frame) *l7v1.L7PolicyResult {
	t.Helper()
	if f == nil || f.Type != dbe.MsgPolicyResult || f.Flags&dbe.FlagEndStream == 0 {
		if f != nil && f.Type == dbe.MsgError {
			t.Fatalf("got ERROR %v, want L7_POLICY_RESULT", mux.ParseError(f))
		}
		t.Fatalf("got %v, want L7_POLICY_RESULT with END_STREAM", f)
	}
	var res l7v1.L7PolicyResult
	if err := proto.Unmarshal(f.Payload, &res); err != nil {
		t.Fatal(err)
	}
	return &res
}
