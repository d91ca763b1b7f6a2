package model

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/llm-amx/internal/ort"
)

// initORT loads ONNX Runtime, or skips the test when none is installed
// and none was asked for (make test always provides one).
func initORT(t testing.TB) {
	t.Helper()
	lib := ort.ResolveLibrary(config.ONNXRuntimeConfig{}, os.Getenv)
	if lib == "" {
		t.Skip("ONNX Runtime is not installed: run make ort (make test does)")
	}
	if _, err := ort.Init(lib); err != nil {
		t.Fatal(err)
	}
}

// testOptions keep ORT to one thread: the tests run beside others.
var testOptions = Options{Session: ort.Options{IntraOpThreads: 1}}

var (
	tinyOnce sync.Map // key string → *tinyModel
)

type tinyModel struct {
	once sync.Once
	res  *mkmodel.Result
	err  error
}

// tiny writes (once per test binary and spec) a tiny model and returns
// it. The directory is shared: tests that modify a model copy it first.
func tiny(t testing.TB, key string, edit func(*mkmodel.Spec)) *mkmodel.Result {
	t.Helper()
	v, _ := tinyOnce.LoadOrStore(key, &tinyModel{})
	tm := v.(*tinyModel)
	tm.once.Do(func() {
		s, err := mkmodel.Preset("tiny")
		if err != nil {
			tm.err = err
			return
		}
		s.Seed = 7
		if edit != nil {
			edit(&s)
		}
		tm.res, tm.err = mkmodel.Write(filepath.Join(testDir, key), s)
	})
	if tm.err != nil {
		t.Fatal(tm.err)
	}
	return tm.res
}

var testDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llm-amx-model-test")
	if err != nil {
		panic(err)
	}
	testDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// copyDir copies a model directory (flat files and onnx/) for a test to
// break.
func copyDir(t testing.TB, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if info.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func maxAbsDiff(a, b []float32) float64 {
	var m float64
	for i := range a {
		d := float64(a[i]) - float64(b[i])
		if d < 0 {
			d = -d
		}
		m = max(m, d)
	}
	return m
}
