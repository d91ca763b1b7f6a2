package pluginmgr

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	"github.com/dsmil/l7/sdk/session"
)

// dataPath is an instance's DBE data path: the authenticated session to
// its current process and the mux client that multiplexes requests on it.
// It is attached when the process's session comes up (possibly before the
// start has finished) and detached when the process stops.
type dataPath struct {
	mu   sync.Mutex
	sess *session.Session
	mc   *mux.Client
}

// attach makes s the data path. A session that replaces another (gRPC
// reconnected) closes the old one: there is one data session per process.
// The plugin's own requests on the session (an agent task's LLM steps) go
// to the manager's PluginRequests, if any (delegate.go).
func (d *dataPath) attach(i *Instance, s *session.Session) {
	mc := mux.NewClient(s)
	ms := i.serveRequests(s, mc)
	go func() {
		<-s.Done()
		mc.Close(fmt.Errorf("%w: %s: %v", mux.ErrSessionClosed, i.ID(), s.Err()))
		if ms != nil {
			ms.Close(time.Second)
		}
	}()
	d.swap(s, mc)
}

// detach closes and forgets the session.
func (d *dataPath) detach() { d.swap(nil, nil) }

// swap makes s and mc the data path and closes the session they replace.
func (d *dataPath) swap(s *session.Session, mc *mux.Client) {
	d.mu.Lock()
	old := d.sess
	d.sess, d.mc = s, mc
	d.mu.Unlock()
	if old != nil {
		old.Close()
	}
}

func (d *dataPath) session() *session.Session {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.sess
}

func (d *dataPath) client() *mux.Client {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.mc
}

// inFlight is the number of requests in flight on the data path.
func (d *dataPath) inFlight() int {
	if mc := d.client(); mc != nil {
		return mc.InFlight()
	}
	return 0
}

// Load is the larger of the plugin's reported load and its share of the
// manager's in-flight limit, so fresh traffic spreads before the next
// status poll.
func (i *Instance) Load() float64 {
	l := math.Float64frombits(i.load.Load())
	if f := float64(i.data.inFlight()) / float64(i.m.cfg.MaxInFlight); f > l {
		l = f
	}
	return l
}

// Call forwards a request frame over the instance's data path. On an
// instance that is not running it fails at once with NO_WORKER_AVAILABLE.
func (i *Instance) Call(ctx context.Context, req *dbe.Frame, onFrame func(*dbe.Frame) error) error {
	mc := i.data.client()
	if mc == nil {
		return i.notRunning()
	}
	if req.Type == dbe.MsgAgentTask {
		timeout := 24 * time.Hour
		if d, ok := req.Timeout(); ok {
			timeout = d
		}
		end, err := i.delegs.begin(i, req, timeout)
		if err != nil {
			return err
		}
		defer end()
	}
	if d, ok := req.Timeout(); ok {
		return mc.CallWithin(ctx, d, req, onFrame)
	}
	return mc.Call(ctx, req, onFrame)
}

// Go forwards a request frame over the instance's data path with
// callbacks (router.AsyncWorker).
func (i *Instance) Go(req *dbe.Frame, timeout time.Duration, fn func(*dbe.Frame, error)) (cancel func()) {
	mc := i.data.client()
	if mc == nil {
		fn(nil, i.notRunning())
		return func() {}
	}
	if req.Type == dbe.MsgAgentTask {
		// The task's delegation lives until its final delivery.
		end, err := i.delegs.begin(i, req, timeout)
		if err != nil {
			fn(nil, err)
			return func() {}
		}
		inner := fn
		fn = func(f *dbe.Frame, err error) {
			if err != nil || f.Flags&dbe.FlagEndStream != 0 {
				end()
			}
			inner(f, err)
		}
	}
	cancel = mc.Go(req, timeout, fn)
	if req.Type != dbe.MsgAgentTask {
		return cancel
	}
	// A cancelled agent task ends with its partial result (status
	// CANCELLED): the plugin is sent CANCEL and given AgentCancelGrace to
	// answer before the call is dropped.
	id := req.CorrelationID
	var once sync.Once
	return func() {
		once.Do(func() {
			mc.Interrupt(id)
			time.AfterFunc(AgentCancelGrace, cancel)
		})
	}
}

// AgentCancelGrace is how long a cancelled agent task has to send its final
// L7_AGENT_RESULT (status CANCELLED, with its steps and transcript so far)
// before the host drops it and the task ends with ERROR CANCELLED. The
// agent plugin stops its current LLM step and tool at once; this is the
// bound on a plugin that does not.
const AgentCancelGrace = 2 * time.Second

func (i *Instance) notRunning() error {
	return &mux.Error{Code: dbe.CodeNoWorkerAvailable, Message: i.ID() + " is not running"}
}
