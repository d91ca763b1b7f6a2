package tokenizer

import (
	"fmt"
	"strings"

	"github.com/dsmil/l7/plugins/internal/tokenizer/regex"
)

// piece is one pre-token. atStart is true when it begins at offset 0 of the
// input text (Metaspace's prepend_scheme "first" needs it).
type piece struct {
	text    string
	atStart bool
}

// preTokenizer splits pieces into smaller pieces and may rewrite them.
type preTokenizer interface {
	preTokenize(in []piece) []piece
}

type preTokenizerSeq []preTokenizer

func (p preTokenizerSeq) preTokenize(in []piece) []piece {
	for _, x := range p {
		in = x.preTokenize(in)
	}
	return in
}

// splitBehavior is how matched delimiters are kept (Rust
// SplitDelimiterBehavior).
type splitBehavior int

const (
	splitRemoved splitBehavior = iota
	splitIsolated
	splitMergedWithPrevious
	splitMergedWithNext
	splitContiguous
)

func parseBehavior(s string) (splitBehavior, error) {
	switch strings.ToLower(s) {
	case "removed":
		return splitRemoved, nil
	case "isolated":
		return splitIsolated, nil
	case "mergedwithprevious", "merged_with_previous":
		return splitMergedWithPrevious, nil
	case "mergedwithnext", "merged_with_next":
		return splitMergedWithNext, nil
	case "contiguous":
		return splitContiguous, nil
	}
	return 0, fmt.Errorf("%w: Split behavior %q", ErrUnsupported, s)
}

type span struct {
	start, end int
	match      bool
}

// splitSpans applies a split behavior to the spans covering a piece, exactly
// as the Rust NormalizedString::split does, appending the non-empty results
// to out.
func splitSpans(p piece, spans []span, behavior splitBehavior, out []piece) []piece {
	emit := func(start, end int) {
		if end > start {
			out = append(out, piece{text: p.text[start:end], atStart: p.atStart && start == 0})
		}
	}
	switch behavior {
	case splitRemoved:
		for _, s := range spans {
			if !s.match {
				emit(s.start, s.end)
			}
		}
		return out
	case splitIsolated:
		for _, s := range spans {
			emit(s.start, s.end)
		}
		return out
	}
	// The merging behaviors fold spans into ranges.
	merged := make([][2]int, 0, len(spans))
	prevMatch := false
	switch behavior {
	case splitMergedWithPrevious:
		for _, s := range spans {
			if s.match && !prevMatch && len(merged) > 0 {
				merged[len(merged)-1][1] = s.end
			} else {
				merged = append(merged, [2]int{s.start, s.end})
			}
			prevMatch = s.match
		}
	case splitMergedWithNext:
		for i := len(spans) - 1; i >= 0; i-- {
			s := spans[i]
			if s.match && !prevMatch && len(merged) > 0 {
				merged[len(merged)-1][0] = s.start
			} else {
				merged = append(merged, [2]int{s.start, s.end})
			}
			prevMatch = s.match
		}
		for i, j := 0, len(merged)-1; i < j; i, j = i+1, j-1 {
			merged[i], merged[j] = merged[j], merged[i]
		}
	case splitContiguous:
		for _, s := range spans {
			if s.match == prevMatch && len(merged) > 0 {
				merged[len(merged)-1][1] = s.end
			} else {
				merged = append(merged, [2]int{s.start, s.end})
			}
			prevMatch = s.match
		}
	}
	for _, m := range merged {
		emit(m[0], m[1])
	}
	return out
}

// ---- Split ----

type splitPre struct {
	literal  string
	re       *regex.Regex
	behavior splitBehavior
	invert   bool
}

func (s *splitPre) spans(text string, buf []span) []span {
	prev := 0
	add := func(start, end int) {
		if start > prev {
			buf = append(buf, span{prev, start, s.invert})
		}
		buf = append(buf, span{start, end, !s.invert})
		prev = end
	}
	if s.re != nil {
		s.re.FindAll(text, func(start, end int) {
			if end > start {
				add(start, end)
			}
		})
	} else if s.literal != "" {
		for i := 0; i <= len(text)-len(s.literal); {
			j := strings.Index(text[i:], s.literal)
			if j < 0 {
				break
			}
			add(i+j, i+j+len(s.literal))
			i += j + len(s.literal)
		}
	}
	if prev < len(text) {
		buf = append(buf, span{prev, len(text), s.invert})
	}
	return buf
}

func (s *splitPre) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*4)
	var buf []span
	for _, p := range in {
		buf = s.spans(p.text, buf[:0])
		out = splitSpans(p, buf, s.behavior, out)
	}
	return out
}

// ---- ByteLevel ----

// gpt2Pattern is the pre-tokenization regex of the GPT-2 ByteLevel
// pre-tokenizer (use_regex: true).
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// byteToUnicode maps bytes to the printable runes GPT-2 uses in its
// vocabulary; unicodeToByte is the inverse.
var byteToUnicode, unicodeToByte, byteToUnicodeStr = func() ([256]rune, map[rune]byte, [256]string) {
	var b2u [256]rune
	var strs [256]string
	u2b := make(map[rune]byte, 256)
	n := 0
	for b := 0; b < 256; b++ {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			b2u[b] = rune(b)
		} else {
			b2u[b] = rune(256 + n)
			n++
		}
		u2b[b2u[b]] = byte(b)
		strs[b] = string(b2u[b])
	}
	return b2u, u2b, strs
}()

type byteLevelPre struct {
	addPrefixSpace bool
	split          *splitPre // nil unless use_regex
}

func (b *byteLevelPre) preTokenize(in []piece) []piece {
	if b.addPrefixSpace {
		for i := range in {
			if !strings.HasPrefix(in[i].text, " ") {
				in[i].text = " " + in[i].text
			}
		}
	}
	if b.split != nil {
		in = b.split.preTokenize(in)
	}
	for i := range in {
		in[i].text = byteLevelEncode(in[i].text)
	}
	return in
}

func byteLevelEncode(s string) string {
	var sb strings.Builder
	sb.Grow(len(s) * 2)
	for i := 0; i < len(s); i++ {
		sb.WriteString(byteToUnicodeStr[s[i]])
	}
	return sb.String()
}

// ---- Metaspace ----

type prependScheme int

const (
	prependAlways prependScheme = iota
	prependFirst
	prependNever
)

type metaspacePre struct {
	replacement string
	scheme      prependScheme
	split       bool
}

func (m *metaspacePre) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in))
	for _, p := range in {
		t := strings.ReplaceAll(p.text, " ", m.replacement)
		if !strings.HasPrefix(t, m.replacement) &&
			(m.scheme == prependAlways || m.scheme == prependFirst && p.atStart) {
			t = m.replacement + t
		}
		p.text = t
		if !m.split {
			out = append(out, p)
			continue
		}
		var spans []span
		prev := 0
		for i := 0; i < len(t); {
			j := strings.Index(t[i:], m.replacement)
			if j < 0 {
				break
			}
			if i+j > prev {
				spans = append(spans, span{prev, i + j, false})
			}
			spans = append(spans, span{i + j, i + j + len(m.replacement), true})
			i += j + len(m.replacement)
			prev = i
		}
		if prev < len(t) {
			spans = append(spans, span{prev, len(t), false})
		}
		out = splitSpans(p, spans, splitMergedWithNext, out)
	}
	return out
}

// ---- Digits ----

type digitsPre struct{ individual bool }

func (d digitsPre) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in))
	var spans []span
	for _, p := range in {
		spans = spans[:0]
		for i := 0; i < len(p.text); {
			j := i
			isDigit := p.text[i] >= '0' && p.text[i] <= '9'
			for j < len(p.text) && (p.text[j] >= '0' && p.text[j] <= '9') == isDigit {
				j++
				if isDigit && d.individual {
					break
				}
			}
			spans = append(spans, span{i, j, isDigit})
			i = j
		}
		if d.individual {
			out = splitSpans(p, spans, splitIsolated, out)
		} else {
			out = splitSpans(p, spans, splitContiguous, out)
		}
	}
	return out
}

func boolOr(b *bool, def bool) bool {
	if b == nil {
		return def
	}
	return *b
}

func buildPreTokenizer(c *componentJSON) (preTokenizer, error) {
	if c == nil {
		return nil, nil
	}
	switch c.Type {
	case "Sequence":
		var seq preTokenizerSeq
		for _, sub := range c.Pretokenizers {
			p, err := buildPreTokenizer(sub)
			if err != nil {
				return nil, err
			}
			if p != nil {
				seq = append(seq, p)
			}
		}
		return seq, nil
	case "Split":
		lit, re, err := newReplacePattern(c.Pattern, "Split pre-tokenizer")
		if err != nil {
			return nil, err
		}
		beh, err := parseBehavior(c.Behavior)
		if err != nil {
			return nil, err
		}
		return &splitPre{literal: lit, re: re, behavior: beh, invert: c.Invert}, nil
	case "ByteLevel":
		b := &byteLevelPre{addPrefixSpace: boolOr(c.AddPrefixSpace, true)}
		if boolOr(c.UseRegex, true) {
			re, err := regex.Compile(gpt2Pattern)
			if err != nil {
				return nil, err
			}
			b.split = &splitPre{re: re, behavior: splitIsolated}
		}
		return b, nil
	case "Metaspace":
		m := &metaspacePre{replacement: c.Replacement, split: boolOr(c.Split, true)}
		if m.replacement == "" {
			m.replacement = "\u2581"
		}
		scheme, err := parsePrependScheme(c)
		if err != nil {
			return nil, err
		}
		m.scheme = scheme
		return m, nil
	case "Digits":
		return digitsPre{individual: c.IndividualDigits}, nil
	case "BertPreTokenizer":
		return bertPre{}, nil
	}
	return nil, fmt.Errorf("%w: pre-tokenizer %q (supported: Sequence, Split, ByteLevel, Metaspace, Digits, BertPreTokenizer)", ErrUnsupported, c.Type)
}

func parsePrependScheme(c *componentJSON) (prependScheme, error) {
	switch c.PrependScheme {
	case "always":
		return prependAlways, nil
	case "first":
		return prependFirst, nil
	case "never":
		return prependNever, nil
	case "":
		// Files older than prepend_scheme carry add_prefix_space.
		if boolOr(c.AddPrefixSpace, true) {
			return prependAlways, nil
		}
		return prependNever, nil
	}
	return 0, fmt.Errorf("%w: Metaspace prepend_scheme %q", ErrUnsupported, c.PrependScheme)
}
