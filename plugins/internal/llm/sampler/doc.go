// Package sampler picks the next token from a row of logits: greedy
// (temperature 0) or seeded random sampling with temperature, top-k,
// top-p (nucleus) and min-p, after logit bias and the repetition
// (multiplicative, Hugging Face / vLLM style), presence and frequency
// (additive, OpenAI style) penalties.
//
// The order is vLLM's: logit bias, repetition penalty (over the prompt and
// the generated tokens), frequency and presence penalties (over the
// generated tokens), then greedy argmax, or temperature → top-k → top-p →
// min-p → a draw from the remaining distribution. A Sampler with a given
// seed draws the same tokens from the same logits every time.
//
// Sampling costs O(vocabulary) per token: top-k and top-p select by
// partitioning instead of sorting the whole vocabulary.
package sampler
