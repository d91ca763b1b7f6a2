package ocr

import (
	"context"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/plugins/multimodal/internal/imagefile"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/corpus"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocrmodels"
)

var (
	engineOnce sync.Once
	engine     *Engine
	engineErr  error
)

// testEngine loads the real models on the real ONNX Runtime (make test
// installs both; ocrmodels.Fetch fetches the models when they are
// missing).
func testEngine(t testing.TB) *Engine {
	t.Helper()
	lib := ort.ResolveLibrary(os.Getenv)
	if lib == "" {
		t.Skip("ONNX Runtime is not installed: run make ort (make test does)")
	}
	engineOnce.Do(func() {
		if _, engineErr = ort.Init(lib); engineErr != nil {
			return
		}
		var p ocrmodels.Paths
		if p, engineErr = ocrmodels.Fetch(context.Background()); engineErr != nil {
			return
		}
		engine, engineErr = Load(p, Options{Session: ort.Options{IntraOpThreads: 2}})
	})
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	return engine
}

func readFile(t testing.TB, e *Engine, file []byte) []Line {
	t.Helper()
	img, err := imagefile.Decode(file, imagefile.DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := e.Read(context.Background(), img.Image)
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func texts(lines []Line) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = l.Text
	}
	return out
}

func TestReadOneLine(t *testing.T) {
	e := testEngine(t)
	file, err := corpus.Render([]string{"Hello DSMIL 10.0.0.1"}, corpus.Style{Size: 32, FG: black, BG: white})
	if err != nil {
		t.Fatal(err)
	}
	lines := readFile(t, e, file)
	if len(lines) != 1 || lines[0].Text != "Hello DSMIL 10.0.0.1" {
		t.Fatalf("got %q", texts(lines))
	}
	if c := lines[0].Confidence; c < 0.9 || c > 1 {
		t.Errorf("confidence %v", c)
	}
	b := lines[0].Box
	if !(b[0].X < b[1].X && b[1].Y < b[2].Y && b[3].X < b[2].X) {
		t.Errorf("box %v is not clockwise from the top-left", b)
	}
}

// corpusSize is the number of single-line samples of the accuracy test
// (DSMIL_OCR_CORPUS overrides it).
func corpusSize() int {
	n := 40
	if s := os.Getenv("DSMIL_OCR_CORPUS"); s != "" {
		var k int
		for _, c := range s {
			k = 10*k + int(c-'0')
		}
		n = k
	}
	return n
}

// TestAccuracy reads the rendered corpus with the real models and checks
// the character error rate against the bound measured when it was
// written (see README.md): a regression in any pre- or post-processing
// step shows up here.
func TestAccuracy(t *testing.T) {
	e := testEngine(t)
	samples, err := corpus.Generate(1, corpusSize())
	if err != nil {
		t.Fatal(err)
	}
	var all corpus.Score
	byKind := map[string]*corpus.Score{}
	for _, s := range samples {
		got := texts(readFile(t, e, s.File))
		all.Add(s.Lines, got)
		if byKind[s.Kind] == nil {
			byKind[s.Kind] = &corpus.Score{}
		}
		byKind[s.Kind].Add(s.Lines, got)
		if strings.Join(got, "\n") != strings.Join(s.Lines, "\n") {
			t.Logf("%s (%dpx tilt %.1f jpeg %v):\n  want %q\n  got  %q", s.Name, s.Size, s.Tilt, s.JPEG, s.Lines, got)
		}
	}
	kinds := make([]string, 0, len(byKind))
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Logf("%-8s %s", k, byKind[k])
	}
	t.Logf("all      %s", all)
	if all.CER() > maxCER {
		t.Errorf("CER %.4f > %.4f", all.CER(), maxCER)
	}
	if all.ExactRate() < minExact {
		t.Errorf("exact-line rate %.3f < %.3f", all.ExactRate(), minExact)
	}
}
