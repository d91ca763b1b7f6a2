package session

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
)

// Peer is the authenticated identity of the other end.
type Peer struct {
	Name string // e.g. the plugin's name or "dsmil-host"
	Role string // "host", "plugin", "client"
}

// Channel carries whole frames over an authenticated connection.
// ReadFrame is called from one goroutine; WriteFrame is safe for concurrent
// use and encodes (or copies) the frame before it returns, so callers may
// reuse the frame and its buffers.
type Channel interface {
	ReadFrame() (*dbe.Frame, error)
	WriteFrame(*dbe.Frame) error
	Peer() Peer
	Close() error
}

// Handshaker authenticates a fresh connection from either end.
type Handshaker interface {
	Client(ctx context.Context, conn net.Conn) (Channel, error)
	Server(ctx context.Context, conn net.Conn) (Channel, error)
}

// TryWriter is the optional Channel capability of writing without ever
// blocking: it returns dbe.ErrWouldBlock when the peer is not reading.
type TryWriter interface {
	TryWriteFrame(*dbe.Frame) error
}

// PlainChannel is a Channel of unsealed frames over conn.
type PlainChannel struct {
	conn net.Conn
	r    *dbe.Reader
	w    *dbe.Writer
	peer Peer
}

// NewPlainChannel frames conn without sealing. maxFrame <= 0 means the
// DBE default.
func NewPlainChannel(conn net.Conn, maxFrame int, peer Peer) *PlainChannel {
	return &PlainChannel{conn: conn, r: dbe.NewReader(conn, maxFrame), w: dbe.NewWriter(conn), peer: peer}
}

func (c *PlainChannel) ReadFrame() (*dbe.Frame, error) { return c.r.ReadFrame() }
func (c *PlainChannel) WriteFrame(f *dbe.Frame) error  { return c.w.WriteFrame(f) }

// TryWriteFrame writes f unless that would block (dbe.ErrWouldBlock).
func (c *PlainChannel) TryWriteFrame(f *dbe.Frame) error { return c.w.TryWriteFrame(f) }

func (c *PlainChannel) Peer() Peer { return c.peer }

// Close writes out pending frames (waiting at most a second) and closes the
// connection.
func (c *PlainChannel) Close() error {
	_ = c.conn.SetWriteDeadline(time.Now().Add(time.Second))
	_ = c.w.Flush()
	return c.conn.Close()
}

func (c *PlainChannel) setPeer(p Peer) { c.peer = p }

var _ Channel = (*PlainChannel)(nil)

// ErrAuth reports a failed handshake: the peer could not prove its
// identity, spoke something other than DBE, or broke the handshake
// protocol.
var ErrAuth = errors.New("session: peer authentication failed")
