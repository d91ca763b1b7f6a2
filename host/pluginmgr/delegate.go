package pluginmgr

import (
	"context"
	"sync"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	"github.com/dsmil/l7/sdk/session"
)

// Delegation is what an agent task in flight on a plugin instance lets the
// plugin do on the task's behalf (docs/security.md §5.8): requests bound to
// the task's REQUEST_ID, with the attributes the router admitted the task
// with, until the task ends. The host records one when it forwards an
// L7_AGENT_TASK to the instance and forgets it when the task's final frame
// (or error) comes back; nothing is handed to the plugin, so there is
// nothing for it to widen, keep or replay.
type Delegation struct {
	// Worker is the instance the task runs on ("agent#0"); Device its
	// device.
	Worker string
	Device uint8

	// RequestID is the task's REQUEST_ID.
	RequestID [16]byte

	// The task's security attributes, as the router admitted them.
	TenantID       string
	Compartments   dbe.Compartment
	Classification dbe.Classification
	ROE            dbe.ROELevel

	// Profile is the profile the task was routed on.
	Profile string

	// Deadline is the task's: its TIMEOUT_MS from when it was forwarded.
	Deadline time.Time

	// Context ends when the task ends (its final frame, an error, a cancel)
	// or its deadline passes: requests on its behalf stop with it.
	Context context.Context

	// Claim is the task-bound claim the router host that delegated the
	// task over the cross-node link minted for it (TLVTaskDelegation,
	// docs/security.md §5.8), when the task came that way: what this
	// host presents when it sends the task's steps that it cannot serve
	// itself back to that router host. Never handed to the plugin.
	Claim []byte
}

// TLVTaskDelegation carries, on an L7_AGENT_TASK a router host forwards to
// a worker node, the claim it minted for the task (docs/dbe.md §4: a
// non-critical code of the private range, understood by dsmil-hosts only;
// a node that does not know it ignores it). The plugin manager takes it
// off the frame before the task reaches the plugin.
const TLVTaskDelegation dbe.TLVType = 0x4D01

// PluginRequests serves the requests plugins send to the host on their
// own data path (an agent task's LLM steps). The plugin manager calls it
// only for a frame whose REQUEST_ID names a task in flight on the sending
// instance, with that task's Delegation; every other plugin request is
// refused with POLICY_DENIED (rule RuleDelegation) before it is called.
type PluginRequests interface {
	ServePluginRequest(ctx context.Context, d *Delegation, req *dbe.Frame, w *mux.ResponseWriter)
}

// RuleDelegation names the refusals of plugin requests that are not bound
// to a task in flight, and of requests whose attributes leave the task's.
const RuleDelegation = "builtin.delegation"

// delegations are an instance's agent tasks in flight, by request id.
type delegations struct {
	mu sync.Mutex
	m  map[[16]byte]*delegation
}

type delegation struct {
	d      *Delegation
	cancel context.CancelFunc
}

// begin records the delegation of an agent task forwarded to instance i
// with the time budget timeout. It returns the function that ends it, or an
// error when the request id is already a task's on this instance.
func (ds *delegations) begin(i *Instance, req *dbe.Frame, timeout time.Duration) (end func(), err error) {
	id, ok := req.RequestID()
	if !ok {
		return nil, mux.Errorf(dbe.CodeInvalidRequest, "an agent task needs a REQUEST_ID")
	}
	d := &Delegation{Worker: i.ID(), Device: i.DeviceID(), RequestID: id, Deadline: time.Now().Add(timeout)}
	d.TenantID, _ = req.TenantID()
	d.Compartments, _ = req.CompartmentMask()
	d.Classification, _ = req.Classification()
	d.ROE, _ = req.ROELevel()
	d.Profile, _ = req.Profile()
	if c, ok := req.Get(TLVTaskDelegation); ok {
		d.Claim = append([]byte(nil), c...)
	}
	// The plugin never sees the claim: its steps come back through this
	// host, which presents it.
	req.Del(TLVTaskDelegation)
	ctx, cancel := context.WithDeadline(context.Background(), d.Deadline)
	d.Context = ctx
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if _, dup := ds.m[id]; dup {
		cancel()
		return nil, mux.Errorf(dbe.CodeInvalidRequest, "request id %s is already an agent task's on %s", dbe.FormatUUID(id), i.ID())
	}
	if ds.m == nil {
		ds.m = map[[16]byte]*delegation{}
	}
	entry := &delegation{d: d, cancel: cancel}
	ds.m[id] = entry
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			ds.mu.Lock()
			if ds.m[id] == entry {
				delete(ds.m, id)
			}
			ds.mu.Unlock()
		})
	}, nil
}

// lookup returns the delegation of the task with request id, if in flight.
func (ds *delegations) lookup(id [16]byte) *Delegation {
	ds.mu.Lock()
	defer ds.mu.Unlock()
	if e := ds.m[id]; e != nil {
		return e.d
	}
	return nil
}

// pluginRequests is the mux.Handler of one instance's requests to the host.
type pluginRequests struct {
	i *Instance
	h PluginRequests
}

func (p *pluginRequests) ServeDBE(ctx context.Context, req *dbe.Frame, w *mux.ResponseWriter) {
	id, ok := req.RequestID()
	var d *Delegation
	if ok {
		d = p.i.delegs.lookup(id)
	}
	if d == nil {
		p.i.log.Warn("plugin request refused: no agent task in flight with its request id", "msg_type", req.Type.String())
		_ = w.Fail(&mux.Error{Code: dbe.CodePolicyDenied, Rule: RuleDelegation,
			Message: "DENIED: a plugin may send requests only on behalf of an agent task in flight on it (REQUEST_ID)"})
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(d.Context, cancel)
	defer stop()
	p.h.ServePluginRequest(ctx, d, req, w)
}

// serveRequests makes the session's request frames (not responses) go to
// a mux.Server over the manager's PluginRequests, and the rest to mc; it
// returns the server (nil without PluginRequests: then plugin requests are
// dropped, as before).
func (i *Instance) serveRequests(s *session.Session, mc *mux.Client) *mux.Server {
	h := i.m.cfg.PluginRequests
	if h == nil {
		s.SetHandler(func(f *dbe.Frame, _ error) { mc.Dispatch(f) })
		return nil
	}
	ms := mux.NewServer(s, &pluginRequests{i: i, h: h})
	ms.IsRequest = func(f *dbe.Frame) bool { return f.CorrelationID != 0 && !f.Type.IsResponse() }
	s.SetHandler(func(f *dbe.Frame, malformed error) {
		if f.Type.IsResponse() || f.CorrelationID == 0 {
			mc.Dispatch(f)
			return
		}
		ms.Dispatch(f, malformed)
	})
	return ms
}
