// Package agentcall serves agent plugins' requests to the host: the LLM
// steps an agent task makes, which arrive on the plugin's own data-path
// session bound to a task in flight (pluginmgr.Delegation). It checks that
// a step stays within its task — an L7_CHAT_REQ with the task's tenant,
// ROE and classification and no compartment the task lacks — stamps it
// with a claim token minted for the task's tenant and the agent's device,
// caps its deadline at the task's, and routes it through the router like
// any request, so claims, policy, quotas and the decision log apply to
// every step (docs/security.md §5.8).
//
// On a worker node, a step of a task a router host delegated with a
// task-bound claim, for a profile the node does not serve, goes back to
// that router host with the claim instead (Server.Upstream); the router
// host checks the claim (host/peers) and serves the step with this same
// Server.
package agentcall

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/ratelimit"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	"github.com/hashicorp/go-hclog"
)

// Router routes a request and streams its response frames to out (as
// *router.Router does).
type Router interface {
	Route(ctx context.Context, req *dbe.Frame, out func(*dbe.Frame) error) error
}

// Minter mints claim tokens for the router's verifier (as
// *identity.Minter does).
type Minter interface {
	Token(tenant, client string, roles []string) ([]byte, error)
}

// Server serves agent steps. It implements pluginmgr.PluginRequests.
type Server struct {
	Router Router
	// Minter mints each step's claim token; nil sends steps without one
	// (a router without a claim verifier).
	Minter Minter
	// Logger gets one line per step. Default: none.
	Logger hclog.Logger

	// On a worker node: Upstream returns the connection of the router
	// host that delegated the task with this request id (nil when none
	// did), and Serves whether this host routes profile itself. A step of
	// a task that came with a task-bound claim (Delegation.Claim) for a
	// profile this host does not serve goes back to that router host
	// with the claim, which checks it and routes the step there
	// (docs/security.md §5.8). Nil: every step is routed here.
	Upstream func(id [16]byte) Upstream
	Serves   func(profile string) bool

	// busy holds the tasks (*pluginmgr.Delegation) with a step in flight:
	// a task makes one step at a time, which is what lets its steps skip
	// the tenant's max_concurrent (ratelimit.AgentStep) and stay bounded.
	busy sync.Map
}

var _ pluginmgr.PluginRequests = (*Server)(nil)

// Upstream is a connection to a router host a step can be sent back on
// (as *mux.Client is).
type Upstream interface {
	CallWithin(ctx context.Context, d time.Duration, req *dbe.Frame, onFrame func(*dbe.Frame) error) error
}

// ClientPrefix starts the client id of the claim tokens minted for agent
// steps: "agent:" and the worker ("agent:agent#0").
const ClientPrefix = "agent:"

// ServePluginRequest checks, stamps and routes one step of the task d.
func (s *Server) ServePluginRequest(ctx context.Context, d *pluginmgr.Delegation, req *dbe.Frame, w *mux.ResponseWriter) {
	start := time.Now()
	log := s.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	profile, _ := req.Profile()
	err := s.serve(ctx, d, req, w)
	code := mux.CodeOf(err)
	log.Info("agent step", "task_id", dbe.FormatUUID(d.RequestID), "tenant", d.TenantID, "worker", d.Worker,
		"msg_type", req.Type.String(), "profile", profile, "payload_bytes", len(req.Payload),
		"outcome", outcome(code), "duration_ms", time.Since(start).Milliseconds())
}

func outcome(c dbe.Code) string {
	if c == dbe.CodeUnspecified {
		return "ok"
	}
	return c.String()
}

func (s *Server) serve(ctx context.Context, d *pluginmgr.Delegation, req *dbe.Frame, w *mux.ResponseWriter) error {
	if err := check(d, req); err != nil {
		_ = w.Fail(err)
		return err
	}
	step := new(byte) // this step's claim on its task
	if _, dup := s.busy.LoadOrStore(d, step); dup {
		err := &mux.Error{Code: dbe.CodeRateLimited, RetryAfterMS: 1000,
			Message: "an agent task makes one LLM step at a time; this task has one in flight"}
		_ = w.Fail(err)
		return err
	}
	// The task is free for its next step before the plugin can see this
	// one's final frame (and send the next step).
	free := func() { s.busy.CompareAndDelete(d, step) }
	defer free()
	req.Del(dbe.TLVClaimToken)
	if up := s.upstream(d, req); up != nil {
		// Not served here: back to the router host that delegated the
		// task, which verifies the claim and applies its own checks,
		// policy and quotas to the step.
		req.SetClaimToken(d.Claim)
		req.SetDeviceIDSrc(d.Device)
		left := time.Until(d.Deadline)
		if left <= 0 {
			err := mux.Errorf(dbe.CodeDeadlineExceeded, "the agent task's deadline has passed")
			_ = w.Fail(err)
			return err
		}
		if t, ok := req.Timeout(); !ok || t > left {
			req.SetTimeout(left)
		}
		t, _ := req.Timeout()
		err := up.CallWithin(ctx, t, req, func(f *dbe.Frame) error {
			if f.Flags&dbe.FlagEndStream != 0 || f.Type == dbe.MsgError {
				free()
			}
			return w.Send(f)
		})
		if err != nil && !w.Ended() {
			_ = w.Fail(err)
		}
		return err
	}
	if s.Minter != nil {
		tok, err := s.Minter.Token(d.TenantID, ClientPrefix+d.Worker, []string{d.ROE.String()})
		if err != nil {
			err = mux.Errorf(dbe.CodeInternal, "minting the step's claim token: %v", err)
			_ = w.Fail(err)
			return err
		}
		req.SetClaimToken(tok)
	}
	req.SetDeviceIDSrc(d.Device)
	left := time.Until(d.Deadline)
	if left <= 0 {
		err := mux.Errorf(dbe.CodeDeadlineExceeded, "the agent task's deadline has passed")
		_ = w.Fail(err)
		return err
	}
	if t, ok := req.Timeout(); !ok || t > left {
		req.SetTimeout(left)
	}
	// The task holds its tenant's concurrency slot; the step takes none.
	return s.Router.Route(ratelimit.AgentStep(ctx), req, func(f *dbe.Frame) error {
		if f.Flags&dbe.FlagEndStream != 0 || f.Type == dbe.MsgError {
			free()
		}
		return w.Send(f)
	})
}

// upstream returns where to send step req of task d when this host does
// not serve its profile and a router host delegated the task with a claim;
// nil when the step is routed here.
func (s *Server) upstream(d *pluginmgr.Delegation, req *dbe.Frame) Upstream {
	if len(d.Claim) == 0 || s.Upstream == nil || s.Serves == nil {
		return nil
	}
	if p, _ := req.Profile(); s.Serves(p) {
		return nil
	}
	return s.Upstream(d.RequestID)
}

// check refuses a step that is not an L7_CHAT_REQ within its task.
func check(d *pluginmgr.Delegation, req *dbe.Frame) error {
	deny := func(format string, args ...any) error {
		return &mux.Error{Code: dbe.CodePolicyDenied, Rule: pluginmgr.RuleDelegation, Message: "DENIED: " + fmt.Sprintf(format, args...)}
	}
	if req.Type != dbe.MsgChatReq {
		return deny("an agent task's steps are L7_CHAT_REQ, not %s", req.Type)
	}
	if err := dbe.CheckRequired(req); err != nil {
		return &mux.Error{Code: dbe.CodeInvalidRequest, Message: err.Error()}
	}
	tenant, _ := req.TenantID()
	roe, _ := req.ROELevel()
	class, _ := req.Classification()
	comp, _ := req.CompartmentMask()
	switch {
	case tenant != d.TenantID:
		return deny("the step's tenant %q is not its task's", tenant)
	case roe != d.ROE:
		return deny("the step's ROE %s is not its task's %s", roe, d.ROE)
	case class != d.Classification:
		return deny("the step's classification %s is not its task's %s", class, d.Classification)
	case comp&^d.Compartments != 0:
		return deny("the step's compartments %s exceed its task's %s", comp, d.Compartments)
	}
	return nil
}
