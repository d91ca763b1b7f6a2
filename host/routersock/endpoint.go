package routersock

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
)

// Endpoint serves the router to local DBE clients on a Unix socket.
type Endpoint struct {
	// Router routes the requests. Required.
	Router *router.Router
	// Path of the Unix socket. A stale socket file is replaced.
	Path string
	// Mode of the socket file; default 0660.
	Mode fs.FileMode
	// Handshaker authenticates each connection; nil means plain frames,
	// access controlled by the socket file's mode. dsmil-host sets the
	// DSMIL-PQ1 handshake when dsmil.hcl has a security block.
	Handshaker session.Handshaker
	// MaxFrame is the frame size limit; default dbe.DefaultMaxFrameSize.
	MaxFrame int
	// Listener, when set, is used instead of a Unix socket at Path (the
	// cross-node TLS listener); Path and Mode are then ignored.
	Listener net.Listener
	// MaxInFlight caps the requests one connection may have in flight; a
	// request beyond it is answered OVERLOADED at once and routed nowhere.
	// Default DefaultMaxInFlight.
	MaxInFlight int
	// Logger receives refused handshakes and clients cut off for not
	// reading. Default: no logging.
	Logger hclog.Logger
	// Instances, when set, reports this host's plugin instances to peers
	// with role "node" (router hosts that route to this worker node,
	// host/peers): each HEALTH from such a peer is answered with one
	// unsolicited L7_MODEL_STATUS per instance on correlation id 0 (plugin
	// = "NAME#REPLICA"), then the router's status as usual.
	Instances func() []*l7v1.L7ModelStatus
	// NodeIdleTimeout, when set, closes a connection from a peer with role
	// "node" from which no frame has arrived for that long, so that a
	// half-open router host holds nothing here (router hosts heartbeat
	// several times a second).
	NodeIdleTimeout time.Duration

	// upstreams are the connections of router hosts (peers with role
	// "node") on which agent tasks came with a task-bound claim
	// (pluginmgr.TLVTaskDelegation), by task request id, while the tasks
	// run: where their steps this host cannot serve go back (Upstream).
	upMu      sync.Mutex
	upstreams map[[16]byte]*mux.Client

	mu       sync.Mutex
	ln       net.Listener
	sessions map[*session.Session]struct{}
	wg       sync.WaitGroup
}

// Listen creates the socket. Serve then accepts on it.
func (e *Endpoint) Listen() error {
	if e.Listener != nil {
		e.mu.Lock()
		e.ln = e.Listener
		e.sessions = make(map[*session.Session]struct{})
		e.mu.Unlock()
		return nil
	}
	if e.Mode == 0 {
		e.Mode = 0o660
	}
	if fi, err := os.Lstat(e.Path); err == nil {
		if fi.Mode()&fs.ModeSocket == 0 {
			return fmt.Errorf("router: %s exists and is not a socket", e.Path)
		}
		if c, err := net.DialTimeout("unix", e.Path, 200*time.Millisecond); err == nil {
			c.Close()
			return fmt.Errorf("router: %s is in use by a running process", e.Path)
		}
		_ = os.Remove(e.Path)
	}
	ln, err := net.Listen("unix", e.Path)
	if err != nil {
		return fmt.Errorf("router: listen: %w", err)
	}
	if err := os.Chmod(e.Path, e.Mode); err != nil {
		ln.Close()
		return fmt.Errorf("router: chmod %s: %w", e.Path, err)
	}
	e.mu.Lock()
	e.ln = ln
	e.sessions = make(map[*session.Session]struct{})
	e.mu.Unlock()
	return nil
}

// Serve accepts connections until ctx ends or Close is called.
func (e *Endpoint) Serve(ctx context.Context) error {
	e.mu.Lock()
	ln := e.ln
	e.mu.Unlock()
	if ln == nil {
		return errors.New("router: Serve before Listen")
	}
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("router: accept: %w", err)
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			e.serveConn(ctx, c)
		}()
	}
}

func (e *Endpoint) serveConn(ctx context.Context, c net.Conn) {
	var ch session.Channel
	if e.Handshaker == nil {
		ch = session.NewPlainChannel(c, e.MaxFrame, session.Peer{Role: "client"})
	} else {
		var err error
		if ch, err = e.Handshaker.Server(ctx, c); err != nil {
			e.logger().Warn("router endpoint: handshake refused", "error", err)
			return
		}
	}
	s := session.NewIdle(ch)
	s.DropTunnel() // clients have no tunnel here: their TUNNEL_DATA must not pile up
	ec := &epConn{r: e.Router, log: e.logger(), s: s, active: make(map[uint64]func()), ctx: context.Background(), max: e.MaxInFlight,
		plain: e.Handshaker == nil}
	if ch.Peer().Role == "node" {
		ec.reports = e.Instances
		// A router host's connection also carries this host's requests to
		// it: the steps of the agent tasks it delegated here.
		ec.e, ec.up = e, mux.NewClient(s)
	}
	ec.touch()
	if sc, ok := ch.(interface{ PeerKeyID() identity.KeyID }); ok {
		// Claim tokens on this connection must belong to its peer.
		ec.ctx = identity.WithPresenter(ec.ctx, sc.PeerKeyID())
	}
	s.Start(ec.handle)
	e.mu.Lock()
	if e.sessions == nil {
		e.mu.Unlock()
		s.Close()
		return
	}
	e.sessions[s] = struct{}{}
	e.mu.Unlock()
	if e.NodeIdleTimeout > 0 && ch.Peer().Role == "node" {
		go ec.watchIdle(e.NodeIdleTimeout)
	}
	<-s.Done()
	if ec.up != nil {
		ec.up.Close(fmt.Errorf("the connection of router host %s ended", ch.Peer().Name))
		ec.dropTasks()
	}
	ec.cancelAll()
	e.mu.Lock()
	delete(e.sessions, s)
	e.mu.Unlock()
}

// DefaultMaxInFlight is an Endpoint's default per-connection cap.
const DefaultMaxInFlight = 1024

// epConn serves one client connection without a goroutine per request:
// requests are forwarded from the session's read loop (Router.Forward) and
// responses are written from the worker sessions' read loops.
type epConn struct {
	r   *router.Router
	log hclog.Logger
	s   *session.Session
	ctx context.Context // for the admission hooks
	max int             // requests in flight allowed; <= 0 means DefaultMaxInFlight
	// plain: the connection has no channel handshake, so a HANDSHAKE frame
	// comes from a client that expected one (docs/dbe.md §8).
	plain bool

	mu     sync.Mutex
	active map[uint64]func() // correlation id → cancel (nil while being forwarded)
	agents map[uint64]bool   // the active requests that are agent tasks

	reports  func() []*l7v1.L7ModelStatus // Endpoint.Instances, for a node peer
	lastRecv atomic.Int64                 // unix nanoseconds of the last frame

	// For a router host (role "node"): requests to it on this connection,
	// and the delegated agent tasks registered as its (correlation id →
	// request id).
	e     *Endpoint
	up    *mux.Client
	tasks map[uint64][16]byte
}

// Upstream returns the connection of the router host that delegated the
// agent task with request id here with a task-bound claim, while the task
// runs; nil otherwise.
func (e *Endpoint) Upstream(id [16]byte) *mux.Client {
	e.upMu.Lock()
	defer e.upMu.Unlock()
	return e.upstreams[id]
}

// registerTask records that the agent task f (correlation id corr) came on
// this router host's connection with a task-bound claim.
func (c *epConn) registerTask(corr uint64, f *dbe.Frame) {
	if c.up == nil || f.Type != dbe.MsgAgentTask {
		return
	}
	if _, ok := f.Get(pluginmgr.TLVTaskDelegation); !ok {
		return
	}
	id, ok := f.RequestID()
	if !ok {
		return
	}
	c.e.upMu.Lock()
	if _, dup := c.e.upstreams[id]; !dup {
		if c.e.upstreams == nil {
			c.e.upstreams = map[[16]byte]*mux.Client{}
		}
		c.e.upstreams[id] = c.up
		c.mu.Lock()
		if c.tasks == nil {
			c.tasks = map[uint64][16]byte{}
		}
		c.tasks[corr] = id
		c.mu.Unlock()
	}
	c.e.upMu.Unlock()
}

// endTask forgets the delegated task of correlation id corr, if any.
func (c *epConn) endTask(corr uint64) {
	if c.up == nil {
		return
	}
	c.mu.Lock()
	id, ok := c.tasks[corr]
	delete(c.tasks, corr)
	c.mu.Unlock()
	if ok {
		c.e.upMu.Lock()
		if c.e.upstreams[id] == c.up {
			delete(c.e.upstreams, id)
		}
		c.e.upMu.Unlock()
	}
}

// dropTasks forgets every delegated task of a connection that ended.
func (c *epConn) dropTasks() {
	c.mu.Lock()
	corrs := make([]uint64, 0, len(c.tasks))
	for corr := range c.tasks {
		corrs = append(corrs, corr)
	}
	c.mu.Unlock()
	for _, corr := range corrs {
		c.endTask(corr)
	}
}

func (c *epConn) touch() { c.lastRecv.Store(time.Now().UnixNano()) }

// watchIdle closes the connection once nothing has arrived on it for idle.
func (c *epConn) watchIdle(idle time.Duration) {
	t := time.NewTicker(max(idle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-c.s.Done():
			return
		case <-t.C:
			if time.Since(time.Unix(0, c.lastRecv.Load())) > idle {
				c.log.Warn("router endpoint: nothing from the peer within the idle timeout; closing its connection",
					"peer", c.s.Peer().Name, "idle_timeout", idle)
				_ = c.s.Close()
				return
			}
		}
	}
}

func (c *epConn) handle(f *dbe.Frame, malformed error) {
	c.touch()
	if malformed != nil {
		_ = c.s.Send(mux.ErrorFrame(f.CorrelationID, nil, malformed))
		return
	}
	corr := f.CorrelationID
	if c.up != nil && corr != 0 && f.Type.IsResponse() {
		// A router host answering a step this host sent it.
		c.up.Dispatch(f)
		return
	}
	switch f.Type {
	case dbe.MsgCancel:
		c.mu.Lock()
		cancel, live := c.active[corr]
		if live && cancel != nil && c.agents[corr] {
			// An agent task ends with its own final frame, the
			// L7_AGENT_RESULT with status CANCELLED and the partial
			// transcript (or ERROR CANCELLED if the agent does not
			// answer in time): it stays active until then.
			c.mu.Unlock()
			cancel()
			return
		}
		delete(c.active, corr)
		delete(c.agents, corr)
		c.mu.Unlock()
		if live {
			if cancel != nil {
				cancel()
			}
			// The request ends here (docs/dbe.md §8); frames the worker
			// still sends for it are dropped below.
			_ = c.s.Send(mux.ErrorFrame(corr, nil, mux.Errorf(dbe.CodeCancelled, "cancelled by the client")))
		}
		return
	case dbe.MsgHandshake:
		if c.plain {
			// A client that opens with a channel handshake expects security
			// this socket does not have: tell it at once (its handshake
			// fails on this CLOSE instead of timing out) and hang up.
			_ = c.s.Send(closeFrame(dbe.CodeUnauthenticated, "this endpoint has no channel security (no security block): send DBE frames without a handshake"))
			_ = c.s.Close()
		}
		return
	case dbe.MsgClose, dbe.MsgTunnelData, dbe.MsgError:
		// An ERROR is never answered (docs/dbe.md §8): no request of the
		// router's is in flight on a client's connection.
		return
	}
	if corr == 0 {
		// HEALTH included: a status on id 0 would read as unsolicited.
		_ = c.s.Send(mux.ErrorFrame(0, nil, mux.Errorf(dbe.CodeInvalidRequest, "a request needs a non-zero correlation id")))
		return
	}
	if f.Type == dbe.MsgHealth {
		if c.reports != nil {
			for _, m := range c.reports() {
				b, _ := proto.Marshal(m)
				_ = c.s.Send(&dbe.Frame{Type: dbe.MsgModelStatus, Payload: b})
			}
		}
		st := statusFrame(c.r)
		st.CorrelationID = corr
		_ = c.s.Send(st)
		return
	}
	c.mu.Lock()
	if _, dup := c.active[corr]; dup {
		c.mu.Unlock()
		_ = c.s.Send(mux.ErrorFrame(corr, nil, mux.Errorf(dbe.CodeInvalidRequest, "correlation id %d already in use", corr)))
		return
	}
	if max := cmp.Or(c.max, DefaultMaxInFlight); len(c.active) >= max {
		c.mu.Unlock()
		c.r.Refused(f, dbe.CodeOverloaded) // counted like any refused request
		reqID, _ := f.Get(dbe.TLVRequestID)
		_ = c.s.Send(mux.ErrorFrame(corr, reqID, &mux.Error{Code: dbe.CodeOverloaded, RetryAfterMS: 100,
			Message: fmt.Sprintf("this connection has %d requests in flight, the most the router allows one connection (router.max_in_flight_per_connection)", max)}))
		return
	}
	c.active[corr] = nil
	if f.Type == dbe.MsgAgentTask {
		if c.agents == nil {
			c.agents = map[uint64]bool{}
		}
		c.agents[corr] = true
	}
	c.mu.Unlock()
	c.registerTask(corr, f)
	reqID, _ := f.Get(dbe.TLVRequestID)
	reqID = append([]byte(nil), reqID...) // the request frame is handed over
	cancel := c.r.Forward(c.ctx, f, func(rf *dbe.Frame, _ proto.Message) {
		rf.CorrelationID = corr
		if len(reqID) == 16 {
			if _, ok := rf.Get(dbe.TLVRequestID); !ok {
				rf.TLVs = append(rf.TLVs, dbe.TLV{Type: dbe.TLVRequestID, Value: reqID})
			}
		}
		c.mu.Lock()
		_, live := c.active[corr]
		final := rf.Flags&dbe.FlagEndStream != 0
		if live && final {
			delete(c.active, corr)
			delete(c.agents, corr)
		}
		c.mu.Unlock()
		if final {
			c.endTask(corr)
		}
		if !live {
			return // the client cancelled it and was answered
		}
		// This runs on the worker session's read loop, which serves every
		// client of that worker: it must never wait for this client.
		if err := c.s.TrySend(rf); errors.Is(err, dbe.ErrWouldBlock) {
			c.log.Warn("router endpoint: a client is not reading its responses; closing its connection",
				"peer", c.s.Peer().Name)
			_ = c.s.Close()
		}
	})
	c.mu.Lock()
	if _, still := c.active[corr]; still {
		c.active[corr] = cancel
	}
	c.mu.Unlock()
}

// cancelAll cancels every request of a connection that went away.
func (c *epConn) cancelAll() {
	c.mu.Lock()
	cancels := make([]func(), 0, len(c.active))
	for id, cancel := range c.active {
		if cancel != nil {
			cancels = append(cancels, cancel)
		}
		delete(c.active, id)
		delete(c.agents, id)
	}
	c.mu.Unlock()
	for _, cancel := range cancels {
		cancel()
	}
}

// StopAccepting closes the listener (and so removes the socket) but leaves
// the connected clients' sessions open, for a drain.
func (e *Endpoint) StopAccepting() {
	e.mu.Lock()
	ln := e.ln
	e.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
}

// Close stops accepting, ends every session and removes the socket.
func (e *Endpoint) Close() error {
	e.mu.Lock()
	ln := e.ln
	ss := e.sessions
	e.sessions = nil
	e.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	for s := range ss {
		s.Close()
	}
	e.wg.Wait()
	return nil
}

func (e *Endpoint) logger() hclog.Logger {
	if e.Logger == nil {
		return hclog.NewNullLogger()
	}
	return e.Logger
}

// statusFrame is the router's own L7_MODEL_STATUS.
func statusFrame(r *router.Router) *dbe.Frame {
	st := r.Stats()
	b, _ := proto.Marshal(&l7v1.L7ModelStatus{Plugin: "router", DeviceId: router.DeviceID, Healthy: true,
		InFlight: uint32(st.InFlight)})
	return &dbe.Frame{Type: dbe.MsgModelStatus, Flags: dbe.FlagEndStream, Payload: b}
}

// closeFrame is a CLOSE with code and reason.
func closeFrame(code dbe.Code, reason string) *dbe.Frame {
	b, _ := proto.Marshal(&l7v1.Close{Code: l7v1.ErrorCode(code), Reason: reason})
	return &dbe.Frame{Type: dbe.MsgClose, Payload: b}
}
