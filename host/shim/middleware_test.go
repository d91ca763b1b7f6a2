package shim

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/hashicorp/go-hclog"
)

// TestAuthDefaultDeny: without a valid key, every path but exactly
// /healthz and /readyz is a 401 — however the path is spelled.
func TestAuthDefaultDeny(t *testing.T) {
	_, base := startShim(t, func(c *Config) { c.Router = &capture{} })
	host := strings.TrimPrefix(base, "http://")
	for _, target := range []string{
		"/v1/models", "/v1/models/", "/v1/models/dsmil-echo", "/V1/MODELS", "/v1//models", "//v1/models",
		"/v1/models/../../healthz", "/v1/models/..%2f..%2fhealthz", "/healthz/../v1/models", "/healthz/", "/healthz/x",
		"/HEALTHZ", "/healthz%2f", "/readyz/../v1/models", "/./healthz", "/healthz;x", "/v1/models?/healthz",
		"/v1/models#/healthz", "/healthz%00", "/nonexistent", "/", "*", "/v1/chat/completions", "/v1/completions",
		"http://" + host + "/v1/models",
	} {
		for _, method := range []string{"GET", "POST", "OPTIONS"} {
			raw := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}", method, target, host)
			resp, body := rawCall(t, base, raw)
			if resp.StatusCode == 400 && (strings.Contains(target, "#") || strings.Contains(target, "%00") || target == "*") {
				continue // refused by net/http before the shim sees it
			}
			if resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("%s %s: %d %v %q", method, target, resp.StatusCode, resp.Header, body)
			}
			e := apiErr(t, resp, body)
			if resp.StatusCode != 401 || e.Type != "authentication_error" || resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("%s %s: %d %s", method, target, resp.StatusCode, body)
			}
		}
	}
	for _, target := range []string{"/healthz", "/readyz", "/%68ealthz"} {
		resp, body := rawCall(t, base, "GET "+target+" HTTP/1.1\r\nHost: "+host+"\r\nConnection: close\r\n\r\n")
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", target, resp.StatusCode, body)
		}
	}
	for _, hdr := range [][]string{
		{},
		{"Authorization", "Bearer"},
		{"Authorization", "Bearer "},
		{"Authorization", "Basic " + keyT},
		{"Authorization", keyT},
		{"Authorization", "Bearer " + strings.ToUpper(keyT)},
		{"Authorization", "Bearer " + keyT + "x"},
		{"Authorization", "Bearer " + config.HashKey(keyT)}, // the digest is not the key
		{"X-Api-Key", keyT},
	} {
		resp, body := call(t, "GET", base+"/v1/models", "", "", hdr...)
		if e := apiErr(t, resp, body); resp.StatusCode != 401 || e.Type != "authentication_error" {
			t.Errorf("%v: %d %s", hdr, resp.StatusCode, body)
		}
	}
	// Two Authorization headers, one of them good.
	raw := "GET /v1/models HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + keyT + "\r\nAuthorization: Bearer nope\r\nConnection: close\r\n\r\n"
	if resp, body := rawCall(t, base, raw); resp.StatusCode != 401 {
		t.Errorf("two keys: %d %s", resp.StatusCode, body)
	}
	// The scheme is case-insensitive (RFC 9110); the key from the env works.
	for _, auth := range []string{"bearer " + keyT, "BEARER   " + keyT, "Bearer " + keyLimited} {
		if resp, body := call(t, "GET", base+"/v1/models", "", "", "Authorization", auth); resp.StatusCode != 200 {
			t.Errorf("%q: %d %s", auth, resp.StatusCode, body)
		}
	}
	// Authenticated, the odd paths are 404s, not something else.
	for _, p := range []string{"/v1/models/../../healthz", "/V1/MODELS", "/v1/chat/completions/", "/nonexistent"} {
		raw := "GET " + p + " HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + keyT + "\r\nConnection: close\r\n\r\n"
		resp, body := rawCall(t, base, raw)
		if e := apiErr(t, resp, body); resp.StatusCode != 404 {
			t.Errorf("%s: %d %+v", p, resp.StatusCode, e)
		}
	}
}

func TestHostAllowlist(t *testing.T) {
	_, base := startShim(t, nil)
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	for host, ok := range map[string]bool{
		"127.0.0.1:" + port: true, "localhost:" + port: true, "LOCALHOST:" + port: true, "[::1]:" + port: true,
		"evil.example:" + port: false, "127.0.0.1": false, "localhost": false, "127.0.0.1:1" + port: false,
		"localhost.:" + port: false, "127.0.0.1:" + port + ".evil.example": false,
	} {
		for _, path := range []string{"/healthz", "/v1/models"} {
			raw := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + keyT + "\r\nConnection: close\r\n\r\n"
			resp, body := rawCall(t, base, raw)
			if ok != (resp.StatusCode == 200) {
				t.Errorf("Host %s %s: %d %s", host, path, resp.StatusCode, body)
			}
			if !ok {
				if e := apiErr(t, resp, body); resp.StatusCode != 403 || str(e.Code) != "host_not_allowed" {
					t.Errorf("Host %s: %d %s", host, resp.StatusCode, body)
				}
			}
		}
	}
	// A configured list replaces the derived one.
	_, base = startShim(t, func(c *Config) { c.Shim.AllowedHosts = []string{"dsmil.local:8001"} })
	if resp, _ := call(t, "GET", base+"/healthz", "", ""); resp.StatusCode != 403 {
		t.Errorf("127.0.0.1 with a configured list: %d", resp.StatusCode)
	}
	if resp, _ := call(t, "GET", base+"/healthz", "", "", "Host", "dsmil.local:8001"); resp.StatusCode != 200 {
		t.Errorf("configured host: %d", resp.StatusCode)
	}
}

func TestCORS(t *testing.T) {
	// No origins configured: no CORS headers at all, and a preflight is
	// just an unauthenticated request.
	_, base := startShim(t, nil)
	resp, _ := call(t, "GET", base+"/v1/models", keyT, "", "Origin", "http://localhost:3000")
	if resp.StatusCode != 200 || corsHeaders(resp) != "" {
		t.Fatalf("no origins: %d %q", resp.StatusCode, corsHeaders(resp))
	}
	resp, _ = call(t, "OPTIONS", base+"/v1/chat/completions", "", "", "Origin", "http://localhost:3000", "Access-Control-Request-Method", "POST")
	if resp.StatusCode != 401 || corsHeaders(resp) != "" {
		t.Fatalf("preflight without origins: %d %q", resp.StatusCode, corsHeaders(resp))
	}

	_, base = startShim(t, func(c *Config) { c.Shim.CORSOrigins = []string{"http://localhost:3000"} })
	resp, body := call(t, "OPTIONS", base+"/v1/chat/completions", "", "", "Origin", "http://localhost:3000",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization, content-type, x-stainless-os")
	h := resp.Header
	if resp.StatusCode != 204 || len(body) != 0 || h.Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		h.Get("Access-Control-Allow-Headers") != "authorization, content-type, x-stainless-os" ||
		!strings.Contains(h.Get("Access-Control-Allow-Methods"), "POST") || h.Get("Access-Control-Allow-Credentials") != "" {
		t.Fatalf("preflight: %d %v", resp.StatusCode, h)
	}
	resp, _ = call(t, "GET", base+"/v1/models", keyT, "", "Origin", "http://localhost:3000")
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "X-Request-Id") || resp.Header.Get("Vary") != "Origin" {
		t.Fatalf("simple request: %d %v", resp.StatusCode, resp.Header)
	}
	// The real request still needs its key.
	if resp, _ = call(t, "GET", base+"/v1/models", "", "", "Origin", "http://localhost:3000"); resp.StatusCode != 401 {
		t.Fatalf("no key: %d", resp.StatusCode)
	}
	for _, origin := range []string{"http://evil.example", "http://localhost:3001", "null"} {
		resp, _ = call(t, "OPTIONS", base+"/v1/chat/completions", "", "", "Origin", origin, "Access-Control-Request-Method", "POST")
		if resp.StatusCode == 204 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
			t.Fatalf("%s: %d %v", origin, resp.StatusCode, resp.Header)
		}
	}
}

func corsHeaders(resp *http.Response) string {
	var out []string
	for k := range resp.Header {
		if strings.HasPrefix(k, "Access-Control-") {
			out = append(out, k)
		}
	}
	return strings.Join(out, ",")
}

func TestMethodsAndPaths(t *testing.T) {
	_, base := startShim(t, func(c *Config) { c.Router = &capture{} })
	for _, tc := range []struct{ method, path, allow string }{
		{"POST", "/v1/models", "GET, HEAD"},
		{"DELETE", "/v1/models/dsmil-echo", "GET, HEAD"},
		{"GET", "/v1/chat/completions", "POST"},
		{"PUT", "/v1/completions", "POST"},
		{"POST", "/healthz", "GET, HEAD"},
		{"PATCH", "/readyz", "GET, HEAD"},
	} {
		resp, body := call(t, tc.method, base+tc.path, keyT, "")
		if e := apiErr(t, resp, body); resp.StatusCode != 405 || resp.Header.Get("Allow") != tc.allow || str(e.Code) != "method_not_allowed" {
			t.Errorf("%s %s: %d %q %s", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
	if resp, body := call(t, "HEAD", base+"/v1/models", keyT, ""); resp.StatusCode != 200 || len(body) != 0 {
		t.Errorf("HEAD: %d %q", resp.StatusCode, body)
	}
	resp, body := call(t, "GET", base+"/v1/images/generations", keyT, "")
	if e := apiErr(t, resp, body); resp.StatusCode != 404 || e.Message != `Invalid URL (GET "/v1/images/generations").` {
		t.Errorf("unknown path: %d %s", resp.StatusCode, body)
	}
}

// TestRequestIDEverywhere: every response, errors included, carries an
// x-request-id.
func TestRequestIDEverywhere(t *testing.T) {
	_, base := startShim(t, func(c *Config) { c.Router = &capture{}; c.Shim.MaxBodyBytes = 16 })
	seen := map[string]bool{}
	for _, tc := range []struct {
		method, path, key, body string
		hdr                     []string
		status                  int
	}{
		{"GET", "/healthz", "", "", nil, 200},
		{"GET", "/v1/models", "", "", nil, 401},
		{"GET", "/v1/models", keyT, "", []string{"Host", "evil.example"}, 403},
		{"GET", "/nope", keyT, "", nil, 404},
		{"GET", "/v1/completions", keyT, "", nil, 405},
		{"POST", "/v1/completions", keyT, strings.Repeat("x", 17), nil, 413},
		{"POST", "/v1/completions", keyT, "{", nil, 400},
	} {
		resp, body := call(t, tc.method, base+tc.path, tc.key, tc.body, tc.hdr...)
		id := resp.Header.Get("X-Request-Id")
		if _, ok := parseUUID(id); !ok || resp.StatusCode != tc.status || seen[id] {
			t.Errorf("%s %s: %d id %q %s", tc.method, tc.path, resp.StatusCode, id, body)
		}
		seen[id] = true
	}
}

// TestBodyLimit: 413 for a declared length over the limit, and for a
// chunked body that grows past it while it is read.
func TestBodyLimit(t *testing.T) {
	_, base := startShim(t, func(c *Config) { c.Router = &capture{}; c.Shim.MaxBodyBytes = 1024 })
	host := strings.TrimPrefix(base, "http://")
	small := `{"model":"dsmil-echo","prompt":"` + strings.Repeat("a", 900) + `"}`
	big := `{"model":"dsmil-echo","prompt":"` + strings.Repeat("a", 2000) + `"}`
	if resp, body := call(t, "POST", base+"/v1/completions", keyT, small); resp.StatusCode != 200 {
		t.Fatalf("under the limit: %d %s", resp.StatusCode, body)
	}
	resp, body := call(t, "POST", base+"/v1/completions", keyT, big)
	if e := apiErr(t, resp, body); resp.StatusCode != 413 || str(e.Code) != "request_too_large" {
		t.Fatalf("content-length: %d %s", resp.StatusCode, body)
	}
	// Chunked, no length: the server cannot know before reading.
	raw := "POST /v1/completions HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + keyT +
		"\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
	for i := 0; i < len(big); i += 500 {
		part := big[i:min(i+500, len(big))]
		raw += fmt.Sprintf("%x\r\n%s\r\n", len(part), part)
	}
	raw += "0\r\n\r\n"
	resp, body = rawCall(t, base, raw)
	if e := apiErr(t, resp, body); resp.StatusCode != 413 || str(e.Code) != "request_too_large" {
		t.Fatalf("chunked: %d %s", resp.StatusCode, body)
	}
	// A client that keeps sending is cut off, not read to the end.
	c, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "POST /v1/completions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nTransfer-Encoding: chunked\r\n\r\n", host, keyT)
	go func() {
		chunk := fmt.Sprintf("%x\r\n%s\r\n", 4096, strings.Repeat("a", 4096))
		for i := 0; i < 1<<14; i++ { // up to 64 MiB
			if _, err := io.WriteString(c, chunk); err != nil {
				return
			}
		}
	}()
	b := make([]byte, 12)
	if _, err := io.ReadFull(c, b); err != nil || string(b) != "HTTP/1.1 413" {
		t.Fatalf("endless body: %q %v", b, err)
	}
}

func TestListenRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", "[::]:0"} {
		s, err := New(Config{Router: &capture{}, Shim: configShim(addr, false)})
		if err != nil {
			t.Fatal(err)
		}
		if ln, err := s.Listen(); err == nil {
			ln.Close()
			t.Fatalf("%s: listening", addr)
		} else if !strings.Contains(err.Error(), "non-loopback") {
			t.Fatalf("%s: %v", addr, err)
		}
	}
	var logs testutil.SyncBuffer
	s, _ := New(Config{Router: &capture{}, Shim: configShim("0.0.0.0:0", true), Logger: newTestLogger(&logs)})
	ln, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if !strings.Contains(logs.String(), "non-loopback") {
		t.Fatalf("no warning: %s", logs.String())
	}
}

func TestDefaultKeyWarning(t *testing.T) {
	var logs testutil.SyncBuffer
	cfg := testConfig(t)
	cfg.Tenants[1].EnvKeySHA256 = config.HashKey(DefaultKey)
	cfg.Tenants[2].APIKeySHA256 = []string{strings.ToUpper(config.HashKey(DefaultKey))}
	cfg.Tenants[3].APIKeySHA256, cfg.Tenants[3].APIKeyEnv = nil, "UNSET_VAR"
	if _, err := New(Config{Router: &capture{}, Tenants: cfg.Tenants, Logger: newTestLogger(&logs)}); err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	if strings.Count(out, "default API key dsmil-local-key") != 2 || !strings.Contains(out, "tenant=LIMITED") ||
		!strings.Contains(out, "tenant=KINETIC") || !strings.Contains(out, "tenant=DENIED env=UNSET_VAR") {
		t.Fatalf("%s", out)
	}
}

func configShim(listen string, allowNonLoopback bool) config.ShimConfig {
	return config.ShimConfig{Listen: listen, AllowNonLoopback: allowNonLoopback}
}

func newTestLogger(w io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: w, Level: hclog.Debug})
}
