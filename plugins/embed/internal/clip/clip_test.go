package clip

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/internal/ort"
)

// initORT loads ONNX Runtime, or skips when none is installed (make test
// always provides one).
func initORT(t testing.TB) {
	t.Helper()
	lib := ort.ResolveLibrary(os.Getenv)
	if lib == "" {
		t.Skip("ONNX Runtime is not installed: run make ort (make test does)")
	}
	if _, err := ort.Init(lib); err != nil {
		t.Fatal(err)
	}
}

// tinyCLIP writes the tiny-clip preset and returns it loaded, with its
// reference.
func tinyCLIP(t *testing.T) (*Model, *mkmodel.CLIPReference, *mkmodel.CLIPResult) {
	t.Helper()
	initORT(t)
	s, err := mkmodel.CLIPPreset("tiny-clip")
	if err != nil {
		t.Fatal(err)
	}
	s.Seed = 5
	r, err := mkmodel.WriteCLIP(filepath.Join(t.TempDir(), "clip"), s)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(r.Dir, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ref, err := mkmodel.NewCLIPReference(r.Spec, r.Tokenizer.ID(mkmodel.EndOfText))
	if err != nil {
		t.Fatal(err)
	}
	return m, ref, r
}

var texts = []string{
	"a photo of a cat",
	"hello",
	"The local plane answers questions on the machine itself, and nothing leaves the host.",
	"unaffable tokenization of words the vocabulary lacks: zyx 42",
}

// testPixels is a deterministic pseudo-image in CLIP's normalised range.
func testPixels(n, seed int) []float32 {
	p := make([]float32, n)
	for i := range p {
		p[i] = float32(math.Sin(float64(i*(seed+3))*0.37+float64(seed))) * 1.8
	}
	return p
}

func maxDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

// TestMatchesReference runs the generated dual encoder on ONNX Runtime —
// four texts of different lengths in one padded batch, three images in one
// batch — and compares every vector with the Go reference forward pass of
// the same weights (mkmodel.CLIPReference), normalised.
func TestMatchesReference(t *testing.T) {
	m, ref, r := tinyCLIP(t)
	if m.Layout != LayoutSplit || m.Config.ProjectionDim != 24 || m.Config.MaxSeqLength != 77 || !m.Config.RandomWeights || !m.textMask {
		t.Fatalf("layout %s, config %+v, mask %v", m.Layout, m.Config, m.textMask)
	}
	seqs := make([][]int64, len(texts))
	for i, s := range texts {
		seqs[i] = m.Encode(s)
	}
	sot, eot := int64(r.Tokenizer.ID(mkmodel.StartOfText)), int64(r.Tokenizer.ID(mkmodel.EndOfText))
	if s := seqs[1]; s[0] != sot || s[len(s)-1] != eot {
		t.Fatalf("%q encodes to %v: no <|startoftext|> … <|endoftext|>", texts[1], s)
	}
	// CLIP's normaliser and pre-tokenizer, by hand: whitespace runs and
	// case do not matter, a word the vocabulary has whole is one token
	// with "</w>", punctuation is a word of its own, digits one by one.
	tok := r.Tokenizer
	word := func(w string) int64 {
		id := tok.ID(w + "</w>")
		if id < 0 {
			t.Fatalf("%q</w> is not in the generated vocabulary", w)
		}
		return int64(id)
	}
	for _, tc := range []struct {
		text string
		want []int64
	}{
		{"The  MODEL\treads", []int64{sot, word("the"), word("model"), word("reads"), eot}},
		{" the host. ", []int64{sot, word("the"), word("host"), word("."), eot}},
		{"42", []int64{sot, word("4"), word("2"), eot}},
	} {
		if got := m.Encode(tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	got, err := m.EmbedText(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	worst := 0.0
	for i, s := range seqs {
		want, err := ref.TextEmbeds(s)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(got[i], normalize(want)); d > 1e-5 {
			t.Errorf("text %d (%d tokens): max |ORT - reference| = %g", i, len(s), d)
		} else {
			worst = max(worst, d)
		}
	}
	t.Logf("texts: largest difference from the reference %.2g", worst)

	n := 3 * 32 * 32
	images := [][]float32{testPixels(n, 1), testPixels(n, 2), make([]float32, n)}
	vecs, err := m.EmbedImages(context.Background(), images)
	if err != nil {
		t.Fatal(err)
	}
	worst = 0
	for i, px := range images {
		want, err := ref.ImageEmbeds(px)
		if err != nil {
			t.Fatal(err)
		}
		if d := maxDiff(vecs[i], normalize(want)); d > 1e-5 {
			t.Errorf("image %d: max |ORT - reference| = %g", i, d)
		} else {
			worst = max(worst, d)
		}
		if len(vecs[i]) != len(got[0]) {
			t.Errorf("image vector %d values, text vector %d", len(vecs[i]), len(got[0]))
		}
	}
	t.Logf("images: largest difference from the reference %.2g", worst)
}

// TestCombinedLayout: one model.onnx with both towers (Optimum's CLIPModel
// export, its embeddings already normalised) loads as LayoutCombined and
// gives the vectors the split graphs of the same weights give.
func TestCombinedLayout(t *testing.T) {
	split, _, r := tinyCLIP(t)
	s := r.Spec
	s.Combined = true
	rc, err := mkmodel.WriteCLIP(filepath.Join(t.TempDir(), "combined"), s)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(rc.Dir, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Layout != LayoutCombined || !m.textMask {
		t.Fatalf("layout %s, mask %v", m.Layout, m.textMask)
	}
	ctx := context.Background()
	seqs := [][]int64{m.Encode(texts[0]), m.Encode(texts[2])}
	images := [][]float32{testPixels(3*32*32, 4), testPixels(3*32*32, 5), testPixels(3*32*32, 6)}
	for _, tc := range []struct {
		name string
		run  func(*Model) ([][]float32, error)
	}{
		{"texts", func(m *Model) ([][]float32, error) { return m.EmbedText(ctx, seqs) }},
		{"images", func(m *Model) ([][]float32, error) { return m.EmbedImages(ctx, images) }},
	} {
		want, err := tc.run(split)
		if err != nil {
			t.Fatal(err)
		}
		got, err := tc.run(m)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if d := maxDiff(got[i], want[i]); d > 1e-6 {
				t.Errorf("%s %d: combined and split differ by %g", tc.name, i, d)
			}
		}
	}
}

// TestLayoutErrors: directories that are not CLIP models this package runs
// fail with ErrLayout naming what is wrong.
func TestLayoutErrors(t *testing.T) {
	initORT(t)
	s, _ := mkmodel.CLIPPreset("tiny-clip")
	r, err := mkmodel.WriteCLIP(filepath.Join(t.TempDir(), "clip"), s)
	if err != nil {
		t.Fatal(err)
	}
	if !IsCLIP(r.Dir) || IsCLIP(t.TempDir()) {
		t.Error("IsCLIP")
	}
	// The vision model takes 32x32 images; a preprocessor making 224x224
	// ones is refused.
	pre := filepath.Join(r.Dir, "preprocessor_config.json")
	orig, _ := os.ReadFile(pre)
	os.WriteFile(pre, []byte(strings.ReplaceAll(string(orig), `"width": 32`, `"width": 224`)), 0o644)
	if _, err := LoadConfig(r.Dir); !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), "makes 224x32 images; the vision model takes 32x32") {
		t.Errorf("crop mismatch: %v", err)
	}
	os.WriteFile(pre, orig, 0o644)
	os.Remove(r.VisionONNX)
	if _, err := Load(r.Dir, ort.Options{}); !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), "neither text_model.onnx and vision_model.onnx nor model.onnx") {
		t.Errorf("no vision model: %v", err)
	}
	// A text encoder's graph in place of the vision model.
	enc, _ := mkmodel.EncoderPreset("tiny-encoder")
	er, err := mkmodel.WriteEncoder(filepath.Join(t.TempDir(), "enc"), enc)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(er.ONNX)
	os.WriteFile(r.VisionONNX, b, 0o644)
	if _, err := Load(r.Dir, ort.Options{}); !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), "has no input pixel_values") {
		t.Errorf("a text graph as the vision model: %v", err)
	}
}
