package model

import (
	"os"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/internal/llm/llmtest"
	"github.com/dsmil/l7/plugins/internal/ort"
)

func initORT(t testing.TB) { llmtest.InitORT(t) }

// testOptions keep ORT to one thread: the tests run beside others.
// They keep the graph's logits of every position (AllLogits), as the tiny
// models do, so the tests can check every row.
var testOptions = Options{Session: ort.Options{IntraOpThreads: 1}, AllLogits: true}

// tiny writes (once per test binary and key) the tiny preset changed by
// edit and returns it. Tests that modify a model copy it first.
func tiny(t testing.TB, key string, edit func(*mkmodel.Spec)) *mkmodel.Result {
	t.Helper()
	return llmtest.Tiny(t, key, func(s *mkmodel.Spec) {
		s.Seed = 7
		s.AllLogits = true
		if edit != nil {
			edit(s)
		}
	})
}

func TestMain(m *testing.M) {
	code := m.Run()
	llmtest.Cleanup()
	os.Exit(code)
}

func copyDir(t testing.TB, src string) string { return llmtest.CopyDir(t, src) }

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
