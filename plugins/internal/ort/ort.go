package ort

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	ortgo "github.com/yalue/onnxruntime_go"
)

// PinnedVersion is the ONNX Runtime release `make ort` installs.
const PinnedVersion = "1.30.0"

// MinVersion is the oldest ONNX Runtime onnxruntime_go v1.27 can drive (it
// asks for C API 24).
const MinVersion = "1.24.0"

// EnvLibrary names the ONNX Runtime library to load when a plugin's
// settings name none. dsmil-host passes it to a plugin only when the
// plugin block lists it in pass_env (the shipped dsmil.hcl does for
// llm-amx); `make run` sets it to the `make ort` cache.
const EnvLibrary = "DSMIL_ORT_LIB"

// EnvCache overrides the cache root fetch.sh and DefaultLibrary use
// (default ${XDG_CACHE_HOME:-$HOME/.cache}/dsmil/ort).
const EnvCache = "DSMIL_ORT_CACHE"

var (
	// ErrNoLibrary reports that no ONNX Runtime library was configured or
	// installed, or that the configured file does not exist.
	ErrNoLibrary = errors.New("ort: ONNX Runtime library not found")

	// ErrLoad reports a library that exists but could not be initialized
	// (not a shared library, wrong architecture, too old a version).
	ErrLoad = errors.New("ort: cannot initialize ONNX Runtime")

	// ErrOtherLibrary reports an Init with a library other than the one
	// already loaded; a process loads one ONNX Runtime.
	ErrOtherLibrary = errors.New("ort: another ONNX Runtime library is already loaded")
)

// DefaultLibrary is where `make ort` installs the pinned library.
func DefaultLibrary() string {
	base := os.Getenv(EnvCache)
	if base == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return ""
		}
		base = filepath.Join(cache, "dsmil", "ort")
	}
	return filepath.Join(base, PinnedVersion, "libonnxruntime.so.1")
}

// ResolveLibrary picks the library to load when no setting names one:
// $DSMIL_ORT_LIB, else DefaultLibrary when that file exists, else "".
// getenv is usually os.Getenv; nil means no environment.
func ResolveLibrary(getenv func(string) string) string {
	if getenv != nil {
		if lib := getenv(EnvLibrary); lib != "" {
			return lib
		}
	}
	if def := DefaultLibrary(); def != "" {
		if _, err := os.Stat(def); err == nil {
			return def
		}
	}
	return ""
}

// Info describes the loaded ONNX Runtime.
type Info struct {
	// Library is the path it was loaded from.
	Library string
	// Version is ONNX Runtime's own version string, such as "1.30.0".
	Version string
	// CPU lists the CPU features its kernels can use.
	CPU CPUFeatures
}

func (i *Info) String() string {
	return fmt.Sprintf("ONNX Runtime %s (%s), CPU: %s", i.Version, i.Library, i.CPU)
}

var (
	mu     sync.Mutex
	loaded *Info
)

// Init loads the library and creates the process-wide ONNX Runtime
// environment. Calling it again with the same library returns the same
// Info; with another library it fails with ErrOtherLibrary. A library
// path containing a slash must exist; a bare file name is left to the
// dynamic loader's search path; "" fails with ErrNoLibrary.
func Init(library string) (*Info, error) {
	mu.Lock()
	defer mu.Unlock()
	if loaded != nil {
		if library != loaded.Library {
			return nil, fmt.Errorf("%w: %s is loaded, %s was asked for", ErrOtherLibrary, loaded.Library, library)
		}
		return loaded, nil
	}
	hint := `run "make ort" to install ONNX Runtime ` + PinnedVersion + `, or point the plugin's ort_library setting (or ` + EnvLibrary +
		`, passed with pass_env) at a libonnxruntime.so >= ` + MinVersion
	if library == "" {
		return nil, fmt.Errorf("%w: none configured and %s does not exist; %s", ErrNoLibrary, DefaultLibrary(), hint)
	}
	if strings.ContainsRune(library, '/') {
		if _, err := os.Stat(library); err != nil {
			return nil, fmt.Errorf("%w: %v; %s", ErrNoLibrary, err, hint)
		}
	}
	ortgo.SetSharedLibraryPath(library)
	if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
		return nil, fmt.Errorf("%w from %s: %v (onnxruntime_go needs ONNX Runtime >= %s); %s",
			ErrLoad, library, err, MinVersion, hint)
	}
	info := &Info{Library: library, Version: ortgo.GetVersion(), CPU: DetectCPU()}
	if older(info.Version, MinVersion) {
		_ = ortgo.DestroyEnvironment()
		return nil, fmt.Errorf("%w from %s: version %s is older than %s; %s", ErrLoad, library, info.Version, MinVersion, hint)
	}
	loaded = info
	return info, nil
}

// Loaded returns the Info of the loaded runtime, or nil before Init.
func Loaded() *Info {
	mu.Lock()
	defer mu.Unlock()
	return loaded
}

// older reports whether dotted version a is older than b; unparsable
// parts count as 0.
func older(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}
