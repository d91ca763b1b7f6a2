// Package toolcall knows the tool-call syntax of chat model families and
// turns a model's streamed text back into OpenAI tool calls.
//
// Detect reads a chat template and names its family's Format:
//
//   - Hermes: Qwen2.5, Qwen3, Hermes and most ChatML tool templates. A call
//     is `<tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>`,
//     after optional free text; several calls follow each other.
//   - Llama3JSON: Llama 3.1/3.2 JSON tool calling. The whole reply is one
//     `{"name": "f", "parameters": {...}}`, optionally after
//     `<|python_tag|>`.
//
// A Parser takes the generated text piece by piece and returns Deltas as
// OpenAI streams them: content text outside the envelopes; for each call a
// first delta with its index, id and name, then pieces of its arguments (a
// JSON object, as text) as they arrive. Text that could be the start of an
// envelope is held back until the next piece shows whether it is. Close
// returns the complete calls, each with arguments that parse as a JSON
// object; an envelope the model left unfinished (max_tokens) or malformed
// is reported as an error wrapping ErrMalformed, never silently turned into
// a call.
package toolcall
