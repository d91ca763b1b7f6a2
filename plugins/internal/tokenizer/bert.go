package tokenizer

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// bertNorm is BertNormalizer, in the order of the Rust library and
// transformers.js: clean_text, handle_chinese_chars, lowercase, and
// strip_accents (which defaults to lowercase).
type bertNorm struct {
	cleanText, chinese, lowercase, stripAccents bool
}

func newBertNorm(c *componentJSON) bertNorm {
	n := bertNorm{
		cleanText: boolOr(c.CleanText, true),
		chinese:   boolOr(c.HandleChineseChars, true),
		lowercase: boolOr(c.Lowercase, true),
	}
	n.stripAccents = boolOr(c.StripAccents, n.lowercase)
	return n
}

func (n bertNorm) normalize(s string) string { return n.normalizeFast(s, isASCII(s)) }

// normalizeFast is normalize, told whether s is all ASCII: then it skips
// NFD and accent stripping (which leave ASCII as it is) and Unicode's case
// tables (TestBertNormASCII holds it to the general path).
func (n bertNorm) normalizeFast(s string, ascii bool) string {
	if ascii && !n.cleanText && !n.lowercase {
		return s // nothing in ASCII is CJK or carries an accent
	}
	if n.cleanText || n.chinese {
		var b strings.Builder
		b.Grow(len(s))
		for _, r := range s {
			switch {
			case n.cleanText && (r == 0 || r == utf8.RuneError || isBertControl(r)):
				continue
			case n.cleanText && isBertSpace(r):
				b.WriteByte(' ')
			case n.chinese && isCJK(r):
				b.WriteByte(' ')
				b.WriteRune(r)
				b.WriteByte(' ')
			default:
				b.WriteRune(r)
			}
		}
		s = b.String()
	}
	if n.lowercase {
		if ascii {
			s = strings.ToLower(s)
		} else {
			s = lowerFull(s)
		}
	}
	if n.stripAccents && !ascii {
		// NFD leaves ASCII as it is, and ASCII has no marks to strip.
		s = stripMarks(normalizeForm(norm.NFD, s))
	}
	return s
}

// isASCII reports whether s is all ASCII.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// asciiClass holds, per ASCII character, the results of the predicates
// below (their rune paths, computed once), so that the common case skips
// Unicode's range tables.
var asciiClass = func() (c [utf8.RuneSelf]uint8) {
	for r := range rune(utf8.RuneSelf) {
		if bertControl(r) {
			c[r] |= classControl
		}
		if bertSpace(r) {
			c[r] |= classSpace
		}
		if bertPunct(r) {
			c[r] |= classPunct
		}
	}
	return c
}()

const (
	classControl = 1 << iota
	classSpace
	classPunct
)

// isBertControl is BERT's _is_control: a control, format, private-use or
// surrogate character, except tab, newline and carriage return (which are
// whitespace). transformers.js tests those four categories; the Rust
// library also drops unassigned code points (Cn), which Go's tables cannot
// name: see testdata/README.md.
func isBertControl(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r]&classControl != 0
	}
	return bertControl(r)
}

func bertControl(r rune) bool {
	switch r {
	case '\t', '\n', '\r':
		return false
	}
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Co, unicode.Cs)
}

// isBertSpace is Unicode White_Space (after controls are dropped, the same
// set as JavaScript's \s).
func isBertSpace(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r]&classSpace != 0
	}
	return bertSpace(r)
}

func bertSpace(r rune) bool {
	return r == ' ' || r == '\t' || r == '\n' || r == '\r' || unicode.Is(unicode.White_Space, r)
}

// isCJK is BERT's _is_chinese_char: the CJK Unified Ideographs blocks and
// their extensions and compatibility ideographs (not Hangul, kana or CJK
// punctuation).
func isCJK(r rune) bool {
	return (r >= 0x4E00 && r <= 0x9FFF) || (r >= 0x3400 && r <= 0x4DBF) ||
		(r >= 0x20000 && r <= 0x2A6DF) || (r >= 0x2A700 && r <= 0x2B73F) ||
		(r >= 0x2B740 && r <= 0x2B81F) || (r >= 0x2B820 && r <= 0x2CEAF) ||
		(r >= 0xF900 && r <= 0xFAFF) || (r >= 0x2F800 && r <= 0x2FA1F)
}

// stripMarks drops nonspacing marks (Mn), which after NFD are the accents.
func stripMarks(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) {
			return -1
		}
		return r
	}, s)
}

// lowerFull lowercases as Rust's str::to_lowercase and JavaScript's
// toLowerCase do, which differ from Go's strings.ToLower in the two
// unconditional-or-contextual rules of SpecialCasing.txt that apply in every
// locale: U+0130 (İ) becomes "i̇" (i and a combining dot above), and a
// capital sigma at the end of a word becomes final sigma (ς).
func lowerFull(s string) string {
	// Two substring searches: ContainsAny takes a slow path for
	// characters outside ASCII.
	if !strings.Contains(s, "\u0130") && !strings.Contains(s, "\u03a3") {
		return strings.ToLower(s)
	}
	var b strings.Builder
	b.Grow(len(s) + 2)
	for i, r := range s {
		switch r {
		case '\u0130':
			b.WriteString("i\u0307")
		case '\u03a3':
			if finalSigma(s, i) {
				b.WriteRune('ς')
			} else {
				b.WriteRune('σ')
			}
		default:
			b.WriteRune(unicode.ToLower(r))
		}
	}
	return b.String()
}

// finalSigma is the Final_Sigma condition for the sigma at byte i: a cased
// letter before it and none after it, skipping case-ignorable characters
// both ways.
func finalSigma(s string, i int) bool {
	before := false
	for j := i; j > 0; {
		r, size := utf8.DecodeLastRuneInString(s[:j])
		j -= size
		if caseIgnorable(r) {
			continue
		}
		before = cased(r)
		break
	}
	if !before {
		return false
	}
	for j := i + len("Σ"); j < len(s); {
		r, size := utf8.DecodeRuneInString(s[j:])
		j += size
		if caseIgnorable(r) {
			continue
		}
		return !cased(r)
	}
	return true
}

// cased approximates the Unicode Cased property with Go's tables.
func cased(r rune) bool {
	return unicode.IsUpper(r) || unicode.IsLower(r) || unicode.IsTitle(r) ||
		unicode.In(r, unicode.Other_Lowercase, unicode.Other_Uppercase)
}

// caseIgnorable approximates Case_Ignorable: marks, format characters,
// modifier letters and symbols, and the apostrophe-like word-internal
// punctuation of Word_Break MidLetter/MidNumLet/Single_Quote.
func caseIgnorable(r rune) bool {
	switch r {
	case '\'', '.', ':', '^', '`', '\u00a8', '\u00ad', '\u00af', '\u00b4', '\u00b7', '\u00b8',
		'\u2018', '\u2019', '\u2024', '\u2027', '\ufe13', '\ufe52', '\ufe55', '\uff07', '\uff0e', '\uff1a':
		return true
	}
	return unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf, unicode.Lm, unicode.Sk)
}

// bertPre is BertPreTokenizer: split on whitespace (dropped), then every
// punctuation character is a piece of its own. Punctuation is Unicode P*
// and all ASCII non-alphanumeric printable characters ($, +, <, =, >, ^, `,
// | and ~ included).
type bertPre struct{}

func isBertPunct(r rune) bool {
	if r < utf8.RuneSelf {
		return asciiClass[r]&classPunct != 0
	}
	return bertPunct(r)
}

func bertPunct(r rune) bool {
	return (r >= 33 && r <= 47) || (r >= 58 && r <= 64) || (r >= 91 && r <= 96) || (r >= 123 && r <= 126) || unicode.IsPunct(r)
}

func (bertPre) preTokenize(in []piece) []piece {
	out := make([]piece, 0, len(in)*2)
	for _, p := range in {
		start := -1
		flush := func(end int) {
			if start >= 0 {
				out = append(out, piece{text: p.text[start:end], atStart: p.atStart && start == 0})
				start = -1
			}
		}
		for i, r := range p.text {
			switch {
			case isBertSpace(r):
				flush(i)
			case isBertPunct(r):
				flush(i)
				out = append(out, piece{text: p.text[i : i+utf8.RuneLen(r)], atStart: p.atStart && i == 0})
			case start < 0:
				start = i
			}
		}
		flush(len(p.text))
	}
	return out
}

// wordPieceDec is the WordPiece decoder: a token that starts with the
// prefix joins the previous one without it, any other token after the first
// gets a space before it, and with cleanup each token has the spaces before
// punctuation and contractions removed.
type wordPieceDec struct {
	prefix  string
	cleanup bool
}

func (d wordPieceDec) token(t string, first bool) string {
	if !first {
		if rest, ok := strings.CutPrefix(t, d.prefix); ok {
			t = rest
		} else {
			t = " " + t
		}
	}
	if d.cleanup {
		t = cleanUpTokenization(t)
	}
	return t
}

func (d wordPieceDec) decodeChain(tokens []string) []string {
	out := make([]string, len(tokens))
	for i, t := range tokens {
		out[i] = d.token(t, i == 0)
	}
	return out
}
