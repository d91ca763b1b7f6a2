// Package echo is the echo workload: a deterministic chat plugin that
// answers with the last user message (or the prompt) behind a fixed prefix.
// It exercises the whole plugin path — streaming, cancellation, usage,
// max_tokens, stop sequences, failures — without a model, for tests and
// demos. See plugins/echo/README.md.
package echo
