package tokenizer

import (
	"slices"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// cgj is U+034F COMBINING GRAPHEME JOINER, which golang.org/x/text/unicode/norm
// inserts after 30 consecutive non-starters (the Stream-Safe Text Format).
// Hugging Face (Rust unicode-normalization, JavaScript String.normalize)
// does not, so such text is normalized here by the textbook algorithm.
const cgj = "\u034f"

// normalizeForm applies a Unicode normalization form exactly as UAX #15
// defines it, without stream-safe joiners.
func normalizeForm(form norm.Form, s string) string {
	out := form.String(s)
	if !strings.Contains(out, cgj) || strings.Count(out, cgj) == strings.Count(s, cgj) {
		return out
	}
	decomp, compose := norm.NFD, false
	switch form {
	case norm.NFC:
		compose = true
	case norm.NFKC:
		decomp, compose = norm.NFKD, true
	case norm.NFKD:
		decomp = norm.NFKD
	}
	// Full decomposition, one rune at a time (a single rune never exceeds the
	// stream-safe limit).
	var runes []rune
	for _, r := range s {
		for _, d := range decomp.String(string(r)) {
			runes = append(runes, d)
		}
	}
	ccc := func(r rune) uint8 { return norm.NFD.PropertiesString(string(r)).CCC() }
	// Canonical ordering: stable sort of each run of non-starters by class.
	for i := 0; i < len(runes); {
		if ccc(runes[i]) == 0 {
			i++
			continue
		}
		j := i
		for j < len(runes) && ccc(runes[j]) != 0 {
			j++
		}
		slices.SortStableFunc(runes[i:j], func(a, b rune) int { return int(ccc(a)) - int(ccc(b)) })
		i = j
	}
	if !compose {
		return string(runes)
	}
	// Canonical composition.
	out2 := make([]rune, 0, len(runes))
	starter, last := -1, -1 // index of the last starter; class of the last rune after it (-1: none)
	for _, c := range runes {
		cc := int(ccc(c))
		if starter >= 0 && (last == -1 || last != 0 && last < cc) {
			if p, ok := composePair(out2[starter], c); ok {
				out2[starter] = p
				continue
			}
		}
		if cc == 0 {
			starter, last = len(out2), -1
		} else {
			last = cc
		}
		out2 = append(out2, c)
	}
	return string(out2)
}

// composePair returns the primary composite of a starter and a following
// rune, if there is one.
func composePair(a, b rune) (rune, bool) {
	s := norm.NFC.String(string(a) + string(b))
	r, n := utf8.DecodeRuneInString(s)
	if n == len(s) && r != a {
		return r, true
	}
	return 0, false
}
