package ort

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestResolveLibrary(t *testing.T) {
	cache := t.TempDir()
	t.Setenv(EnvCache, cache)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == EnvLibrary {
				return v
			}
			return ""
		}
	}
	if got := ResolveLibrary(env("/env/lib.so")); got != "/env/lib.so" {
		t.Errorf("env: got %q", got)
	}
	if got := ResolveLibrary(env("")); got != "" {
		t.Errorf("empty env, nothing installed: got %q", got)
	}
	if got := ResolveLibrary(nil); got != "" {
		t.Errorf("nothing installed: got %q", got)
	}
	def := DefaultLibrary()
	if want := filepath.Join(cache, PinnedVersion, "libonnxruntime.so.1"); def != want {
		t.Errorf("DefaultLibrary = %q, want %q", def, want)
	}
	os.MkdirAll(filepath.Dir(def), 0o755)
	os.WriteFile(def, nil, 0o644)
	if got := ResolveLibrary(nil); got != def {
		t.Errorf("installed: got %q, want %q", got, def)
	}
}

func TestInitErrors(t *testing.T) {
	if Loaded() != nil {
		t.Skip("ONNX Runtime already loaded")
	}
	t.Setenv(EnvCache, t.TempDir())
	for _, tc := range []struct {
		lib  string
		err  error
		want string
	}{
		{"", ErrNoLibrary, "make ort"},
		{filepath.Join(t.TempDir(), "missing.so"), ErrNoLibrary, "make ort"},
	} {
		_, err := Init(tc.lib)
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Init(%q) = %v, want %v mentioning %q", tc.lib, err, tc.err, tc.want)
		}
	}
	notLib := filepath.Join(t.TempDir(), "not.so")
	os.WriteFile(notLib, []byte("not a library"), 0o644)
	if _, err := Init(notLib); !errors.Is(err, ErrLoad) {
		t.Errorf("Init(not a library) = %v, want ErrLoad", err)
	}
}

// TestInit loads the real library (make test installs it).
func TestInit(t *testing.T) {
	lib := ResolveLibrary(os.Getenv)
	if lib == "" {
		t.Skip("ONNX Runtime is not installed: run make ort (make test does)")
	}
	info, err := Init(lib)
	if err != nil {
		t.Fatal(err)
	}
	if older(info.Version, MinVersion) {
		t.Errorf("version %s < %s", info.Version, MinVersion)
	}
	t.Log(info)
	if again, err := Init(lib); err != nil || again != info {
		t.Errorf("second Init = %v, %v", again, err)
	}
	if _, err := Init(lib + ".other"); !errors.Is(err, ErrOtherLibrary) {
		t.Errorf("Init(other) = %v, want ErrOtherLibrary", err)
	}
	for _, o := range []Options{{}, {IntraOpThreads: 1, GraphOptimization: "basic", DisableSpinning: true}, {InterOpThreads: 2}} {
		so, err := o.SessionOptions()
		if err != nil {
			t.Errorf("%+v: %v", o, err)
			continue
		}
		so.Destroy()
	}
	if _, err := (Options{GraphOptimization: "max"}).SessionOptions(); !errors.Is(err, ErrOptions) {
		t.Errorf("bad level: %v", err)
	}
}

func TestOptionsDefaults(t *testing.T) {
	o := Options{}.WithDefaults()
	if o.IntraOpThreads != runtime.NumCPU() || o.GraphOptimization != OptAll {
		t.Errorf("defaults = %+v", o)
	}
	for _, bad := range []Options{{IntraOpThreads: -1}, {InterOpThreads: -1}, {GraphOptimization: "fast"}} {
		if err := bad.Validate(); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: Validate = %v", bad, err)
		}
	}
}

func TestOlder(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{{"1.23.2", "1.24.0", true}, {"1.24.0", "1.24.0", false}, {"1.30.0", "1.24.0", false}, {"2.0", "1.24.0", false}, {"1.9", "1.24", true}} {
		if got := older(tc.a, tc.b); got != tc.want {
			t.Errorf("older(%s, %s) = %v", tc.a, tc.b, got)
		}
	}
}

func TestCPUFeatures(t *testing.T) {
	if got := (CPUFeatures{}).String(); got != "baseline" {
		t.Errorf("empty = %q", got)
	}
	if got := (CPUFeatures{AVX2: true, AVX512VNNI: true, AMXInt8: true}).String(); got != "avx2 avx512vnni amx-int8" {
		t.Errorf("String = %q", got)
	}
	t.Log("this CPU:", DetectCPU())
}
