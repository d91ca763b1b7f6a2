package session

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/mlkem"
	"crypto/rand"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"net"
	"slices"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// Group is the key exchange of the PQ handshake: ML-KEM-1024 always, plus
// one classical ECDH group (docs/dbe.md §12.4).
type Group uint8

// Key exchange groups.
const (
	// GroupMLKEM1024X25519 is ML-KEM-1024 + X25519, the default.
	GroupMLKEM1024X25519 Group = 1
	// GroupMLKEM1024P384 is ML-KEM-1024 + ECDH P-384, for CNSA-style
	// deployments where every algorithm must be NIST-approved.
	GroupMLKEM1024P384 Group = 2
)

func (g Group) String() string {
	switch g {
	case GroupMLKEM1024X25519:
		return "ML-KEM-1024+X25519"
	case GroupMLKEM1024P384:
		return "ML-KEM-1024+P-384"
	}
	return fmt.Sprintf("group(%d)", uint8(g))
}

func (g Group) curve() ecdh.Curve {
	switch g {
	case GroupMLKEM1024X25519:
		return ecdh.X25519()
	case GroupMLKEM1024P384:
		return ecdh.P384()
	}
	return nil
}

// ecdhLen is the size of the group's ECDH public key.
func (g Group) ecdhLen() int {
	switch g {
	case GroupMLKEM1024X25519:
		return 32
	case GroupMLKEM1024P384:
		return 97 // uncompressed point
	}
	return 0
}

// Auth is the identity half of a handshake's configuration, shared by PQ
// and TLS: who this end is and which peers it accepts.
type Auth struct {
	// Identity is this end's key and the bundle that vouches for it.
	// Required.
	Identity *identity.Identity
	// Roots are the keys trusted to issue the peer's bundle: the operator
	// root(s), or the host's own key for the plugins it issues identities
	// to. Required.
	Roots []*identity.PublicKey
	// PeerName, when set, is the only peer name accepted.
	PeerName string
	// PeerRoles, when set, are the only peer roles accepted.
	PeerRoles []string
	// Authorize, when set, is a last check of the peer's verified bundle.
	Authorize func(*identity.Bundle) error
	// Now is the clock bundles are checked against. Default time.Now.
	Now func() time.Time
}

func (a *Auth) check() error {
	if a.Identity == nil {
		return errors.New("session: no identity")
	}
	if err := a.Identity.Check(); err != nil {
		return fmt.Errorf("session: %w", err)
	}
	if len(a.Roots) == 0 {
		return errors.New("session: no trusted roots")
	}
	return nil
}

func (a *Auth) now() time.Time {
	if a.Now != nil {
		return a.Now()
	}
	return time.Now()
}

// verifyPeer checks a peer's bundle: issued by a root, valid now, and
// allowed by PeerName, PeerRoles and Authorize.
func (a *Auth) verifyPeer(b *identity.Bundle) error {
	if err := identity.VerifyBundle(b, a.Roots, a.now()); err != nil {
		return err
	}
	if a.PeerName != "" && b.Name != a.PeerName {
		return fmt.Errorf("%w: peer is %q, want %q", ErrPeerNotAllowed, b.Name, a.PeerName)
	}
	if len(a.PeerRoles) > 0 && !slices.Contains(a.PeerRoles, b.Role) {
		return fmt.Errorf("%w: peer %q has role %q, want one of %v", ErrPeerNotAllowed, b.Name, b.Role, a.PeerRoles)
	}
	if a.Authorize != nil {
		if err := a.Authorize(b); err != nil {
			return fmt.Errorf("%w: %w", ErrPeerNotAllowed, err)
		}
	}
	return nil
}

// ErrPeerNotAllowed reports an authenticated peer that this end's
// configuration does not accept (name, role or Authorize).
var ErrPeerNotAllowed = errors.New("session: peer not allowed")

// PQ is the post-quantum handshake of docs/dbe.md §12.4: three HANDSHAKE
// frames that mutually authenticate both ends with ML-DSA-87-signed
// identity bundles and agree on keys with ML-KEM-1024 + X25519 (or P-384),
// after which every frame is sealed with AES-256-GCM (SealedChannel).
type PQ struct {
	Auth
	// Groups: a client offers Groups[0]; a server accepts any group listed.
	// Default: GroupMLKEM1024X25519 for a client, both groups for a server.
	Groups []Group
	// Timeout bounds the whole handshake. Default 10 s.
	Timeout time.Duration
	// MaxFrame is the frame size limit after the handshake (of the frame
	// inside the seal). 0 means the DBE default.
	MaxFrame int

	ent         entropy // test hook: deterministic randomness for vectors
	rekeyFrames uint64  // test hook: key update interval; 0 = the spec's
	rekeyBytes  uint64
}

var _ Handshaker = (*PQ)(nil)

// Wire constants of the handshake (docs/dbe.md §12.4).
const (
	pqVersion      = 1
	capSealed      = 0x0001 // frames after the handshake are sealed (§12.6)
	capsKnown      = capSealed
	randomSize     = 32
	macSize        = sha512.Size384
	handshakeLimit = 64 << 10 // frame size limit during the handshake

	msgClientHello  = 0x01
	msgServerHello  = 0x02
	msgClientFinish = 0x03

	ctxServerSig = "dsmil-pq1-server"
	ctxClientSig = "dsmil-pq1-client"
	labelPrefix  = "DSMIL-PQ1 "
)

// Key update intervals (§12.7): a direction's key is replaced after 2^32
// frames or 2^36 bytes (64 GiB) of sealed frames, whichever comes first.
const (
	RekeyFrames = 1 << 32
	RekeyBytes  = 1 << 36
)

// entropy is where the handshake gets its randomness; tests substitute a
// deterministic one to produce the vectors.
type entropy interface {
	random(b []byte)
	kemKey() (*mlkem.DecapsulationKey1024, error)
	encapsulate(ek *mlkem.EncapsulationKey1024) (shared, ct []byte)
	ecdhKey(c ecdh.Curve) (*ecdh.PrivateKey, error)
	sign(k *identity.PrivateKey, context string, msg []byte) ([]byte, error)
}

type sysEntropy struct{}

func (sysEntropy) random(b []byte) { _, _ = rand.Read(b) }
func (sysEntropy) kemKey() (*mlkem.DecapsulationKey1024, error) {
	return mlkem.GenerateKey1024()
}
func (sysEntropy) encapsulate(ek *mlkem.EncapsulationKey1024) ([]byte, []byte) {
	return ek.Encapsulate()
}
func (sysEntropy) ecdhKey(c ecdh.Curve) (*ecdh.PrivateKey, error) { return c.GenerateKey(rand.Reader) }
func (sysEntropy) sign(k *identity.PrivateKey, context string, msg []byte) ([]byte, error) {
	return k.Sign(context, msg)
}

func (h *PQ) entropy() entropy {
	if h.ent != nil {
		return h.ent
	}
	return sysEntropy{}
}

func (h *PQ) check() error {
	if err := h.Auth.check(); err != nil {
		return err
	}
	for _, g := range h.Groups {
		if g.curve() == nil {
			return fmt.Errorf("session: unknown key exchange %s", g)
		}
	}
	return nil
}

func (h *PQ) clientGroup() Group {
	if len(h.Groups) > 0 {
		return h.Groups[0]
	}
	return GroupMLKEM1024X25519
}

func (h *PQ) accepts(g Group) bool {
	if len(h.Groups) == 0 {
		return g.curve() != nil
	}
	return slices.Contains(h.Groups, g)
}

// --- messages (§12.4) ---

// clientHello = 0x01 || u8(version) || u8(group) || u16(caps) ||
// random(32) || vec16(kem_ek) || vec16(ecdh_pub)
type clientHello struct {
	group   Group
	caps    uint16
	random  []byte
	kemEK   []byte
	ecdhPub []byte
}

func (m *clientHello) marshal() []byte {
	b := []byte{msgClientHello, pqVersion, byte(m.group)}
	b = binary.BigEndian.AppendUint16(b, m.caps)
	b = append(b, m.random...)
	b = appendVec16(b, m.kemEK)
	return appendVec16(b, m.ecdhPub)
}

func parseClientHello(b []byte) (*clientHello, error) {
	p := newCursor(b)
	typ, ver := p.u8(), p.u8()
	m := &clientHello{group: Group(p.u8()), caps: p.u16(), random: p.take(randomSize)}
	m.kemEK, m.ecdhPub = p.vec16(), p.vec16()
	switch {
	case !p.end() || typ != msgClientHello:
		return nil, errMalformed("ClientHello")
	case ver != pqVersion:
		return nil, fmt.Errorf("%w: ClientHello version %d, want %d", ErrAuth, ver, pqVersion)
	case m.group.curve() == nil:
		return nil, fmt.Errorf("%w: ClientHello offers unknown %s", ErrAuth, m.group)
	case len(m.kemEK) != mlkem.EncapsulationKeySize1024 || len(m.ecdhPub) != m.group.ecdhLen():
		return nil, errMalformed("ClientHello key share")
	}
	return m, nil
}

// serverHello = body || vec16(signature) || mac(48), where
// body = 0x02 || u8(version) || u8(group) || u16(caps) || random(32) ||
// vec16(kem_ct) || vec16(ecdh_pub) || vec16(bundle)
type serverHello struct {
	group   Group
	caps    uint16
	random  []byte
	kemCT   []byte
	ecdhPub []byte
	bundle  []byte
	sig     []byte
	mac     []byte
	bodyLen int // bytes of body in the encoding
}

func (m *serverHello) marshalBody() []byte {
	b := []byte{msgServerHello, pqVersion, byte(m.group)}
	b = binary.BigEndian.AppendUint16(b, m.caps)
	b = append(b, m.random...)
	b = appendVec16(b, m.kemCT)
	b = appendVec16(b, m.ecdhPub)
	return appendVec16(b, m.bundle)
}

func parseServerHello(b []byte) (*serverHello, error) {
	p := newCursor(b)
	typ, ver := p.u8(), p.u8()
	m := &serverHello{group: Group(p.u8()), caps: p.u16(), random: p.take(randomSize)}
	m.kemCT, m.ecdhPub, m.bundle = p.vec16(), p.vec16(), p.vec16()
	m.bodyLen = len(b) - len(p.b)
	m.sig, m.mac = p.vec16(), p.take(macSize)
	switch {
	case !p.end() || typ != msgServerHello:
		return nil, errMalformed("ServerHello")
	case ver != pqVersion:
		return nil, fmt.Errorf("%w: ServerHello version %d, want %d", ErrAuth, ver, pqVersion)
	case m.group.curve() == nil:
		return nil, fmt.Errorf("%w: ServerHello names unknown %s", ErrAuth, m.group)
	case len(m.kemCT) != mlkem.CiphertextSize1024 || len(m.ecdhPub) != m.group.ecdhLen() || len(m.sig) != identity.SignatureSize:
		return nil, errMalformed("ServerHello field sizes")
	}
	return m, nil
}

// clientFinish = body || vec16(signature) || mac(48), where
// body = 0x03 || vec16(bundle)
type clientFinish struct {
	bundle  []byte
	sig     []byte
	mac     []byte
	bodyLen int
}

func (m *clientFinish) marshalBody() []byte {
	return appendVec16([]byte{msgClientFinish}, m.bundle)
}

func parseClientFinish(b []byte) (*clientFinish, error) {
	p := newCursor(b)
	typ := p.u8()
	m := &clientFinish{bundle: p.vec16()}
	m.bodyLen = len(b) - len(p.b)
	m.sig, m.mac = p.vec16(), p.take(macSize)
	if !p.end() || typ != msgClientFinish || len(m.sig) != identity.SignatureSize {
		return nil, errMalformed("ClientFinish")
	}
	return m, nil
}

func errMalformed(what string) error { return fmt.Errorf("%w: malformed %s", ErrAuth, what) }

func appendVec16(b, v []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(v)))
	return append(b, v...)
}

// cursor reads big-endian fields; after a short read everything is zero
// and end reports false.
type cursor struct {
	b  []byte
	ok bool
}

func newCursor(b []byte) *cursor { return &cursor{b: b, ok: true} }

func (c *cursor) take(n int) []byte {
	if !c.ok || n > len(c.b) {
		c.ok = false
		return nil
	}
	v := c.b[:n:n]
	c.b = c.b[n:]
	return v
}

func (c *cursor) u8() uint8 {
	if v := c.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (c *cursor) u16() uint16 {
	if v := c.take(2); v != nil {
		return binary.BigEndian.Uint16(v)
	}
	return 0
}

func (c *cursor) vec16() []byte { return c.take(int(c.u16())) }
func (c *cursor) end() bool     { return c.ok && len(c.b) == 0 }

// --- key schedule (§12.5) ---

// extract is HKDF-Extract(SHA-384, salt, ikm).
func extract(salt, ikm []byte) []byte {
	prk, err := hkdf.Extract(sha512.New384, ikm, salt)
	if err != nil {
		panic(err) // unreachable: SHA-384 accepts any input
	}
	return prk
}

// expand is HKDF-Expand(SHA-384, secret, "DSMIL-PQ1 " + label, n).
func expand(secret []byte, label string, n int) []byte {
	out, err := hkdf.Expand(sha512.New384, secret, labelPrefix+label, n)
	if err != nil {
		panic(err) // unreachable: n ≤ 48 < 255·48
	}
	return out
}

// finishedMAC is HMAC-SHA-384(key, transcript hash).
func finishedMAC(key, th []byte) []byte {
	m := hmac.New(sha512.New384, key)
	m.Write(th)
	return m.Sum(nil)
}

// schedule holds the secrets of one handshake.
type schedule struct {
	ss         []byte // ss_kem || ss_ecdh
	th1, th3   []byte // transcript hashes the secrets are salted with
	hs         []byte // handshake secret
	finS, finC []byte
	ms         []byte // main secret
	c2s, s2c   []byte // traffic secrets
}

func (s *schedule) handshake(th1 []byte) {
	s.th1 = th1
	s.hs = extract(th1, s.ss)
	s.finS = expand(s.hs, "server finished", macSize)
	s.finC = expand(s.hs, "client finished", macSize)
}

func (s *schedule) traffic(th3 []byte) {
	s.th3 = th3
	s.ms = extract(th3, s.ss)
	s.c2s = expand(s.ms, "c2s", sha512.Size384)
	s.s2c = expand(s.ms, "s2c", sha512.Size384)
}

// --- the two state machines, free of I/O ---

type clientState struct {
	h     *PQ
	ent   entropy
	group Group
	dk    *mlkem.DecapsulationKey1024
	ec    *ecdh.PrivateKey
	tr    hash.Hash // running SHA-384 of the transcript
	sched schedule
	peer  *identity.Bundle
}

func (h *PQ) newClient() (*clientState, []byte, error) {
	c := &clientState{h: h, ent: h.entropy(), group: h.clientGroup()}
	var err error
	if c.dk, err = c.ent.kemKey(); err != nil {
		return nil, nil, err
	}
	if c.ec, err = c.ent.ecdhKey(c.group.curve()); err != nil {
		return nil, nil, err
	}
	m := &clientHello{group: c.group, caps: capSealed, random: make([]byte, randomSize),
		kemEK: c.dk.EncapsulationKey().Bytes(), ecdhPub: c.ec.PublicKey().Bytes()}
	c.ent.random(m.random)
	ch := m.marshal()
	c.tr = sha512.New384()
	c.tr.Write(ch)
	return c, ch, nil
}

// serverHello processes the ServerHello and returns the ClientFinish.
func (c *clientState) serverHello(b []byte) ([]byte, error) {
	sh, err := parseServerHello(b)
	if err != nil {
		return nil, err
	}
	if sh.group != c.group {
		return nil, fmt.Errorf("%w: server chose %s, client offered %s", ErrAuth, sh.group, c.group)
	}
	if sh.caps&^capSealed != 0 || sh.caps&capSealed == 0 {
		return nil, fmt.Errorf("%w: server capabilities 0x%04x", ErrAuth, sh.caps)
	}
	ssKEM, err := c.dk.Decapsulate(sh.kemCT)
	if err != nil {
		return nil, fmt.Errorf("%w: ML-KEM: %v", ErrAuth, err)
	}
	pub, err := c.group.curve().NewPublicKey(sh.ecdhPub)
	if err != nil {
		return nil, fmt.Errorf("%w: ECDH share: %v", ErrAuth, err)
	}
	ssEC, err := c.ec.ECDH(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: ECDH: %v", ErrAuth, err)
	}
	c.sched.ss = append(ssKEM, ssEC...)
	c.tr.Write(b[:sh.bodyLen])
	th1 := c.tr.Sum(nil)
	c.sched.handshake(th1)
	c.tr.Write(b[sh.bodyLen : len(b)-macSize])
	macIn := c.tr.Sum(nil)
	c.tr.Write(sh.mac)
	if !hmac.Equal(sh.mac, finishedMAC(c.sched.finS, macIn)) {
		return nil, fmt.Errorf("%w: server finished MAC does not verify (tampered handshake?)", ErrAuth)
	}
	peer, err := identity.ParseBundle(sh.bundle)
	if err != nil {
		return nil, fmt.Errorf("%w: server bundle: %w", ErrAuth, err)
	}
	if err := c.h.verifyPeer(peer); err != nil {
		return nil, fmt.Errorf("%w: server bundle: %w", ErrAuth, err)
	}
	if !peer.PublicKey.Verify(ctxServerSig, th1, sh.sig) {
		return nil, fmt.Errorf("%w: server %q transcript signature does not verify", ErrAuth, peer.Name)
	}
	c.peer = peer

	cf := &clientFinish{bundle: c.h.Identity.Bundle.Marshal()}
	out := cf.marshalBody()
	c.tr.Write(out)
	th2 := c.tr.Sum(nil)
	if cf.sig, err = c.ent.sign(c.h.Identity.Key, ctxClientSig, th2); err != nil {
		return nil, err
	}
	n := len(out)
	out = appendVec16(out, cf.sig)
	c.tr.Write(out[n:])
	mac := finishedMAC(c.sched.finC, c.tr.Sum(nil))
	c.tr.Write(mac)
	c.sched.traffic(c.tr.Sum(nil))
	return append(out, mac...), nil
}

type serverState struct {
	h     *PQ
	ent   entropy
	tr    hash.Hash // running SHA-384 of the transcript
	sched schedule
	peer  *identity.Bundle
}

// serverHello processes a ClientHello and returns the server state and
// the ServerHello.
func (h *PQ) serverHello(b []byte) (*serverState, []byte, error) {
	s := &serverState{h: h, ent: h.entropy(), tr: sha512.New384()}
	m, err := parseClientHello(b)
	if err != nil {
		return nil, nil, err
	}
	if !h.accepts(m.group) {
		return nil, nil, fmt.Errorf("%w: client offered %s, not accepted here", ErrAuth, m.group)
	}
	if m.caps&capSealed == 0 {
		return nil, nil, fmt.Errorf("%w: client does not seal frames (capabilities 0x%04x)", ErrAuth, m.caps)
	}
	ek, err := mlkem.NewEncapsulationKey1024(m.kemEK)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: ML-KEM key: %v", ErrAuth, err)
	}
	pub, err := m.group.curve().NewPublicKey(m.ecdhPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: ECDH share: %v", ErrAuth, err)
	}
	ec, err := s.ent.ecdhKey(m.group.curve())
	if err != nil {
		return nil, nil, err
	}
	ssEC, err := ec.ECDH(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: ECDH: %v", ErrAuth, err)
	}
	ssKEM, ct := s.ent.encapsulate(ek)
	s.sched.ss = append(ssKEM, ssEC...)

	sh := &serverHello{group: m.group, caps: m.caps & capsKnown, random: make([]byte, randomSize),
		kemCT: ct, ecdhPub: ec.PublicKey().Bytes(), bundle: h.Identity.Bundle.Marshal()}
	s.ent.random(sh.random)
	out := sh.marshalBody()
	s.tr.Write(b)
	s.tr.Write(out)
	th1 := s.tr.Sum(nil)
	s.sched.handshake(th1)
	if sh.sig, err = s.ent.sign(h.Identity.Key, ctxServerSig, th1); err != nil {
		return nil, nil, err
	}
	n := len(out)
	out = appendVec16(out, sh.sig)
	s.tr.Write(out[n:])
	mac := finishedMAC(s.sched.finS, s.tr.Sum(nil))
	s.tr.Write(mac)
	return s, append(out, mac...), nil
}

// clientFinish processes the ClientFinish.
func (s *serverState) clientFinish(b []byte) error {
	cf, err := parseClientFinish(b)
	if err != nil {
		return err
	}
	s.tr.Write(b[:cf.bodyLen])
	th2 := s.tr.Sum(nil)
	s.tr.Write(b[cf.bodyLen : len(b)-macSize])
	macIn := s.tr.Sum(nil)
	s.tr.Write(cf.mac)
	if !hmac.Equal(cf.mac, finishedMAC(s.sched.finC, macIn)) {
		return fmt.Errorf("%w: client finished MAC does not verify (tampered handshake?)", ErrAuth)
	}
	peer, err := identity.ParseBundle(cf.bundle)
	if err != nil {
		return fmt.Errorf("%w: client bundle: %w", ErrAuth, err)
	}
	if err := s.h.verifyPeer(peer); err != nil {
		return fmt.Errorf("%w: client bundle: %w", ErrAuth, err)
	}
	if !peer.PublicKey.Verify(ctxClientSig, th2, cf.sig) {
		return fmt.Errorf("%w: client %q transcript signature does not verify", ErrAuth, peer.Name)
	}
	s.peer = peer
	s.sched.traffic(s.tr.Sum(nil))
	return nil
}

// --- I/O ---

// hsConn is a connection during the handshake: plain DBE frames, with the
// reader kept so that bytes read past the last handshake frame are not lost.
type hsConn struct {
	conn net.Conn
	br   *bufio.Reader
	r    *dbe.Reader
	w    *dbe.Writer
	done func()
}

func beginHandshake(ctx context.Context, conn net.Conn, timeout time.Duration) *hsConn {
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	deadline := time.Now().Add(timeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	br := bufio.NewReaderSize(conn, 64<<10)
	return &hsConn{
		conn: conn, br: br,
		r:    dbe.NewReader(br, handshakeLimit), // shares br: its size is enough
		w:    dbe.NewWriter(conn),
		done: func() { stop(); _ = conn.SetDeadline(time.Time{}) },
	}
}

// send writes one handshake frame and waits until it has been handed to
// the connection, so that nothing the sealed channel writes next can
// overtake it.
func (c *hsConn) send(step string, payload []byte) error {
	err := c.w.WriteFrame(&dbe.Frame{Type: dbe.MsgHandshake, Payload: payload})
	if err == nil {
		err = c.w.Flush()
	}
	if err != nil {
		return fmt.Errorf("%w: send %s: %w", ErrAuth, step, err)
	}
	return nil
}

func (c *hsConn) recv(step string) ([]byte, error) {
	f, err := c.r.ReadFrame()
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrAuth, step, err)
	}
	if f.Type == dbe.MsgClose {
		var cl l7v1.Close
		_ = proto.Unmarshal(f.Payload, &cl)
		return nil, fmt.Errorf("%w: peer closed during the handshake: %s", ErrAuth, cl.GetReason())
	}
	if f.Type != dbe.MsgHandshake || f.CorrelationID != 0 || f.Flags != 0 || len(f.TLVs) != 0 {
		return nil, fmt.Errorf("%w: %s: got %s frame", ErrAuth, step, f.Type)
	}
	return f.Payload, nil
}

// refuse tells the peer (without detail) and closes the connection.
func (c *hsConn) refuse(err error) error {
	b, _ := proto.Marshal(&l7v1.Close{Code: l7v1.ErrorCode_ERROR_CODE_UNAUTHENTICATED, Reason: "authentication failed"})
	if c.w.WriteFrame(&dbe.Frame{Type: dbe.MsgClose, Payload: b}) == nil {
		_ = c.w.Flush()
	}
	_ = c.conn.Close()
	return err
}

func (h *PQ) limits() (frames, bytes uint64) {
	frames, bytes = RekeyFrames, RekeyBytes
	if h.rekeyFrames != 0 {
		frames = h.rekeyFrames
	}
	if h.rekeyBytes != 0 {
		bytes = h.rekeyBytes
	}
	return frames, bytes
}

// Client runs the initiator side of the handshake.
func (h *PQ) Client(ctx context.Context, conn net.Conn) (Channel, error) {
	if err := h.check(); err != nil {
		conn.Close()
		return nil, err
	}
	hc := beginHandshake(ctx, conn, h.Timeout)
	defer hc.done()
	st, ch, err := h.newClient()
	if err != nil {
		conn.Close()
		return nil, err
	}
	if err := hc.send("ClientHello", ch); err != nil {
		conn.Close()
		return nil, err
	}
	sh, err := hc.recv("ServerHello")
	if err != nil {
		return nil, hc.refuse(err)
	}
	cf, err := st.serverHello(sh)
	if err != nil {
		return nil, hc.refuse(err)
	}
	if err := hc.send("ClientFinish", cf); err != nil {
		conn.Close()
		return nil, err
	}
	frames, bytes := h.limits()
	return newSealedChannel(conn, hc.br, st.sched.c2s, st.sched.s2c, st.peer, h.MaxFrame, frames, bytes), nil
}

// Server runs the responder side of the handshake.
func (h *PQ) Server(ctx context.Context, conn net.Conn) (Channel, error) {
	if err := h.check(); err != nil {
		conn.Close()
		return nil, err
	}
	hc := beginHandshake(ctx, conn, h.Timeout)
	defer hc.done()
	ch, err := hc.recv("ClientHello")
	if err != nil {
		return nil, hc.refuse(err)
	}
	st, sh, err := h.serverHello(ch)
	if err != nil {
		return nil, hc.refuse(err)
	}
	if err := hc.send("ServerHello", sh); err != nil {
		conn.Close()
		return nil, err
	}
	cf, err := hc.recv("ClientFinish")
	if err != nil {
		return nil, hc.refuse(err)
	}
	if err := st.clientFinish(cf); err != nil {
		return nil, hc.refuse(err)
	}
	frames, bytes := h.limits()
	return newSealedChannel(conn, hc.br, st.sched.s2c, st.sched.c2s, st.peer, h.MaxFrame, frames, bytes), nil
}
