// Package llmtest is what the llm-amx packages' tests share: loading ONNX
// Runtime (or skipping when none is installed), tiny generated models
// written once per test binary, and copying a model directory for a test
// to break. It is imported by tests only.
package llmtest

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/internal/ort"
)

// Library returns the ONNX Runtime library to use, or skips t when none is
// installed (make test always provides one).
func Library(t testing.TB) string {
	t.Helper()
	lib := ort.ResolveLibrary(os.Getenv)
	if lib == "" {
		t.Skip("ONNX Runtime is not installed: run make ort (make test does)")
	}
	return lib
}

// InitORT loads ONNX Runtime into this process, or skips t (see Library).
func InitORT(t testing.TB) {
	t.Helper()
	if _, err := ort.Init(Library(t)); err != nil {
		t.Fatal(err)
	}
}

var (
	dirOnce sync.Once
	dir     string
	dirErr  error
	models  sync.Map // key → *model
)

type model struct {
	once sync.Once
	res  *mkmodel.Result
	err  error
}

// Tiny writes, once per test binary and key, the "tiny" preset (2 layers,
// hidden 64, 512 tokens) changed by edit, and returns it. The directory is
// shared by the tests of the binary: a test that modifies a model copies
// it first (CopyDir).
func Tiny(t testing.TB, key string, edit func(*mkmodel.Spec)) *mkmodel.Result {
	t.Helper()
	v, _ := models.LoadOrStore(key, &model{})
	m := v.(*model)
	m.once.Do(func() {
		dirOnce.Do(func() { dir, dirErr = os.MkdirTemp("", "llm-amx-test") })
		if dirErr != nil {
			m.err = dirErr
			return
		}
		s, err := mkmodel.Preset("tiny")
		if err != nil {
			m.err = err
			return
		}
		if edit != nil {
			edit(&s)
		}
		m.res, m.err = mkmodel.Write(filepath.Join(dir, key), s)
	})
	if m.err != nil {
		t.Fatal(m.err)
	}
	return m.res
}

// Cleanup removes the models Tiny wrote; call it from TestMain after
// m.Run.
func Cleanup() {
	if dir != "" {
		os.RemoveAll(dir)
	}
}

// CopyDir copies a model directory (its files and onnx/) for a test to
// break, into a directory removed when t ends.
func CopyDir(t testing.TB, src string) string {
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
