// Package embed is the embed plugin's workload: it answers L7_EMBED_REQ
// (OpenAI /v1/embeddings through the shim) with a sentence-transformers
// text encoder run on ONNX Runtime by package encoder.
//
// One request's inputs are tokenised on the request's goroutine, sorted by
// length and run in batches of at most max_batch sequences, each padded to
// its longest; the vectors go back in input order. An input longer than
// the model's max_seq_length is refused (400 naming the input), not
// truncated: a silently truncated document would be found by the wrong
// queries. Batching across concurrent requests is a later step.
package embed
