package session

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// ErrAuth reports a failed handshake: the peer could not prove it holds the
// key, spoke something other than DBE, or broke the handshake protocol.
var ErrAuth = errors.New("session: peer authentication failed")

// KeySize is the size of an interim pre-shared key.
const KeySize = 32

// Interim is a pre-shared-key mutual authentication: both ends prove
// knowledge of a 32-byte key with HMAC-SHA-256 over fresh nonces and both
// names. It authenticates but does not encrypt. The host and the SDK no
// longer use it — every DBE socket runs PQ (docs/dbe.md §12) — it remains
// for cheap in-process session pairs in tests.
type Interim struct {
	Key      []byte        // KeySize bytes, shared by both ends
	Name     string        // this end's name, sent to the peer
	Role     string        // this end's role
	Timeout  time.Duration // whole-handshake deadline; 0 means 10 s
	MaxFrame int           // frame limit after the handshake; 0 = DBE default
}

var _ Handshaker = (*Interim)(nil)

const (
	interimLabel = "dsmil-interim-v1"
	nonceSize    = 32
	maxNameLen   = 255
)

// interim handshake message: step(1) nonce(32) nameLen(1) name roleLen(1) role mac(0|32)
type helloMsg struct {
	step       byte
	nonce      []byte
	name, role string
	mac        []byte
}

func (m *helloMsg) marshal() []byte {
	b := []byte{m.step}
	b = append(b, m.nonce...)
	b = append(b, byte(len(m.name)))
	b = append(b, m.name...)
	b = append(b, byte(len(m.role)))
	b = append(b, m.role...)
	return append(b, m.mac...)
}

func parseHello(b []byte, step byte, withMAC bool) (*helloMsg, error) {
	m := &helloMsg{}
	if len(b) < 1+nonceSize+2 || b[0] != step {
		return nil, fmt.Errorf("%w: malformed handshake step %d", ErrAuth, step)
	}
	m.step = b[0]
	m.nonce = b[1 : 1+nonceSize]
	rest := b[1+nonceSize:]
	for _, dst := range []*string{&m.name, &m.role} {
		if len(rest) < 1 || len(rest) < 1+int(rest[0]) {
			return nil, fmt.Errorf("%w: malformed handshake step %d", ErrAuth, step)
		}
		*dst = string(rest[1 : 1+rest[0]])
		rest = rest[1+rest[0]:]
	}
	want := 0
	if withMAC {
		want = sha256.Size
	}
	if len(rest) != want {
		return nil, fmt.Errorf("%w: malformed handshake step %d", ErrAuth, step)
	}
	m.mac = rest
	return m, nil
}

func (h *Interim) mac(side string, c, s *helloMsg) []byte {
	m := hmac.New(sha256.New, h.Key)
	m.Write([]byte(interimLabel + " " + side))
	for _, x := range []*helloMsg{c, s} {
		m.Write(x.nonce)
		var n [2]byte
		binary.BigEndian.PutUint16(n[:], uint16(len(x.name)))
		m.Write(n[:])
		m.Write([]byte(x.name))
		binary.BigEndian.PutUint16(n[:], uint16(len(x.role)))
		m.Write(n[:])
		m.Write([]byte(x.role))
	}
	return m.Sum(nil)
}

func (h *Interim) check() error {
	if len(h.Key) != KeySize {
		return fmt.Errorf("session: interim key is %d bytes, want %d", len(h.Key), KeySize)
	}
	if len(h.Name) > maxNameLen || len(h.Role) > maxNameLen {
		return fmt.Errorf("session: name or role longer than %d bytes", maxNameLen)
	}
	return nil
}

func (h *Interim) begin(ctx context.Context, conn net.Conn) (*PlainChannel, func(), error) {
	if err := h.check(); err != nil {
		return nil, nil, err
	}
	d := h.Timeout
	if d <= 0 {
		d = 10 * time.Second
	}
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	ch := NewPlainChannel(conn, 64<<10, Peer{})
	return ch, func() { stop(); _ = conn.SetDeadline(time.Time{}) }, nil
}

func nonce() []byte {
	b := make([]byte, nonceSize)
	_, _ = rand.Read(b)
	return b
}

func sendStep(ch *PlainChannel, m *helloMsg) error {
	return ch.WriteFrame(&dbe.Frame{Type: dbe.MsgHandshake, Payload: m.marshal()})
}

func recvStep(ch *PlainChannel, step byte, withMAC bool) (*helloMsg, error) {
	f, err := ch.ReadFrame()
	if err != nil {
		return nil, fmt.Errorf("%w: step %d: %w", ErrAuth, step, err)
	}
	if f.Type == dbe.MsgClose {
		var c l7v1.Close
		_ = proto.Unmarshal(f.Payload, &c)
		return nil, fmt.Errorf("%w: peer closed: %s", ErrAuth, c.GetReason())
	}
	if f.Type != dbe.MsgHandshake || f.CorrelationID != 0 {
		return nil, fmt.Errorf("%w: step %d: got %s", ErrAuth, step, f.Type)
	}
	return parseHello(f.Payload, step, withMAC)
}

// refuse tells the peer why and closes the connection.
func refuse(ch *PlainChannel, err error) error {
	b, _ := proto.Marshal(&l7v1.Close{Code: l7v1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, Reason: "authentication failed"})
	_ = ch.WriteFrame(&dbe.Frame{Type: dbe.MsgClose, Payload: b})
	_ = ch.Close()
	return err
}

// Client runs the initiator side.
func (h *Interim) Client(ctx context.Context, conn net.Conn) (Channel, error) {
	ch, done, err := h.begin(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	defer done()
	c := &helloMsg{step: 1, nonce: nonce(), name: h.Name, role: h.Role}
	if err := sendStep(ch, c); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %w", ErrAuth, err)
	}
	s, err := recvStep(ch, 2, true)
	if err != nil {
		return nil, refuse(ch, err)
	}
	if !hmac.Equal(s.mac, h.mac("server", c, s)) {
		return nil, refuse(ch, fmt.Errorf("%w: server %q does not hold the key", ErrAuth, s.name))
	}
	if err := sendStep(ch, &helloMsg{step: 3, nonce: make([]byte, nonceSize), mac: h.mac("client", c, s)}); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return h.final(ch, conn, s), nil
}

// Server runs the responder side.
func (h *Interim) Server(ctx context.Context, conn net.Conn) (Channel, error) {
	ch, done, err := h.begin(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, err
	}
	defer done()
	c, err := recvStep(ch, 1, false)
	if err != nil {
		return nil, refuse(ch, err)
	}
	s := &helloMsg{step: 2, nonce: nonce(), name: h.Name, role: h.Role}
	s.mac = h.mac("server", c, s)
	if err := sendStep(ch, s); err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %w", ErrAuth, err)
	}
	fin, err := recvStep(ch, 3, true)
	if err != nil {
		return nil, refuse(ch, err)
	}
	if !hmac.Equal(fin.mac, h.mac("client", c, s)) {
		return nil, refuse(ch, fmt.Errorf("%w: client %q does not hold the key", ErrAuth, c.name))
	}
	return h.final(ch, conn, c), nil
}

// final returns the post-handshake channel. The handshake channel's reader
// may have buffered bytes past the last handshake frame, so it is reused.
func (h *Interim) final(ch *PlainChannel, conn net.Conn, peer *helloMsg) Channel {
	if h.MaxFrame != 64<<10 {
		ch.r.SetMaxFrame(h.MaxFrame)
	}
	ch.setPeer(Peer{Name: peer.name, Role: peer.role})
	return ch
}
