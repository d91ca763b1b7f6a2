// Package mkmodel writes Llama- and Qwen2-architecture decoder models with
// deterministic pseudo-random weights, in the Hugging Face Optimum /
// transformers.js directory layout that plugins/llm-amx loads: config.json,
// generation_config.json, tokenizer.json (a small byte-level BPE trained on a
// built-in text), tokenizer_config.json (ChatML chat_template) and
// onnx/model*.onnx (+ .onnx_data external data for big models).
//
// The graph uses ONNX Runtime's CPU kernels: Gather, SimplifiedLayerNorm-
// alization, MatMul (fp32) or com.microsoft MatMulNBits (int8/int4 weights,
// symmetric per-block scales), com.microsoft RotaryEmbedding and
// com.microsoft GroupQueryAttention with past/present KV, SiLU-gated MLP.
//
// Reference is a plain-Go float32 forward pass over the same weights (the
// quantized ones dequantized exactly as MatMulNBits does) that tests
// compare ONNX Runtime's logits with.
//
// WriteEncoder writes a BERT-architecture sentence encoder instead (the
// all-MiniLM-L6-v2 shape or a tiny one) in the sentence-transformers
// layout plugins/embed loads: onnx/model.onnx with standard ONNX operators
// (input_ids, attention_mask, token_type_ids → last_hidden_state),
// modules.json, 1_Pooling/config.json, sentence_bert_config.json and a
// WordPiece tokenizer.json; EncoderReference is its plain-Go forward pass.
//
// The weights are random: the models produce gibberish, at the speed of a
// real model of the same shape. They are for tests, demos and benchmarks.
package mkmodel
