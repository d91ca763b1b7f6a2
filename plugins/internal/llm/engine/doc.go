// Package engine generates text with a decoder-only model: it loads the
// model, its tokenizer and its chat template from a model directory,
// turns a conversation or a raw prompt into token ids, and runs the
// generation loop.
//
// Generate prefills the whole prompt in one model.Sequence step, then
// decodes one token per step, feeding each step only the new token: the
// KV cache stays with the sequence, nothing is recomputed. With continuous
// batching (the default for models whose graph can batch, see
// model.Model.CanBatch), the sequence then joins the engine's
// model.Batch: one scheduler goroutine steps every running Generate's
// sequence in one ONNX Runtime run per token, rows joining and leaving at
// step boundaries, while each Generate keeps its own sampling, constraint,
// stop sequences, streaming and cancellation (see batch.go). Unbatched,
// each Generate steps its own Sequence. Each token is
// drawn by a sampler (internal/sampler), decoded incrementally by the
// tokenizer's StreamDecoder (so no broken UTF-8 ever leaves), and passed
// through a stop-sequence matcher that holds back any text that could be
// the start of a stop sequence: stop sequences are matched on the text,
// across token boundaries, and never emitted. Generation ends at an EOS
// id (finish "stop"), a stop sequence ("stop") or after MaxTokens tokens
// ("length"); cancelling the context stops ONNX Runtime within the
// current step.
//
// A Request may carry a Constraint (structured output: a grammar compiled
// from a JSON schema): before each draw every id it does not allow is set
// to -inf in the logits, EOS only where the constraint can end, so every
// sampler setting (temperature, top-k/p, min-p, penalties, logit_bias)
// draws within it; a constraint that is done ends generation with "stop".
package engine
