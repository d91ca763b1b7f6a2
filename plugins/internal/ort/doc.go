// Package ort loads ONNX Runtime once per process and builds session
// options from the plugin's configuration.
//
// The library is found through, in order: the plugin's ort_library setting
// (read by the plugin, not here), the DSMIL_ORT_LIB environment variable
// (EnvLibrary; dsmil-host passes it only to plugin blocks that list it in
// pass_env), and the cache that `make ort` (plugins/llm-amx/ort/fetch.sh) fills,
// ${XDG_CACHE_HOME:-$HOME/.cache}/dsmil/ort/1.30.0/libonnxruntime.so.1. The
// pinned build is ONNX Runtime 1.30.0; github.com/yalue/onnxruntime_go needs
// at least 1.24 (C API 24).
//
// Init also reports the CPU features ONNX Runtime's kernels can use (AVX2,
// AVX-512, VNNI, AMX), for PluginInfo and the logs.
package ort
