package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
)

const (
	clipModelID = "dsmil-random-tiny-clip"
	clipProfile = "embed-clip-tiny"
)

// clipPlane writes the tiny CLIP dual encoder and serves it with the real
// dsmil-embed process under the plugin manager, router and shim, with
// max_batch 2 and max_image_pixels 100 000. It returns the shim's URL, the
// model and its reference forward pass.
func clipPlane(t *testing.T) (string, *mkmodel.CLIPResult, *mkmodel.CLIPReference) {
	t.Helper()
	dir := t.TempDir()
	m, ref := writeCLIP(t, dir)
	p := startHCL(t, dir, embedBlock(49, clipProfile, m.Dir, clipModelID, "max_image_pixels = 100000")+tenantT())
	return p.serveShim(t), m, ref
}

// writeCLIP writes the tiny CLIP dual encoder (seed 13) in dir and makes
// its reference forward pass.
func writeCLIP(t *testing.T, dir string) (*mkmodel.CLIPResult, *mkmodel.CLIPReference) {
	t.Helper()
	if os.Getenv(ortLibEnv) == "" {
		t.Skip(ortLibEnv + " is not set: make test sets it to the `make ort` cache")
	}
	spec, err := mkmodel.CLIPPreset("tiny-clip")
	if err != nil {
		t.Fatal(err)
	}
	spec.Seed = 13
	m, err := mkmodel.WriteCLIP(filepath.Join(dir, "tiny-clip"), spec)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := mkmodel.NewCLIPReference(m.Spec, m.Tokenizer.ID(mkmodel.EndOfText))
	if err != nil {
		t.Fatal(err)
	}
	return m, ref
}

// clipWordIDs are the ids of <|startoftext|> words <|endoftext|> in the
// generated CLIP vocabulary, for a text of words it has whole.
func clipWordIDs(t *testing.T, tok *mkmodel.CLIPTokenizer, text string) []int64 {
	t.Helper()
	ids := []int64{int64(tok.ID(mkmodel.StartOfText))}
	for _, w := range strings.Fields(strings.ToLower(text)) {
		id := tok.ID(w + "</w>")
		if id < 0 {
			t.Fatalf("%q is not a whole token of the generated vocabulary", w)
		}
		ids = append(ids, int64(id))
	}
	return append(ids, int64(tok.ID(mkmodel.EndOfText)))
}

// testImage encodes a w×h colour pattern as PNG or JPEG.
func testImage(t *testing.T, format string, w, h, seed int) []byte {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Set(x, y, color.RGBA{uint8(x*255/w + seed), uint8(y * 255 / h), uint8((x*seed + y) % 256), 255})
		}
	}
	var buf bytes.Buffer
	var err error
	if format == "png" {
		err = png.Encode(&buf, m)
	} else {
		err = jpeg.Encode(&buf, m, &jpeg.Options{Quality: 90})
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func imageJSON(mime string, data []byte) string {
	return fmt.Sprintf(`{"type":"image_url","image_url":{"url":"data:%s;base64,%s"}}`, mime, base64.StdEncoding.EncodeToString(data))
}

// TestEmbedCLIP sends texts and images to /v1/embeddings through the
// shim, the router and the real dsmil-embed process running the tiny CLIP
// dual encoder on ONNX Runtime. The random weights give no meaning to
// compare, so it checks what can be: every vector — text or image — is a
// unit vector of the shared 24 dimensions; the texts equal the Go
// reference forward pass; the same image twice in a request, and the same
// request twice, give identical vectors, different images different ones;
// usage counts the text tokens and 17 per image; bad and oversized images
// are 400s naming the input.
func TestEmbedCLIP(t *testing.T) {
	base, m, ref := clipPlane(t)
	cat, dog := testImage(t, "png", 120, 90, 1), testImage(t, "jpeg", 200, 260, 9)
	// Words the tiny tokenizer has whole, lower-cased and spaced by CLIP's
	// normaliser: their ids are <|startoftext|>, "word</w>"…, <|endoftext|>.
	texts := []string{"The  model reads\tthe prompt", "the host"}
	body := fmt.Sprintf(`{"model":%q,"input":[%q,%s,%q,%s,%s]}`, clipModelID,
		texts[0], imageJSON("image/png", cat), texts[1], imageJSON("image/jpeg", dog), imageJSON("image/png", cat))
	status, a, raw := postEmbed(t, base, body)
	if status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
	vecs := a.vectors(t)
	if a.Model != clipModelID || len(vecs) != 5 || a.Meta.DeviceID != 49 || a.Meta.L7Profile != clipProfile {
		t.Fatalf("model %q, %d vectors, metadata %+v", a.Model, len(vecs), a.Meta)
	}
	for i, v := range vecs {
		var s float64
		for _, x := range v {
			s += x * x
		}
		if len(v) != 24 || math.Abs(math.Sqrt(s)-1) > 1e-5 {
			t.Errorf("input %d: %d values, norm %v; want a unit vector of 24", i, len(v), math.Sqrt(s))
		}
	}
	tokens := 2 * 17
	for k, i := range []int{0, 2} {
		ids64 := clipWordIDs(t, m.Tokenizer, texts[k])
		tokens += len(ids64)
		want, err := ref.TextEmbeds(ids64)
		if err != nil {
			t.Fatal(err)
		}
		w := make([]float64, len(want))
		for j, x := range want {
			w[j] = float64(x)
		}
		if d := maxDiff(vecs[i], unit(w)); d > 1e-5 {
			t.Errorf("text %q: max |shim - reference| = %g", texts[k], d)
		}
	}
	if a.Usage.PromptTokens != tokens+17 || a.Usage.TotalTokens != a.Usage.PromptTokens {
		t.Errorf("usage %+v, want %d prompt tokens (two texts' tokens, three images of 17)", a.Usage, tokens+17)
	}
	if d := maxDiff(vecs[1], vecs[4]); d != 0 {
		t.Errorf("the same image twice differs by %g", d)
	}
	if d := maxDiff(vecs[1], vecs[3]); d < 1e-3 {
		t.Errorf("two different images are within %g", d)
	}
	// The same request again: the same vectors, bit for bit.
	_, again, raw := postEmbed(t, base, body)
	for i, v := range again.vectors(t) {
		if d := maxDiff(v, vecs[i]); d != 0 {
			t.Errorf("input %d differs by %g on a second request (%s)", i, d, raw[:min(len(raw), 80)])
		}
	}

	big := testImage(t, "png", 400, 300, 3)
	for _, tc := range []struct{ body, param, msg string }{
		{fmt.Sprintf(`{"model":%q,"input":["ok",%s]}`, clipModelID, imageJSON("image/png", big)), "input", "input 1: image too large: 400x300 is 120000 pixels, more than the limit of 100000"},
		{fmt.Sprintf(`{"model":%q,"input":[%s]}`, clipModelID, imageJSON("image/png", []byte("plain text, not a picture"))), "input", "input 0: unsupported image format: not PNG, JPEG, GIF, BMP or WebP"},
		{fmt.Sprintf(`{"model":%q,"input":[%s]}`, clipModelID, imageJSON("image/png", cat[:len(cat)/2])), "input", "input 0: corrupt image: png"},
		{fmt.Sprintf(`{"model":%q,"input":[{"type":"image_url","image_url":{"url":"https://example.com/cat.png"}}]}`, clipModelID), "input[0].image_url.url", "Only data: URLs"},
		{fmt.Sprintf(`{"model":%q,"input":%q}`, clipModelID, strings.Repeat("cat ", 80)), "input", "tokens; the model takes at most 77"},
	} {
		status, _, raw := postEmbed(t, base, tc.body)
		var e struct {
			Error struct {
				Message string `json:"message"`
				Param   string `json:"param"`
			} `json:"error"`
		}
		json.Unmarshal([]byte(raw), &e)
		if status != 400 || e.Error.Param != tc.param || !strings.Contains(e.Error.Message, tc.msg) {
			t.Errorf("%s: %d %s", tc.msg, status, raw[:min(len(raw), 300)])
		}
	}
}
