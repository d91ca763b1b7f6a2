package shim

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/dsmil/l7/internal/testutil"
)

// nodeTestDir holds the openai npm client test: package.json, the
// committed package-lock.json and test.mjs. `npm ci` there installs the
// client (.ci/run and `make deps` do it).
const nodeTestDir = "testdata/openai-node"

// TestOpenAINodeClient runs the official openai npm client against a shim
// in front of the real router and echo plugins: list, chat, streaming with
// usage, completions, embeddings (base64 by default and float) and every
// error class. It skips when node or the
// installed client is missing, except in CI (CI or DSMIL_REQUIRE_NODE set),
// where that is a failure.
func TestOpenAINodeClient(t *testing.T) {
	node := testutil.Node(t, nodeTestDir, "openai")
	_, base := startShim(t, func(c *Config) {
		c.Shim.RequestTimeout = 2 * time.Second // dsmil-slow needs 4 s for the 504 case
		c.Shim.MaxBodyBytes = 64 << 10          // the 413 case sends 100 kB
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test-reporter=spec", "test.mjs")
	cmd.Dir = nodeTestDir
	cmd.Env = append(os.Environ(),
		"OPENAI_BASE_URL="+base+"/v1",
		"OPENAI_API_KEY="+keyT,
		"DSMIL_KEY_KINETIC="+keyKinetic,
		"DSMIL_KEY_RATED="+keyRated,
		"NO_COLOR=1",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node test.mjs: %v\n%s", err, out)
	}
	t.Logf("node test.mjs:\n%s", out)
}
