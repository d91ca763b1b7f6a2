package session

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"google.golang.org/grpc/credentials"
)

// tlsPeers returns a TLS handshaker for each end with ephemeral
// certificates.
func tlsPeers(t *testing.T) (client, server *TLS) {
	t.Helper()
	p := newPKI(t)
	cc, err := EphemeralCertificate("dsmil-host")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := EphemeralCertificate("node-b")
	if err != nil {
		t.Fatal(err)
	}
	return &TLS{Auth: Auth{Identity: p.host, Roots: p.roots}, Config: TLSConfig(cc, nil)},
		&TLS{Auth: Auth{Identity: p.plugin, Roots: p.roots, PeerRoles: []string{"host"}}, Config: TLSConfig(sc, nil)}
}

// tlsRun serves one connection with server on 127.0.0.1 and dials it with
// dial.
func tlsRun(t *testing.T, server *TLS, dial func(ctx context.Context, addr string) (Channel, error)) (Channel, Channel, error, error) {
	t.Helper()
	ln, err := ListenTLS("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return bothEnds(t,
		func(ctx context.Context) (Channel, error) {
			c, err := ln.Accept()
			if err != nil {
				return nil, err
			}
			return server.Server(ctx, c)
		},
		func(ctx context.Context) (Channel, error) { return dial(ctx, ln.Addr().String()) })
}

func TestTLSCrossNode(t *testing.T) {
	client, server := tlsPeers(t)
	cch, sch, cerr, serr := tlsRun(t, server, func(ctx context.Context, addr string) (Channel, error) {
		return DialTLS(ctx, "tcp", addr, client)
	})
	if cerr != nil || serr != nil {
		t.Fatalf("client %v, server %v", cerr, serr)
	}
	if cch.Peer() != (Peer{Name: "echo", Role: "plugin"}) || sch.Peer() != (Peer{Name: "dsmil-host", Role: "host"}) {
		t.Fatalf("peers %+v %+v", cch.Peer(), sch.Peer())
	}
	if l := securityLevel(cch); l != credentials.PrivacyAndIntegrity {
		t.Fatalf("TLS channel's security level %v, want PrivacyAndIntegrity", l)
	}
	if err := cch.WriteFrame(&dbe.Frame{Type: dbe.MsgHealth, CorrelationID: 3}); err != nil {
		t.Fatal(err)
	}
	if f, err := sch.ReadFrame(); err != nil || f.CorrelationID != 3 {
		t.Fatalf("%v %v", f, err)
	}
}

// TestTLSRefusesClassicalClient: a TLS 1.3 client that offers only X25519
// (no ML-KEM) cannot connect.
func TestTLSRefusesClassicalClient(t *testing.T) {
	client, server := tlsPeers(t)
	for _, curves := range [][]tls.CurveID{{tls.X25519}, {tls.X25519MLKEM768, tls.CurveP384}} {
		cfg := client.Config.Clone()
		cfg.CurvePreferences = curves
		cfg.VerifyConnection = nil
		_, _, cerr, serr := tlsRun(t, server, func(ctx context.Context, addr string) (Channel, error) {
			c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(c, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				tc.Close()
				return nil, err
			}
			return NewPlainChannel(tc, 0, Peer{}), nil
		})
		t.Logf("curves %v: client: %v; server: %v", curves, cerr, serr)
		if cerr == nil || !errors.Is(serr, ErrAuth) {
			t.Fatalf("curves %v: client %v, server %v", curves, cerr, serr)
		}
	}
}

// TestTLSIdentityBinding: over a good TLS connection, the ML-DSA-87
// identity check still refuses a peer from another root or of the wrong
// role.
func TestTLSIdentityBinding(t *testing.T) {
	now := time.Now()
	foreign := issue(t, seedKey(t, 9), seedKey(t, 10), "dsmil-host", "host", now.Add(-time.Hour), now.Add(time.Hour))
	for _, c := range []struct {
		name string
		mod  func(c, s *TLS)
		want error
	}{
		{"wrong-root client", func(c, s *TLS) { c.Identity = foreign }, identity.ErrUnknownIssuer},
		{"wrong role", func(c, s *TLS) { s.PeerRoles = []string{"shim"} }, ErrPeerNotAllowed},
	} {
		t.Run(c.name, func(t *testing.T) {
			client, server := tlsPeers(t)
			c.mod(client, server)
			cch, _, cerr, serr := tlsRun(t, server, func(ctx context.Context, addr string) (Channel, error) {
				return DialTLS(ctx, "tcp", addr, client)
			})
			if !errors.Is(serr, c.want) {
				t.Fatalf("server: %v, want %v", serr, c.want)
			}
			if cerr == nil {
				cch.Close()
				t.Fatal("client connected")
			}
		})
	}
}
