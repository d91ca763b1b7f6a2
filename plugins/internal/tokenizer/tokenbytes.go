package tokenizer

// TokenBytes returns the raw bytes token id stands for in generated text:
// the decoder chain's per-token steps (the byte-level map back to bytes,
// <0xNN> byte-fallback tokens as their byte, metaspace ▁ as a space,
// Replace decoders) without the whole-sequence steps (lossy UTF-8, Strip,
// dropping the first token's prepended space). The bytes may be an
// incomplete UTF-8 sequence; concatenating the bytes of generated tokens
// gives the text the stream decoder emits, before its leading strip. Added
// tokens, special ones included, are their content; ok is false for ids the
// tokenizer does not know. Constrained decoding builds its vocabulary from
// it.
func (t *Tokenizer) TokenBytes(id int) ([]byte, bool) {
	tok, ok := t.Token(id)
	if !ok {
		return nil, false
	}
	if _, added := t.addedByID[id]; added {
		return []byte(tok), true
	}
	for _, step := range t.streamPlan.steps {
		tok = step(tok, false)
	}
	return []byte(tok), true
}
