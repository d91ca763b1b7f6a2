package router

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
)

// DeviceID is the router's DSMIL device.
const DeviceID = 43

// Worker is one running plugin replica as the router sees it.
type Worker interface {
	// ID names the replica, e.g. "echo#0".
	ID() string
	// DeviceID is the replica's device.
	DeviceID() uint8
	// Healthy reports the last health check's verdict.
	Healthy() bool
	// Load is the replica's load, 0–1.
	Load() float64
	// Call forwards req and calls onFrame for each response frame, the last
	// with END_STREAM; an ERROR frame comes back as a *mux.Error. The router
	// always sets TIMEOUT_MS on req: Call must give up when it passes and
	// return an error wrapping context.DeadlineExceeded (mux.Client's
	// CallWithin does), so that no request outlives its deadline even when
	// the worker hangs.
	Call(ctx context.Context, req *dbe.Frame, onFrame func(*dbe.Frame) error) error
}

// RemoteWorker is a Worker on another node (host/peers): a dsmil-host
// reached over the cross-node link whose own router re-verifies the claim
// token and applies its own policy and quotas (docs/security.md §5.9). So
// the router forwards it the claim token (in full: a reference would mean
// nothing there), and passes on its claim, policy and quota refusals as
// they are instead of reporting them as the worker's failure.
type RemoteWorker interface {
	Worker
	// Node names the worker node (its peer block).
	Node() string
}

// ClaimResolver is an optional ClaimVerifier capability: the full token a
// claim reference stands for (token itself when it is not a reference, nil
// when the reference is unknown), for forwarding to a RemoteWorker.
type ClaimResolver interface {
	FullToken(token []byte) []byte
}

// Registry lists the workers serving a profile.
type Registry interface {
	// Workers returns every replica configured for profile, healthy or not;
	// known is false when no plugin is configured for it at all.
	Workers(profile string) (ws []Worker, known bool)
}

// ClaimVerifier checks a frame's L7_CLAIM_TOKEN against its TENANT_ID.
type ClaimVerifier interface {
	VerifyClaim(ctx context.Context, f *dbe.Frame) error
}

// Policy decides whether a frame may be served. A Policy that also
// implements PolicyChecker answers the dry-run L7_POLICY_CHECK.
type Policy interface {
	// Decide returns nil to allow, or an error (a *mux.Error with code
	// POLICY_DENIED and the rule's name) to deny. It is given L7_CHAT_REQ
	// and L7_AGENT_TASK frames only.
	Decide(ctx context.Context, f *dbe.Frame) error
}

// Limiter enforces per-tenant quotas (requests/min, tokens/min, concurrent
// requests). Admit is called after policy and before a worker is picked; a
// refusal is a *mux.Error with code RATE_LIMITED and RetryAfterMS. When
// admitted, release must be called exactly once when the request ends, with
// the tokens it really used (prompt + completion, from the final frame's
// usage; 0 when unknown) so the estimate can be reconciled.
type Limiter interface {
	Admit(ctx context.Context, f *dbe.Frame) (release func(usedTokens int64), err error)
}

// Observer sees every request the router finishes, for metrics.
type Observer interface {
	// Started is called when a request arrives.
	Started()
	// Finished is called once per request: the profile it named, the
	// device it went to (0 when it went nowhere), its final code
	// (UNSPECIFIED for success), how long it took, and the usage its final
	// frame reported.
	Finished(profile string, device uint8, code dbe.Code, d time.Duration, promptTokens, completionTokens int64)
}

// Config configures a Router.
type Config struct {
	// Registry finds workers. Required.
	Registry Registry
	// RequestTimeout bounds every request; a frame's TIMEOUT_MS may shorten
	// it. Default 60 s.
	RequestTimeout time.Duration
	// AgentTimeout bounds an agent task (L7_AGENT_TASK) instead of
	// RequestTimeout; its TIMEOUT_MS may shorten it. Default 10 min.
	AgentTimeout time.Duration
	// LoadThreshold: a worker above this load is passed over for a less
	// loaded one. Default 0.9.
	LoadThreshold float64
	// Claims verifies claim tokens. Nil passes every frame through
	// unchecked; dsmil-host sets a *claims.Verifier.
	Claims ClaimVerifier
	// Policy decides each request. Nil allows everything except what the
	// built-in hard rules deny (KINETIC, EXEC): the policy engine fills this.
	// L7_POLICY_CHECK dry runs need it to be a PolicyChecker too (or nil,
	// which answers with the hard rules alone).
	Policy Policy
	// Limiter enforces tenant quotas. Nil means no quotas.
	Limiter Limiter
	// Observer sees every finished request. Nil means none.
	Observer Observer
	// Agents see every agent task's steps and end (metrics, the audit
	// lines of the decision log). None by default.
	Agents []AgentObserver
	// Logger receives one line per failed request. Default: no logging.
	Logger hclog.Logger
}

// Router routes request frames to workers.
type Router struct {
	cfg      Config
	inFlight atomic.Int64
	served   atomic.Uint64
	failed   atomic.Uint64
	rr       atomic.Uint32 // rotates the scan start so equal loads share work
}

// New returns a Router.
func New(cfg Config) (*Router, error) {
	if cfg.Registry == nil {
		return nil, errors.New("router: no registry")
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 60 * time.Second
	}
	if cfg.AgentTimeout <= 0 {
		cfg.AgentTimeout = 10 * time.Minute
	}
	if cfg.LoadThreshold <= 0 {
		cfg.LoadThreshold = 0.9
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	return &Router{cfg: cfg}, nil
}

// Stats are the router's counters.
type Stats struct {
	InFlight int64
	Served   uint64
	Failed   uint64
}

// Stats returns the router's counters.
func (r *Router) Stats() Stats {
	return Stats{InFlight: r.inFlight.Load(), Served: r.served.Load(), Failed: r.failed.Load()}
}

// Refused counts req, which a transport turned away before routing it (the
// router socket's per-connection cap), as a request that ended at once with
// code: the Observer sees it like any refused request; the Stats, which
// count what the router routed, do not.
func (r *Router) Refused(req *dbe.Frame, code dbe.Code) {
	if obs := r.cfg.Observer; obs != nil {
		profile, _ := req.Profile()
		obs.Started()
		obs.Finished(profile, 0, code, 0, 0, 0)
	}
}

// ErrNoResponse is returned when a worker ended a call without a final frame.
var ErrNoResponse = errors.New("router: worker sent no final frame")

// Route is Forward for a caller that can wait: it serves req (taking
// ownership of it, as Forward does) and returns once the request has ended,
// with the error it ended with, or nil. out receives every response frame
// on Route's goroutine (so it may block), the caller setting its own
// correlation id; the last is final (END_STREAM, or an ERROR frame). When
// ctx is cancelled (the caller went away) the worker is told to cancel and
// nothing more is sent to out (but an agent task's final frame, see
// Forward); when ctx's deadline passes the request ends
// with DEADLINE_EXCEEDED (Forward made it the request's budget). An out that
// returns an error is taken for a caller that went away.
func (r *Router) Route(ctx context.Context, req *dbe.Frame, out func(*dbe.Frame) error) error {
	in := &inbox{ready: make(chan struct{}, 1)}
	agent := req.Type == dbe.MsgAgentTask
	cancel := r.forward(ctx, req, in.put, in.end)
	gone := false
	cancelled := ctx.Done()
	for {
		select {
		case <-cancelled:
			cancelled = nil
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				// An agent task's final frame (status CANCELLED, the
				// partial transcript) still goes to out (Forward).
				gone = !agent
				cancel()
			}
		case <-in.ready:
		}
		frames, ended, err := in.take()
		for _, f := range frames {
			if gone {
				break
			}
			if out(f) != nil {
				gone = true
				cancel()
			}
		}
		if ended {
			if gone && err == nil {
				err = mux.Errorf(dbe.CodeCancelled, "the caller went away")
			}
			return err
		}
	}
}

// inbox hands a request's frames from the worker session's read loop to
// Route's goroutine.
type inbox struct {
	ready  chan struct{} // a frame or the end arrived
	mu     sync.Mutex
	frames []*dbe.Frame
	ended  bool
	err    error
}

func (in *inbox) put(f *dbe.Frame, _ proto.Message) {
	in.mu.Lock()
	in.frames = append(in.frames, f)
	in.mu.Unlock()
	in.wake()
}

func (in *inbox) end(err error) {
	in.mu.Lock()
	in.ended, in.err = true, err
	in.mu.Unlock()
	in.wake()
}

func (in *inbox) wake() {
	select {
	case in.ready <- struct{}{}:
	default:
	}
}

func (in *inbox) take() (frames []*dbe.Frame, ended bool, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	frames, in.frames = in.frames, nil
	return frames, in.ended, in.err
}

// admit runs every check and hook before a worker is picked. release, when
// not nil, must be called with the tokens used once the request ends.
func (r *Router) admit(ctx context.Context, req *dbe.Frame) (release func(int64), err error) {
	switch req.Type {
	case dbe.MsgChatReq, dbe.MsgAgentTask, dbe.MsgEmbedReq:
	default:
		if req.Type.IsResponse() { // known, but only valid in the other direction (docs/dbe.md §8)
			return nil, mux.Errorf(dbe.CodeInvalidRequest, "%s is a response, not a request", req.Type)
		}
		return nil, mux.Errorf(dbe.CodeUnknownMsgType, "the router does not route %s", req.Type)
	}
	if err := dbe.CheckRequired(req); err != nil {
		return nil, &mux.Error{Code: dbe.CodeInvalidRequest, Message: err.Error()}
	}
	if err := hardRules(req); err != nil {
		return nil, err
	}
	if r.cfg.Claims != nil {
		if err := r.cfg.Claims.VerifyClaim(ctx, req); err != nil {
			return nil, err
		}
	}
	if r.cfg.Policy != nil {
		if err := r.cfg.Policy.Decide(ctx, req); err != nil {
			return nil, err
		}
	}
	if r.cfg.Limiter != nil {
		return r.cfg.Limiter.Admit(ctx, req)
	}
	return nil, nil
}

// timeout is the request's time budget: the router's, or less if the
// frame's TIMEOUT_MS or the caller's deadline says so.
func (r *Router) timeout(ctx context.Context, req *dbe.Frame) time.Duration {
	timeout := r.cfg.RequestTimeout
	if req.Type == dbe.MsgAgentTask {
		// A task runs for its own budget (its task type's wall_time,
		// its timeout_seconds), not a chat's.
		timeout = r.cfg.AgentTimeout
	}
	if d, ok := req.Timeout(); ok && d < timeout {
		timeout = d
	}
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(dl))
	}
	return timeout
}

// workerError maps what a worker call returned to the error the caller
// gets: nil, the worker's own DBE error, or DEADLINE_EXCEEDED, CANCELLED,
// WORKER_FAILED.
func workerError(w Worker, err error, timeout time.Duration) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, context.DeadlineExceeded):
		return mux.Errorf(dbe.CodeDeadlineExceeded, "no response from %s within %v", w.ID(), timeout)
	case errors.Is(err, context.Canceled):
		return mux.Errorf(dbe.CodeCancelled, "cancelled")
	}
	var me *mux.Error
	if errors.As(err, &me) {
		if rw, ok := w.(RemoteWorker); ok {
			switch me.Code {
			case dbe.CodeClaimTokenInvalid, dbe.CodePolicyDenied, dbe.CodeRateLimited:
				// The worker node's own checks (defence in depth): its
				// answer, named as its.
				out := *me
				out.Message = "worker node " + rw.Node() + ": " + me.Message
				return &out
			}
		}
		switch me.Code {
		case dbe.CodeInvalidRequest, dbe.CodeNotFound, dbe.CodeOverloaded, dbe.CodeDeadlineExceeded,
			dbe.CodeCancelled, dbe.CodeWorkerFailed, dbe.CodeFrameTooLarge:
			return me
		}
		// Authentication, policy and quota answers are the router's to
		// give: a worker that sends one (buggy or compromised) gets its
		// error reported as its own failure, not passed on as a 401/403/429.
		return mux.Errorf(dbe.CodeWorkerFailed, "%s answered with %s: %s", w.ID(), me.Code, me.Message)
	}
	return mux.Errorf(dbe.CodeWorkerFailed, "%s: %v", w.ID(), err)
}

// hardRules are the denials no configuration can lift (spec §4.2).
func hardRules(f *dbe.Frame) error {
	if rule, reason := hardRule(f); rule != "" {
		return &mux.Error{Code: dbe.CodePolicyDenied, Rule: rule, Message: reason}
	}
	return nil
}

// Names of the hard rules, as the policy engine names them.
const (
	ruleKinetic = "builtin.kinetic"
	ruleExec    = "builtin.exec"
)

// hardRule returns the hard rule that denies f and its reason, or "".
func hardRule(f *dbe.Frame) (rule, reason string) {
	if c, ok := f.CompartmentMask(); ok && c&dbe.CompartmentKINETIC != 0 {
		return ruleKinetic, "DENIED: KINETIC compartment not allowed in Layer 7"
	}
	if c, ok := f.Classification(); ok && c == dbe.Exec {
		return ruleExec, "DENIED: EXEC classification requires Layer 9 authorization"
	}
	return "", ""
}

// pick chooses the least-loaded healthy worker at or under the load
// threshold; failing that, the least-loaded healthy one under full load.
func (r *Router) pick(profile string) (Worker, error) {
	ws, known := r.cfg.Registry.Workers(profile)
	if !known {
		return nil, &mux.Error{Code: dbe.CodeNotFound, Param: "model", Message: fmt.Sprintf("no plugin serves profile %q", profile)}
	}
	var best Worker
	bestLoad := 2.0
	start := int(r.rr.Add(1))
	for i := range ws {
		w := ws[(start+i)%len(ws)]
		if !w.Healthy() {
			continue
		}
		if l := w.Load(); l < bestLoad {
			best, bestLoad = w, l
		}
	}
	if best == nil {
		return nil, &mux.Error{Code: dbe.CodeNoWorkerAvailable, RetryAfterMS: 1000,
			Message: fmt.Sprintf("no healthy worker for profile %q", profile)}
	}
	if bestLoad > r.cfg.LoadThreshold && bestLoad >= 1 {
		return nil, &mux.Error{Code: dbe.CodeNoWorkerAvailable, RetryAfterMS: 1000,
			Message: fmt.Sprintf("every worker for profile %q is at full load", profile)}
	}
	return best, nil
}

// forwardFrame readies req for the worker, in place (Forward owns req): same
// TLVs and payload (unknown non-critical TLVs preserved in place) less the
// verified claim token, DEVICE_ID_DST set to the worker, LAYER_PATH
// untouched, TIMEOUT_MS set to the time budget.
func forwardFrame(req *dbe.Frame, dst uint8, timeout time.Duration) *dbe.Frame {
	// The router is where claims are enforced; local workers trust the
	// router's authenticated session, so the ≈4.7 KB token does not travel
	// on (a RemoteWorker's does: Forward calls remoteClaim instead).
	req.Del(dbe.TLVClaimToken)
	req.Set(dbe.TLVDeviceIDDst, deviceByte[dst:dst+1])
	req.SetTimeout(timeout)
	return req
}

// remoteClaim readies req's claim token for a RemoteWorker: the full
// token, never a reference (the worker node has not seen the token), so
// that the node's router can verify it itself.
func (r *Router) remoteClaim(req *dbe.Frame) {
	tok, ok := req.Get(dbe.TLVClaimToken)
	if !ok {
		return
	}
	if cr, ok := r.cfg.Claims.(ClaimResolver); ok {
		if full := cr.FullToken(tok); full != nil && len(full) != len(tok) {
			req.SetClaimToken(full)
		}
	}
}

// deviceByte holds every device id, so a one-byte TLV value needs no
// allocation.
var deviceByte = func() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()
