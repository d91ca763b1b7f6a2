package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// ocrModelID is the multimodal plugin's model in TestMultimodal.
const ocrModelID = "dsmil-ocr-ppocrv4"

// noVisionKey is the key of TestMultimodal's tenant that may use the LLM
// but not its vision companion.
const noVisionKey = "no-vision-test-key"

// textPNG draws lines in Go Regular at 32 px, black on white.
func textPNG(t *testing.T, lines ...string) []byte {
	t.Helper()
	f, err := opentype.Parse(goregular.TTF)
	if err != nil {
		t.Fatal(err)
	}
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: 32, DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		t.Fatal(err)
	}
	defer face.Close()
	img := image.NewRGBA(image.Rect(0, 0, 640, 40+56*len(lines)))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	d := &font.Drawer{Dst: img, Src: image.NewUniform(color.Black), Face: face}
	for i, l := range lines {
		d.Dot = fixed.P(24, 60+56*i)
		d.DrawString(l)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// ocrModels runs the plugin's fetch.sh (make test has run it: then it
// only checks the cache) and returns the models directory.
func ocrModels(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("sh", "../../plugins/multimodal/models/fetch.sh").Output()
	if err != nil {
		t.Fatalf("fetch.sh: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestMultimodal runs the real dsmil-multimodal process (real ONNX
// Runtime, real PP-OCRv4 weights) behind the plugin manager, router and
// shim, and reads an image sent as a data: URL through
// /v1/chat/completions, as text and as json_object; an http(s) image URL
// and a decompression bomb are 400s naming the part.
func TestMultimodal(t *testing.T) {
	if os.Getenv(ortLibEnv) == "" {
		t.Skip(ortLibEnv + " is not set: make test sets it to the `make ort` cache")
	}
	dir := t.TempDir()
	bin, err := testutil.Build(dir, "dsmil-multimodal", "github.com/dsmil/l7/plugins/multimodal")
	if err != nil {
		t.Fatal(err)
	}
	echoBin, err := testutil.Build(dir, "dsmil-echo", "github.com/dsmil/l7/plugins/echo")
	if err != nil {
		t.Fatal(err)
	}
	cfg, diags := config.Parse(filepath.Join(dir, "dsmil.hcl"), []byte(fmt.Sprintf(`
plugin "multimodal" {
  path         = %q
  device_id    = 45
  profiles     = ["ocr"]
  max_restarts = 0
  pass_env     = ["DSMIL_ORT_LIB"]
  models       = %q
  threads      = 2
}
model %q { profile = "ocr" }
# The echo plugin stands in for an LLM: it answers with the last user
# message's text, so the test sees exactly what the LLM was given.
plugin "echo" {
  path      = %q
  device_id = 47
  profiles  = ["echo"]
}
model "dsmil-echo-vision" {
  profile = "echo"
  vision  = %q
}
tenant "T" {
  api_key_sha256 = ["%x"]
  compartments   = ["SOC"]
  models         = ["*"]
}
tenant "NO_VISION" {
  api_key_sha256 = ["%x"]
  compartments   = ["SOC"]
  models         = ["dsmil-echo-vision"]
}
`, bin, ocrModels(t), ocrModelID, echoBin, ocrModelID, sha256.Sum256([]byte(testAPIKey)), sha256.Sum256([]byte(noVisionKey)))))
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	p := &plane{cfg: cfg, logs: &testutil.SyncBuffer{}}
	p.m = pluginmgr.New(pluginmgr.Config{Plugins: cfg.Plugins, Files: cfg.Files(),
		Logger: hclog.New(&hclog.LoggerOptions{Output: p.logs, Level: hclog.Info})})
	ctx, cancel := context.WithCancel(context.Background())
	p.m.Start(ctx)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		p.m.Shutdown(sctx)
		cancel()
	})
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := p.m.WaitReady(wctx); err != nil {
		t.Fatalf("not ready: %v\n%s", err, p.logs.String())
	}
	if p.r, err = router.New(router.Config{Registry: p.m}); err != nil {
		t.Fatal(err)
	}
	base := p.serveShim(t)

	key := testAPIKey
	chatModel := func(model, content, extra string) (int, []byte) {
		body := fmt.Sprintf(`{"model": %q, "messages": [{"role": "user", "content": %s}]%s}`, model, content, extra)
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	chat := func(content, extra string) (int, []byte) { return chatModel(ocrModelID, content, extra) }
	imagePart := func(png []byte) string {
		return `{"type": "image_url", "image_url": {"url": "data:image/png;base64,` + base64.StdEncoding.EncodeToString(png) + `"}}`
	}
	var out struct {
		Model   string `json:"model"`
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
		Usage struct {
			CompletionTokens int `json:"completion_tokens"`
		} `json:"usage"`
	}
	img := textPNG(t, "Hello DSMIL 10.0.0.1", "ssh admin@10.1.2.3")
	status, b := chat(`[{"type": "text", "text": "Read this."}, `+imagePart(img)+`]`, "")
	if status != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Choices) != 1 {
		t.Fatalf("HTTP %d: %s\n%s", status, b, p.logs.String())
	}
	// The recognizer may drop a word space; the characters must all be there.
	want := "Hello DSMIL 10.0.0.1\nssh admin@10.1.2.3"
	got := out.Choices[0].Message.Content
	if squash(got) != squash(want) || strings.Count(got, "\n") != 1 || out.Model != ocrModelID || out.Usage.CompletionTokens == 0 {
		t.Fatalf("answer %q (model %s, usage %+v), want %q", got, out.Model, out.Usage, want)
	}

	status, b = chat(`[`+imagePart(img)+`]`, `, "response_format": {"type": "json_object"}`)
	var ans struct {
		Lines []struct {
			Text       string   `json:"text"`
			Confidence float64  `json:"confidence"`
			Box        [][2]int `json:"box"`
		} `json:"lines"`
	}
	if status != http.StatusOK || json.Unmarshal(b, &out) != nil || json.Unmarshal([]byte(out.Choices[0].Message.Content), &ans) != nil {
		t.Fatalf("json_object: HTTP %d: %s", status, b)
	}
	if len(ans.Lines) != 2 || squash(ans.Lines[0].Text) != "HelloDSMIL10.0.0.1" || len(ans.Lines[1].Box) != 4 || ans.Lines[1].Confidence < 0.8 {
		t.Fatalf("json_object lines %+v", ans.Lines)
	}

	// Fusion: the LLM model's images are transcribed by its companion and
	// handed to it as delimited text.
	status, b = chatModel("dsmil-echo-vision", `[{"type": "text", "text": "Describe this."}, `+imagePart(img)+`]`, "")
	if status != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Choices) != 1 {
		t.Fatalf("fusion: HTTP %d: %s\n%s", status, b, p.logs.String())
	}
	got = out.Choices[0].Message.Content
	head, tail := "echo: Describe this.\n[Image 1, transcribed by "+ocrModelID+"]\n", "\n[End of image 1]"
	if !strings.HasPrefix(got, head) || !strings.HasSuffix(got, tail) ||
		squash(strings.TrimSuffix(strings.TrimPrefix(got, head), tail)) != squash(want) {
		t.Fatalf("fusion: the LLM got %q", got)
	}
	// The inserted transcription is part of the LLM's prompt.
	var usage struct {
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if json.Unmarshal(b, &usage); usage.Usage.PromptTokens < 2+strings.Count(got, " ") {
		t.Errorf("fusion: prompt_tokens %d do not count the transcription", usage.Usage.PromptTokens)
	}
	// The companion's refusal is reported at the image's place.
	status, b = chatModel("dsmil-echo-vision", `[{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "http://example.com/a.png"}}]`, "")
	if status != http.StatusBadRequest || !strings.Contains(string(b), `"param":"messages[0].content[1].image_url"`) ||
		!strings.Contains(string(b), "no network egress") {
		t.Errorf("fusion, http image: HTTP %d: %s", status, b)
	}
	// A tenant that may use the LLM but not its companion cannot send it
	// images.
	key = noVisionKey
	status, b = chatModel("dsmil-echo-vision", `[`+imagePart(img)+`]`, "")
	if status != http.StatusForbidden || !strings.Contains(string(b), ocrModelID) {
		t.Errorf("fusion without the companion: HTTP %d: %s", status, b)
	}
	if status, b = chatModel("dsmil-echo-vision", `"text only"`, ""); status != http.StatusOK {
		t.Errorf("text without the companion: HTTP %d: %s", status, b)
	}
	key = testAPIKey

	for _, tc := range []struct {
		name, content, want string
	}{
		{"http", `[{"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]`, "no network egress"},
		{"bomb", `[` + imagePart(pngBomb(img)) + `]`, "image too large"},
		{"no image", `"just text"`, "image_url"},
	} {
		status, b := chat(tc.content, "")
		if status != http.StatusBadRequest || !strings.Contains(string(b), tc.want) || !strings.Contains(string(b), `"param":"messages`) {
			t.Errorf("%s: HTTP %d: %s", tc.name, status, b)
		}
	}
}

func squash(s string) string { return strings.Join(strings.Fields(s), "") }

// pngBomb rewrites a PNG's IHDR to claim 40000×40000 pixels, with a valid
// CRC: a small file whose header promises a 1.6-gigapixel image.
func pngBomb(b []byte) []byte {
	b = append([]byte(nil), b...)
	copy(b[16:24], []byte{0, 0, 0x9c, 0x40, 0, 0, 0x9c, 0x40})
	crc := crc32.ChecksumIEEE(b[12:29])
	b[29], b[30], b[31], b[32] = byte(crc>>24), byte(crc>>16), byte(crc>>8), byte(crc)
	return b
}
