// Package tokenizer implements Hugging Face tokenizer.json tokenizers in pure
// Go: byte-level BPE (GPT-2, Qwen2/Qwen3, Llama-3), SentencePiece-style BPE
// with byte fallback (Llama-2, TinyLlama, Mistral) and WordPiece (BERT and
// the sentence-transformers encoders built on it: BertNormalizer,
// BertPreTokenizer, [CLS]/[SEP] templates with token type ids through
// EncodeTyped), with added and special tokens, the normalizers, pre-tokenizers, post-processors and decoders those
// models use, and a streaming decoder that never emits a broken UTF-8
// sequence.
//
// Encoding follows the Rust tokenizers library; it is verified token for token
// against transformers.js (which mirrors it) on real tokenizer files, see
// testdata/README.md. A component that is not implemented is rejected at load
// time with an error that names it and wraps ErrUnsupported.
// Split and Replace patterns are compiled by the regex subpackage, an engine
// for the Oniguruma syntax those files are written in.
//
// A Tokenizer is immutable after loading and safe for concurrent use; a
// StreamDecoder belongs to one generation stream.
package tokenizer
