// Command router measures the L7 router against a baseline in one run:
//
//   - added latency: one request at a time, client → router socket → router
//     → echo plugin, against the host's own session straight to the same
//     echo plugin process (p50, p99, and the difference);
//   - throughput: messages per second with 64 requests in flight through the
//     router's Unix socket, against the same load straight to the plugin.
//
// Rounds of the two are interleaved so that machine noise hits both.
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

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/server"
	"github.com/dsmil/l7/sdk/dbe"
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
	m := pluginmgr.New(pluginmgr.Config{Plugins: cfg.Plugins, MaxInFlight: 1 << 20})
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
	ep := &router.Endpoint{Router: r, Path: filepath.Join(dir, "router.sock")}
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
	none := func(*dbe.Frame) error { return nil }
	paths := []struct {
		name string
		call func() error
	}{
		{"direct", func() error { return direct.Call(ctx, req(), none) }},
		{"routed", func() error { return viaRouter.Call(ctx, req(), none) }},
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
	return nil
}

func median(v []float64) float64 {
	slices.Sort(v)
	return v[len(v)/2]
}
