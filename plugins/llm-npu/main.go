// Command dsmil-llm-npu is the llm-npu plugin: Device 44's micro-LLM worker
// (spec §2.2: dsmil-l7-llm-worker-npu, a 1B model in 2 GB), on an NPU
// through ONNX Runtime's OpenVINO, QNN or VitisAI execution provider when
// ONNX Runtime is built with one and its device is present, else on the
// CPU execution provider, which it then says everywhere. The workload is the
// shared LLM worker (plugins/internal/llm/worker); this file is what is
// llm-npu's own. dsmil-host starts it; see README.md.
package main

import (
	"github.com/dsmil/l7/plugins/internal/accel"
	"github.com/dsmil/l7/plugins/internal/llm/worker"
	"github.com/dsmil/l7/sdk"
)

// plugin is llm-npu: Device 44, profile llm-1b-npu, the NPU providers, and
// defaults sized for a 1B model within 2 GB next to llm-amx.
var plugin = worker.Plugin{
	Name: "llm-npu", Version: "0.1.0", DeviceID: 44, Profile: "llm-1b-npu",
	NPUs:     accel.NPUProviders,
	Defaults: defaults,
}

// defaults: a quarter of the cores (at least one), sleeping between steps,
// so that llm-amx keeps the rest; a 4096-token context, 4 sequences in the
// batch and 8 waiting. The KV budget is memory_budget − weights − one prefill
// chunk's memory (shared default). See README.md, "Defaults".
var defaults = worker.Defaults{
	Threads:     func(cores int) int { return cores / 4 },
	NoSpinning:  true,
	MaxContext:  4096,
	Parallelism: 4,
	Queue:       8,
}

func main() { sdk.Serve(&sdk.ServeConfig{Workload: worker.New(plugin)}) }
