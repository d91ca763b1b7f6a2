// Package worker is the workload of the LLM plugins (llm-amx, Device 47;
// llm-npu, Device 44): serving chat and completion requests with a
// decoder-only model on ONNX Runtime. What differs between the plugins is
// a Plugin value (name, device, profile, the NPU execution providers it
// may use, defaults) that each plugin's main passes to New.
//
// Configure reads the plugin's settings (model directory, variant, ONNX
// Runtime threads and graph optimization, context and KV-cache limits,
// parallelism, queue length, and for plugins with NPUs the execution
// provider), chooses the execution provider (accel.Select: an NPU only when
// ONNX Runtime is built with its provider and its device is present; else
// the CPU, with one warning), loads ONNX Runtime and the model (engine),
// and refuses a model whose weights exceed the plugin's memory budget.
// Chat renders the conversation with the model's chat template (or takes
// the raw prompt of a completions request), checks that prompt +
// max_tokens fit the context and the KV budget, waits for admission
// (admission: parallelism and KV budget, bounded queue, OVERLOADED when
// it is full), and generates, streaming each piece of text as it becomes
// final. Each request ends with one log line of token counts and timings
// (TTFT, tokens/s), never its text. See plugins/llm-amx/README.md and
// plugins/llm-npu/README.md.
package worker
