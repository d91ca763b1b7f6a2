package engine

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/llm-amx/internal/model"
	"github.com/dsmil/l7/plugins/llm-amx/internal/ort"
)

// initORT loads ONNX Runtime, or skips the test when none is installed
// (make test always provides one).
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
var testOptions = model.Options{Session: ort.Options{IntraOpThreads: 1}}

var (
	testDir    string
	modelsOnce sync.Map // name → *tinyModel
)

type tinyModel struct {
	once sync.Once
	res  *mkmodel.Result
	err  error
}

// tiny writes (once per test binary) the tiny preset with fp32 weights and
// a 4096-token context, and returns it. Tests that break a model copy it.
func tiny(t testing.TB) *mkmodel.Result {
	t.Helper()
	v, _ := modelsOnce.LoadOrStore("tiny", &tinyModel{})
	tm := v.(*tinyModel)
	tm.once.Do(func() {
		s, err := mkmodel.Preset("tiny")
		if err != nil {
			tm.err = err
			return
		}
		s.Seed, s.MaxPositions = 11, 4096
		tm.res, tm.err = mkmodel.Write(filepath.Join(testDir, "tiny"), s)
	})
	if tm.err != nil {
		t.Fatal(tm.err)
	}
	return tm.res
}

var (
	engineOnce sync.Once
	engineV    *Engine
	engineErr  error
)

// tinyEngine is the tiny model loaded once for all tests.
func tinyEngine(t testing.TB) *Engine {
	t.Helper()
	initORT(t)
	res := tiny(t)
	engineOnce.Do(func() { engineV, engineErr = Load(res.Dir, testOptions) })
	if engineErr != nil {
		t.Fatal(engineErr)
	}
	return engineV
}

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "llm-amx-engine-test")
	if err != nil {
		panic(err)
	}
	testDir = dir
	code := m.Run()
	if engineV != nil {
		engineV.Close()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// copyDir copies a model directory for a test to break.
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
