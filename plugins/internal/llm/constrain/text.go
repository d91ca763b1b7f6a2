package constrain

import (
	"fmt"
	"regexp/syntax"
	"unicode/utf8"
)

// utf8Rx is the UTF-8 encodings of the runes lo..hi (surrogates excluded),
// as alternatives of byte-range sequences.
func utf8Rx(lo, hi rune) *rx {
	var alts []*rx
	var split func(lo, hi rune)
	split = func(lo, hi rune) {
		if lo > hi {
			return
		}
		if lo < 0xD800 && hi > 0xDFFF {
			split(lo, 0xD7FF)
			split(0xE000, hi)
			return
		}
		if lo >= 0xD800 && hi <= 0xDFFF {
			return
		}
		if lo >= 0xD800 && lo <= 0xDFFF {
			lo = 0xE000
		}
		if hi >= 0xD800 && hi <= 0xDFFF {
			hi = 0xD7FF
		}
		for _, m := range []rune{0x7F, 0x7FF, 0xFFFF} {
			if lo <= m && hi > m {
				split(lo, m)
				split(m+1, hi)
				return
			}
		}
		if hi <= 0x7F {
			alts = append(alts, rxBytes(byte(lo), byte(hi)))
			return
		}
		n := utf8.RuneLen(lo)
		for i := 1; i < n; i++ {
			m := rune(1)<<(6*i) - 1
			if lo&^m != hi&^m {
				if lo&m != 0 {
					split(lo, lo|m)
					split((lo|m)+1, hi)
					return
				}
				if hi&m != m {
					split(lo, hi&^m-1)
					split(hi&^m, hi)
					return
				}
			}
		}
		a := utf8.AppendRune(nil, lo)
		b := utf8.AppendRune(nil, hi)
		seq := make([]*rx, len(a))
		for i := range a {
			seq[i] = rxBytes(a[i], b[i])
		}
		alts = append(alts, rxSeqOf(seq...))
	}
	split(lo, hi)
	if len(alts) == 0 {
		return nil
	}
	return rxAltOf(alts...)
}

// jsonCharsRx is one character of a JSON string's contents whose decoded
// rune is in ranges (pairs lo, hi): printable runes as themselves, '"' and
// '\' escaped, control characters as their short escape or \u00XX. (Other
// runes are never written as \u escapes.) nil when ranges is empty.
func jsonCharsRx(ranges []rune) *rx {
	var alts []*rx
	for i := 0; i+1 < len(ranges); i += 2 {
		lo, hi := ranges[i], ranges[i+1]
		for c := lo; c <= hi && c < 0x20; c++ {
			alts = append(alts, controlEscape(c))
		}
		lo = max(lo, 0x20)
		for lo <= hi {
			switch {
			case lo == '"' || lo == '\\':
				alts = append(alts, rxLit(`\`+string(lo)))
				lo++
			default:
				end := hi
				if lo < '"' && end >= '"' {
					end = '"' - 1
				} else if lo < '\\' && end >= '\\' {
					end = '\\' - 1
				}
				if r := utf8Rx(lo, end); r != nil {
					alts = append(alts, r)
				}
				lo = end + 1
			}
		}
	}
	if len(alts) == 0 {
		return nil
	}
	return rxAltOf(alts...)
}

func controlEscape(c rune) *rx {
	hex := func(d rune) *rx {
		const digits = "0123456789abcdef"
		if d < 10 {
			return rxLit(digits[d : d+1])
		}
		var s byteSet
		s.add(digits[d])
		s.add(digits[d] - 'a' + 'A')
		return rxByteSet(s)
	}
	u := rxSeqOf(rxLit(`\u00`), hex(c>>4), hex(c&15))
	short := map[rune]string{'\b': `\b`, '\f': `\f`, '\n': `\n`, '\r': `\r`, '\t': `\t`}
	if s, ok := short[c]; ok {
		return rxAltOf(rxLit(s), u)
	}
	return u
}

var anyRune = []rune{0, utf8.MaxRune}

const maxPatternBytes = 4096

// patternRx compiles a JSON Schema pattern (matched anywhere in the string,
// unless anchored with ^ and $) to the JSON string contents whose decoded
// text it matches. The subset: literals, classes (\d \w \s, [...], [^...],
// Unicode classes), ., ?, *, +, {m,n}, groups, alternation, and ^ $ only at
// the start and end. The pattern is read with Go's regexp/syntax (Perl
// flags), which for this subset agrees with ECMA-262; . excludes \n, \r,
// U+2028 and U+2029 as in ECMA-262.
func patternRx(pattern string) (*rx, error) {
	if len(pattern) > maxPatternBytes {
		return nil, fmt.Errorf("pattern longer than %d bytes", maxPatternBytes)
	}
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("pattern %q: %w", pattern, err)
	}
	var branches []*syntax.Regexp
	if re.Op == syntax.OpAlternate {
		branches = re.Sub
	} else {
		branches = []*syntax.Regexp{re}
	}
	cs := classes{}
	anyChar, err := cs.chars(anyRune)
	if err != nil {
		return nil, err
	}
	anyChars := rxRepOf(anyChar, 0, -1)
	var alts []*rx
	for _, b := range branches {
		subs := []*syntax.Regexp{b}
		if b.Op == syntax.OpConcat {
			subs = b.Sub
		}
		anchoredStart, anchoredEnd := false, false
		if len(subs) > 0 && (subs[0].Op == syntax.OpBeginText || subs[0].Op == syntax.OpBeginLine) {
			anchoredStart, subs = true, subs[1:]
		}
		if len(subs) > 0 && (subs[len(subs)-1].Op == syntax.OpEndText || subs[len(subs)-1].Op == syntax.OpEndLine) {
			anchoredEnd, subs = true, subs[:len(subs)-1]
		}
		var seq []*rx
		if !anchoredStart {
			seq = append(seq, anyChars)
		}
		for _, s := range subs {
			r, err := cs.regexpRx(s)
			if err != nil {
				return nil, fmt.Errorf("pattern %q: %w", pattern, err)
			}
			seq = append(seq, r)
		}
		if !anchoredEnd {
			seq = append(seq, anyChars)
		}
		alts = append(alts, &rx{op: rxSeq, subs: seq})
	}
	return rxAltOf(alts...), nil
}

// classes converts a pattern's character classes, each once: one
// character as its own (minimized) automaton, so that repeating it does not
// multiply states.
type classes map[string]*rx

func (cs classes) chars(ranges []rune) (*rx, error) {
	key := fmt.Sprint(ranges)
	if r, ok := cs[key]; ok {
		return r, nil
	}
	r := &rx{op: rxAlt} // matches nothing
	if jr := jsonCharsRx(ranges); jr != nil {
		d, err := compileRx(jr)
		if err != nil {
			return nil, fmt.Errorf("character class: %w", err)
		}
		if d != nil {
			r = &rx{op: rxDFA, dfa: d}
		}
	}
	cs[key] = r
	return r, nil
}

func (cs classes) regexpRx(re *syntax.Regexp) (*rx, error) {
	if re.Flags&syntax.FoldCase != 0 && (re.Op == syntax.OpLiteral || re.Op == syntax.OpCharClass) {
		return nil, fmt.Errorf("case-insensitive matching is not supported")
	}
	switch re.Op {
	case syntax.OpEmptyMatch:
		return &rx{op: rxEmpty}, nil
	case syntax.OpLiteral:
		seq := make([]*rx, len(re.Rune))
		for i, r := range re.Rune {
			c, err := cs.chars([]rune{r, r})
			if err != nil {
				return nil, err
			}
			seq[i] = c
		}
		return &rx{op: rxSeq, subs: seq}, nil
	case syntax.OpCharClass:
		return cs.chars(re.Rune)
	case syntax.OpAnyCharNotNL:
		return cs.chars([]rune{0, '\n' - 1, '\n' + 1, '\r' - 1, '\r' + 1, 0x2027, 0x202A, utf8.MaxRune})
	case syntax.OpAnyChar:
		return cs.chars(anyRune)
	case syntax.OpCapture:
		return cs.regexpRx(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat:
		sub, err := cs.regexpRx(re.Sub[0])
		if err != nil {
			return nil, err
		}
		switch re.Op {
		case syntax.OpStar:
			return rxRepOf(sub, 0, -1), nil
		case syntax.OpPlus:
			return rxRepOf(sub, 1, -1), nil
		case syntax.OpQuest:
			return rxOpt(sub), nil
		}
		if re.Min > 1000 || re.Max > 1000 {
			return nil, fmt.Errorf("repetition {%d,%d} is too large (at most 1000)", re.Min, re.Max)
		}
		return rxRepOf(sub, re.Min, re.Max), nil
	case syntax.OpConcat, syntax.OpAlternate:
		subs := make([]*rx, len(re.Sub))
		for i, s := range re.Sub {
			r, err := cs.regexpRx(s)
			if err != nil {
				return nil, err
			}
			subs[i] = r
		}
		if re.Op == syntax.OpConcat {
			return &rx{op: rxSeq, subs: subs}, nil
		}
		return &rx{op: rxAlt, subs: subs}, nil
	case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpEndLine, syntax.OpEndText:
		return nil, fmt.Errorf("anchors are supported only at the start and end")
	}
	return nil, fmt.Errorf("%s is not supported", re.Op)
}
