// Package embed is the embed plugin's workload: it answers L7_EMBED_REQ
// (OpenAI /v1/embeddings through the shim) with a sentence-transformers
// text encoder run on ONNX Runtime by package encoder.
//
// Each request's inputs are tokenised on the request's goroutine and
// queued; a batcher packs the queued sequences of every request in flight
// into ONNX Runtime runs of at most max_batch sequences, sorted by length
// and padded to the run's longest (dynamic batching, see batcher); the
// vectors go back to their requests in input order. An input longer than
// the model's max_seq_length is refused (400 naming the input), not
// truncated: a silently truncated document would be found by the wrong
// queries.
package embed
