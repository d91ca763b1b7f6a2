// Command dsmil-llm-amx is the llm-amx plugin: Device 47's LLM worker,
// running decoder-only models on ONNX Runtime's CPU execution provider.
// dsmil-host starts it; see README.md.
package main

import (
	"github.com/dsmil/l7/plugins/llm-amx/internal/amx"
	"github.com/dsmil/l7/sdk"
)

func main() { sdk.Serve(&sdk.ServeConfig{Workload: amx.New()}) }
