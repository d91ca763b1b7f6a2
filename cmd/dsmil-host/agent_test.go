package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/internal/testutil"
)

// TestAgentRunSecured: `dsmil-host agent run` against a running host with
// a security block (real processes: the host, the agent plugin, echo as
// its LLM). With the client identity (-identity-key, -identity-bundle;
// roots from the configuration) it runs the DSMIL-PQ1 handshake on the
// router socket, mints the task's claim token with -claim-key (a
// claim_issuer for the tenant, the same key as the identity) and the task
// completes. Without the identity flags it says what is missing; a bundle
// signed by a root the host does not trust, or a -host-name the host's
// bundle does not carry, fail the handshake; without -claim-key the router
// refuses the task.
func TestAgentRunSecured(t *testing.T) {
	dir, host := buildHostAndEcho(t)
	if _, err := testutil.Build(dir, "dsmil-agent", "github.com/dsmil/l7/plugins/agent"); err != nil {
		t.Fatal(err)
	}
	keys := filepath.Join(dir, "keys")
	for _, args := range [][]string{
		{"keys", "gen", "-out", keys, "-name", "root"},
		{"keys", "gen", "-out", keys, "-name", "rogue"},
		{"keys", "gen", "-out", keys, "-name", "host"},
		{"keys", "gen", "-out", keys, "-name", "tool"},
		{"keys", "bundle", "-root", keys + "/root.key", "-name", "dsmil-host", "-role", "host", "-pub", keys + "/host.pub", "-out", keys + "/host.bundle"},
		{"keys", "bundle", "-root", keys + "/root.key", "-name", "soc-tool", "-role", "client", "-pub", keys + "/tool.pub", "-out", keys + "/tool.bundle"},
		{"keys", "bundle", "-root", keys + "/rogue.key", "-name", "soc-tool", "-role", "client", "-pub", keys + "/tool.pub", "-out", keys + "/rogue-tool.bundle"},
	} {
		if out, err := exec.Command(host, args...).CombinedOutput(); err != nil {
			t.Fatalf("dsmil-host %v: %v\n%s", args, err, out)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "ws"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "dsmil.hcl")
	if err := os.WriteFile(cfg, []byte(`
security {
  identity_key    = "keys/host.key"
  identity_bundle = "keys/host.bundle"
  roots           = ["keys/root.pub"]
  claim_issuer "soc-tool" {
    key     = "keys/tool.pub"
    tenants = ["T"]
  }
}
shim   { listen = "`+freePort(t)+`" }
router { socket = "run/router.sock" }
admin  { socket = "run/admin.sock" }
plugin "echo" {
  path      = "dsmil-echo"
  device_id = 47
  profiles  = ["echo"]
}
model "dsmil-echo" { profile = "echo" }
plugin "agent" {
  path       = "dsmil-agent"
  device_id  = 48
  profiles   = ["agent"]
  workspaces = { ws = "ws" }
  tasks = {
    # write_report needs SOC, which T lacks: the task is offered no
    # tool, so its one step (to echo, which takes no tools) answers.
    hello = {
      instructions = "Say hello."
      profile      = "echo"
      tools        = ["write_report"]
      max_steps    = 2
    }
  }
}
tenant "T" {
  api_key_sha256 = ["`+strings.Repeat("cd", 32)+`"]
  compartments   = ["DEV"]
  roe            = "SOC_ASSIST"
  models         = ["*"]
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cmd := exec.Command(host, "serve", "-config", cfg)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	waitList(t, host, cfg, 30*time.Second, "echo and agent healthy", func(s []snap) bool {
		return countNode(s, "", true) == 2
	})

	agentRun := func(args ...string) (int, string, string) {
		t.Helper()
		c := exec.Command(host, append([]string{"agent", "run", "-config", cfg}, args...)...)
		var stdout, stderr bytes.Buffer
		c.Stdout, c.Stderr = &stdout, &stderr
		err := c.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, stdout.String(), stderr.String()
	}
	id := []string{"-identity-key", keys + "/tool.key", "-identity-bundle", keys + "/tool.bundle"}

	code, stdout, stderr := agentRun(append(id, "-claim-key", keys+"/tool.key", "hello")...)
	if code != 0 || !strings.Contains(stdout, "status: completed") || !strings.Contains(stdout, "echo: ") || !strings.Contains(stderr, "step 1: no tool call") {
		t.Errorf("agent run with the identity: exit %d\nstdout:\n%s\nstderr:\n%s\nhost:\n%s", code, stdout, stderr, logs.String())
	}
	// The roots given explicitly, and the host's name checked.
	code, stdout, stderr = agentRun(append(id, "-roots", keys+"/root.pub", "-host-name", "dsmil-host", "-claim-key", keys+"/tool.key", "hello")...)
	if code != 0 || !strings.Contains(stdout, "status: completed") {
		t.Errorf("agent run with -roots and -host-name: exit %d\n%s\n%s", code, stdout, stderr)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no identity", []string{"-claim-key", keys + "/tool.key", "hello"}, 1, "-identity-key and -identity-bundle"},
		{"key without bundle", []string{"-identity-key", keys + "/tool.key", "hello"}, 2, "go together"},
		{"a rogue root's bundle", []string{"-identity-key", keys + "/tool.key", "-identity-bundle", keys + "/rogue-tool.bundle", "-claim-key", keys + "/tool.key", "hello"}, 1, "authentication failed"},
		{"the wrong host name", append(id, "-host-name", "other-host", "-claim-key", keys+"/tool.key", "hello"), 1, "handshake"},
		{"the host's bundle against the rogue root", append(id, "-roots", keys+"/rogue.pub", "-claim-key", keys+"/tool.key", "hello"), 1, "handshake"},
		{"no claim token", append(id, "hello"), 1, "CLAIM_TOKEN_INVALID"},
	} {
		code, stdout, stderr := agentRun(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || strings.Contains(stdout, "status: completed") {
			t.Errorf("%s: exit %d, want %d with %q\nstdout:\n%s\nstderr:\n%s", tc.name, code, tc.code, tc.want, stdout, stderr)
		}
	}
}
