package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/dsmil/l7/internal/testutil"
)

// TestEmbedClients runs LangChain's OpenAIEmbeddings (embedDocuments in
// concurrent batches and in one request, embedQuery, dimensions, newline
// stripping) and the openai npm client (base64 and float) against the shim
// in front of the router and the real dsmil-embed process
// (embeddings.mjs): the same text gives the same vector through every
// client, call, batch and encoding (within 1e-6; the same request twice,
// bit for bit), and the vector of the Go reference forward pass (1e-5).
// Node and the clients are required in CI and skipped elsewhere when
// missing.
func TestEmbedClients(t *testing.T) {
	node := testutil.Node(t, nodeDir, "openai", "@langchain/openai")
	base, enc, ref := embedPlane(t)
	text := "nothing leaves the host"
	want, _ := json.Marshal(map[string]any{"text": text, "vector": refVector(t, ref, wordIDs(t, enc.Vocab, text))})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test-reporter=spec", "embeddings.mjs")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "OPENAI_BASE_URL="+base+"/v1", "OPENAI_API_KEY="+testAPIKey,
		"DSMIL_MODEL="+embedModelID, "DSMIL_EMBED_REF="+string(want), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node embeddings.mjs: %v\n%s", err, out)
	}
	t.Logf("node embeddings.mjs:\n%s", out)
}
