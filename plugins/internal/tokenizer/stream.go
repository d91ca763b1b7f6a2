package tokenizer

import (
	"strings"
	"unicode/utf8"
)

// streamPlan is the decoder chain rearranged for incremental decoding: steps
// applied to each token on its own, producing raw bytes (possibly an
// incomplete UTF-8 sequence), then stripping that applies to the whole
// stream.
type streamPlan struct {
	steps      []streamStep
	joinSpace  bool // no decoder: tokens are joined with spaces
	strip      rune
	stripStart int
	stripStop  int
}

type streamStep func(tok string, first bool) string

func planStream(d decoder) streamPlan {
	var p streamPlan
	if d == nil {
		p.joinSpace = true
		return p
	}
	var walk func(d decoder)
	walk = func(d decoder) {
		switch d := d.(type) {
		case decoderSeq:
			for _, x := range d {
				walk(x)
			}
		case byteLevelDec:
			p.steps = append(p.steps, func(t string, _ bool) string {
				if d.added[t] {
					return t
				}
				return string(appendByteLevelBytes(nil, t))
			})
		case byteFallbackDec:
			p.steps = append(p.steps, func(t string, _ bool) string {
				if b, ok := parseByteToken(t); ok {
					return string([]byte{b})
				}
				return t
			})
		case replaceDec:
			p.steps = append(p.steps, func(t string, _ bool) string { return d.apply(t) })
		case metaspaceDec:
			p.steps = append(p.steps, d.token)
		case wordPieceDec:
			p.steps = append(p.steps, d.token)
		case stripDec:
			p.strip, p.stripStart, p.stripStop = d.content, d.start, d.stop
		case fuseDec:
		}
	}
	walk(d)
	return p
}

// StreamDecoder turns generated ids into text incrementally. Each Add returns
// the text that is now final; bytes of a character split across tokens are
// held back until it is complete, so the output never contains a broken UTF-8
// sequence (bytes that cannot form a character become U+FFFD). Flush returns
// what is left at the end. The concatenated output equals Decode of all ids
// for valid text, except that clean_up_tokenization_spaces is not applied.
//
// A StreamDecoder is not safe for concurrent use.
type StreamDecoder struct {
	t           *Tokenizer
	skipSpecial bool
	started     bool   // a token has been decoded
	stripping   bool   // still inside the leading strip region
	stripped    int    // leading strip runes removed so far
	trim        bool   // trim the text's whitespace (end-of-word suffix, skipping special tokens)
	trimmed     bool   // text other than whitespace has been seen
	pending     []byte // bytes not yet returned
}

// StreamOption configures a StreamDecoder.
type StreamOption func(*StreamDecoder)

// SkipSpecial drops special tokens (EOS, chat markers) from the stream.
func SkipSpecial() StreamOption { return func(d *StreamDecoder) { d.skipSpecial = true } }

// NewStreamDecoder starts decoding a new sequence.
func (t *Tokenizer) NewStreamDecoder(opts ...StreamOption) *StreamDecoder {
	d := &StreamDecoder{t: t, stripping: t.streamPlan.stripStart > 0}
	for _, o := range opts {
		o(d)
	}
	d.trim = d.skipSpecial && t.eowSuffix != ""
	return d
}

// Add decodes one more id and returns the text that became final.
func (d *StreamDecoder) Add(id int) string {
	if d.skipSpecial && d.t.specialIDs[id] {
		return ""
	}
	tok, ok := d.t.Token(id)
	if !ok {
		return ""
	}
	plan := &d.t.streamPlan
	first := !d.started
	d.started = true
	if plan.joinSpace && !first {
		tok = " " + tok
	}
	for _, step := range plan.steps {
		tok = step(tok, first)
	}
	if d.stripping {
		tok = d.stripLeading(tok)
	}
	d.pending = append(d.pending, tok...)
	return d.emit(false)
}

func (d *StreamDecoder) stripLeading(s string) string {
	plan := &d.t.streamPlan
	for d.stripped < plan.stripStart {
		r, n := utf8.DecodeRuneInString(s)
		if n == 0 {
			return s // empty so far: keep stripping later tokens
		}
		if r != plan.strip {
			d.stripping = false
			return s
		}
		s = s[n:]
		d.stripped++
	}
	d.stripping = false
	return s
}

// Flush returns whatever is still held back (an incomplete character comes
// out as U+FFFD) and resets the decoder for a new sequence.
func (d *StreamDecoder) Flush() string {
	out := d.emit(true)
	*d = StreamDecoder{t: d.t, skipSpecial: d.skipSpecial, trim: d.trim, stripping: d.t.streamPlan.stripStart > 0}
	return out
}

func (d *StreamDecoder) emit(final bool) string {
	cut := len(d.pending)
	if !final {
		cut -= incompleteTail(d.pending)
		// Trailing strip runes may be the end of the text: hold them back.
		if stop := d.t.streamPlan.stripStop; stop > 0 {
			enc := string(d.t.streamPlan.strip)
			for n := 0; n < stop && strings.HasSuffix(string(d.pending[:cut]), enc); n++ {
				cut -= len(enc)
			}
		}
	} else if stop := d.t.streamPlan.stripStop; stop > 0 {
		enc := string(d.t.streamPlan.strip)
		for n := 0; n < stop && strings.HasSuffix(string(d.pending[:cut]), enc); n++ {
			cut -= len(enc)
		}
		d.pending = d.pending[:cut]
	}
	if d.trim && !d.trimmed {
		// Leading whitespace (of complete characters) is dropped.
		n := cut - len(strings.TrimLeftFunc(string(d.pending[:cut]), isJSSpace))
		d.pending, cut = d.pending[n:], cut-n
		d.trimmed = cut > 0
	}
	if d.trim {
		// Trailing whitespace may end the text: hold it back, drop it at
		// the end.
		kept := len(strings.TrimRightFunc(string(d.pending[:cut]), isJSSpace))
		if final {
			d.pending = d.pending[:kept]
		}
		cut = kept
	}
	if cut <= 0 {
		return ""
	}
	out := lossyUTF8(d.pending[:cut])
	d.pending = append(d.pending[:0], d.pending[cut:]...)
	return out
}
