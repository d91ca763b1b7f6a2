package session

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
)

// FrameHandler receives every frame of a session except TUNNEL_DATA on
// correlation id 0 and CLOSE. It runs on the session's read loop: it must
// not block for long. When a frame arrived with a valid header but an
// invalid body, malformed is a *dbe.FrameError and f holds only the header's
// type, flags and correlation id: the handler should answer with an ERROR
// MALFORMED_FRAME on that correlation id (docs/dbe.md §8).
type FrameHandler func(f *dbe.Frame, malformed error)

// ErrClosed is returned for operations on a closed session.
var ErrClosed = errors.New("session: closed")

// Session is one authenticated DBE connection: a read loop that feeds
// TUNNEL_DATA frames to Tunnel() and everything else to a FrameHandler.
type Session struct {
	ch      Channel
	tun     *tunnelConn
	handler FrameHandler

	mu     sync.Mutex
	err    error
	closed chan struct{}
	once   sync.Once

	noTunnel bool // DropTunnel: TUNNEL_DATA on id 0 is dropped, not queued
}

// New starts a session over ch. handler may be set later with SetHandler,
// but before the peer sends anything other than tunnel data.
func New(ch Channel, handler FrameHandler) *Session {
	s := newSession(ch)
	s.handler = handler
	go s.readLoop()
	return s
}

// NewIdle returns a session over ch whose read loop has not started, so
// that a handler that needs the session can be built first; Start starts it.
func NewIdle(ch Channel) *Session { return newSession(ch) }

// Start installs handler and starts the read loop of a session made with
// NewIdle. It must be called once.
func (s *Session) Start(handler FrameHandler) {
	s.SetHandler(handler)
	go s.readLoop()
}

// newSession returns a session whose read loop is not started yet.
func newSession(ch Channel) *Session {
	s := &Session{ch: ch, closed: make(chan struct{})}
	s.tun = newTunnelConn(s)
	return s
}

// DropTunnel makes a session made with NewIdle carry no tunnel: TUNNEL_DATA
// on correlation id 0 is dropped instead of queued for Tunnel(), for a
// connection nobody reads a tunnel from (the router socket), where queued
// data would only grow (docs/dbe.md §8). Call it before Start.
func (s *Session) DropTunnel() { s.noTunnel = true }

// SetHandler installs the frame handler.
func (s *Session) SetHandler(h FrameHandler) {
	s.mu.Lock()
	s.handler = h
	s.mu.Unlock()
}

// Peer is the authenticated peer.
func (s *Session) Peer() Peer { return s.ch.Peer() }

// Send writes one frame. The frame is encoded before Send returns, so the
// caller may reuse f and its buffers afterwards.
func (s *Session) Send(f *dbe.Frame) error {
	select {
	case <-s.closed:
		return s.Err()
	default:
	}
	if err := s.ch.WriteFrame(f); err != nil {
		s.fail(err)
		return err
	}
	return nil
}

// TrySend writes f unless the peer has so much unread that writing would
// block: then it returns dbe.ErrWouldBlock and writes nothing. Channels
// without the TryWriter capability fall back to Send.
func (s *Session) TrySend(f *dbe.Frame) error {
	select {
	case <-s.closed:
		return s.Err()
	default:
	}
	tw, ok := s.ch.(TryWriter)
	if !ok {
		return s.Send(f)
	}
	err := tw.TryWriteFrame(f)
	if err != nil && !errors.Is(err, dbe.ErrWouldBlock) {
		s.fail(err)
	}
	return err
}

// Tunnel returns the byte stream carried in TUNNEL_DATA frames on
// correlation id 0.
func (s *Session) Tunnel() net.Conn { return s.tun }

// Done is closed when the session ends.
func (s *Session) Done() <-chan struct{} { return s.closed }

// Err is why the session ended (io.EOF for an orderly close by the peer).
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		return ErrClosed
	}
	return s.err
}

// Close ends the session and closes the connection.
func (s *Session) Close() error {
	s.fail(ErrClosed)
	return nil
}

func (s *Session) fail(err error) {
	s.once.Do(func() {
		s.mu.Lock()
		s.err = err
		s.mu.Unlock()
		close(s.closed)
		_ = s.ch.Close()
		s.tun.closeRead()
	})
}

func (s *Session) readLoop() {
	for {
		f, err := s.ch.ReadFrame()
		if err != nil {
			var fe *dbe.FrameError
			if errors.As(err, &fe) {
				s.deliver(&dbe.Frame{Type: fe.Header.Type, Flags: fe.Header.Flags, CorrelationID: fe.Header.CorrelationID}, fe)
				continue
			}
			s.fail(err)
			return
		}
		if f.Type == dbe.MsgTunnelData && f.CorrelationID == 0 {
			if !s.noTunnel {
				s.tun.push(f.Payload)
			}
			continue
		}
		if f.Type == dbe.MsgClose {
			// The peer sends no new requests but may still finish the
			// responses it owes (docs/dbe.md §8): read on until it hangs up.
			continue
		}
		s.deliver(f, nil)
	}
}

func (s *Session) deliver(f *dbe.Frame, fe *dbe.FrameError) {
	s.mu.Lock()
	h := s.handler
	s.mu.Unlock()
	if h == nil {
		return
	}
	if fe != nil {
		h(f, fe)
		return
	}
	h(f, nil)
}

// tunnelConn is the net.Conn view of TUNNEL_DATA frames.
type tunnelConn struct {
	s *Session

	mu       sync.Mutex
	cond     *sync.Cond
	queue    [][]byte
	eof      bool
	deadline time.Time
	timer    *time.Timer
}

func newTunnelConn(s *Session) *tunnelConn {
	t := &tunnelConn{s: s}
	t.cond = sync.NewCond(&t.mu)
	return t
}

func (t *tunnelConn) push(b []byte) {
	if len(b) == 0 {
		return
	}
	t.mu.Lock()
	t.queue = append(t.queue, b)
	t.mu.Unlock()
	t.cond.Broadcast()
}

func (t *tunnelConn) closeRead() {
	t.mu.Lock()
	t.eof = true
	t.mu.Unlock()
	t.cond.Broadcast()
}

type timeoutError struct{}

func (timeoutError) Error() string   { return "session: tunnel read timeout" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }

func (t *tunnelConn) Read(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.queue) == 0 {
		if t.eof {
			return 0, io.EOF
		}
		if !t.deadline.IsZero() && !time.Now().Before(t.deadline) {
			return 0, timeoutError{}
		}
		t.cond.Wait()
	}
	n := copy(p, t.queue[0])
	if n == len(t.queue[0]) {
		t.queue[0] = nil
		t.queue = t.queue[1:]
	} else {
		t.queue[0] = t.queue[0][n:]
	}
	return n, nil
}

// maxTunnelChunk keeps tunnel frames well under any frame limit.
const maxTunnelChunk = 256 << 10

func (t *tunnelConn) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := p[:min(len(p), maxTunnelChunk)]
		// The frame is encoded before Send returns, so p may be reused.
		if err := t.s.Send(&dbe.Frame{Type: dbe.MsgTunnelData, Payload: c}); err != nil {
			return n, err
		}
		n += len(c)
		p = p[len(c):]
	}
	return n, nil
}

func (t *tunnelConn) Close() error                     { return t.s.Close() }
func (t *tunnelConn) LocalAddr() net.Addr              { return tunnelAddr{} }
func (t *tunnelConn) RemoteAddr() net.Addr             { return tunnelAddr{} }
func (t *tunnelConn) SetWriteDeadline(time.Time) error { return nil }
func (t *tunnelConn) SetDeadline(d time.Time) error    { return t.SetReadDeadline(d) }
func (t *tunnelConn) SetReadDeadline(d time.Time) error {
	t.mu.Lock()
	t.deadline = d
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	if !d.IsZero() {
		t.timer = time.AfterFunc(time.Until(d), t.cond.Broadcast)
	}
	t.mu.Unlock()
	t.cond.Broadcast()
	return nil
}

type tunnelAddr struct{}

func (tunnelAddr) Network() string { return "dbe" }
func (tunnelAddr) String() string  { return "dbe-tunnel" }
