package tokenizer

import "errors"

var (
	// ErrUnsupported marks a tokenizer.json component (model type, normalizer,
	// pre-tokenizer, post-processor, decoder or regex feature) that this
	// package does not implement. The wrapping error names it.
	ErrUnsupported = errors.New("tokenizer: unsupported")
	// ErrInvalid marks a malformed tokenizer.json or tokenizer_config.json.
	ErrInvalid = errors.New("tokenizer: invalid")
)
