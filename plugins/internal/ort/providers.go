package ort

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

// The OrtApi struct is a table of function pointers that ONNX Runtime only
// ever appends to (its ABI promise), so a function's index in it is fixed
// for every version that has it. onnxruntime_go v1.27 does not wrap
// GetAvailableProviders; these are its and ReleaseAvailableProviders'
// indices in onnxruntime_c_api.h (offsetof(OrtApi, f) / sizeof(void*)),
// both present since API version 2.
enum { idxGetAvailableProviders = 125, idxReleaseAvailableProviders = 126 };

typedef struct { const void* (*GetApi)(uint32_t version); const char* (*GetVersionString)(void); } apiBase;
typedef void* (*getProvidersFn)(char*** out, int* n);   // returns OrtStatus*
typedef void* (*releaseProvidersFn)(char** ptr, int n); // returns OrtStatus*

// dsmil_available_providers loads lib (already loaded by onnxruntime_go: the
// same handle), asks it for its execution providers and copies their names
// into one NUL-separated malloc'd buffer. It returns the count, or -1 when
// the library or API cannot be reached, -2 when ONNX Runtime fails.
static int dsmil_available_providers(const char* lib, uint32_t version, char** out, size_t* outLen) {
	void* h = dlopen(lib, RTLD_LAZY | RTLD_LOCAL);
	if (!h) return -1;
	const apiBase* (*getBase)(void) = (const apiBase* (*)(void))dlsym(h, "OrtGetApiBase");
	if (!getBase) { dlclose(h); return -1; }
	void* const* api = (void* const*)getBase()->GetApi(version);
	if (!api) { dlclose(h); return -1; }
	char** names = NULL;
	int n = 0;
	if (((getProvidersFn)api[idxGetAvailableProviders])(&names, &n) != NULL) { dlclose(h); return -2; }
	size_t total = 1;
	for (int i = 0; i < n; i++) { const char* s = names[i]; while (*s++) total++; total++; }
	char* buf = malloc(total), *p = buf;
	for (int i = 0; i < n && buf; i++) { const char* s = names[i]; while ((*p++ = *s++)); }
	((releaseProvidersFn)api[idxReleaseAvailableProviders])(names, n);
	dlclose(h);
	if (!buf) return -2;
	*out = buf;
	*outLen = (size_t)(p - buf);
	return n;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// ErrProviders reports that ONNX Runtime's execution providers could not be
// listed.
var ErrProviders = errors.New("ort: cannot list execution providers")

// apiVersion is the C API version asked for: the one onnxruntime_go needs.
const apiVersion = 24

// AvailableProviders asks the loaded ONNX Runtime (Init first) which
// execution providers it was built with, in its order of preference, such
// as ["CPUExecutionProvider"] for the pinned CPU build, or
// ["OpenVINOExecutionProvider", "CPUExecutionProvider"] for an OpenVINO
// build. It is ONNX Runtime's GetAvailableProviders: built in, not that the
// hardware behind a provider is present.
func AvailableProviders() ([]string, error) {
	info := Loaded()
	if info == nil {
		return nil, fmt.Errorf("%w: ONNX Runtime is not loaded", ErrProviders)
	}
	lib := C.CString(info.Library)
	defer C.free(unsafe.Pointer(lib))
	var buf *C.char
	var n C.size_t
	count := C.dsmil_available_providers(lib, apiVersion, &buf, &n)
	switch {
	case count == -1:
		return nil, fmt.Errorf("%w: %s has no C API version %d", ErrProviders, info.Library, apiVersion)
	case count < 0:
		return nil, fmt.Errorf("%w: GetAvailableProviders failed", ErrProviders)
	}
	defer C.free(unsafe.Pointer(buf))
	names := strings.Split(strings.TrimSuffix(C.GoStringN(buf, C.int(n)), "\x00"), "\x00")
	if count == 0 {
		return []string{}, nil
	}
	return names, nil
}
