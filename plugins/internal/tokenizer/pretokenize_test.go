package tokenizer

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitBehaviors(t *testing.T) {
	// "-" delimiters in "a-b--c".
	tests := []struct {
		behavior string
		invert   bool
		want     []string
	}{
		{"Removed", false, []string{"a", "b", "c"}},
		{"Isolated", false, []string{"a", "-", "b", "-", "-", "c"}},
		{"MergedWithPrevious", false, []string{"a-", "b-", "-", "c"}},
		{"MergedWithNext", false, []string{"a", "-b", "-", "-c"}},
		{"Contiguous", false, []string{"a", "-", "b", "--", "c"}},
		{"Removed", true, []string{"-", "-", "-"}},
	}
	for _, tc := range tests {
		pre, err := buildPreTokenizer(&componentJSON{Type: "Split", Pattern: &patternJSON{String: ptr("-")}, Behavior: tc.behavior, Invert: tc.invert})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, p := range pre.preTokenize([]piece{{text: "a-b--c", atStart: true}}) {
			got = append(got, p.text)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s invert=%v: got %q, want %q", tc.behavior, tc.invert, got, tc.want)
		}
	}
}

func TestMetaspaceSplitAndDigits(t *testing.T) {
	pre, err := buildPreTokenizer(&componentJSON{Type: "Sequence", Pretokenizers: []*componentJSON{
		{Type: "Metaspace", Replacement: "▁", PrependScheme: "first", Split: ptr(true)},
		{Type: "Digits", IndividualDigits: true},
	}})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range pre.preTokenize([]piece{{text: "hi  x42", atStart: true}, {text: "y z"}}) {
		got = append(got, p.text)
	}
	want := []string{"▁hi", "▁", "▁x", "4", "2", "y", "▁z"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func ptr[T any](v T) *T { return &v }

// TestBertNormASCII: on ASCII text the BERT normaliser's fast path (and the
// ASCII table behind isBertControl, isBertSpace and isBertPunct) gives what
// the general path gives, for every ASCII character and every setting.
func TestBertNormASCII(t *testing.T) {
	var all strings.Builder
	for c := range 128 {
		all.WriteByte(byte(c))
	}
	texts := []string{all.String(), "Hello, World!\tA\x00B\x7fC\r\nThe END.", "MiXeD 123 $+<=>^`|~ \x0b\x0c\x1c"}
	for r := range rune(128) {
		if isBertControl(r) != bertControl(r) || isBertSpace(r) != bertSpace(r) || isBertPunct(r) != bertPunct(r) {
			t.Errorf("%q: the ASCII table disagrees with the rune path", r)
		}
	}
	for flags := range 16 {
		n := bertNorm{cleanText: flags&1 != 0, chinese: flags&2 != 0, lowercase: flags&4 != 0, stripAccents: flags&8 != 0}
		for _, s := range texts {
			if fast, general := n.normalizeFast(s, true), n.normalizeFast(s, false); fast != general {
				t.Errorf("%+v on %q: fast %q, general %q", n, s, fast, general)
			}
		}
	}
}
