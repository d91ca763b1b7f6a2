package regex

import (
	"errors"
	"slices"
	"testing"
)

func TestFindAll(t *testing.T) {
	const gpt2 = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
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
		{gpt2, "it's 42 dogs!", []string{"it", "'s", " 42", " dogs", "!"}},
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
		re, err := Compile(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		var got []string
		re.FindAll(tc.in, func(s, e int) { got = append(got, tc.in[s:e]) })
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q on %q: got %q, want %q", tc.pattern, tc.in, got, tc.want)
		}
	}
}

func TestUnsupported(t *testing.T) {
	for _, p := range []string{`(?<=a)b`, `(a)\1`, `a++`, `(?>a)`, `[[:alpha:]]`, `\p{NoSuchThing}`, `(a*)*`, `\b`, `(ab`, `*a`} {
		if _, err := Compile(p); !errors.Is(err, ErrUnsupported) {
			t.Errorf("%q: err = %v, want ErrUnsupported", p, err)
		}
	}
}

func TestReplaceAll(t *testing.T) {
	for _, tc := range []struct{ pattern, in, repl, want string }{
		{` +`, "a  b c", "▁", "a▁b▁c"},
		{`x`, "abc", "-", "abc"},
		{`^`, "ab\ncd", ">", ">ab\n>cd"},
	} {
		re, err := Compile(tc.pattern)
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := re.ReplaceAll(tc.in, tc.repl); got != tc.want {
			t.Errorf("%q in %q → %q: got %q, want %q", tc.pattern, tc.in, tc.repl, got, tc.want)
		}
	}
}
