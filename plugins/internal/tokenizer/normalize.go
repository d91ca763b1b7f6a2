package tokenizer

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/dsmil/l7/plugins/internal/tokenizer/regex"
	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites the text of one section (the text between added
// tokens) before pre-tokenization.
type normalizer interface {
	normalize(s string) string
}

type normalizerSeq []normalizer

func (n normalizerSeq) normalize(s string) string {
	for _, x := range n {
		s = x.normalize(s)
	}
	return s
}

type unicodeNorm struct{ form norm.Form }

func (n unicodeNorm) normalize(s string) string { return normalizeForm(n.form, s) }

// prependNorm prepends a string to non-empty input (Rust: Prepend).
type prependNorm struct{ prefix string }

func (n prependNorm) normalize(s string) string {
	if s == "" {
		return s
	}
	return n.prefix + s
}

type replaceNorm struct {
	literal string // when re is nil
	re      *regex.Regex
	content string
}

func (n replaceNorm) normalize(s string) string {
	if n.re != nil {
		return n.re.ReplaceAll(s, n.content)
	}
	if n.literal == "" {
		return s
	}
	return strings.ReplaceAll(s, n.literal, n.content)
}

type lowercaseNorm struct{}

// normalize lowercases as Rust's and JavaScript's lowercasing do (lowerFull:
// U+0130 becomes "i̇", a word-final capital sigma "ς").
func (lowercaseNorm) normalize(s string) string { return lowerFull(s) }

type stripNorm struct{ left, right bool }

func (n stripNorm) normalize(s string) string {
	if n.left {
		s = strings.TrimLeftFunc(s, unicode.IsSpace)
	}
	if n.right {
		s = strings.TrimRightFunc(s, unicode.IsSpace)
	}
	return s
}

// newReplacePattern compiles a Replace/Split pattern: a literal string or a
// regex.
func newReplacePattern(p *patternJSON, where string) (literal string, re *regex.Regex, err error) {
	switch {
	case p == nil:
		return "", nil, fmt.Errorf("%w: %s has no pattern", ErrInvalid, where)
	case p.String != nil:
		return *p.String, nil, nil
	case p.Regex != nil:
		re, err := regex.Compile(*p.Regex)
		if err != nil {
			return "", nil, fmt.Errorf("%w: %s: %w", ErrUnsupported, where, err)
		}
		return "", re, nil
	}
	return "", nil, fmt.Errorf("%w: %s pattern has neither String nor Regex", ErrInvalid, where)
}

func buildNormalizer(c *componentJSON) (normalizer, error) {
	if c == nil {
		return nil, nil
	}
	switch c.Type {
	case "Sequence":
		var seq normalizerSeq
		for _, sub := range c.Normalizers {
			n, err := buildNormalizer(sub)
			if err != nil {
				return nil, err
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return seq, nil
	case "NFC":
		return unicodeNorm{norm.NFC}, nil
	case "NFD":
		return unicodeNorm{norm.NFD}, nil
	case "NFKC":
		return unicodeNorm{norm.NFKC}, nil
	case "NFKD":
		return unicodeNorm{norm.NFKD}, nil
	case "Prepend":
		return prependNorm{c.Prepend}, nil
	case "Replace":
		lit, re, err := newReplacePattern(c.Pattern, "Replace normalizer")
		if err != nil {
			return nil, err
		}
		return replaceNorm{literal: lit, re: re, content: c.Content}, nil
	case "Lowercase":
		return lowercaseNorm{}, nil
	case "Strip":
		return stripNorm{c.StripLeft, c.StripRight}, nil
	case "BertNormalizer":
		return newBertNorm(c), nil
	}
	return nil, fmt.Errorf("%w: normalizer %q (supported: Sequence, NFC, NFD, NFKC, NFKD, Prepend, Replace, Lowercase, Strip, BertNormalizer)", ErrUnsupported, c.Type)
}
