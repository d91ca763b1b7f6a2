package tokenizer

import (
	"slices"
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
