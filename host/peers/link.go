package peers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
)

// Link is this host's connection to one worker node: dialled, kept alive
// by heartbeats, cut when silent, redialled with backoff.
type Link struct {
	cfg *config.Peer
	hs  *session.TLS
	log hclog.Logger
	// changed is called when the node's instances or its state change.
	changed func()

	up       atomic.Bool
	lastRecv atomic.Int64 // unix nanoseconds of the last frame from the node

	mu       sync.Mutex
	sess     *session.Session
	mc       *mux.Client
	lastErr  string
	since    time.Time // when the link last went up or down
	connects int       // times the link came up
	remotes  map[string]*Remote
	order    []string              // instance ids as last reported
	pending  []*l7v1.L7ModelStatus // statuses since the last HEALTH answer

	// steps serves the node's requests back over the link (agent steps
	// of the tasks delegated to it, taskclaim.go); key mints and checks
	// the task-bound claims. Both nil: the node's requests are dropped.
	steps pluginmgr.PluginRequests
	key   *identity.PrivateKey
	tmu   sync.Mutex
	tasks map[[16]byte]*pluginmgr.Delegation // agent tasks in flight on the link
}

// Name is the peer block's name.
func (l *Link) Name() string { return l.cfg.Name }

// Up reports whether the link is up.
func (l *Link) Up() bool { return l.up.Load() }

// State is what `plugins list` and the tests see of a link.
type State struct {
	Up       bool
	Since    time.Time
	LastErr  string
	Connects int
}

// State returns the link's state.
func (l *Link) State() State {
	l.mu.Lock()
	defer l.mu.Unlock()
	return State{Up: l.up.Load(), Since: l.since, LastErr: l.lastErr, Connects: l.connects}
}

func (l *Link) client() *mux.Client {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.up.Load() {
		return nil
	}
	return l.mc
}

func (l *Link) inFlight() int {
	if mc := l.client(); mc != nil {
		return mc.InFlight()
	}
	return 0
}

// run keeps the link up until ctx ends.
func (l *Link) run(ctx context.Context) {
	backoff := l.cfg.ReconnectBackoff
	for ctx.Err() == nil {
		wasUp, err := l.serve(ctx)
		if ctx.Err() != nil {
			l.setDown(errors.New("host shutting down"))
			return
		}
		l.setDown(err)
		if wasUp {
			backoff = l.cfg.ReconnectBackoff
			l.log.Warn("link to worker node lost; its instances are down", "error", err)
		} else {
			l.log.Debug("worker node unreachable", "error", err, "retry_in", backoff)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, l.cfg.ReconnectMax)
	}
}

// serve dials the node, takes its first instance report, and serves the
// link until it dies. wasUp reports whether it came up.
func (l *Link) serve(ctx context.Context) (wasUp bool, err error) {
	dctx, cancel := context.WithTimeout(ctx, l.cfg.DialTimeout)
	ch, err := session.DialTLS(dctx, "tcp", l.cfg.Address, l.hs)
	cancel()
	if err != nil {
		return false, fmt.Errorf("peers: %s (%s): %w", l.cfg.Name, l.cfg.Address, err)
	}
	s := session.New(ch, nil)
	s.DropTunnel()
	mc := mux.NewClient(s)
	// The node's requests (ids are per direction, docs/dbe.md §8): steps
	// of agent tasks delegated to it, each with its task's claim.
	ms := mux.NewServer(s, &linkSteps{l})
	ms.IsRequest = func(f *dbe.Frame) bool { return f.CorrelationID != 0 && !f.Type.IsResponse() }
	l.touch()
	s.SetHandler(func(f *dbe.Frame, malformed error) {
		l.touch()
		if f.CorrelationID != 0 && !f.Type.IsResponse() {
			ms.Dispatch(f, malformed)
			return
		}
		if malformed == nil && f.CorrelationID == 0 && f.Type == dbe.MsgModelStatus {
			var st l7v1.L7ModelStatus
			if proto.Unmarshal(f.Payload, &st) == nil && st.GetPlugin() != "" {
				l.mu.Lock()
				if len(l.pending) < 4096 {
					l.pending = append(l.pending, &st)
				}
				l.mu.Unlock()
			}
			return
		}
		mc.Dispatch(f)
	})
	end := func(err error) {
		// The node leaves selection first, then the calls in flight fail,
		// at once; closing the connection may wait to flush.
		l.setDown(err)
		mc.Close(err)
		go ms.Close(0) // the steps in flight from the node end with the link
		_ = s.Close()
	}
	// The first report: the link is up once the node's instances are known.
	first := make(chan error, 1)
	mc.Go(&dbe.Frame{Type: dbe.MsgHealth}, l.cfg.DownAfter, func(f *dbe.Frame, err error) {
		if err == nil {
			l.commit()
		}
		first <- err
	})
	if err := <-first; err != nil {
		end(err)
		return false, fmt.Errorf("peers: %s: first HEALTH: %w", l.cfg.Name, err)
	}
	l.mu.Lock()
	l.sess, l.mc, l.lastErr, l.since = s, mc, "", time.Now()
	l.connects++
	l.up.Store(true)
	l.mu.Unlock()
	l.changed()
	l.log.Info("link to worker node up", "address", l.cfg.Address, "peer", s.Peer().Name)

	hb := time.NewTicker(l.cfg.Heartbeat)
	defer hb.Stop()
	watch := time.NewTicker(max(min(l.cfg.Heartbeat, l.cfg.DownAfter/4)/2, 5*time.Millisecond))
	defer watch.Stop()
	var asking atomic.Bool
	for {
		select {
		case <-ctx.Done():
			end(fmt.Errorf("peers: %s: host shutting down", l.cfg.Name))
			return true, ctx.Err()
		case <-s.Done():
			err := fmt.Errorf("peers: link to %s lost: %w", l.cfg.Name, s.Err())
			end(err)
			return true, err
		case <-watch.C:
			if silent := time.Since(time.Unix(0, l.lastRecv.Load())); silent > l.cfg.DownAfter {
				err := fmt.Errorf("peers: link to %s cut: nothing received for %v (down_after %v)", l.cfg.Name, silent.Round(time.Millisecond), l.cfg.DownAfter)
				end(err)
				return true, err
			}
		case <-hb.C:
			if !asking.CompareAndSwap(false, true) {
				continue // the last HEALTH is still unanswered: the watchdog decides
			}
			// Sent from a goroutine: a send stuck on a dead link must not
			// stop the watchdog above.
			go mc.Go(&dbe.Frame{Type: dbe.MsgHealth}, l.cfg.DownAfter, func(f *dbe.Frame, err error) {
				if err == nil {
					l.commit()
				}
				asking.Store(false)
			})
		}
	}
}

func (l *Link) touch() { l.lastRecv.Store(time.Now().UnixNano()) }

// commit makes the statuses received since the last HEALTH answer the
// node's instances.
func (l *Link) commit() {
	l.mu.Lock()
	sts := l.pending
	l.pending = nil
	if l.remotes == nil {
		l.remotes = map[string]*Remote{}
	}
	changed := len(sts) != len(l.order)
	order := make([]string, 0, len(sts))
	seen := make(map[string]bool, len(sts))
	for k, st := range sts {
		id := st.GetPlugin()
		if seen[id] {
			continue
		}
		seen[id] = true
		order = append(order, id)
		r := l.remotes[id]
		if r == nil {
			r = &Remote{link: l, inst: id}
			l.remotes[id] = r
			changed = true
		} else if old := r.st.Load(); old == nil || !sameProfiles(old.GetProfiles(), st.GetProfiles()) {
			changed = true
		}
		r.st.Store(st)
		if !changed && k < len(l.order) && l.order[k] != id {
			changed = true
		}
	}
	for id := range l.remotes {
		if !seen[id] {
			delete(l.remotes, id)
			changed = true
		}
	}
	l.order = order
	l.mu.Unlock()
	if changed {
		l.changed()
	}
}

func sameProfiles(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// setDown marks the link down with err; its instances stay listed, down.
func (l *Link) setDown(err error) {
	l.mu.Lock()
	was := l.up.Swap(false)
	l.sess, l.mc = nil, nil
	if err != nil {
		l.lastErr = err.Error()
	}
	if was || l.since.IsZero() {
		l.since = time.Now()
	}
	l.mu.Unlock()
	if was {
		l.changed()
	}
}

// instances returns the node's instances, as last reported.
func (l *Link) instances() []*Remote {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Remote, 0, len(l.order))
	for _, id := range l.order {
		if r := l.remotes[id]; r != nil {
			out = append(out, r)
		}
	}
	return out
}

// Remote is one plugin instance on a worker node, as the router sees it:
// a router.RemoteWorker (and AsyncWorker) whose calls go over the link.
// The node's own router then picks the replica that serves it (the least
// loaded of that profile there, which is this one unless it is busier).
type Remote struct {
	link *Link
	inst string // "NAME#REPLICA" on the node
	st   atomic.Pointer[l7v1.L7ModelStatus]
}

// ID names the instance: "NODE/NAME#REPLICA".
func (r *Remote) ID() string { return r.link.cfg.Name + "/" + r.inst }

// Node is the worker node's peer name.
func (r *Remote) Node() string { return r.link.cfg.Name }

// DeviceID is the device the node reported.
func (r *Remote) DeviceID() uint8 {
	if st := r.st.Load(); st != nil && st.GetDeviceId() <= math.MaxUint8 {
		return uint8(st.GetDeviceId())
	}
	return 0
}

// Healthy: the link is up and the node reported the instance healthy.
func (r *Remote) Healthy() bool {
	st := r.st.Load()
	return r.link.Up() && st != nil && st.GetHealthy()
}

// Load is the larger of the node's reported load and the link's share of
// its in-flight cap, so that fresh traffic spreads before the next report.
func (r *Remote) Load() float64 {
	var l float64
	if st := r.st.Load(); st != nil {
		l = st.GetLoad()
	}
	return max(l, float64(r.link.inFlight())/float64(r.link.cfg.MaxInFlight))
}

// Call forwards req over the link and blocks until it ends.
func (r *Remote) Call(ctx context.Context, req *dbe.Frame, onFrame func(*dbe.Frame) error) error {
	mc, err := r.admit()
	if err != nil {
		return err
	}
	d, ok := req.Timeout()
	if req.Type == dbe.MsgAgentTask {
		budget := d
		if !ok {
			budget = 24 * time.Hour
		}
		defer r.link.delegate(r, req, budget)()
	}
	if ok {
		return mc.CallWithin(ctx, d, req, onFrame)
	}
	return mc.Call(ctx, req, onFrame)
}

// Go forwards req over the link with callbacks (router.AsyncWorker). A
// link that dies fails the call at once (WORKER_FAILED at the router);
// nothing is retried.
func (r *Remote) Go(req *dbe.Frame, timeout time.Duration, fn func(*dbe.Frame, error)) (cancel func()) {
	mc, err := r.admit()
	if err != nil {
		fn(nil, err)
		return func() {}
	}
	if req.Type == dbe.MsgAgentTask {
		// The task is delegated until its final delivery.
		end := r.link.delegate(r, req, timeout)
		inner := fn
		fn = func(f *dbe.Frame, err error) {
			if err != nil || f.Flags&dbe.FlagEndStream != 0 {
				end()
			}
			inner(f, err)
		}
	}
	return mc.Go(req, timeout, fn)
}

func (r *Remote) admit() (*mux.Client, error) {
	mc := r.link.client()
	if mc == nil {
		return nil, &mux.Error{Code: dbe.CodeNoWorkerAvailable, RetryAfterMS: 1000, Message: "worker node " + r.link.cfg.Name + " is down"}
	}
	if n := mc.InFlight(); n >= r.link.cfg.MaxInFlight {
		return nil, &mux.Error{Code: dbe.CodeOverloaded, RetryAfterMS: 100,
			Message: fmt.Sprintf("the link to worker node %s has %d requests in flight (max_in_flight)", r.link.cfg.Name, n)}
	}
	return mc, nil
}
