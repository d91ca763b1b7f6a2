package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/client"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"google.golang.org/protobuf/proto"
)

// netns is a network namespace joined to the root namespace by a veth
// pair: hostIf (root side, hostIP) and the node's side (nodeIPs).
type netns struct {
	name, hostIf string
	hostIP       string
	nodeIPs      []string
}

// run runs a command, failing the test on error.
func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// newNetns makes a namespace with a veth pair into it, removed after the
// test. k numbers the pair's /29: 10.X.k.0/29, the root side .1, the node
// side .2 (and .3 with two addresses).
func newNetns(t *testing.T, tag string, k, addrs int) *netns {
	t.Helper()
	id := os.Getpid() % 100000
	n := &netns{name: fmt.Sprintf("l7s%d%s", id, tag), hostIf: fmt.Sprintf("l7s%d%s0", id, tag)}
	nodeIf := fmt.Sprintf("l7s%d%s1", id, tag)
	net := fmt.Sprintf("10.%d.%d", 200+id%50, k)
	n.hostIP = net + ".1"
	run(t, "ip", "netns", "add", n.name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "del", n.name).Run()
		exec.Command("ip", "link", "del", n.hostIf).Run()
	})
	run(t, "ip", "link", "add", n.hostIf, "type", "veth", "peer", "name", nodeIf)
	run(t, "ip", "link", "set", nodeIf, "netns", n.name)
	run(t, "ip", "addr", "add", n.hostIP+"/29", "dev", n.hostIf)
	run(t, "ip", "link", "set", n.hostIf, "up")
	for a := range addrs {
		ip := fmt.Sprintf("%s.%d", net, 2+a)
		n.nodeIPs = append(n.nodeIPs, ip)
		run(t, "ip", "netns", "exec", n.name, "ip", "addr", "add", ip+"/29", "dev", nodeIf)
	}
	run(t, "ip", "netns", "exec", n.name, "ip", "link", "set", nodeIf, "up")
	run(t, "ip", "netns", "exec", n.name, "ip", "link", "set", "lo", "up")
	return n
}

// hostProc is a running dsmil-host.
type hostProc struct {
	cmd  *exec.Cmd
	cfg  string
	logs *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startHost runs `dsmil-host serve -config cfg`, inside namespace ns when
// it is not empty.
func startHost(t *testing.T, host, cfg, ns string) *hostProc {
	t.Helper()
	args := []string{host, "serve", "-config", cfg}
	if ns != "" {
		args = append([]string{"ip", "netns", "exec", ns}, args...)
	}
	p := &hostProc{cmd: exec.Command(args[0], args[1:]...), cfg: cfg, logs: &syncBuffer{}}
	p.cmd.Env = append(os.Environ(), "DSMIL_OPENAI_API_KEY=dsmil-local-key")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
		if t.Failed() {
			t.Logf("logs of %s:\n%s", filepath.Base(cfg), p.logs.String())
		}
	})
	return p
}

type snap struct {
	Node      string  `json:"node"`
	Name      string  `json:"name"`
	State     string  `json:"state"`
	Healthy   bool    `json:"healthy"`
	Load      float64 `json:"load"`
	LastError string  `json:"last_error"`
}

func pluginsList(host, cfg string) ([]snap, string) {
	js, _ := exec.Command(host, "plugins", "list", "-json", "-config", cfg).Output()
	var s []snap
	json.Unmarshal(js, &s)
	out, _ := exec.Command(host, "plugins", "list", "-config", cfg).CombinedOutput()
	return s, string(out)
}

// waitList polls `plugins list` until ok holds, or fails after d.
func waitList(t *testing.T, host, cfg string, d time.Duration, what string, ok func([]snap) bool) []snap {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		s, out := pluginsList(host, cfg)
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v:\n%s", what, d, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countNode(s []snap, node string, healthy bool) int {
	n := 0
	for _, x := range s {
		if x.Node == node && x.Healthy == healthy && x.Name != "" {
			n++
		}
	}
	return n
}

// TestScaleOut runs three real dsmil-hosts: a router host "a" in the root
// network namespace and worker nodes "node-b" and "node-c", each in its
// own namespace behind a veth pair, each with its own identity and echo
// plugins (prefixes a>, b>, c> tell who answered). It checks streams across
// nodes, claim and policy refusals on both sides, a wrong-root peer
// refused both ways, a link cut with `ip link set down` mid-stream and a
// worker node killed with kill -9 mid-stream (an error within 1 s, the
// node marked down, new requests to the remaining replica, no retry), and
// the link coming back.
func TestScaleOut(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("TestScaleOut needs root to make network namespaces and veth pairs (ip netns add, ip link add type veth); CI runs `make test` as root")
	}
	dir, host := buildHostAndEcho(t)
	keys := filepath.Join(dir, "keys")
	cli := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(host, args...).CombinedOutput(); err != nil {
			t.Fatalf("dsmil-host %v: %v\n%s", args, err, out)
		}
	}
	for _, k := range []string{"root", "rogue", "a", "b", "c", "tool", "x"} {
		cli("keys", "gen", "-out", keys, "-name", k)
	}
	bundle := func(root, name, role, pub, out string) {
		cli("keys", "bundle", "-root", keys+"/"+root+".key", "-name", name, "-role", role, "-pub", keys+"/"+pub+".pub", "-out", keys+"/"+out+".bundle")
	}
	bundle("root", "router-a", "host", "a", "a")
	bundle("root", "router-a", "node", "a", "a-node") // what a presents to its peers
	bundle("root", "node-b", "host", "b", "b")
	bundle("root", "node-c", "host", "c", "c")
	bundle("root", "soc-tool", "client", "tool", "tool")
	bundle("rogue", "router-x", "node", "x", "x-node") // signed by a root nobody trusts

	nb := newNetns(t, "b", 1, 1)
	nc := newNetns(t, "c", 2, 2)
	key := strings.Repeat("cd", 32)
	sum := sha256.Sum256([]byte("s-shim-key"))
	shimKeyHash := hex.EncodeToString(sum[:])
	node := func(name, listen, prefix string) string {
		cfg := filepath.Join(dir, name+".hcl")
		os.WriteFile(cfg, []byte(`
security {
  identity_key      = "keys/`+name[len(name)-1:]+`.key"
  identity_bundle   = "keys/`+name[len(name)-1:]+`.bundle"
  roots             = ["keys/root.pub"]
  cross_node_listen = "`+listen+`"
  # Defence in depth: this node trusts the router host's claims (its shim)
  # and the tool's, for tenant T only.
  claim_issuer "router-a" {
    key     = "keys/a.pub"
    tenants = ["T", "S"]
  }
  claim_issuer "soc-tool" {
    key     = "keys/tool.pub"
    tenants = ["T"]
  }
}
router { socket = "run-`+name+`/router.sock" }
admin  { socket = "run-`+name+`/admin.sock" }
plugin "echo" {
  path            = "dsmil-echo"
  device_id       = 47
  profiles        = ["echo"]
  health_interval = "200ms"
  prefix          = "`+prefix+`"
}
plugin "slow" {
  path            = "dsmil-echo"
  device_id       = 47
  profiles        = ["slow"]
  health_interval = "200ms"
  prefix          = "`+prefix+`"
  chunk_size      = 1
  delay           = "40ms"
}
model "dsmil-echo" { profile = "echo" }
model "dsmil-slow" { profile = "slow" }
tenant "T" {
  api_key_sha256 = ["`+key+`"]
  compartments   = ["SOC"]
  models         = ["*"]
}
tenant "U" {
  api_key_sha256 = ["`+strings.Repeat("ce", 32)+`"]
  compartments   = ["SOC"]
  models         = ["*"]
}
tenant "S" {
  api_key_sha256 = ["`+shimKeyHash+`"]
  compartments   = ["SOC"]
  models         = ["*"]
}
`), 0o600)
		return cfg
	}
	cfgB := node("node-b", nb.nodeIPs[0]+":7443", "b> ")
	cfgC := node("node-c", "0.0.0.0:7443", "c> ") // both its addresses
	shimAddr := freePort(t)
	cfgA := filepath.Join(dir, "a.hcl")
	os.WriteFile(cfgA, []byte(`
security {
  identity_key    = "keys/a.key"
  identity_bundle = "keys/a.bundle"
  node_bundle     = "keys/a-node.bundle"
  roots           = ["keys/root.pub"]
  claim_issuer "soc-tool" {
    key     = "keys/tool.pub"
    tenants = ["T", "U"]
  }
}
shim    { listen = "`+shimAddr+`" }
metrics { listen = "`+freePort(t)+`" }
router  { socket = "run-a/router.sock" }
admin   { socket = "run-a/admin.sock" }
plugin "echo" {
  path            = "dsmil-echo"
  device_id       = 47
  profiles        = ["echo"]
  health_interval = "200ms"
  prefix          = "a> "
}
peer "node-b" {
  address           = "`+nb.nodeIPs[0]+`:7443"
  profiles          = ["echo", "slow"]
  heartbeat         = "100ms"
  down_after        = "400ms"
  reconnect_backoff = "100ms"
  reconnect_max     = "500ms"
}
peer "node-c" {
  address           = "`+nc.nodeIPs[0]+`:7443"
  profiles          = ["echo", "slow"]
  heartbeat         = "100ms"
  down_after        = "400ms"
  reconnect_backoff = "100ms"
  reconnect_max     = "500ms"
}
# node-c's second address, expected to be signed by a root node-c's
# bundle is not signed by: refused.
peer "node-x" {
  address  = "`+nc.nodeIPs[1]+`:7443"
  identity = "node-c"
  roots    = ["keys/rogue.pub"]
  profiles = ["slow"]
}
model "dsmil-echo" { profile = "echo" }
model "dsmil-slow" { profile = "slow" }
tenant "T" {
  api_key_sha256 = ["`+key+`"]
  api_key_env    = "DSMIL_OPENAI_API_KEY"
  compartments   = ["SOC", "DEV"]
  models         = ["*"]
}
tenant "U" {
  api_key_sha256 = ["`+strings.Repeat("ce", 32)+`"]
  compartments   = ["SOC"]
  models         = ["*"]
}
tenant "S" {
  api_key_sha256 = ["`+shimKeyHash+`"]
  compartments   = ["SOC"]
  models         = ["*"]
}
`), 0o600)

	procB := startHost(t, host, cfgB, nb.name)
	startHost(t, host, cfgC, nc.name)
	startHost(t, host, cfgA, "")
	waitList(t, host, cfgA, 30*time.Second, "router host with both nodes' instances", func(s []snap) bool {
		return countNode(s, "", true) == 1 && countNode(s, "node-b", true) == 2 && countNode(s, "node-c", true) == 2
	})
	_, out := pluginsList(host, cfgA)
	for _, want := range []string{"NODE", "local", "node-b", "node-c", "echo#0", "slow#0", "node-x"} {
		if !strings.Contains(out, want) {
			t.Fatalf("plugins list lacks %q:\n%s", want, out)
		}
	}

	// A wrong-root peer is refused both ways: a's link to node-x (node-c's
	// bundle checked against the rogue root) never comes up …
	s, out := pluginsList(host, cfgA)
	for _, x := range s {
		if x.Node == "node-x" && (x.Healthy || !strings.Contains(x.LastError, "bundle")) {
			t.Fatalf("node-x (wrong root) not refused:\n%s", out)
		}
	}
	// … and node-b refuses a router host whose node bundle a rogue root signed.
	roots, err := identity.LoadPublicKeyFiles(keys + "/root.pub")
	if err != nil {
		t.Fatal(err)
	}
	rogue, err := identity.LoadIdentity(keys+"/x.key", keys+"/x-node.bundle")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err = session.DialTLS(ctx, "tcp", nb.nodeIPs[0]+":7443", &session.TLS{
		Auth:   session.Auth{Identity: rogue, Roots: roots, PeerName: "node-b", PeerRoles: []string{"host"}},
		Config: session.TLSConfig(mustCert(t, "router-x"), nil),
	})
	cancel()
	if err == nil {
		t.Fatal("node-b accepted a router host whose bundle a rogue root signed")
	}

	// The tool on a's router socket: DSMIL-PQ1, its own claim tokens.
	tool, err := identity.LoadIdentity(keys+"/tool.key", keys+"/tool.bundle")
	if err != nil {
		t.Fatal(err)
	}
	cl, err := client.Dial(context.Background(), filepath.Join(dir, "run-a/router.sock"), client.Options{Identity: tool, Roots: roots, HostName: "router-a"})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	minter, err := identity.NewMinter(identity.MinterConfig{Key: tool.Key, Audience: "dsmil-router"})
	if err != nil {
		t.Fatal(err)
	}
	req := func(tenant, profile string, comp dbe.Compartment, text string) *dbe.Frame {
		tok, err := minter.Token(tenant, "soc-tool", []string{"ANALYSIS_ONLY"})
		if err != nil {
			t.Fatal(err)
		}
		f := &dbe.Frame{Type: dbe.MsgChatReq}
		f.SetTenantID(tenant)
		f.SetCompartmentMask(comp)
		f.SetClassification(dbe.Unclas)
		f.SetROELevel(dbe.AnalysisOnly)
		f.SetProfile(profile)
		f.SetRequestID([16]byte{byte(len(text)), 9})
		f.SetClaimToken(tok)
		f.Payload, _ = proto.Marshal(&l7v1.L7ChatRequest{Stream: true, Messages: []*l7v1.Message{{Role: "user", Content: text}}})
		return f
	}
	chat := func(f *dbe.Frame) (string, error) {
		st := cl.Start(f, 20*time.Second)
		var b strings.Builder
		for {
			fr, err := st.Next(context.Background())
			if errors.Is(err, io.EOF) {
				return b.String(), nil
			}
			if err != nil {
				return b.String(), err
			}
			var ch l7v1.L7ChatChunk
			proto.Unmarshal(fr.Payload, &ch)
			b.WriteString(ch.GetDelta())
		}
	}

	t.Run("streams across nodes", func(t *testing.T) {
		seen := map[string]int{}
		for i := range 12 {
			text, err := chat(req("T", "echo", dbe.CompartmentSOC, fmt.Sprintf("hello %d", i)))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(text, fmt.Sprintf("hello %d", i)) || len(text) < 3 {
				t.Fatalf("text %q", text)
			}
			seen[text[:2]]++
		}
		if seen["a>"] == 0 || seen["b>"] == 0 || seen["c>"] == 0 {
			t.Fatalf("selection did not use every replica (local and both nodes): %v", seen)
		}
		// Through the shim: its claims (minted by a's key) are trusted by
		// the nodes for S and T; T's requests carry T's every compartment
		// (SOC and DEV at the router host), which the nodes refuse.
		shim := func(apiKey string) (int, string) {
			body := `{"model": "dsmil-slow", "messages": [{"role": "user", "content": "via shim"}]}`
			hreq, _ := http.NewRequest("POST", "http://"+shimAddr+"/v1/chat/completions", strings.NewReader(body))
			hreq.Header.Set("Authorization", "Bearer "+apiKey)
			hreq.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(hreq)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, strings.ReplaceAll(string(b), `\u003e`, ">")
		}
		if code, b := shim("s-shim-key"); code != 200 || !(strings.Contains(b, `"b> via shim"`) || strings.Contains(b, `"c> via shim"`)) {
			t.Fatalf("shim through a worker node: %d %s", code, b)
		}
		if code, b := shim("dsmil-local-key"); code != 403 || !strings.Contains(b, "worker node node-") || !strings.Contains(b, "policy_denied") {
			t.Fatalf("shim, T's DEV at a worker node: %d %s", code, b)
		}
	})

	t.Run("policy and claims on both sides", func(t *testing.T) {
		// Denied by the router host's policy: LAB is not T's there.
		_, err := chat(req("T", "slow", dbe.CompartmentSOC|dbe.CompartmentLAB, "lab"))
		var me *mux.Error
		if !errors.As(err, &me) || me.Code != dbe.CodePolicyDenied || me.Rule != "builtin.compartments" || strings.Contains(me.Message, "worker node") {
			t.Fatalf("LAB at the router host: %v", err)
		}
		// Allowed by the router host (DEV is T's there), denied by the
		// worker node's own policy (T has only SOC there).
		_, err = chat(req("T", "slow", dbe.CompartmentSOC|dbe.CompartmentDEV, "dev"))
		if !errors.As(err, &me) || me.Code != dbe.CodePolicyDenied || me.Rule != "builtin.compartments" || !strings.Contains(me.Message, "worker node node-") {
			t.Fatalf("DEV at the worker node: %v", err)
		}
		// The tool may mint for U at the router host, not at the nodes.
		_, err = chat(req("U", "slow", dbe.CompartmentSOC, "u"))
		if !errors.As(err, &me) || me.Code != dbe.CodeClaimTokenInvalid || !strings.Contains(me.Message, "worker node node-") {
			t.Fatalf("U's claim at the worker node: %v", err)
		}
		// U on the local replica is served: the router host allows it.
		if text, err := chat(req("U", "echo", dbe.CompartmentSOC, "u local")); err == nil && !strings.HasPrefix(text, "a>") {
			t.Fatalf("U's request went to %q", text)
		}
	})

	// stream starts a long stream on "slow" (only on the nodes) and returns
	// it once its first chunk says which node serves it.
	long := strings.Repeat("x", 400) // 400 chunks × 40 ms
	stream := func() (*client.Stream, string) {
		t.Helper()
		st := cl.Start(req("T", "slow", dbe.CompartmentSOC, long), 30*time.Second)
		f, err := st.Next(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		var ch l7v1.L7ChatChunk
		proto.Unmarshal(f.Payload, &ch)
		switch ch.GetDelta() {
		case "b":
			return st, "node-b"
		case "c":
			return st, "node-c"
		}
		t.Fatalf("first chunk %q", ch.GetDelta())
		return nil, ""
	}
	// fails waits for st to end with an error and returns it and when; a
	// chunk from a node other than victim would be a retry behind the
	// client's back.
	fails := func(st *client.Stream, victim string) (error, time.Time) {
		for {
			f, err := st.Next(context.Background())
			if err != nil {
				return err, time.Now()
			}
			var ch l7v1.L7ChatChunk
			proto.Unmarshal(f.Payload, &ch)
			if d := ch.GetDelta(); d != "" && d != ">" && d != " " && d != "x" && d != victim[len(victim)-1:] {
				t.Fatalf("chunk %q from another replica after %s's stream started: retried", d, victim)
			}
		}
	}
	served := func(want string) {
		t.Helper()
		for range 4 {
			text, err := chat(req("T", "slow", dbe.CompartmentSOC, "after"))
			if err != nil || text != want+"> after" {
				t.Fatalf("after the fault: %q %v, want node %s", text, err, want)
			}
		}
	}
	other := map[string]string{"node-b": "c", "node-c": "b"}
	ifOf := map[string]string{"node-b": nb.hostIf, "node-c": nc.hostIf}

	t.Run("link cut mid-stream", func(t *testing.T) {
		st, victim := stream()
		cut := time.Now()
		run(t, "ip", "link", "set", ifOf[victim], "down")
		err, at := fails(st, victim)
		if mux.CodeOf(err) != dbe.CodeWorkerFailed || at.Sub(cut) > time.Second {
			t.Fatalf("after the link cut: %v after %v, want WORKER_FAILED within 1 s", err, at.Sub(cut))
		}
		t.Logf("link cut: %s's stream failed after %v: %v", victim, at.Sub(cut).Round(time.Millisecond), err)
		waitList(t, host, cfgA, 2*time.Second, victim+" marked down", func(s []snap) bool {
			return countNode(s, victim, true) == 0 && countNode(s, victim, false) == 2
		})
		served(other[victim])
		run(t, "ip", "link", "set", ifOf[victim], "up")
		waitList(t, host, cfgA, 10*time.Second, victim+" back after the link came up", func(s []snap) bool {
			return countNode(s, victim, true) == 2
		})
	})

	t.Run("worker node killed mid-stream", func(t *testing.T) {
		var st *client.Stream
		victim := ""
		for victim != "node-b" { // kill node-b, the one whose process we hold
			if st != nil {
				st.Cancel()
			}
			st, victim = stream()
		}
		kill := time.Now()
		syscall.Kill(procB.cmd.Process.Pid, syscall.SIGKILL)
		err, at := fails(st, victim)
		if mux.CodeOf(err) != dbe.CodeWorkerFailed || at.Sub(kill) > time.Second {
			t.Fatalf("after kill -9 of node-b: %v after %v, want WORKER_FAILED within 1 s", err, at.Sub(kill))
		}
		t.Logf("kill -9: node-b's stream failed after %v: %v", at.Sub(kill).Round(time.Millisecond), err)
		waitList(t, host, cfgA, 2*time.Second, "node-b marked down", func(s []snap) bool {
			return countNode(s, "node-b", true) == 0
		})
		served("c")
	})
}
