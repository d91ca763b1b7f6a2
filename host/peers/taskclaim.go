package peers

import (
	"context"
	"crypto/subtle"
	"fmt"
	"slices"
	"time"

	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
)

// Task-bound claims (docs/security.md §5.8, §5.9). When this router host
// forwards an L7_AGENT_TASK to a worker node, it mints a claim token — the
// DCT1 format and ML-DSA-87 key of its ordinary claims — bound to the task:
//
//	tenant_id   the task's tenant
//	client_id   "agent-task"
//	roles       "roe:ROE", "classification:CLASS", "compartments:0xNN" (the task's)
//	session_id  the task's REQUEST_ID
//	expires_at  the task's deadline (rounded up to the second)
//	audience    "dsmil-task@" + the node's identity name
//
// and sends it with the task (pluginmgr.TLVTaskDelegation). The node's
// host keeps it and presents it, as the L7_CLAIM_TOKEN, on the steps of
// that task it cannot serve itself and sends back over the link; this
// host verifies it (its own key, the audience of the link the step came
// on, the expiry, the step's REQUEST_ID), checks that the task is still in
// flight on that link with the same attributes, and then serves the step
// as a local agent's (host/agentcall: no widening, a fresh claim for the
// router, policy, quotas, the decision log). The audience keeps these
// tokens apart from router claims: no router accepts one.

// TaskAudiencePrefix starts the audience of a task-bound claim.
const TaskAudiencePrefix = "dsmil-task@"

// TaskClientID is the client id of a task-bound claim.
const TaskClientID = "agent-task"

// TaskAudience is the audience of the task-bound claims minted for the
// worker node whose identity is named node.
func TaskAudience(node string) string { return TaskAudiencePrefix + node }

// TaskRoles are the roles of a task-bound claim: the task's ROE,
// classification and compartments.
func TaskRoles(d *pluginmgr.Delegation) []string {
	return []string{"roe:" + d.ROE.String(), "classification:" + d.Classification.String(),
		fmt.Sprintf("compartments:0x%02x", uint8(d.Compartments))}
}

// MintTaskClaim mints the task-bound claim of task d for node, valid from
// now until the task's deadline.
func MintTaskClaim(k *identity.PrivateKey, d *pluginmgr.Delegation, node string, now time.Time) ([]byte, error) {
	exp := d.Deadline.Truncate(time.Second)
	if exp.Before(d.Deadline) {
		exp = exp.Add(time.Second)
	}
	t := &identity.ClaimToken{TenantID: d.TenantID, ClientID: TaskClientID, Roles: TaskRoles(d),
		IssuedAt: now.Add(-time.Second), ExpiresAt: exp, Audience: TaskAudience(node), SessionID: d.RequestID}
	return t.Sign(k)
}

// VerifyTaskClaim checks a task-bound claim presented by node for the
// step with request id reqID: minted by key, for node, not expired, for
// that task. Errors say which check failed.
func VerifyTaskClaim(key *identity.PublicKey, tok []byte, node string, reqID [16]byte, now time.Time) (*identity.ClaimToken, error) {
	t, err := identity.ParseClaimToken(tok)
	if err != nil {
		return nil, err
	}
	if t.KeyID != key.KeyID() || !key.Verify(identity.ContextClaim, t.TBS(), t.Signature) {
		return nil, fmt.Errorf("%w: the claim was not minted by this host (key %s)", identity.ErrBadSignature, t.KeyID)
	}
	if t.Audience != TaskAudience(node) {
		return nil, fmt.Errorf("the claim is for %q, not for worker node %s", t.Audience, node)
	}
	if !now.Before(t.ExpiresAt) {
		return nil, fmt.Errorf("%w: the task's claim expired at %s", identity.ErrExpired, t.ExpiresAt.Format(time.RFC3339))
	}
	if subtle.ConstantTimeCompare(t.SessionID[:], reqID[:]) != 1 {
		return nil, fmt.Errorf("the claim is task %s's, the step is task %s's", dbe.FormatUUID(t.SessionID), dbe.FormatUUID(reqID))
	}
	return t, nil
}

// delegate records the agent task req that r is about to forward with the
// time budget timeout, and attaches its task-bound claim. It returns the
// function that forgets it (call it when the task's final frame or error
// comes back). Without Config.Steps it does nothing.
func (l *Link) delegate(r *Remote, req *dbe.Frame, timeout time.Duration) (end func()) {
	req.Del(pluginmgr.TLVTaskDelegation) // only this host's claim travels
	if l.steps == nil || l.key == nil {
		return func() {}
	}
	id, ok := req.RequestID()
	if !ok {
		return func() {}
	}
	d := &pluginmgr.Delegation{Worker: r.ID(), Device: r.DeviceID(), RequestID: id, Deadline: time.Now().Add(timeout)}
	d.TenantID, _ = req.TenantID()
	d.Compartments, _ = req.CompartmentMask()
	d.Classification, _ = req.Classification()
	d.ROE, _ = req.ROELevel()
	d.Profile, _ = req.Profile()
	tok, err := MintTaskClaim(l.key, d, l.cfg.Identity, time.Now())
	if err != nil {
		l.log.Warn("no task-bound claim for an agent task: its steps cannot come back to this host", "task_id", dbe.FormatUUID(id), "error", err)
		return func() {}
	}
	ctx, cancel := context.WithDeadline(context.Background(), d.Deadline)
	d.Context = ctx
	l.tmu.Lock()
	if _, dup := l.tasks[id]; dup {
		l.tmu.Unlock()
		cancel()
		return func() {} // the node refuses a second task with that id
	}
	if l.tasks == nil {
		l.tasks = map[[16]byte]*pluginmgr.Delegation{}
	}
	l.tasks[id] = d
	l.tmu.Unlock()
	req.Set(pluginmgr.TLVTaskDelegation, tok)
	return func() {
		cancel()
		l.tmu.Lock()
		if l.tasks[id] == d {
			delete(l.tasks, id)
		}
		l.tmu.Unlock()
	}
}

// task returns the agent task in flight on the link with request id.
func (l *Link) task(id [16]byte) *pluginmgr.Delegation {
	l.tmu.Lock()
	defer l.tmu.Unlock()
	return l.tasks[id]
}

// linkSteps serves the requests a worker node sends back over the link:
// the steps of agent tasks this host delegated to it.
type linkSteps struct{ l *Link }

func (h *linkSteps) ServeDBE(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
	l := h.l
	deny := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		l.log.Warn("worker node request refused", "msg_type", req.Type.String(), "reason", msg)
		_ = w.Fail(&mux.Error{Code: dbe.CodePolicyDenied, Rule: pluginmgr.RuleDelegation, Message: "DENIED: " + msg})
	}
	if l.steps == nil || l.key == nil {
		deny("this router host serves no requests from its worker nodes")
		return
	}
	tok, ok := req.ClaimToken()
	if !ok {
		deny("a worker node may send requests only for an agent task this host delegated to it, with the task's claim (none)")
		return
	}
	id, ok := req.RequestID()
	if !ok {
		deny("a worker node's request needs the REQUEST_ID of the agent task it is for")
		return
	}
	t, err := VerifyTaskClaim(l.key.Public(), tok, l.cfg.Identity, id, time.Now())
	if err != nil {
		deny("task-bound claim refused: %v", err)
		return
	}
	d := l.task(id)
	if d == nil {
		deny("no agent task %s in flight on the link to %s", dbe.FormatUUID(id), l.cfg.Name)
		return
	}
	if t.TenantID != d.TenantID || !slices.Equal(t.Roles, TaskRoles(d)) {
		deny("the claim's attributes are not its task's")
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.Context, cancel)
	defer stop()
	l.steps.ServePluginRequest(ctx, d, req, w)
}
