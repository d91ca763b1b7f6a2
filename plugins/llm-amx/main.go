// Command dsmil-llm-amx is the llm-amx plugin: Device 47's LLM worker,
// running decoder-only models on ONNX Runtime's CPU execution provider
// (AVX2, AVX-512, VNNI and AMX kernels). The workload is the shared LLM
// worker (plugins/internal/llm/worker); this file is what is llm-amx's own.
// dsmil-host starts it; see README.md.
package main

import (
	"github.com/dsmil/l7/plugins/internal/llm/worker"
	"github.com/dsmil/l7/sdk"
)

// plugin is llm-amx: Device 47, profile llm-7b-amx, the CPU execution
// provider only, every core (threads default: one per core).
var plugin = worker.Plugin{Name: "llm-amx", Version: "0.1.0", DeviceID: 47, Profile: "llm-7b-amx"}

func main() { sdk.Serve(&sdk.ServeConfig{Workload: worker.New(plugin)}) }
