package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config/configtest"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"google.golang.org/protobuf/proto"
)

// TestEndToEnd builds dsmil-host and dsmil-echo, runs `dsmil-host serve`,
// talks DBE to its router socket, kills the plugin mid-request, and checks
// `plugins list` before and after.
func TestEndToEnd(t *testing.T) {
	dir, host := buildHostAndEcho(t)
	cfg := filepath.Join(dir, "dsmil.hcl")
	shimAddr := freePort(t)
	nodeAddr := freePort(t)
	// Identities, made with the CLI as an operator would: a root, the
	// host's identity, and a local tool allowed on the router socket that
	// mints its own claim tokens.
	keys := filepath.Join(dir, "keys")
	for _, args := range [][]string{
		{"keys", "gen", "-out", keys, "-name", "root"},
		{"keys", "gen", "-out", keys, "-name", "host"},
		{"keys", "gen", "-out", keys, "-name", "tool"},
		{"keys", "bundle", "-root", keys + "/root.key", "-name", "dsmil-host", "-role", "host", "-pub", keys + "/host.pub", "-out", keys + "/host.bundle"},
		{"keys", "bundle", "-root", keys + "/root.key", "-name", "soc-tool", "-role", "client", "-pub", keys + "/tool.pub", "-out", keys + "/tool.bundle"},
	} {
		if out, err := exec.Command(host, args...).CombinedOutput(); err != nil {
			t.Fatalf("dsmil-host %v: %v\n%s", args, err, out)
		}
	}
	os.WriteFile(cfg, []byte(`
security {
  identity_key    = "keys/host.key"
  identity_bundle = "keys/host.bundle"
  roots           = ["keys/root.pub"]
  cross_node_listen = "`+nodeAddr+`"

  # The tool may mint claim tokens for tenant T only.
  claim_issuer "soc-tool" {
    key     = "keys/tool.pub"
    tenants = ["T"]
  }
}
shim   { listen = "`+shimAddr+`" }
router { socket = "run/router.sock" }
admin  { socket = "run/admin.sock" }
plugin "echo" {
  path            = "dsmil-echo"
  device_id       = 47
  profiles        = ["echo"]
  health_interval = "200ms"
  restart_backoff = "100ms"
  delay           = "100ms"
}
model "dsmil-echo" { profile = "echo" }
tenant "T" {
  api_key_sha256 = ["`+strings.Repeat("cd", 32)+`"]
  api_key_env    = "DSMIL_OPENAI_API_KEY"
  compartments   = ["SOC"]
  models         = ["*"]
}
tenant "U" {
  api_key_sha256 = ["`+strings.Repeat("ce", 32)+`"]
  compartments   = ["SOC"]
  models         = ["*"]
}
`), 0o600)
	list := func() (string, []map[string]any) {
		out, _ := exec.Command(host, "plugins", "list", "-config", cfg).CombinedOutput()
		js, _ := exec.Command(host, "plugins", "list", "-json", "-config", cfg).Output()
		var snaps []map[string]any
		json.Unmarshal(js, &snaps)
		return string(out), snaps
	}
	if out, _ := list(); !strings.Contains(out, "no dsmil-host is running") {
		t.Fatalf("plugins list without a host: %q", out)
	}

	var logs bytes.Buffer
	cmd := exec.Command(host, "serve", "-config", cfg)
	cmd.Env = append(os.Environ(), "DSMIL_OPENAI_API_KEY=dsmil-local-key") // as `make run` sets it
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var snaps []map[string]any
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, snaps = list()
		if len(snaps) == 1 && snaps[0]["state"] == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host not ready: %v\n%s", snaps, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	out, _ := list()
	for _, col := range []string{"NAME", "DEVICE", "PROFILES", "VERSION", "PID", "STATE", "HEALTH", "RESTARTS", "LOAD", "MEM", "UPTIME", "echo#0", "running", "healthy"} {
		if !strings.Contains(out, col) {
			t.Fatalf("plugins list lacks %q:\n%s", col, out)
		}
	}
	pid := int(snaps[0]["pid"].(float64))

	// A chat through the OpenAI shim, with the spec's curl command.
	shimChat(t, "http://"+shimAddr)

	// A chat through the router socket.
	c, err := net.Dial("unix", filepath.Join(dir, "run/router.sock"))
	if err != nil {
		t.Fatal(err)
	}
	tool, err := identity.LoadIdentity(keys+"/tool.key", keys+"/tool.bundle")
	if err != nil {
		t.Fatal(err)
	}
	roots, err := identity.LoadPublicKeyFiles(keys + "/root.pub")
	if err != nil {
		t.Fatal(err)
	}
	ch, err := (&session.PQ{Auth: session.Auth{Identity: tool, Roots: roots, PeerName: "dsmil-host", PeerRoles: []string{"host"}}}).
		Client(context.Background(), c)
	if err != nil {
		t.Fatalf("PQ handshake with the router socket: %v", err)
	}
	minter, err := identity.NewMinter(identity.MinterConfig{Key: tool.Key, Audience: "dsmil-router"})
	if err != nil {
		t.Fatal(err)
	}
	token, err := minter.Token("T", "soc-tool", []string{"ANALYSIS_ONLY"})
	if err != nil {
		t.Fatal(err)
	}
	s := session.New(ch, nil)
	cl := mux.NewClient(s)
	s.SetHandler(func(f *dbe.Frame, _ error) { cl.Dispatch(f) })
	go func() { <-s.Done(); cl.Close(s.Err()) }()
	defer s.Close()
	req := func(text string) *dbe.Frame {
		f := &dbe.Frame{Type: dbe.MsgChatReq}
		f.SetTenantID("T")
		f.SetCompartmentMask(dbe.CompartmentSOC)
		f.SetClassification(dbe.Unclas)
		f.SetROELevel(dbe.AnalysisOnly)
		f.SetProfile("echo")
		f.SetRequestID([16]byte{1})
		f.SetClaimToken(token)
		f.Payload, _ = proto.Marshal(&l7v1.L7ChatRequest{Stream: true, Messages: []*l7v1.Message{{Role: "user", Content: text}}})
		return f
	}
	// No claim token, or one for another tenant: refused.
	unclaimed := req("who am I")
	unclaimed.Del(dbe.TLVClaimToken)
	if err := cl.Call(context.Background(), unclaimed, func(*dbe.Frame) error { return nil }); mux.CodeOf(err) != dbe.CodeClaimTokenInvalid {
		t.Fatalf("request without a claim token: %v", err)
	}
	foreign := req("not mine")
	foreign.SetTenantID("OTHER")
	if err := cl.Call(context.Background(), foreign, func(*dbe.Frame) error { return nil }); mux.CodeOf(err) != dbe.CodeClaimTokenInvalid {
		t.Fatalf("request with another tenant's claim: %v", err)
	}
	// A token the tool mints for a tenant outside its claim_issuer block:
	// refused, although it is well signed and matches the frame's tenant.
	uToken, err := minter.Token("U", "soc-tool", []string{"ANALYSIS_ONLY"})
	if err != nil {
		t.Fatal(err)
	}
	scoped := req("speaking for U")
	scoped.SetTenantID("U")
	scoped.SetClaimToken(uToken)
	if err := cl.Call(context.Background(), scoped, func(*dbe.Frame) error { return nil }); mux.CodeOf(err) != dbe.CodeClaimTokenInvalid || !strings.Contains(err.Error(), "may not mint") {
		t.Fatalf("request with a claim minted outside the issuer's tenants: %v", err)
	}
	if text, err := chatText(cl, req("over the socket")); err != nil || text != "echo: over the socket" {
		t.Fatalf("%v %q", err, text)
	}

	// The same over the cross-node listener: DBE in TLS 1.3 with
	// SecP384r1MLKEM1024, the tool's ML-DSA-87 identity bound to it.
	nch, err := session.DialTLS(context.Background(), "tcp", nodeAddr, &session.TLS{
		Auth:   session.Auth{Identity: tool, Roots: roots, PeerName: "dsmil-host", PeerRoles: []string{"host"}},
		Config: session.TLSConfig(mustCert(t, "soc-tool"), nil),
	})
	if err != nil {
		t.Fatalf("cross-node dial: %v", err)
	}
	ns := session.New(nch, nil)
	ncl := mux.NewClient(ns)
	ns.SetHandler(func(f *dbe.Frame, _ error) { ncl.Dispatch(f) })
	defer ns.Close()
	if text, err := chatText(ncl, req("across nodes")); err != nil || text != "echo: across nodes" {
		t.Fatalf("cross-node chat: %v %q", err, text)
	}

	// kill -9 the plugin in the middle of a request.
	var killed time.Time
	err = cl.Call(context.Background(), req("one two three four five"), func(f *dbe.Frame) error {
		if killed.IsZero() {
			killed = time.Now()
			syscall.Kill(pid, syscall.SIGKILL)
		}
		return nil
	})
	if mux.CodeOf(err) != dbe.CodeWorkerFailed || time.Since(killed) > time.Second {
		t.Fatalf("after kill: %v in %v", err, time.Since(killed))
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		_, snaps = list()
		if len(snaps) == 1 && snaps[0]["state"] == "running" && snaps[0]["restarts"] == 1.0 && int(snaps[0]["pid"].(float64)) != pid {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("plugin not back within 5 s: %v", snaps)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The table says why it restarted.
	if out, _ := list(); !strings.Contains(out, "echo#0: last exit ") {
		t.Fatalf("plugins list after the crash does not show the last error:\n%s", out)
	}

	// Garbage on the router socket closes that connection; the host serves on.
	g, _ := net.Dial("unix", filepath.Join(dir, "run/router.sock"))
	fmt.Fprintf(g, "GET / HTTP/1.1\r\n\r\n")
	g.Close()
	if err := cl.Call(context.Background(), req("still serving"), func(*dbe.Frame) error { return nil }); err != nil {
		t.Fatalf("after garbage: %v", err)
	}

	// SIGTERM: a clean exit that removes the sockets.
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit: %v\n%s", err, logs.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("host did not exit on SIGTERM")
	}
	if !strings.Contains(logs.String(), "default API key dsmil-local-key") {
		t.Fatalf("no warning about the default key:\n%s", logs.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "run/admin.sock")); !os.IsNotExist(err) {
		t.Fatalf("admin socket left behind: %v", err)
	}
	if err := syscall.Kill(int(snaps[0]["pid"].(float64)), 0); err == nil {
		t.Fatal("plugin process outlived the host")
	}
}

// buildHostAndEcho builds dsmil-host and dsmil-echo into a new directory
// (skipping the test under -short) and returns the directory and the
// host's path.
func buildHostAndEcho(t *testing.T) (dir, host string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds binaries")
	}
	dir = t.TempDir()
	for _, b := range [][2]string{{"dsmil-host", "github.com/dsmil/l7/cmd/dsmil-host"}, {"dsmil-echo", "github.com/dsmil/l7/plugins/echo"}} {
		if _, err := testutil.Build(dir, b[0], b[1]); err != nil {
			t.Fatal(err)
		}
	}
	return dir, filepath.Join(dir, "dsmil-host")
}

// chatText sends the chat request req on cl and returns the text its
// chunks stream.
func chatText(cl *mux.Client, req *dbe.Frame) (string, error) {
	var text strings.Builder
	err := cl.Call(context.Background(), req, func(f *dbe.Frame) error {
		var ch l7v1.L7ChatChunk
		proto.Unmarshal(f.Payload, &ch)
		text.WriteString(ch.GetDelta())
		return nil
	})
	return text.String(), err
}

// freePort returns a loopback address nothing listens on.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// shimChat checks the host's OpenAI shim: ready, and answering the spec's
// §6 curl command (with the echo model, which this config serves).
func shimChat(t *testing.T, base string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("shim not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for model, want := range map[string]string{
		"dsmil-echo":        `"content":"echo: What is DSMIL?"`,
		"llama-7b-int8-amx": `"code":"model_not_found"`,
	} {
		req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(
			`{"model": "`+model+`", "messages": [{"role": "user", "content": "What is DSMIL?"}], "max_tokens": 100}`))
		req.Header.Set("Authorization", "Bearer dsmil-local-key")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d %s", model, resp.StatusCode, body)
		}
	}
}

func mustCert(t *testing.T, name string) tls.Certificate {
	t.Helper()
	c, err := session.EphemeralCertificate(name)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHostCrashTakesPluginsAlong: kill -9 the host and its plugins die
// with it instead of lingering with their memory.
func TestHostCrashTakesPluginsAlong(t *testing.T) {
	dir, host := buildHostAndEcho(t)
	cfg := filepath.Join(dir, "dsmil.hcl")
	os.WriteFile(cfg, []byte(`
shim    { listen = "`+freePort(t)+`" }
metrics { listen = "`+freePort(t)+`" }
router  { socket = "run/router.sock" }
admin   { socket = "run/admin.sock" }
`+configtest.EchoPlane("dsmil-echo", configtest.Tenant{KeySHA256: strings.Repeat("ef", 32)})), 0o600)
	cmd := exec.Command(host, "serve", "-config", cfg)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var pid int
	for deadline := time.Now().Add(20 * time.Second); pid == 0; {
		js, _ := exec.Command(host, "plugins", "list", "-json", "-config", cfg).Output()
		var snaps []map[string]any
		if json.Unmarshal(js, &snaps) == nil && len(snaps) == 1 && snaps[0]["state"] == "running" {
			pid = int(snaps[0]["pid"].(float64))
		}
		if time.Now().After(deadline) {
			t.Fatalf("host not ready:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; {
		if err := syscall.Kill(pid, 0); err != nil {
			return // gone
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatal("the plugin outlived a crashed host")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
