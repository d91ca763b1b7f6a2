package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/dsmil/l7/internal/testutil"
)

// TestEmbedClients runs LangChain's OpenAIEmbeddings (embedDocuments in
// concurrent batches and in one request, embedQuery, dimensions, newline
// stripping) and the openai npm client (base64 and float) against the shim
// in front of the router and two real dsmil-embed processes, the tiny text
// encoder and the tiny CLIP dual encoder (embeddings.mjs): the same text
// gives the same vector through every client, call, batch and encoding
// (within 1e-6; the same request twice, bit for bit), and the vector of the
// Go reference forward pass (1e-5). Images, the DSMIL extension of input,
// go through the openai client (LangChain's OpenAIEmbeddings takes only
// strings): mixed with text in one request, base64 and float, equal to the
// vector this test gets for the same image over plain HTTP. Node and the
// clients are required in CI and skipped elsewhere when missing.
func TestEmbedClients(t *testing.T) {
	node := testutil.Node(t, nodeDir, "openai", "@langchain/openai")
	dir := t.TempDir()
	enc, ref := writeEncoder(t, dir)
	clip, clipRef := writeCLIP(t, dir)
	p := startHCL(t, dir, embedBlock(49, embedProfile, enc.Dir, embedModelID, "matryoshka = true")+
		embedBlock(50, clipProfile, clip.Dir, clipModelID, "")+tenantT())
	base := p.serveShim(t)

	text := "nothing leaves the host"
	want, _ := json.Marshal(map[string]any{"text": text, "vector": refVector(t, ref, wordIDs(t, enc.Vocab, text))})

	// The CLIP side: a text with its reference vector, and an image with the
	// vector the shim gives for it over plain HTTP (float).
	clipText := "the host"
	tv, err := clipRef.TextEmbeds(clipWordIDs(t, clip.Tokenizer, clipText))
	if err != nil {
		t.Fatal(err)
	}
	textVec := make([]float64, len(tv))
	for i, x := range tv {
		textVec[i] = float64(x)
	}
	url := "data:image/png;base64," + base64.StdEncoding.EncodeToString(testImage(t, "png", 120, 90, 1))
	status, a, raw := postEmbed(t, base, fmt.Sprintf(`{"model":%q,"input":[{"type":"image_url","image_url":{"url":%q}}],"encoding_format":"float"}`, clipModelID, url))
	if status != 200 {
		t.Fatalf("image over HTTP: %d %s", status, raw)
	}
	clipWant, _ := json.Marshal(map[string]any{"text": clipText, "vector": unit(textVec), "image": url, "image_vector": a.vectors(t)[0]})

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test-reporter=spec", "embeddings.mjs")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "OPENAI_BASE_URL="+base+"/v1", "OPENAI_API_KEY="+testAPIKey,
		"DSMIL_MODEL="+embedModelID, "DSMIL_EMBED_REF="+string(want),
		"DSMIL_CLIP_MODEL="+clipModelID, "DSMIL_CLIP_REF="+string(clipWant), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node embeddings.mjs: %v\n%s", err, out)
	}
	t.Logf("node embeddings.mjs:\n%s", out)
}
