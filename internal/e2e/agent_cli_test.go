package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/host/cli"
)

// TestAgentCLI: `dsmil-host agent run` runs a task on a running host
// through its router socket (the real router, agent and llm-amx plugins),
// as a tenant of the configuration with a claim token minted by an issuer
// key: a line per step, the result, exit 0; the agent's refusal of wrong
// parameters is exit 1 with the router's error.
func TestAgentCLI(t *testing.T) {
	p := startAgentPlane(t)
	sock := p.serveRouterSocket(t)
	hcl := filepath.Join(t.TempDir(), "dsmil.hcl")
	if err := os.WriteFile(hcl, []byte(fmt.Sprintf(`
router { socket = %q }
tenant %q {
  api_key_sha256 = ["%064x"]
  compartments   = ["SOC"]
  roe            = "SOC_ASSIST"
  models         = ["*"]
}
`, sock, socTenant, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := cli.Run(context.Background(), []string{"agent", "run", "-config", hcl, "-claim-key", p.claimKey, "report"}, &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "status: completed") || !strings.Contains(stdout.String(), "artifact: "+filepath.Join(p.artifacts, socTenant)) ||
		!strings.Contains(stderr.String(), "step 1: write_report(") || !strings.Contains(stderr.String(), "step 2: no tool call") {
		t.Errorf("agent run report: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	code = cli.Run(context.Background(), []string{"agent", "run", "-config", hcl, "-claim-key", p.claimKey, "-param", "x=1", "report"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "INVALID_REQUEST") || !strings.Contains(stderr.String(), "x") {
		t.Errorf("agent run with an undeclared parameter: exit %d\n%s", code, stderr.String())
	}
	// Without a claim token the router refuses the task.
	stderr.Reset()
	if code = cli.Run(context.Background(), []string{"agent", "run", "-config", hcl, "report"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "CLAIM_TOKEN_INVALID") {
		t.Errorf("agent run without a claim: exit %d\n%s", code, stderr.String())
	}
}
