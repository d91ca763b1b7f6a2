package session

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"google.golang.org/grpc/credentials"
)

// pki is a test operator root with a host and a plugin identity.
type pki struct {
	root         *identity.PrivateKey
	roots        []*identity.PublicKey
	host, plugin *identity.Identity
}

func seedKey(t testing.TB, b byte) *identity.PrivateKey {
	t.Helper()
	k, err := identity.NewKeyFromSeed(bytes.Repeat([]byte{b}, identity.SeedSize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func issue(t testing.TB, root, k *identity.PrivateKey, name, role string, from, to time.Time) *identity.Identity {
	t.Helper()
	b := &identity.Bundle{Name: name, Role: role, PublicKey: k.Public(), NotBefore: from, Expiry: to}
	if err := b.Sign(root); err != nil {
		t.Fatal(err)
	}
	return &identity.Identity{Key: k, Bundle: b}
}

var (
	pkiOnce sync.Once
	testPKI *pki
)

// newPKI returns the shared test PKI (keys are deterministic; bundles are
// valid from an hour ago for a day).
func newPKI(t testing.TB) *pki {
	pkiOnce.Do(func() {
		root := seedKey(t, 1)
		now := time.Now()
		testPKI = &pki{
			root: root, roots: []*identity.PublicKey{root.Public()},
			host:   issue(t, root, seedKey(t, 2), "dsmil-host", "host", now.Add(-time.Hour), now.Add(24*time.Hour)),
			plugin: issue(t, root, seedKey(t, 3), "echo", "plugin", now.Add(-time.Hour), now.Add(24*time.Hour)),
		}
	})
	return testPKI
}

func (p *pki) client() *PQ { return &PQ{Auth: Auth{Identity: p.host, Roots: p.roots}} }
func (p *pki) server() *PQ { return &PQ{Auth: Auth{Identity: p.plugin, Roots: p.roots}} }

// pqHandshake runs client and server over a Unix socket pair; wrap, when
// set, wraps the client's (c) or server's (s) end.
func pqHandshake(t *testing.T, ch, sh Handshaker, wrapC, wrapS func(net.Conn) net.Conn) (Channel, Channel, error, error) {
	t.Helper()
	c, s := unixPair(t)
	if wrapC != nil {
		c = wrapC(c)
	}
	if wrapS != nil {
		s = wrapS(s)
	}
	return bothEnds(t,
		func(ctx context.Context) (Channel, error) { return sh.Server(ctx, s) },
		func(ctx context.Context) (Channel, error) { return ch.Client(ctx, c) })
}

func TestPQHandshake(t *testing.T) {
	p := newPKI(t)
	for _, g := range []Group{GroupMLKEM1024X25519, GroupMLKEM1024P384} {
		t.Run(g.String(), func(t *testing.T) {
			var tap, discard bytes.Buffer
			cl := p.client()
			cl.Groups = []Group{g}
			cch, sch, cerr, serr := pqHandshake(t, cl, p.server(),
				func(c net.Conn) net.Conn { return &tapConn{Conn: c, w: &tap, r: &discard} }, nil)
			if cerr != nil || serr != nil {
				t.Fatalf("client %v, server %v", cerr, serr)
			}
			if cch.Peer() != (Peer{Name: "echo", Role: "plugin"}) || sch.Peer() != (Peer{Name: "dsmil-host", Role: "host"}) {
				t.Fatalf("peers %+v %+v", cch.Peer(), sch.Peer())
			}
			secret := []byte("a secret prompt that must not appear on the wire")
			for i := range 3 {
				f := &dbe.Frame{Type: dbe.MsgChatReq, CorrelationID: uint64(i + 1), Payload: secret}
				f.SetTenantID("SOC_TEAM_ALPHA")
				if err := cch.WriteFrame(f); err != nil {
					t.Fatal(err)
				}
				got, err := sch.ReadFrame()
				if err != nil || got.CorrelationID != uint64(i+1) || !bytes.Equal(got.Payload, secret) {
					t.Fatalf("frame %d: %v %v", i, got, err)
				}
				if tn, _ := got.TenantID(); tn != "SOC_TEAM_ALPHA" {
					t.Fatalf("tenant %q", tn)
				}
				if err := sch.WriteFrame(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, CorrelationID: uint64(i + 1)}); err != nil {
					t.Fatal(err)
				}
				if got, err := cch.ReadFrame(); err != nil || got.Flags != dbe.FlagEndStream {
					t.Fatalf("response %d: %v %v", i, got, err)
				}
			}
			tapMu.Lock()
			wire := bytes.Clone(tap.Bytes())
			tapMu.Unlock()
			if bytes.Contains(wire, secret) || bytes.Contains(wire, []byte("SOC_TEAM_ALPHA")) {
				t.Fatal("plaintext on the wire")
			}
		})
	}
}

// TestPQRefusals: every way a peer can fail authentication fails on the
// side that checks it, with the reason, and the other side is told.
func TestPQRefusals(t *testing.T) {
	p := newPKI(t)
	otherRoot := seedKey(t, 9)
	now := time.Now()
	foreign := issue(t, otherRoot, seedKey(t, 10), "echo", "plugin", now.Add(-time.Hour), now.Add(time.Hour))
	expired := issue(t, p.root, seedKey(t, 11), "echo", "plugin", now.Add(-2*time.Hour), now.Add(-time.Hour))
	future := issue(t, p.root, seedKey(t, 12), "echo", "plugin", now.Add(time.Hour), now.Add(2*time.Hour))
	wrongKey := &identity.Identity{Key: seedKey(t, 13), Bundle: p.plugin.Bundle}
	type side int
	const (
		serverChecks side = iota // the server refuses the client
		clientChecks             // the client refuses the server
	)
	cases := []struct {
		name  string
		mod   func(c, s *PQ)
		check side
		want  error
	}{
		{"server: wrong-root client", func(c, s *PQ) { c.Identity = foreign }, serverChecks, identity.ErrUnknownIssuer},
		{"client: wrong-root server", func(c, s *PQ) { s.Identity = foreign }, clientChecks, identity.ErrUnknownIssuer},
		{"client: expired server bundle", func(c, s *PQ) { s.Identity = expired }, clientChecks, identity.ErrExpired},
		{"server: expired client bundle", func(c, s *PQ) { c.Identity = &identity.Identity{Key: expired.Key, Bundle: expired.Bundle} }, serverChecks, identity.ErrExpired},
		{"client: not-yet-valid server", func(c, s *PQ) { s.Identity = future }, clientChecks, identity.ErrNotYetValid},
		{"client: server of the wrong name", func(c, s *PQ) { c.PeerName = "llm-amx" }, clientChecks, ErrPeerNotAllowed},
		{"server: client of the wrong role", func(c, s *PQ) { s.PeerRoles = []string{"shim"} }, serverChecks, ErrPeerNotAllowed},
		{"server: Authorize says no", func(c, s *PQ) {
			s.Authorize = func(*identity.Bundle) error { return errors.New("not today") }
		}, serverChecks, ErrPeerNotAllowed},
		{"server: group not accepted", func(c, s *PQ) { s.Groups = []Group{GroupMLKEM1024P384} }, serverChecks, ErrAuth},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cl, sv := p.client(), p.server()
			c.mod(cl, sv)
			cch, _, cerr, serr := pqHandshake(t, cl, sv, nil, nil)
			switch c.check {
			case serverChecks:
				if !errors.Is(serr, c.want) || !errors.Is(serr, ErrAuth) {
					t.Fatalf("server: %v, want %v", serr, c.want)
				}
				if cerr == nil { // the client had finished: it learns on its first read
					_, cerr = cch.ReadFrame()
				}
				if !errors.Is(cerr, ErrAuth) {
					t.Fatalf("client: %v", cerr)
				}
			case clientChecks:
				if !errors.Is(cerr, c.want) || !errors.Is(cerr, ErrAuth) {
					t.Fatalf("client: %v, want %v", cerr, c.want)
				}
				if !errors.Is(serr, ErrAuth) {
					t.Fatalf("server: %v", serr)
				}
			}
		})
	}
	t.Run("key does not match bundle", func(t *testing.T) {
		c, _ := unixPair(t)
		_, err := (&PQ{Auth: Auth{Identity: wrongKey, Roots: p.roots}}).Client(context.Background(), c)
		if err == nil {
			t.Fatal("handshake with a key that is not the bundle's")
		}
	})
}

// tamperConn flips one byte of what is read from the stream, at offset at.
type tamperConn struct {
	net.Conn
	mu  sync.Mutex
	off int
	at  int
}

func (c *tamperConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	if c.at >= c.off && c.at < c.off+n {
		p[c.at-c.off] ^= 0x40
	}
	c.off += n
	c.mu.Unlock()
	return n, err
}

// TestPQTamperedHandshake flips a byte at several places of each of the
// three messages: the handshake never succeeds on both sides.
func TestPQTamperedHandshake(t *testing.T) {
	p := newPKI(t)
	chLen := 5 + randomSize + 2 + 1568 + 2 + 32
	shLen := 5 + randomSize + 2 + 1568 + 2 + 32 + 2 + len(p.plugin.Bundle.Marshal()) + 2 + identity.SignatureSize + macSize
	cfLen := 1 + 2 + len(p.host.Bundle.Marshal()) + 2 + identity.SignatureSize + macSize
	msgs := []struct {
		name     string
		base, n  int  // stream offset of the payload, payload length
		atServer bool // read by the server
	}{
		{"ClientHello", dbe.HeaderSize, chLen, true},
		{"ServerHello", dbe.HeaderSize, shLen, false},
		{"ClientFinish", 2*dbe.HeaderSize + chLen, cfLen, true},
	}
	for _, m := range msgs {
		for _, pos := range []int{-20, 0, 3, 6, 100, m.n / 2, m.n - 100, m.n - 1} {
			t.Run(fmt.Sprintf("%s@%d", m.name, pos), func(t *testing.T) {
				at := m.base + pos
				wrap := func(c net.Conn) net.Conn { return &tamperConn{Conn: c, at: at} }
				var wc, ws func(net.Conn) net.Conn
				if m.atServer {
					ws = wrap
				} else {
					wc = wrap
				}
				cch, _, cerr, serr := pqHandshake(t, p.client(), p.server(), wc, ws)
				if serr == nil && cerr == nil {
					// The client may have finished before the server refused:
					// its first read must fail.
					t.Fatal("both sides accepted a tampered handshake")
				}
				if serr == nil {
					t.Fatalf("server accepted (client: %v)", cerr)
				}
				if cerr == nil {
					if _, err := cch.ReadFrame(); !errors.Is(err, ErrAuth) {
						t.Fatalf("client read after a refused finish: %v", err)
					}
				}
			})
		}
	}
}

// TestPQRefusesHTTP2: a real HTTP/2 client is refused by a PQ server, and
// a PQ client refuses a real HTTP/2 (h2c) server.
func TestPQRefusesHTTP2(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	t.Run("HTTP/2 client to PQ server", func(t *testing.T) {
		ln, err := net.Listen("unix", filepath.Join(dir, "pq.sock"))
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		errc := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				errc <- err
				return
			}
			_, err = p.server().Server(context.Background(), c)
			errc <- err
		}()
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protos, DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", filepath.Join(dir, "pq.sock"))
		}}
		defer tr.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://dsmil/v1/models", nil)
		if resp, err := (&http.Client{Transport: tr}).Do(req); err == nil {
			resp.Body.Close()
			t.Fatal("the HTTP/2 client got a response")
		}
		if err := <-errc; !errors.Is(err, ErrAuth) || !errors.Is(err, dbe.ErrBadMagic) {
			t.Fatalf("server: %v", err)
		}
	})
	t.Run("PQ client to HTTP/2 server", func(t *testing.T) {
		ln, err := net.Listen("unix", filepath.Join(dir, "h2.sock"))
		if err != nil {
			t.Fatal(err)
		}
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		srv := &http.Server{Protocols: &protos, Handler: http.NotFoundHandler()}
		go srv.Serve(ln)
		defer srv.Close()
		c, err := net.Dial("unix", filepath.Join(dir, "h2.sock"))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := p.client().Client(ctx, c); !errors.Is(err, ErrAuth) {
			t.Fatalf("client: %v", err)
		}
	})
}

// streamConn is a net.Conn that reads a fixed byte stream.
type streamConn struct {
	net.Conn
	r      io.Reader
	closed bool
}

func (c *streamConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *streamConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *streamConn) Close() error                     { c.closed = true; return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }

var (
	testSecretA = bytes.Repeat([]byte{0xa1}, 48)
	testSecretB = bytes.Repeat([]byte{0xb2}, 48)
)

// sealAll seals frames in order with a fresh state from secret and returns
// each sealed frame.
func sealAll(t testing.TB, secret []byte, rekey uint64, frames ...*dbe.Frame) [][]byte {
	t.Helper()
	cs := newCipherState(secret, rekey, RekeyBytes)
	var out [][]byte
	for _, f := range frames {
		b, err := cs.sealFrame(nil, f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func readerOver(stream []byte, rekey uint64) (*SealedChannel, *streamConn) {
	sc := &streamConn{r: bytes.NewReader(stream)}
	return newSealedChannel(sc, nil, testSecretB, testSecretA, &identity.Bundle{Name: "p", Role: "plugin"}, 0, rekey, RekeyBytes), sc
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// TestSealedAttacks: tampering, replay, reordering, loss, truncation and
// injection each fail with ErrSealed and close the connection; an orderly
// end is io.EOF.
func TestSealedAttacks(t *testing.T) {
	mk := func(i int) *dbe.Frame {
		f := &dbe.Frame{Type: dbe.MsgTunnelData, CorrelationID: uint64(i), Payload: []byte(fmt.Sprintf("frame %d", i))}
		return f
	}
	closeF := &dbe.Frame{Type: dbe.MsgClose}
	fr := sealAll(t, testSecretA, RekeyFrames, mk(0), mk(1), mk(2), closeF)
	flip := func(b []byte, i int) []byte {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		return c
	}
	plain, _ := (&dbe.Frame{Type: dbe.MsgHealth, CorrelationID: 1}).MarshalBinary()
	cases := []struct {
		name   string
		stream []byte
		good   int // frames that read before the failure
		eof    bool
	}{
		{"orderly", cat(fr[0], fr[1], fr[2], fr[3]), 4, true},
		{"tampered ciphertext", cat(fr[0], flip(fr[1], 30)), 1, false},
		{"tampered tag", cat(fr[0], flip(fr[1], len(fr[1])-1)), 1, false},
		{"tampered header (correlation id)", cat(fr[0], flip(fr[1], 23)), 1, false},
		{"tampered header (END_STREAM set)", cat(fr[0], flip(fr[1], 5)), 1, false},
		{"replayed frame", cat(fr[0], fr[1], fr[1]), 2, false},
		{"reordered frames", cat(fr[1], fr[0]), 0, false},
		{"dropped frame", cat(fr[0], fr[2]), 1, false},
		{"truncated mid-frame", cat(fr[0], fr[1][:len(fr[1])-5]), 1, false},
		{"truncated at a frame boundary", cat(fr[0], fr[1]), 2, false},
		{"injected plain frame", cat(fr[0], plain), 1, false},
		{"not DBE", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ch, sc := readerOver(c.stream, RekeyFrames)
			for i := range c.good {
				f, err := ch.ReadFrame()
				if err != nil {
					t.Fatalf("frame %d: %v", i, err)
				}
				if i < 3 && !bytes.Equal(f.Payload, []byte(fmt.Sprintf("frame %d", i))) {
					t.Fatalf("frame %d: %q", i, f.Payload)
				}
			}
			_, err := ch.ReadFrame()
			if c.eof {
				if err != io.EOF {
					t.Fatalf("end: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrSealed) {
				t.Fatalf("got %v, want ErrSealed", err)
			}
			if !sc.closed {
				t.Fatal("connection left open")
			}
			if _, err2 := ch.ReadFrame(); !errors.Is(err2, ErrSealed) {
				t.Fatalf("error not sticky: %v", err2)
			}
		})
	}
}

// TestSealedBodyError: an authentic frame whose TLV block is invalid is a
// *dbe.FrameError and the stream stays in sync (docs/dbe.md §8).
func TestSealedBodyError(t *testing.T) {
	cs := newCipherState(testSecretA, RekeyFrames, RekeyBytes)
	// A frame with a duplicate TENANT_ID, sealed by hand.
	tlvs := []byte{0x80, 0x01, 0, 1, 'A', 0x80, 0x01, 0, 1, 'B'}
	pt := binary.BigEndian.AppendUint32(nil, uint32(len(tlvs)))
	pt = append(pt, tlvs...)
	h := make([]byte, dbe.HeaderSize)
	h[0], h[1], h[2], h[3] = 'D', 'B', 1, byte(dbe.MsgChatReq)
	binary.BigEndian.PutUint16(h[4:], uint16(FlagSealed))
	binary.BigEndian.PutUint32(h[12:], uint32(len(pt)+tagSize))
	binary.BigEndian.PutUint64(h[16:], 7)
	bad := cs.aead.Seal(append([]byte(nil), h...), cs.nonce(), pt, h)
	cs.advance(len(bad))
	good, err := cs.sealFrame(nil, &dbe.Frame{Type: dbe.MsgHealth, CorrelationID: 8})
	if err != nil {
		t.Fatal(err)
	}
	ch, _ := readerOver(cat(bad, good), RekeyFrames)
	_, err = ch.ReadFrame()
	var fe *dbe.FrameError
	if !errors.As(err, &fe) || !errors.Is(err, dbe.ErrDuplicateTLV) || fe.Header.CorrelationID != 7 || fe.Header.Type != dbe.MsgChatReq {
		t.Fatalf("got %v", err)
	}
	if f, err := ch.ReadFrame(); err != nil || f.CorrelationID != 8 {
		t.Fatalf("after the body error: %v %v", f, err)
	}
}

// sealedPair returns two sealed channels over a Unix socket pair with the
// given key update interval.
func sealedPair(t testing.TB, rekeyFrames, rekeyBytes uint64) (*SealedChannel, *SealedChannel) {
	t.Helper()
	c, s := socketPair(t)
	a := newSealedChannel(c, nil, testSecretA, testSecretB, &identity.Bundle{Name: "s", Role: "plugin"}, 0, rekeyFrames, rekeyBytes)
	b := newSealedChannel(s, nil, testSecretB, testSecretA, &identity.Bundle{Name: "c", Role: "host"}, 0, rekeyFrames, rekeyBytes)
	t.Cleanup(func() { a.Close(); b.Close() })
	return a, b
}

// TestSealedKeyUpdate: with a small interval, keys are replaced many
// times in both directions and every frame still arrives intact, from
// concurrent writers.
func TestSealedKeyUpdate(t *testing.T) {
	for _, lim := range []struct {
		name          string
		frames, bytes uint64
	}{{"every 5 frames", 5, RekeyBytes}, {"every 4 KiB", RekeyFrames, 4 << 10}} {
		t.Run(lim.name, func(t *testing.T) {
			a, b := sealedPair(t, lim.frames, lim.bytes)
			const writers, per = 4, 100
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range per {
						f := &dbe.Frame{Type: dbe.MsgTunnelData, CorrelationID: uint64(w<<32 | i), Payload: bytes.Repeat([]byte{byte(i)}, 100+i)}
						if err := a.WriteFrame(f); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			next := make([]int, writers)
			for range writers * per {
				f, err := b.ReadFrame()
				if err != nil {
					t.Fatal(err)
				}
				w, i := int(f.CorrelationID>>32), int(uint32(f.CorrelationID))
				if i != next[w] || !bytes.Equal(f.Payload, bytes.Repeat([]byte{byte(i)}, 100+i)) {
					t.Fatalf("writer %d: frame %d, want %d", w, i, next[w])
				}
				next[w]++
			}
			wg.Wait()
			if err := b.WriteFrame(&dbe.Frame{Type: dbe.MsgHealth, CorrelationID: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := a.ReadFrame(); err != nil {
				t.Fatal(err)
			}
			sent, _ := a.keyUpdates()
			_, recv := b.keyUpdates()
			if sent < 10 || sent != recv {
				t.Fatalf("key updates: sent %d, received %d", sent, recv)
			}
		})
	}
}

// TestPQSession: a Session over a PQ channel; closing one end is an
// orderly io.EOF at the other (a sealed CLOSE), not a truncation.
func TestPQSession(t *testing.T) {
	p := newPKI(t)
	cch, sch, cerr, serr := pqHandshake(t, p.client(), p.server(), nil, nil)
	if cerr != nil || serr != nil {
		t.Fatal(cerr, serr)
	}
	got := make(chan *dbe.Frame, 1)
	cs, ss := New(cch, nil), New(sch, func(f *dbe.Frame, _ error) { got <- f })
	tunnelThenFrame(t, cs, ss, got, 500000)
	if err := ss.Err(); err != io.EOF {
		t.Fatalf("server session ended with %v, want io.EOF", err)
	}
}

// TestPQGRPC runs gRPC through Credentials with the PQ handshake, as the
// host and plugins do, and checks that after the three handshake frames
// every frame on the socket is sealed.
func TestPQGRPC(t *testing.T) {
	p := newPKI(t)
	c2s, s2c, level := grpcHealthOverDBE(t, p.server(), p.client(), 5)
	if level != credentials.PrivacyAndIntegrity {
		t.Fatalf("sealed session reported %v to gRPC, want PrivacyAndIntegrity", level)
	}
	for name, c := range map[string]struct {
		b          []byte
		handshakes int
	}{"client→server": {c2s, 2}, "server→client": {s2c, 1}} {
		hs, sealed, err := countSealed(c.b)
		if err != nil || hs != c.handshakes || sealed < 3 {
			t.Fatalf("%s: %d handshake and %d sealed frames, %v", name, hs, sealed, err)
		}
	}
}

// countSealed checks that b is handshake frames followed only by sealed
// frames.
func countSealed(b []byte) (handshake, sealed int, err error) {
	for len(b) > 0 {
		if len(b) < dbe.HeaderSize {
			return handshake, sealed, io.ErrUnexpectedEOF
		}
		flags := dbe.Flags(binary.BigEndian.Uint16(b[4:6]))
		n := dbe.HeaderSize + int(binary.BigEndian.Uint32(b[8:12])) + int(binary.BigEndian.Uint32(b[12:16]))
		switch {
		case dbe.MsgType(b[3]) == dbe.MsgHandshake && sealed == 0:
			handshake++
		case flags&FlagSealed != 0:
			if _, err := parseSealedHeader(b[:dbe.HeaderSize], dbe.DefaultMaxFrameSize); err != nil {
				return handshake, sealed, err
			}
			sealed++
		default:
			return handshake, sealed, fmt.Errorf("unsealed %s frame after the handshake", dbe.MsgType(b[3]))
		}
		if n > len(b) {
			return handshake, sealed, io.ErrUnexpectedEOF
		}
		b = b[n:]
	}
	return handshake, sealed, nil
}

// TestPQHandshakeTimeout: a silent peer is cut off.
func TestPQHandshakeTimeout(t *testing.T) {
	p := newPKI(t)
	_, s := unixPair(t)
	sv := p.server()
	sv.Timeout = 200 * time.Millisecond
	start := time.Now()
	if _, err := sv.Server(context.Background(), s); !errors.Is(err, ErrAuth) || time.Since(start) > 3*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}
