package tokenizer

import (
	"errors"
	"slices"
	"testing"
)

func TestRegexFindAll(t *testing.T) {
	const llama3 = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
	tests := []struct {
		pattern, in string
		want        []string
	}{
		{llama3, "Hello world", []string{"Hello", " world"}},
		{llama3, "I'M here, THEY'RE", []string{"I", "'M", " here", ",", " THEY", "'RE"}},
		{llama3, "1234567", []string{"123", "456", "7"}},
		{llama3, "a   b", []string{"a", "  ", " b"}},
		{llama3, "x  \n\n y", []string{"x", "  \n\n", " y"}},
		{llama3, "end   ", []string{"end", "   "}},
		{llama3, "!!!\n\nok", []string{"!!!\n\n", "ok"}},
		{llama3, "你好，世界", []string{"你好", "，世界"}},
		{llama3, "a\u0085\u0085b", []string{"a", "\u0085", "\u0085b"}}, // NEL is \s (White_Space)
		{llama3, "a\ufeff\ufeffb", []string{"a", "\ufeff\ufeff", "b"}}, // BOM is not
		{gpt2Pattern, "it's 42 dogs!", []string{"it", "'s", " 42", " dogs", "!"}},
		{`\d+|[a-c]+`, "ab12cd", []string{"ab", "12", "c"}},
		{`a{2,}?`, "aaaa", []string{"aa", "aa"}},
		{`a*`, "baa", []string{"", "aa", ""}},
		{`^x|y$`, "x\nxy\ny", []string{"x", "x", "y", "y"}},
		{`\x41\u0042\x{43}[\x44-\x46]`, "ABCE", []string{"ABCE"}},
		{`(?i:é)`, "É", []string{"É"}},
		{`[^\p{Han}\s]+`, "ab 漢字cd", []string{"ab", "cd"}},
		{`(?=a)ab|b`, "abb", []string{"ab", "b"}},
		{`\p{Lu}\P{Lu}`, "aBcDE", []string{"Bc"}},
		{`[\p{^L}]+`, "ab12cd", []string{"12"}},
		{`[.,!?…。，、।۔،]+`, "a…b", []string{"…"}},
	}
	for _, tc := range tests {
		re, err := compileRegex(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		var got []string
		re.findAll(tc.in, func(s, e int) { got = append(got, tc.in[s:e]) })
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q on %q: got %q, want %q", tc.pattern, tc.in, got, tc.want)
		}
	}
}

func TestRegexUnsupported(t *testing.T) {
	for _, p := range []string{`(?<=a)b`, `(a)\1`, `a++`, `(?>a)`, `[[:alpha:]]`, `\p{NoSuchThing}`, `(a*)*`, `\b`, `(ab`, `*a`} {
		if _, err := compileRegex(p); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%q: err = %v, want ErrUnsupported", p, err)
		}
	}
}

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
