// Package amx is the llm-amx workload: Device 47's LLM worker, serving
// chat and completion requests with a decoder-only model on ONNX
// Runtime's CPU execution provider (AVX2, AVX-512, VNNI and AMX kernels,
// whichever the CPU has).
//
// Configure reads the plugin's settings (model directory, variant, ONNX
// Runtime threads and graph optimization, context and KV-cache limits,
// parallelism, queue length), loads ONNX Runtime and the model (engine),
// and refuses a model whose weights exceed the plugin's memory budget.
// Chat renders the conversation with the model's chat template (or takes
// the raw prompt of a completions request), checks that prompt +
// max_tokens fit the context and the KV budget, waits for admission
// (admission: parallelism and KV budget, bounded queue, OVERLOADED when
// it is full), and generates, streaming each piece of text as it becomes
// final. Each request ends with one log line of token counts and timings
// (TTFT, tokens/s), never its text. See plugins/llm-amx/README.md.
package amx
