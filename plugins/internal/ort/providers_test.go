package ort

import (
	"errors"
	"os"
	"slices"
	"testing"
)

// TestAvailableProviders asks the real ONNX Runtime for its providers: the
// pinned build is a CPU build, so CPUExecutionProvider is among them.
func TestAvailableProviders(t *testing.T) {
	if Loaded() == nil {
		if _, err := AvailableProviders(); !errors.Is(err, ErrProviders) {
			t.Errorf("before Init: err = %v, want ErrProviders", err)
		}
	}
	lib := ResolveLibrary(os.Getenv)
	if lib == "" {
		t.Skip("no ONNX Runtime installed (make ort)")
	}
	if _, err := Init(lib); err != nil {
		t.Fatal(err)
	}
	got, err := AvailableProviders()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(got, "CPUExecutionProvider") {
		t.Errorf("providers %q lack CPUExecutionProvider", got)
	}
	for _, p := range got {
		if p == "" {
			t.Errorf("empty provider name in %q", got)
		}
	}
	t.Logf("ONNX Runtime %s providers: %q", Loaded().Version, got)
}
