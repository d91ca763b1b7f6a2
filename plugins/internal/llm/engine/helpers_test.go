package engine

import (
	"os"
	"sync"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/internal/llm/llmtest"
	"github.com/dsmil/l7/plugins/internal/llm/model"
	"github.com/dsmil/l7/plugins/internal/ort"
)

func initORT(t testing.TB) { llmtest.InitORT(t) }

// testOptions keep ORT to one thread: the tests run beside others.
var testOptions = model.Options{Session: ort.Options{IntraOpThreads: 1}}

// tiny is the tiny preset with fp32 weights and a 4096-token context,
// written once per test binary. Tests that break a model copy it.
func tiny(t testing.TB) *mkmodel.Result {
	t.Helper()
	return llmtest.Tiny(t, "tiny", func(s *mkmodel.Spec) { s.Seed, s.MaxPositions = 11, 4096 })
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
	code := m.Run()
	if engineV != nil {
		engineV.Close()
	}
	llmtest.Cleanup()
	os.Exit(code)
}

func copyDir(t testing.TB, src string) string { return llmtest.CopyDir(t, src) }
