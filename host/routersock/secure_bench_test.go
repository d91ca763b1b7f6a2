package routersock

import (
	"context"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/dsmil/l7/host/claims"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/router/routertest"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	"github.com/dsmil/l7/sdk/session"
)

// pqPair connects a client and a server session over a Unix socket with the
// post-quantum handshake and sealed frames.
func pqPair(tb testing.TB, root *identity.PrivateKey, clientRole, serverRole string) (client, server session.Channel) {
	tb.Helper()
	now := time.Now()
	cid, err := identity.Issue(root, "c", clientRole, now, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	sid, err := identity.Issue(root, "s", serverRole, now, time.Hour)
	if err != nil {
		tb.Fatal(err)
	}
	roots := []*identity.PublicKey{root.Public()}
	path := filepath.Join(tb.TempDir(), "pq.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	srv := make(chan session.Channel, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			srv <- nil
			return
		}
		ch, err := (&session.PQ{Auth: session.Auth{Identity: sid, Roots: roots}}).Server(context.Background(), c)
		if err != nil {
			tb.Error(err)
		}
		srv <- ch
	}()
	c, err := net.Dial("unix", path)
	if err != nil {
		tb.Fatal(err)
	}
	client, err = (&session.PQ{Auth: session.Auth{Identity: cid, Roots: roots}}).Client(context.Background(), c)
	if err != nil {
		tb.Fatal(err)
	}
	return client, <-srv
}

// BenchmarkRoutedSecurity measures the routed path (client → router →
// worker, 64 in flight) with security off (plain frames, no claim tokens)
// and on (both hops sealed with the PQ-negotiated AES-256-GCM keys, a claim
// token on every request, verified with the cache).
func BenchmarkRoutedSecurity(b *testing.B) {
	for _, secure := range []bool{false, true} {
		name := "off"
		if secure {
			name = "on"
		}
		b.Run(name, func(b *testing.B) {
			var w *routertest.Worker
			var cl *mux.Client
			cfg := router.Config{}
			var token []byte
			if !secure {
				w = routertest.NewWorker(b, "echo", routertest.ReplyHandler)
				r := routertest.NewRouter(b, routertest.Registry{"echo": {w}}, cfg)
				cl, _ = dialClient(b, startEndpoint(b, r))
			} else {
				root, err := identity.GenerateKey()
				if err != nil {
					b.Fatal(err)
				}
				// Worker hop.
				wc, ws := pqPair(b, root, "host", "plugin")
				cs := session.New(wc, nil)
				wcl := mux.NewClient(cs)
				cs.SetHandler(func(f *dbe.Frame, _ error) { wcl.Dispatch(f) })
				ss := session.New(ws, nil)
				srv := mux.NewServer(ss, routertest.ReplyHandler)
				ss.SetHandler(srv.Dispatch)
				b.Cleanup(func() { cs.Close(); ss.Close(); srv.Close(time.Second) })
				w = &routertest.Worker{Name: "echo", Device: 47, Client: wcl}
				// Claims.
				minterKey, _ := identity.GenerateKey()
				v, err := claims.NewVerifier(claims.VerifierConfig{Issuers: []*identity.PublicKey{minterKey.Public()}, Audience: "dsmil-router"})
				if err != nil {
					b.Fatal(err)
				}
				m, _ := identity.NewMinter(identity.MinterConfig{Key: minterKey, Audience: "dsmil-router"})
				token, _ = m.Token("T", "bench", []string{"ANALYSIS_ONLY"})
				cfg.Claims = v
				r := routertest.NewRouter(b, routertest.Registry{"echo": {w}}, cfg)
				// Client hop: a sealed session straight into the endpoint's
				// connection handler.
				ec, es := pqPair(b, root, "client", "host")
				csess := session.New(ec, nil)
				cl = mux.NewClient(csess)
				csess.SetHandler(func(f *dbe.Frame, _ error) { cl.Dispatch(f) })
				esess := session.NewIdle(es)
				conn := &epConn{r: r, s: esess, active: make(map[uint64]func()), ctx: context.Background()}
				esess.Start(conn.handle)
				b.Cleanup(func() { csess.Close(); esess.Close() })
			}
			if token != nil {
				// The full token once; a 68-byte reference afterwards.
				req := routertest.ChatReq("echo")
				req.SetClaimToken(token)
				if err := cl.Call(context.Background(), req, func(*dbe.Frame) error { return nil }); err != nil {
					b.Fatal(err)
				}
				token = identity.ClaimReference(token)
			}
			b.SetParallelism(32)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := routertest.ChatReq("echo")
					if token != nil {
						req.SetClaimToken(token)
					}
					if err := cl.Call(context.Background(), req, func(*dbe.Frame) error { return nil }); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
		})
	}
}
