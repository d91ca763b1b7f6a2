package shim

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
)

// The end-to-end tests run the real echo plugin binary under a real plugin
// manager and router, shared by the whole package (one set of processes),
// each test with its own shim on a random loopback port. Tests do not run
// in parallel, so the router's in-flight count is theirs alone.

// Test API keys, one per tenant of planeHCL.
const (
	keyT       = "key-t"       // T: every model, SOC|DEV, SECRET, SOC_ASSIST
	keyLimited = "key-limited" // LIMITED: dsmil-echo only
	keyKinetic = "key-kinetic" // KINETIC: denied by the router's hard rule
	keyDenied  = "key-denied"  // DENIED: denied by the test policy
	keyRated   = "key-rated"   // RATED: always rate limited by the test limiter
	keyNoClaim = "key-noclaim" // NOCLAIM: refused by the test claim verifier
)

// planeHCL is the test dsmil.hcl; %[1]s is the echo binary.
const planeHCL = `
plugin "echo" {
  path            = %[1]q
  device_id       = 47
  profiles        = ["echo"]
  health_interval = "200ms"
}
plugin "slow" {
  path            = %[1]q
  device_id       = 48
  profiles        = ["slow"]
  health_interval = "200ms"
  delay           = "100ms"
}
plugin "fail" {
  path            = %[1]q
  device_id       = 49
  profiles        = ["fail"]
  health_interval = "200ms"
  fail_after      = 2
}
plugin "down" {
  path         = "/bin/false"
  device_id    = 50
  profiles     = ["down"]
  max_restarts = 0
}
model "dsmil-echo" {
  profile = "echo"
}
model "dsmil-slow" {
  profile  = "slow"
  owned_by = "tests"
}
model "dsmil-fail" { profile = "fail" }
model "dsmil-down" { profile = "down" }
tenant "T" {
  api_key_sha256 = [%[2]q]
  compartments   = ["SOC", "DEV"]
  classification = "SECRET"
  roe            = "SOC_ASSIST"
  models         = ["*"]
  rate_limit {
    requests_per_minute = 600
  }
}
tenant "LIMITED" {
  api_key_env  = "TEST_LIMITED_KEY"
  compartments = ["SOC"]
  models       = ["dsmil-echo"]
}
tenant "KINETIC" {
  api_key_sha256 = [%[3]q]
  compartments   = ["KINETIC"]
  models         = ["*"]
}
tenant "DENIED" {
  api_key_sha256 = [%[4]q]
  compartments   = ["SOC"]
  models         = ["*"]
}
tenant "RATED" {
  api_key_sha256 = [%[5]q]
  compartments   = ["SOC"]
  models         = ["*"]
  rate_limit {
    requests_per_minute = 10
    tokens_per_minute   = 1000
  }
}
tenant "NOCLAIM" {
  api_key_sha256 = [%[6]q]
  compartments   = ["SOC"]
  models         = ["*"]
}
`

// plane is the shared router, plugin manager and config.
type plane struct {
	cfg     *config.Config
	manager *pluginmgr.Manager
	router  *router.Router
	stop    func()
}

var (
	echoBin   string
	planeOnce sync.Once
	thePlane  *plane
	planeErr  error
)

func TestMain(m *testing.M) {
	testutil.RunWithBinary(m, &echoBin, "dsmil-echo", "github.com/dsmil/l7/plugins/echo", func() {
		if thePlane != nil {
			thePlane.stop()
		}
	})
}

// testConfig parses planeHCL.
func testConfig(t testing.TB) *config.Config {
	t.Helper()
	src := fmt.Sprintf(planeHCL, echoBin, config.HashKey(keyT), config.HashKey(keyKinetic),
		config.HashKey(keyDenied), config.HashKey(keyRated), config.HashKey(keyNoClaim))
	env := map[string]string{"TEST_LIMITED_KEY": keyLimited}
	cfg, diags := config.Parse(filepath.Join(t.TempDir(), "dsmil.hcl"), []byte(src),
		config.WithGetenv(func(k string) string { return env[k] }))
	if diags.HasErrors() {
		t.Fatalf("test config: %v", diags)
	}
	return cfg
}

// testHooks are the router's policy, claim and quota hooks for the tests:
// each refuses one tenant.
type testHooks struct{}

func (testHooks) Decide(_ context.Context, f *dbe.Frame) error {
	if t, _ := f.TenantID(); t == "DENIED" {
		return &mux.Error{Code: dbe.CodePolicyDenied, Rule: "test.deny_tenant", Message: "DENIED: tenant DENIED may not use Layer 7"}
	}
	return nil
}

func (testHooks) VerifyClaim(_ context.Context, f *dbe.Frame) error {
	if t, _ := f.TenantID(); t == "NOCLAIM" {
		return &mux.Error{Code: dbe.CodeClaimTokenInvalid, Message: "claim token missing"}
	}
	return nil
}

func (testHooks) Admit(_ context.Context, f *dbe.Frame) (func(int64), error) {
	if t, _ := f.TenantID(); t == "RATED" {
		return nil, &mux.Error{Code: dbe.CodeRateLimited, Param: "requests", RetryAfterMS: 1500, Message: "tenant RATED: 10 requests per minute"}
	}
	return func(int64) {}, nil
}

// getPlane starts the shared plane on first use.
func getPlane(t testing.TB) *plane {
	t.Helper()
	planeOnce.Do(func() {
		cfg := testConfig(t)
		m := pluginmgr.New(pluginmgr.Config{Plugins: cfg.Plugins, Logger: hclog.NewNullLogger()})
		ctx, cancel := context.WithCancel(context.Background())
		m.Start(ctx)
		wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
		defer wcancel()
		if planeErr = m.WaitReady(wctx); planeErr != nil {
			cancel()
			return
		}
		r, err := router.New(router.Config{Registry: m, Policy: testHooks{}, Claims: testHooks{}, Limiter: testHooks{}})
		if err != nil {
			planeErr = err
			cancel()
			return
		}
		thePlane = &plane{cfg: cfg, manager: m, router: r, stop: func() {
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			m.Shutdown(sctx)
			cancel()
		}}
	})
	if planeErr != nil {
		t.Fatalf("starting the test plane: %v", planeErr)
	}
	return thePlane
}

// startShim serves a shim in front of the shared plane (or cfg.Router when
// set) on a random loopback port and returns its base URL,
// "http://127.0.0.1:PORT".
func startShim(t testing.TB, edit func(*Config)) (*Server, string) {
	t.Helper()
	cfg := Config{Shim: config.ShimConfig{Listen: "127.0.0.1:0"}}
	if edit != nil {
		edit(&cfg)
	}
	if cfg.Router == nil {
		p := getPlane(t)
		cfg.Router = p.router
		if cfg.Tenants == nil {
			cfg.Tenants, cfg.Models = p.cfg.Tenants, p.cfg.Models
		}
	}
	if cfg.Tenants == nil {
		c := testConfig(t)
		cfg.Tenants, cfg.Models = c.Tenants, c.Models
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return s, "http://" + ln.Addr().String()
}

// fakeRouter is a Router made of a function that answers at once, on the
// caller's goroutine (as the router answers a refusal).
type fakeRouter func(req *dbe.Frame, out func(*dbe.Frame))

func (f fakeRouter) Forward(_ context.Context, req *dbe.Frame, out func(*dbe.Frame, proto.Message)) func() {
	f(req, func(fr *dbe.Frame) { out(fr, nil) })
	return func() {}
}

// failWith is a router that answers every request with err.
func failWith(err *mux.Error) fakeRouter {
	return func(req *dbe.Frame, out func(*dbe.Frame)) {
		id, _ := req.Get(dbe.TLVRequestID)
		out(mux.ErrorFrame(0, id, err))
	}
}

// call sends a request and returns the response with its body read.
func call(t testing.TB, method, url, key, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// rawCall writes a raw HTTP/1.1 request (so paths reach the server
// byte for byte) and reads the response.
func rawCall(t testing.TB, base, raw string) (*http.Response, []byte) {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// apiErr decodes an error body, failing the test unless it has exactly the
// OpenAI shape.
func apiErr(t testing.TB, resp *http.Response, body []byte) errorObject {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error content type %q: %s", ct, body)
	}
	var raw map[string]map[string]any
	if err := json.Unmarshal(body, &raw); err != nil || len(raw) != 1 || raw["error"] == nil {
		t.Fatalf("not an error body: %s", body)
	}
	for _, k := range []string{"message", "type", "param", "code"} {
		if _, ok := raw["error"][k]; !ok || len(raw["error"]) != 4 {
			t.Fatalf("error body without exactly message/type/param/code: %s", body)
		}
	}
	var e errorBody
	json.Unmarshal(body, &e)
	return e.Error
}

func str(p *string) string {
	if p == nil {
		return "<null>"
	}
	return *p
}

// sseEvents splits an event stream into its data payloads and counts its
// keep-alive comments.
func sseEvents(t testing.TB, body []byte) (data []string, keepalives int) {
	t.Helper()
	for _, ev := range strings.Split(string(body), "\n\n") {
		switch {
		case ev == "":
		case ev == ": keep-alive":
			keepalives++
		case strings.HasPrefix(ev, "data: ") && !strings.Contains(ev, "\n"):
			data = append(data, strings.TrimPrefix(ev, "data: "))
		default:
			t.Fatalf("malformed SSE event %q in\n%s", ev, body)
		}
	}
	if !bytes.HasSuffix(body, []byte("data: [DONE]\n\n")) {
		t.Fatalf("stream does not end with [DONE]:\n%s", body)
	}
	return data, keepalives
}

// pluginInFlight sums the in-flight requests the plugin instances report.
func pluginInFlight(p *plane) int {
	n := 0
	for _, s := range p.manager.Snapshots() {
		n += s.InFlight
	}
	return n
}
