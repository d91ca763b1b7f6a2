package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/dsmil/l7/plugins/internal/tokenizer/regex"
)

// decoder turns token strings back into text, one step of a chain: each step
// maps a list of strings to a list of strings, as in the Rust library.
type decoder interface {
	decodeChain(tokens []string) []string
}

type decoderSeq []decoder

func (d decoderSeq) decodeChain(tokens []string) []string {
	for _, x := range d {
		tokens = x.decodeChain(tokens)
	}
	return tokens
}

// byteLevelDec maps each rune back to its byte and decodes the bytes of the
// tokens between added tokens as UTF-8 (lossy); added tokens are kept as
// they are. A token with a rune outside the byte map contributes its own
// UTF-8 bytes.
type byteLevelDec struct {
	added map[string]bool
}

func (d byteLevelDec) decodeChain(tokens []string) []string {
	var out []string
	var buf []byte
	for _, t := range tokens {
		if d.added[t] {
			if len(buf) > 0 {
				out = append(out, lossyUTF8(buf))
				buf = buf[:0]
			}
			out = append(out, t)
			continue
		}
		buf = appendByteLevelBytes(buf, t)
	}
	if len(buf) > 0 || len(out) == 0 {
		out = append(out, lossyUTF8(buf))
	}
	return out
}

func appendByteLevelBytes(buf []byte, t string) []byte {
	start := len(buf)
	for _, r := range t {
		b, ok := unicodeToByte[r]
		if !ok {
			return append(buf[:start], t...)
		}
		buf = append(buf, b)
	}
	return buf
}

type replaceDec struct {
	literal string
	re      *regex.Regex
	content string
}

func (d replaceDec) apply(t string) string {
	if d.re != nil {
		return d.re.ReplaceAll(t, d.content)
	}
	if d.literal == "" {
		return t
	}
	return strings.ReplaceAll(t, d.literal, d.content)
}

func (d replaceDec) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = d.apply(t)
	}
	return out
}

// byteFallbackDec turns runs of <0xNN> tokens into text; a run that is not
// valid UTF-8 becomes one U+FFFD per byte (as in the Rust library).
type byteFallbackDec struct{}

func parseByteToken(t string) (byte, bool) {
	if len(t) != 6 || !strings.HasPrefix(t, "<0x") || t[5] != '>' {
		return 0, false
	}
	v, err := strconv.ParseUint(t[3:5], 16, 8)
	if err != nil {
		return 0, false
	}
	return byte(v), true
}

func (byteFallbackDec) decodeChain(tokens []string) []string {
	out := make([]string, 0, len(tokens))
	var run []byte
	flush := func() {
		if len(run) == 0 {
			return
		}
		if utf8.Valid(run) {
			out = append(out, string(run))
		} else {
			for range run {
				out = append(out, "\uFFFD")
			}
		}
		run = run[:0]
	}
	for _, t := range tokens {
		if b, ok := parseByteToken(t); ok {
			run = append(run, b)
			continue
		}
		flush()
		out = append(out, t)
	}
	flush()
	return out
}

type fuseDec struct{}

func (fuseDec) decodeChain(tokens []string) []string { return []string{strings.Join(tokens, "")} }

// stripDec removes up to start leading and stop trailing content runes from
// every token.
type stripDec struct {
	content     rune
	start, stop int
}

func (d stripDec) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		for n := 0; n < d.start; n++ {
			r, size := utf8.DecodeRuneInString(t)
			if size == 0 || r != d.content {
				break
			}
			t = t[size:]
		}
		for n := 0; n < d.stop; n++ {
			r, size := utf8.DecodeLastRuneInString(t)
			if size == 0 || r != d.content {
				break
			}
			t = t[:len(t)-size]
		}
		out[i] = t
	}
	return out
}

// metaspaceDec turns the replacement rune back into spaces and drops the
// space the pre-tokenizer prepended to the first token.
type metaspaceDec struct {
	replacement string
	scheme      prependScheme
}

func (d metaspaceDec) token(t string, first bool) string {
	t = strings.ReplaceAll(t, d.replacement, " ")
	if first && d.scheme != prependNever && strings.HasPrefix(t, " ") {
		t = t[1:]
	}
	return t
}

func (d metaspaceDec) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = d.token(t, i == 0)
	}
	return out
}

// buildDecoder builds a decoder; added holds the contents of the added tokens.
func buildDecoder(c *componentJSON, added map[string]bool) (decoder, error) {
	if c == nil {
		return nil, nil
	}
	switch c.Type {
	case "Sequence":
		var seq decoderSeq
		for _, sub := range c.Decoders {
			d, err := buildDecoder(sub, added)
			if err != nil {
				return nil, err
			}
			if d != nil {
				seq = append(seq, d)
			}
		}
		return seq, nil
	case "ByteLevel":
		return byteLevelDec{added: added}, nil
	case "Replace":
		lit, re, err := newReplacePattern(c.Pattern, "Replace decoder")
		if err != nil {
			return nil, err
		}
		return replaceDec{literal: lit, re: re, content: c.Content}, nil
	case "ByteFallback":
		return byteFallbackDec{}, nil
	case "Fuse":
		return fuseDec{}, nil
	case "Strip":
		r, size := utf8.DecodeRuneInString(c.Content)
		if size == 0 || size != len(c.Content) {
			return nil, fmt.Errorf("%w: Strip decoder content %q is not one character", ErrInvalid, c.Content)
		}
		return stripDec{content: r, start: c.Start, stop: c.Stop}, nil
	case "Metaspace":
		d := metaspaceDec{replacement: c.Replacement}
		if d.replacement == "" {
			d.replacement = "\u2581"
		}
		scheme, err := parsePrependScheme(c)
		if err != nil {
			return nil, err
		}
		d.scheme = scheme
		return d, nil
	case "WordPiece":
		d := wordPieceDec{prefix: "##", cleanup: boolOr(c.Cleanup, true)}
		if c.Prefix != nil {
			d.prefix = *c.Prefix
		}
		return d, nil
	}
	return nil, fmt.Errorf("%w: decoder %q (supported: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, WordPiece)", ErrUnsupported, c.Type)
}

// lossyUTF8 decodes b as UTF-8, replacing each maximal invalid subpart with
// U+FFFD (the WHATWG and Rust from_utf8_lossy rule).
func lossyUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + 8)
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r != utf8.RuneError || n > 1 {
			sb.WriteString(string(b[i : i+n]))
			i += n
			continue
		}
		sb.WriteString("\uFFFD")
		i += invalidPrefixLen(b[i:])
	}
	return sb.String()
}

// invalidPrefixLen is the length of the maximal subpart at the start of b,
// which does not begin with a valid sequence: a lead byte followed by as many
// bytes as can continue it, or 1.
func invalidPrefixLen(b []byte) int {
	need, lo, hi := seqInfo(b[0])
	if need == 0 {
		return 1
	}
	n := 1
	for n < len(b) && n <= need {
		c := b[n]
		if n == 1 {
			if c < lo || c > hi {
				break
			}
		} else if c < 0x80 || c > 0xBF {
			break
		}
		n++
	}
	return n
}

// seqInfo returns how many continuation bytes lead byte c needs and the valid
// range of the first one; need is 0 for bytes that cannot start a sequence.
func seqInfo(c byte) (need int, lo, hi byte) {
	switch {
	case c >= 0xC2 && c <= 0xDF:
		return 1, 0x80, 0xBF
	case c == 0xE0:
		return 2, 0xA0, 0xBF
	case c >= 0xE1 && c <= 0xEC, c == 0xEE, c == 0xEF:
		return 2, 0x80, 0xBF
	case c == 0xED:
		return 2, 0x80, 0x9F
	case c == 0xF0:
		return 3, 0x90, 0xBF
	case c >= 0xF1 && c <= 0xF3:
		return 3, 0x80, 0xBF
	case c == 0xF4:
		return 3, 0x80, 0x8F
	}
	return 0, 0, 0
}

// incompleteTail is the length of a trailing sequence of b that is a valid
// but incomplete UTF-8 prefix (0 if none): bytes that may still become a
// character when more arrive.
func incompleteTail(b []byte) int {
	for k := 1; k <= 3 && k <= len(b); k++ {
		c := b[len(b)-k]
		if c >= 0x80 && c <= 0xBF {
			continue // continuation byte: look further back
		}
		need, lo, hi := seqInfo(c)
		if need < k { // not a lead byte, or its sequence is already complete
			return 0
		}
		tail := b[len(b)-k:]
		for i := 1; i < len(tail); i++ {
			if i == 1 && (tail[i] < lo || tail[i] > hi) || tail[i] < 0x80 || tail[i] > 0xBF {
				return 0
			}
		}
		return k
	}
	return 0
}
