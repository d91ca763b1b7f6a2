package tokenizer

import (
	"unicode"
	"unicode/utf8"
)

// AddedToken is a token from tokenizer.json's added_tokens: matched in the
// raw (or normalized) text before the model runs, never split by BPE.
type AddedToken struct {
	ID      int
	Content string
	// Special tokens (BOS, EOS, chat markers) are dropped by decoding with
	// skipSpecial.
	Special bool
	// SingleWord: only matched when not inside a word.
	SingleWord bool
	// LStrip and RStrip swallow the whitespace on their side.
	LStrip, RStrip bool
	// Normalized tokens are matched in the normalized text, others in the
	// raw text.
	Normalized bool
}

// addedMatcher finds added tokens in text: leftmost, then longest, without
// overlap (the Rust library's aho-corasick LeftmostLongest).
type addedMatcher struct {
	root  *trieNode
	first [256]bool
}

type trieNode struct {
	next  map[byte]*trieNode
	token *AddedToken
}

func newAddedMatcher(tokens []*AddedToken) *addedMatcher {
	if len(tokens) == 0 {
		return nil
	}
	m := &addedMatcher{root: &trieNode{}}
	for _, t := range tokens {
		if t.Content == "" {
			continue
		}
		n := m.root
		for i := 0; i < len(t.Content); i++ {
			c := t.Content[i]
			if n.next == nil {
				n.next = map[byte]*trieNode{}
			}
			child := n.next[c]
			if child == nil {
				child = &trieNode{}
				n.next[c] = child
			}
			n = child
		}
		if n.token == nil {
			n.token = t
		}
		m.first[t.Content[0]] = true
	}
	return m
}

// longestAt returns the longest token starting at byte i, or nil.
func (m *addedMatcher) longestAt(s string, i int) *AddedToken {
	var best *AddedToken
	n := m.root
	for j := i; j < len(s); j++ {
		n = n.next[s[j]]
		if n == nil {
			break
		}
		if n.token != nil {
			best = n.token
		}
	}
	return best
}

// segment is a run of text, or an added token occurrence.
type segment struct {
	text  string
	token *AddedToken
	// offset of text in the original input (0 for the first section).
	offset int
}

// split cuts s into text segments and added-token segments, applying each
// token's single_word, lstrip and rstrip rules.
func (m *addedMatcher) split(s string, base int, out []segment) []segment {
	if m == nil {
		return append(out, segment{text: s, offset: base})
	}
	textStart := 0
	for i := 0; i < len(s); {
		if !m.first[s[i]] {
			i++
			continue
		}
		t := m.longestAt(s, i)
		if t == nil {
			i++
			continue
		}
		start, stop := i, i+len(t.Content)
		if t.SingleWord && !(isWordBoundaryBefore(s, start) && isWordBoundaryAfter(s, stop)) {
			i++
			continue
		}
		if t.LStrip {
			for start > textStart {
				r, n := utf8.DecodeLastRuneInString(s[textStart:start])
				if !unicode.IsSpace(r) {
					break
				}
				start -= n
			}
		}
		if t.RStrip {
			for stop < len(s) {
				r, n := utf8.DecodeRuneInString(s[stop:])
				if !unicode.IsSpace(r) {
					break
				}
				stop += n
			}
		}
		if start > textStart {
			out = append(out, segment{text: s[textStart:start], offset: base + textStart})
		}
		out = append(out, segment{token: t, offset: base + start})
		textStart, i = stop, stop
	}
	if textStart < len(s) {
		out = append(out, segment{text: s[textStart:], offset: base + textStart})
	}
	return out
}

func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r) || r == '_'
}

func isWordBoundaryBefore(s string, i int) bool {
	if i == 0 {
		return true
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return !isWordRune(r)
}

func isWordBoundaryAfter(s string, i int) bool {
	if i >= len(s) {
		return true
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return !isWordRune(r)
}
