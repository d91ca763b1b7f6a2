package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/internal/testutil"
)

// TestAgentAcrossNodes: an agent task routed by a router host to the agent
// plugin on a worker node, whose LLM step needs a profile only the router
// host serves (real processes on loopback: two dsmil-hosts, the agent
// plugin on the node, echo on the router host). The router host mints the
// task-bound claim and sends it with the task; the node sends the step
// back over the cross-node link with it; the router host verifies it and
// routes the step (its policy decision, its agent step line), and the task
// completes with the router host's echo answer. The same task started on
// the node itself (no router host, no claim) cannot reach the profile: its
// step is routed on the node, which does not serve it, and fails. A step
// for a profile only a third host (node-c) serves goes back to the router
// host, which routes it to node-c, where node-c's own policy decides it.
// host/peers TestTaskClaim* refuse forged, widened, expired, other-node
// and other-task claims on a real link.
func TestAgentAcrossNodes(t *testing.T) {
	dir, host := buildHostAndEcho(t)
	if _, err := testutil.Build(dir, "dsmil-agent", "github.com/dsmil/l7/plugins/agent"); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	cli := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(host, args...).CombinedOutput(); err != nil {
			t.Fatalf("dsmil-host %v: %v\n%s", args, err, out)
		}
	}
	for _, k := range []string{"root", "a", "b", "c"} {
		cli("keys", "gen", "-out", keys, "-name", k)
	}
	bundle := func(name, role, pub, out string) {
		cli("keys", "bundle", "-root", keys+"/root.key", "-name", name, "-role", role, "-pub", keys+"/"+pub+".pub", "-out", keys+"/"+out+".bundle")
	}
	bundle("router-a", "host", "a", "a")
	bundle("router-a", "node", "a", "a-node")
	bundle("node-b", "host", "b", "b")
	bundle("node-c", "host", "c", "c")
	os.MkdirAll(filepath.Join(dir, "ws"), 0o755)
	const tenant = `
tenant "T" {
  api_key_env  = "DSMIL_OPENAI_API_KEY"
  compartments = ["DEV"]
  roe          = "SOC_ASSIST"
  models       = ["*"]
}
`
	xnode, xnodeC, shimA, shimB := freePort(t), freePort(t), freePort(t), freePort(t)
	cfgC := filepath.Join(dir, "c.hcl")
	os.WriteFile(cfgC, []byte(`
security {
  identity_key      = "keys/c.key"
  identity_bundle   = "keys/c.bundle"
  roots             = ["keys/root.pub"]
  cross_node_listen = "`+xnodeC+`"
  claim_issuer "router-a" {
    key     = "keys/a.pub"
    tenants = ["T"]
  }
}
metrics { listen = "`+freePort(t)+`" }
router  { socket = "run-c/router.sock" }
admin   { socket = "run-c/admin.sock" }
plugin "echo" {
  path      = "dsmil-echo"
  device_id = 47
  profiles  = ["echo-c"]
  prefix    = "c> "
}
`+tenant), 0o600)
	cfgB := filepath.Join(dir, "b.hcl")
	os.WriteFile(cfgB, []byte(`
security {
  identity_key      = "keys/b.key"
  identity_bundle   = "keys/b.bundle"
  roots             = ["keys/root.pub"]
  cross_node_listen = "`+xnode+`"
  claim_issuer "router-a" {
    key     = "keys/a.pub"
    tenants = ["T"]
  }
}
shim   { listen = "`+shimB+`" }
metrics { listen = "`+freePort(t)+`" }
router { socket = "run-b/router.sock" }
admin  { socket = "run-b/admin.sock" }
plugin "agent" {
  path       = "dsmil-agent"
  device_id  = 48
  profiles   = ["agent"]
  workspaces = { ws = "ws" }
  tasks = {
    # one step, to echo, which only the router host serves (write_report
    # needs SOC, which T lacks: no tool is offered, and echo takes none)
    hello = {
      instructions = "Say hello."
      profile      = "echo"
      tools        = ["write_report"]
      max_steps    = 2
    }
    # the same, to a profile only node-c serves (the router host routes
    # it there)
    hello-c = {
      instructions = "Say hello."
      profile      = "echo-c"
      tools        = ["write_report"]
      max_steps    = 2
    }
  }
}
`+tenant), 0o600)
	cfgA := filepath.Join(dir, "a.hcl")
	os.WriteFile(cfgA, []byte(`
security {
  identity_key    = "keys/a.key"
  identity_bundle = "keys/a.bundle"
  node_bundle     = "keys/a-node.bundle"
  roots           = ["keys/root.pub"]
}
shim   { listen = "`+shimA+`" }
metrics { listen = "`+freePort(t)+`" }
router { socket = "run-a/router.sock" }
admin  { socket = "run-a/admin.sock" }
plugin "echo" {
  path      = "dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
  prefix    = "a> "
}
peer "node-b" {
  address   = "`+xnode+`"
  profiles  = ["agent"]
  heartbeat = "100ms"
}
peer "node-c" {
  address   = "`+xnodeC+`"
  profiles  = ["echo-c"]
  heartbeat = "100ms"
}
model "dsmil-echo" { profile = "echo" }
`+tenant), 0o600)
	procB := startHost(t, host, cfgB, "")
	procC := startHost(t, host, cfgC, "")
	procA := startHost(t, host, cfgA, "")
	waitList(t, host, cfgA, 60*time.Second, "echo on a, the agent on node-b and echo on node-c healthy", func(s []snap) bool {
		return countNode(s, "", true) == 1 && countNode(s, "node-b", true) == 1 && countNode(s, "node-c", true) == 1
	})

	task := func(shim, typ string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest("POST", "http://"+shim+"/v1/dsmil/agent/tasks",
			strings.NewReader(`{"task_type": "`+typ+`", "timeout_seconds": 60}`))
		req.Header.Set("Authorization", "Bearer dsmil-local-key")
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		var out map[string]any
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		return resp.StatusCode, out
	}

	// Through the router host: the step comes back with the claim.
	code, res := task(shimA, "hello")
	if code != 200 || res["status"] != "completed" || !strings.Contains(res["result"].(string), "a> ") {
		t.Fatalf("the task through the router host: %d %v", code, res)
	}
	id := strings.TrimPrefix(res["id"].(string), "agenttask-")
	// The router host served the step as an agent step of node-b's agent,
	// under its own policy (a decision for profile echo, tenant T).
	testutil.WaitFor(t, 5*time.Second, "the router host's step lines", func() bool {
		l := procA.logs.String()
		return strings.Contains(l, "agent step: task_id="+id) && strings.Contains(l, `worker="node-b/agent#0"`) &&
			strings.Contains(l, "outcome=ok") && strings.Contains(l, "profile=echo operation=chat decision=allow")
	})
	// The node sent it back rather than route it itself.
	if l := procB.logs.String(); !strings.Contains(l, "agent step: task_id="+id) || !strings.Contains(l, "profile=echo") {
		t.Errorf("node-b has no agent step line for task %s:\n%s", id, l)
	}

	// A step for a profile only another worker node serves: the router
	// host routes it there, with its own claim for the tenant, which
	// node-c verifies and decides on.
	code, res = task(shimA, "hello-c")
	if code != 200 || res["status"] != "completed" || !strings.Contains(res["result"].(string), "c> ") {
		t.Fatalf("the task whose step node-c serves: %d %v", code, res)
	}
	idC := strings.TrimPrefix(res["id"].(string), "agenttask-")
	testutil.WaitFor(t, 5*time.Second, "node-c's decision on the step", func() bool {
		return strings.Contains(procC.logs.String(), "profile=echo-c operation=chat decision=allow rule=builtin.grant request_id="+idC)
	})

	// On the node itself: no router host, no claim, no way to echo.
	// (This is also what a task through the router host did before
	// task-bound claims: step 1 failed NOT_FOUND on the node.)
	code, res = task(shimB, "hello")
	if e, _ := res["error"].(map[string]any); code != 200 || res["status"] != "failed" || e["code"] != "NOT_FOUND" {
		t.Fatalf("a task started on the node: want status failed, NOT_FOUND (no plugin serves echo there), got %d %v", code, res)
	}
}
