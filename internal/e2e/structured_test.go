package e2e

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/dsmil/l7/internal/testutil"
)

// nodeDir holds the npm clients the shim's tests drive (package.json and
// its committed lockfile; `npm ci` there installs them).
const nodeDir = "../../host/shim/testdata/openai-node"

// TestStructuredClients runs real clients — the openai npm client and
// LangChain — against the shim in front of the router and the llm-amx
// plugin serving a random-weight model: structured outputs, forced and
// streamed tool calls, a tool round trip, bindTools and
// withStructuredOutput (structured.mjs). Node and the clients are required
// in CI and skipped elsewhere when missing.
func TestStructuredClients(t *testing.T) {
	node := testutil.Node(t, nodeDir, "openai", "@langchain/openai")
	p := startPlane(t, 4096, `kv_budget = "8MiB"`)
	base := p.serveShim(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test-reporter=spec", "structured.mjs")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "OPENAI_BASE_URL="+base+"/v1", "OPENAI_API_KEY="+testAPIKey, "DSMIL_MODEL="+tinyModelID, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node structured.mjs: %v\n%s\nplugin log:\n%s", err, out, p.logs.String())
	}
	t.Logf("node structured.mjs:\n%s", out)
}
