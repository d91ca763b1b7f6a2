// Package model loads a decoder-only language model exported to ONNX and
// runs it one step at a time with a KV cache.
//
// Two directory layouts are understood:
//
//   - Hugging Face Optimum / transformers.js: config.json,
//     generation_config.json, tokenizer.json, tokenizer_config.json, and
//     model.onnx at the root or onnx/model*.onnx (model_q4.onnx,
//     model_int8.onnx, model_quantized.onnx, model.onnx, ... picked in
//     Options.Variant's order), with external data (*.onnx_data,
//     *.onnx.data) next to a model over 2 GB;
//   - onnxruntime-genai: genai_config.json naming the decoder file and its
//     input and output names, with the tokenizer files next to it.
//
// Open parses the configuration, reads the graph's inputs and outputs
// straight from the ONNX file (without loading the weights), checks that
// they agree with the configuration (input_ids, attention_mask,
// position_ids, past_key_values.N.key/value; logits, present.N.key/value:
// names, element types, static dimensions) and opens the ONNX Runtime
// session. Every disagreement is reported at once, with the file it comes
// from. The graph handed to ONNX Runtime references the large weights in
// the model file instead of holding them (internal/onnx/weightref), so
// ONNX Runtime maps them from the file and opening a model, rewritten
// (internal/onnx/lastlogits) or not, holds no second copy of them; the
// prefill graph (Options.PrefillGraph) reads the embedding table from the
// main file's bytes.
//
// A Sequence is one generation's state: its KV cache. Sequence.Step feeds
// new tokens and returns their logits; the present.N outputs of one step
// are the very ORT values fed as past_key_values.N to the next (two
// buffers per cache tensor, alternating, grown by doubling), so nothing is
// recomputed or copied by this package, and every output is pre-allocated.
//
// A Batch holds the caches of several sequences in one buffer per cache
// tensor, [rows, kv_heads, capacity, head_dim], right-padded, and
// Batch.Step feeds one token to every row in one run. The past input and
// the present output are the same memory, which GroupQueryAttention
// updates in place at each row's own length (seqlens_k, from the
// attention mask's row sums). A prefilled Sequence joins as a new row
// (Batch.Join copies its cache); Batch.Leave moves the last row into the
// leaver's place.
package model
