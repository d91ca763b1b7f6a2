// Command router measures the L7 router against a baseline in one run:
//
//   - added latency: one request at a time, client → router socket → router
//     → echo plugin, against the host's own session straight to the same
//     echo plugin process (p50, p99, and the difference);
//
//   - throughput: messages per second with 64 requests in flight through the
//     router's Unix socket, against the same load straight to the plugin;
//
//   - security on vs off: the same two measurements through a second router
//     socket with security on, as a `security` block in dsmil.hcl turns it
//     on: the DSMIL-PQ1 handshake (ML-KEM-1024 + X25519, ML-DSA-87
//     identities) and AES-256-GCM sealed frames on the client's socket, and a
//     claim token on every request (the full token first, then its 68-byte
//     reference), verified by the router. The plugin's own socket is sealed in
//     every path, as it always is.
//
//   - remote vs local (issue 19): the same two measurements through two whole
//     dsmil-hosts in this process (remote.go): a client with its own
//     identity and claim tokens on router host a's socket, to a's own echo
//     plugin ("local") and to worker node b's over the cross-node link on
//     loopback ("remote": TLS 1.3 SecP384r1MLKEM1024, ML-DSA-87 identities,
//     b re-verifying the claim token and applying its own policy).
//
// Rounds of all paths are interleaved so that machine noise hits each.
//
//	go run ./bench/router [-rounds 5] [-n 2000] [-duration 2s]
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/host/claims"
	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/routersock"
	"github.com/dsmil/l7/host/server"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"google.golang.org/protobuf/proto"
)

func main() {
	rounds := flag.Int("rounds", 5, "interleaved rounds")
	n := flag.Int("n", 2000, "sequential requests per latency round")
	dur := flag.Duration("duration", 2*time.Second, "length of each throughput round")
	inflight := flag.Int("inflight", 64, "requests in flight for throughput")
	flag.Parse()
	server.TuneGC() // as dsmil-host serve does
	if err := run(*rounds, *n, *dur, *inflight); err != nil {
		fmt.Fprintln(os.Stderr, "bench/router:", err)
		os.Exit(1)
	}
}

func run(rounds, n int, dur time.Duration, inflight int) error {
	dir, err := os.MkdirTemp("", "bench-router")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "dsmil-echo")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/dsmil/l7/plugins/echo").CombinedOutput(); err != nil {
		return fmt.Errorf("build echo: %v\n%s", err, out)
	}
	cfg, diags := config.Parse(filepath.Join(dir, "dsmil.hcl"), []byte(fmt.Sprintf(`
plugin "echo" {
  path      = %q
  device_id = 47
  profiles  = ["echo"]
  env       = { GOGC = "400" }
}
model "dsmil-echo" { profile = "echo" }
tenant "T" {
  api_key_sha256 = ["%064x"]
  compartments   = ["SOC"]
  models         = ["*"]
}
`, bin, 1)))
	if diags.HasErrors() {
		return diags
	}
	// One root vouches for the host (and so for the plugins' identities) and
	// for the client of the secured socket, as an operator's root would.
	root, err := identity.GenerateKey()
	if err != nil {
		return err
	}
	now := time.Now()
	hostID, err := identity.Issue(root, "dsmil-host", "host", now, time.Hour)
	if err != nil {
		return err
	}
	clientID, err := identity.Issue(root, "bench-client", "client", now, time.Hour)
	if err != nil {
		return err
	}
	roots := []*identity.PublicKey{root.Public()}
	m := pluginmgr.New(pluginmgr.Config{Plugins: cfg.Plugins, MaxInFlight: 1 << 20, Identity: hostID, Roots: roots})
	ctx := context.Background()
	m.Start(ctx)
	defer m.Shutdown(ctx)
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := m.WaitReady(wctx); err != nil {
		return err
	}
	r, err := router.New(router.Config{Registry: m})
	if err != nil {
		return err
	}
	ep := &routersock.Endpoint{Router: r, Path: filepath.Join(dir, "router.sock")}
	if err := ep.Listen(); err != nil {
		return err
	}
	go ep.Serve(ctx)
	defer ep.Close()

	conn, err := net.Dial("unix", ep.Path)
	if err != nil {
		return err
	}
	s := session.New(session.NewPlainChannel(conn, 0, session.Peer{}), nil)
	viaRouter := mux.NewClient(s)
	s.SetHandler(func(f *dbe.Frame, _ error) { viaRouter.Dispatch(f) })
	direct := m.Instances()[0]

	payload, _ := proto.Marshal(&l7v1.L7ChatRequest{Messages: []*l7v1.Message{{Role: "user", Content: "ping"}}})
	req := func() *dbe.Frame {
		f := &dbe.Frame{Type: dbe.MsgChatReq, Payload: payload}
		f.SetTenantID("T")
		f.SetCompartmentMask(dbe.CompartmentSOC)
		f.SetClassification(dbe.Unclas)
		f.SetROELevel(dbe.AnalysisOnly)
		f.SetProfile("echo")
		f.SetRequestID([16]byte{1, 2, 3})
		return f
	}

	// Security on: PQ + AES-256-GCM socket, claims verified by the router.
	// The client mints its own tokens (its key is a claim issuer, as
	// claim_issuers in dsmil.hcl makes it): a token binds its presenter.
	minter, err := identity.NewMinter(identity.MinterConfig{Key: clientID.Key, Audience: "dsmil-router"})
	if err != nil {
		return err
	}
	verifier, err := claims.NewVerifier(claims.VerifierConfig{Issuers: []*identity.PublicKey{clientID.Key.Public()}, Audience: "dsmil-router"})
	if err != nil {
		return err
	}
	sr, err := router.New(router.Config{Registry: m, Claims: verifier})
	if err != nil {
		return err
	}
	sep := &routersock.Endpoint{Router: sr, Path: filepath.Join(dir, "router-secure.sock"),
		Handshaker: &session.PQ{Auth: session.Auth{Identity: hostID, Roots: roots, PeerRoles: []string{"client"}}}}
	if err := sep.Listen(); err != nil {
		return err
	}
	go sep.Serve(ctx)
	defer sep.Close()
	sconn, err := net.Dial("unix", sep.Path)
	if err != nil {
		return err
	}
	sch, err := (&session.PQ{Auth: session.Auth{Identity: clientID, Roots: roots}}).Client(ctx, sconn)
	if err != nil {
		return fmt.Errorf("secure socket handshake: %w", err)
	}
	ss := session.New(sch, nil)
	viaSecure := mux.NewClient(ss)
	ss.SetHandler(func(f *dbe.Frame, _ error) { viaSecure.Dispatch(f) })
	token, err := minter.Token("T", "bench-client", []string{"ANALYSIS_ONLY"})
	if err != nil {
		return err
	}
	first := req()
	first.SetClaimToken(token)
	if err := viaSecure.Call(ctx, first, func(*dbe.Frame) error { return nil }); err != nil {
		return fmt.Errorf("secure: first request with the full claim token: %w", err)
	}
	ref := identity.ClaimReference(token)
	secureReq := func() *dbe.Frame {
		f := req()
		f.SetClaimToken(ref)
		return f
	}

	// The remote row: two whole hosts, a routing to worker node b.
	pair, err := startNodePair(ctx, dir, bin)
	if err != nil {
		return fmt.Errorf("remote: %w", err)
	}
	defer pair.close()
	if err := pair.check(ctx, req); err != nil {
		return fmt.Errorf("remote: %w", err)
	}

	none := func(*dbe.Frame) error { return nil }
	paths := []struct {
		name string
		call func() error
	}{
		{"direct", func() error { return direct.Call(ctx, req(), none) }},
		{"routed", func() error { return viaRouter.Call(ctx, req(), none) }},
		{"secure", func() error { return viaSecure.Call(ctx, secureReq(), none) }},
		{"local", func() error { return pair.call(ctx, "echo", req) }},
		{"remote", func() error { return pair.call(ctx, "echo-remote", req) }},
	}
	for _, p := range paths { // warm up
		for range 200 {
			if err := p.call(); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
	}

	lat := map[string][]time.Duration{}
	tput := map[string][]float64{}
	for range rounds {
		for _, p := range paths {
			for range n {
				t0 := time.Now()
				if err := p.call(); err != nil {
					return err
				}
				lat[p.name] = append(lat[p.name], time.Since(t0))
			}
		}
		for _, p := range paths {
			var count atomic.Int64
			var wg sync.WaitGroup
			stop := time.Now().Add(dur)
			for range inflight {
				wg.Go(func() {
					for time.Now().Before(stop) {
						if p.call() == nil {
							count.Add(1)
						}
					}
				})
			}
			wg.Wait()
			tput[p.name] = append(tput[p.name], float64(count.Load())/dur.Seconds())
		}
	}
	pct := func(d []time.Duration, q float64) time.Duration {
		slices.Sort(d)
		return d[int(q*float64(len(d)-1))]
	}
	fmt.Printf("router benchmark: %d rounds; latency %d sequential requests per round; throughput %d in flight for %v per round\n",
		rounds, n, inflight, dur)
	fmt.Printf("%-8s %10s %10s %14s\n", "path", "p50", "p99", "msgs/s (med)")
	for _, p := range paths {
		fmt.Printf("%-8s %10v %10v %14.0f\n", p.name, pct(lat[p.name], 0.5).Round(time.Microsecond/10),
			pct(lat[p.name], 0.99).Round(time.Microsecond/10), median(tput[p.name]))
	}
	dp50, dp99 := pct(lat["direct"], 0.5), pct(lat["direct"], 0.99)
	rp50, rp99 := pct(lat["routed"], 0.5), pct(lat["routed"], 0.99)
	fmt.Printf("added latency: p50 %v (goal ≤ 50µs), p99 %v (goal ≤ 500µs); ratio routed/direct p50 %.2f×\n",
		(rp50 - dp50).Round(time.Microsecond/10), (rp99 - dp99).Round(time.Microsecond/10), float64(rp50)/float64(dp50))
	fmt.Printf("throughput: routed %.0f msgs/s = %.2f× direct (goal ≥ 100,000 msgs/s)\n",
		median(tput["routed"]), median(tput["routed"])/median(tput["direct"]))
	sp50, sp99 := pct(lat["secure"], 0.5), pct(lat["secure"], 0.99)
	fmt.Printf("security on vs off: added latency p50 %v, p99 %v (secure − routed); throughput %.0f msgs/s = %.2f× off (goals ≥ 0.8×, ≥ 100,000 sealed msgs/s)\n",
		(sp50 - rp50).Round(time.Microsecond/10), (sp99 - rp99).Round(time.Microsecond/10),
		median(tput["secure"]), median(tput["secure"])/median(tput["routed"]))
	lp50, lp99 := pct(lat["local"], 0.5), pct(lat["local"], 0.99)
	mp50, mp99 := pct(lat["remote"], 0.5), pct(lat["remote"], 0.99)
	fmt.Printf("remote vs local (whole hosts, security on): added latency p50 %v, p99 %v (remote − local); throughput %.0f msgs/s = %.2f× local\n",
		(mp50 - lp50).Round(time.Microsecond/10), (mp99 - lp99).Round(time.Microsecond/10),
		median(tput["remote"]), median(tput["remote"])/median(tput["local"]))
	return nil
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}
