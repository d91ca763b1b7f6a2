package tokenizer

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/text/unicode/norm"
)

// tinyJSON builds a byte-level BPE tokenizer.json: the 256 byte symbols,
// merges for "he", "hel", "hell", "hello" and "Ġw", "Ġwo", plus added tokens.
func tinyJSON(t testing.TB, mutate func(m map[string]any)) []byte {
	t.Helper()
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteToUnicode[b])] = b
	}
	merges := [][2]string{{"h", "e"}, {"he", "l"}, {"hel", "l"}, {"hell", "o"}, {"Ġ", "w"}, {"Ġw", "o"}}
	for _, m := range merges {
		vocab[m[0]+m[1]] = len(vocab)
	}
	n := len(vocab)
	doc := map[string]any{
		"version": "1.0",
		"added_tokens": []map[string]any{
			{"id": n, "content": "<eos>", "special": true, "lstrip": false, "rstrip": false, "single_word": false, "normalized": false},
			{"id": n + 1, "content": "<mask>", "special": true, "lstrip": true, "rstrip": false, "single_word": false, "normalized": false},
			{"id": n + 2, "content": "cat", "special": false, "lstrip": false, "rstrip": false, "single_word": true, "normalized": false},
		},
		"normalizer":     nil,
		"pre_tokenizer":  map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
		"post_processor": map[string]any{"type": "TemplateProcessing", "single": []any{map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "<eos>", "type_id": 0}}}, "special_tokens": map[string]any{"<eos>": map[string]any{"id": "<eos>", "ids": []int{n}, "tokens": []string{"<eos>"}}}},
		"decoder":        map[string]any{"type": "ByteLevel"},
		"model":          map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	}
	if mutate != nil {
		mutate(doc)
	}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func tiny(t testing.TB) *Tokenizer {
	t.Helper()
	tk, err := FromJSON(tinyJSON(t, nil))
	if err != nil {
		t.Fatal(err)
	}
	return tk
}

func TestTinyEncode(t *testing.T) {
	tk := tiny(t)
	id := func(s string) int {
		i, ok := tk.TokenID(s)
		if !ok {
			t.Fatalf("no token %q", s)
		}
		return i
	}
	tests := []struct {
		in   string
		want []string
	}{
		{"hello world", []string{"hello", "Ġwo", "r", "l", "d"}},
		{"a cat", []string{"a", "Ġ", "cat"}},               // single_word: a whole word
		{"concat", []string{"c", "o", "n", "c", "a", "t"}}, // single_word: inside a word
		{"x   <mask>y", []string{"x", "<mask>", "y"}},      // lstrip swallows the spaces
		{"hello<eos>", []string{"hello", "<eos>"}},
		{"\xff", []string{"ï", "¿", "½"}}, // invalid UTF-8 reads as U+FFFD
	}
	for _, tc := range tests {
		var want []int
		for _, s := range tc.want {
			want = append(want, id(s))
		}
		if got := tk.Encode(tc.in, false); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %q, want %q", tc.in, tokStrs(tk, got), tc.want)
		}
	}
	if got, want := tk.Encode("hello", true), []int{id("hello"), id("<eos>")}; !slices.Equal(got, want) {
		t.Errorf("Encode with post-processor = %v, want %v", got, want)
	}
	if got := tk.Decode(tk.Encode("hello world<eos>", false), true); got != "hello world" {
		t.Errorf("Decode skipSpecial = %q", got)
	}
	if !tk.IsSpecial(id("<eos>")) || tk.IsSpecial(id("cat")) {
		t.Error("IsSpecial")
	}
	if tk.VocabSize() != 256+6+3 {
		t.Errorf("VocabSize = %d", tk.VocabSize())
	}
	if s, ok := tk.Token(id("Ġwo")); !ok || s != "Ġwo" {
		t.Errorf("Token = %q %v", s, ok)
	}
	if _, ok := tk.Token(99999); ok {
		t.Error("Token(99999) exists")
	}
	if n := len(tk.AddedTokens()); n != 3 {
		t.Errorf("AddedTokens: %d", n)
	}
	if _, ok := tk.BOS(); ok {
		t.Error("BOS without tokenizer_config.json")
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(m map[string]any)
		want   error
		names  string
	}{
		{"model", func(m map[string]any) { m["model"].(map[string]any)["type"] = "Unigram" }, ErrUnsupported, "Unigram"},
		{"normalizer", func(m map[string]any) { m["normalizer"] = map[string]any{"type": "Precompiled"} }, ErrUnsupported, "Precompiled"},
		{"pre-tokenizer", func(m map[string]any) { m["pre_tokenizer"] = map[string]any{"type": "UnicodeScripts"} }, ErrUnsupported, "UnicodeScripts"},
		{"decoder", func(m map[string]any) { m["decoder"] = map[string]any{"type": "CTC"} }, ErrUnsupported, "CTC"},
		{"wordpiece without unk", func(m map[string]any) {
			m["model"] = map[string]any{"type": "WordPiece", "vocab": map[string]int{"a": 0}}
		}, ErrInvalid, "unk_token"},
		{"wordpiece unk not in vocab", func(m map[string]any) {
			m["model"] = map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "vocab": map[string]int{"a": 0}}
		}, ErrInvalid, "[UNK]"},
		{"wordpiece max chars", func(m map[string]any) {
			m["model"] = map[string]any{"type": "WordPiece", "unk_token": "a", "max_input_chars_per_word": 0, "vocab": map[string]int{"a": 0}}
		}, ErrInvalid, "max_input_chars_per_word"},
		{"post-processor", func(m map[string]any) { m["post_processor"] = map[string]any{"type": "Custom"} }, ErrUnsupported, "Custom"},
		{"regex", func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "Split", "behavior": "Isolated", "pattern": map[string]any{"Regex": `(?<=x)y`}}
		}, ErrUnsupported, "(?<=x)y"},
		{"dropout", func(m map[string]any) { m["model"].(map[string]any)["dropout"] = 0.1 }, ErrUnsupported, "dropout"},
		{"merge", func(m map[string]any) {
			m["model"].(map[string]any)["merges"] = []string{"zz q"}
		}, ErrInvalid, "zz"},
	}
	for _, tc := range tests {
		_, err := FromJSON(tinyJSON(t, tc.mutate))
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.names) {
			t.Errorf("%s: err = %v, want %v naming %q", tc.name, err, tc.want, tc.names)
		}
	}
	if _, err := FromJSON([]byte("{")); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad JSON: %v", err)
	}
	if _, err := FromFiles(tinyJSON(t, nil), []byte(`{"bos_token": "<nope>"}`)); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown bos_token: %v", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("Load of a missing file succeeded")
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer.json"), tinyJSON(t, nil), 0o644); err != nil {
		t.Fatal(err)
	}
	tk, err := LoadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tk.EOS(); ok {
		t.Error("EOS without tokenizer_config.json")
	}
	cfg := `{"eos_token": {"__type": "AddedToken", "content": "<eos>"}, "pad_token": "<eos>", "clean_up_tokenization_spaces": true}`
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	if tk, err = LoadDir(dir); err != nil {
		t.Fatal(err)
	}
	if eos, ok := tk.EOS(); !ok || eos.Content != "<eos>" || eos.ID != 262 {
		t.Errorf("EOS = %+v %v", eos, ok)
	}
	if got := tk.Decode(tk.Encode("hello , world !", false), false); got != "hello, world!" {
		t.Errorf("clean-up: %q", got)
	}
	if tk2, err := Load(filepath.Join(dir, "tokenizer.json")); err != nil || tk2.VocabSize() != tk.VocabSize() {
		t.Errorf("Load: %v", err)
	}
}

func TestStreamDecoder(t *testing.T) {
	l2 := family(t, "llama2")
	b := func(x int) int {
		id, _ := l2.TokenID(string([]byte{'<', '0', 'x', "0123456789ABCDEF"[x>>4], "0123456789ABCDEF"[x&15], '>'}))
		return id
	}
	sd := l2.NewStreamDecoder()
	var got []string
	for _, id := range []int{b(0xF0), b(0x9F), b(0x98), b(0x80)} {
		got = append(got, sd.Add(id))
	}
	if want := []string{"", "", "", "😀"}; !slices.Equal(got, want) {
		t.Errorf("emoji bytes: %q, want %q", got, want)
	}
	// An incomplete sequence followed by text, and one cut off by the end.
	if s := sd.Add(b(0xE2)); s != "" {
		t.Errorf("lead byte: %q", s)
	}
	hi, _ := l2.TokenID("▁hi")
	if s := sd.Add(hi); s != "\uFFFD hi" {
		t.Errorf("broken sequence then text: %q", s)
	}
	sd.Add(b(0xE2))
	sd.Add(b(0x82))
	if s := sd.Flush(); s != "\uFFFD" {
		t.Errorf("Flush: %q", s)
	}
	// After Flush a new sequence starts: the leading space is stripped again.
	if s := sd.Add(hi); s != "hi" {
		t.Errorf("after Flush: %q", s)
	}

	q := family(t, "qwen3")
	eos, _ := q.TokenID("<|im_end|>")
	ids := append(q.Encode("日本語 ok 👍🏽", false), eos)
	sd = q.NewStreamDecoder(SkipSpecial())
	var sb strings.Builder
	for _, id := range ids {
		s := sd.Add(id)
		if !utf8Valid(s) {
			t.Fatalf("invalid UTF-8 piece %q", s)
		}
		sb.WriteString(s)
	}
	sb.WriteString(sd.Flush())
	if sb.String() != "日本語 ok 👍🏽" {
		t.Errorf("qwen3 stream: %q", sb.String())
	}
}

func TestLossyUTF8(t *testing.T) {
	tests := []struct{ in, want string }{
		{"a\xe2\x82b", "a\uFFFDb"},             // truncated sequence: one replacement
		{"\xf0\x9f\x98", "\uFFFD"},             // truncated 4-byte
		{"\xc0\xaf", "\uFFFD\uFFFD"},           // overlong: each byte
		{"\xed\xa0\x80", "\uFFFD\uFFFD\uFFFD"}, // surrogate
		{"ok", "ok"},
	}
	for _, tc := range tests {
		if got := lossyUTF8([]byte(tc.in)); got != tc.want {
			t.Errorf("lossyUTF8(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for in, want := range map[string]int{"a\xe2\x82": 2, "a\xe2": 1, "a\xf0\x9f\x98": 3, "a\xe2\x82\xac": 0, "a": 0, "\xed\xa0": 0, "\x80": 0} {
		if got := incompleteTail([]byte(in)); got != want {
			t.Errorf("incompleteTail(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestNormalizeLongCombiningRun(t *testing.T) {
	// More than 30 combining marks: x/text/unicode/norm would insert U+034F.
	s := "e" + strings.Repeat("\u0301\u0316", 20) + "x"
	got := normalizeForm(norm.NFC, s)
	if strings.Contains(got, cgj) {
		t.Fatalf("CGJ inserted: %q", got)
	}
	want := "\u00e9" + strings.Repeat("\u0316", 20) + strings.Repeat("\u0301", 19) + "x"
	if got != want {
		t.Errorf("NFC = %+q, want %+q", got, want)
	}
}

func TestConcurrentEncode(t *testing.T) {
	tk := family(t, "qwen3")
	strs := corpus(t)
	want := make([][]int, len(strs))
	for i, s := range strs {
		want[i] = tk.Encode(s, false)
	}
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := g; i < len(strs); i += 3 {
				if got := tk.Encode(strs[i], false); !slices.Equal(got, want[i]) {
					t.Errorf("concurrent Encode(%q) differs", clip(strs[i]))
				}
			}
		}(g)
	}
	wg.Wait()
}

// FuzzByteLevelRoundTrip: byte-level BPE is lossless, and streaming matches
// Decode.
func FuzzByteLevelRoundTrip(f *testing.F) {
	for _, s := range []string{"hello world", "  \n\t x", "😀👨‍👩‍👧", "<|eot_id|>x", "123456789", "ǅ\u0301"} {
		f.Add(s)
	}
	tk := family(f, "llama3")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8Valid(s) {
			return
		}
		ids := tk.Encode(s, false)
		if got := tk.decode(ids, false, false); got != s {
			t.Fatalf("decode(encode(%q)) = %q", s, got)
		}
		sd := tk.NewStreamDecoder()
		var sb strings.Builder
		for _, id := range ids {
			sb.WriteString(sd.Add(id))
		}
		sb.WriteString(sd.Flush())
		if sb.String() != s {
			t.Fatalf("stream(%q) = %q", s, sb.String())
		}
	})
}

// TestWordPiece checks the WordPiece model on a tiny vocabulary: greedy
// longest match with the "##" prefix, a word with an unmatched part or over
// max_input_chars_per_word as one [UNK], and the BertProcessing template
// with its token type ids.
func TestWordPiece(t *testing.T) {
	tk, err := FromJSON([]byte(fuzzWordPiece))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text string
		want []string
	}{
		{"hi", []string{"hi"}},
		{"Hello", []string{"he", "##ll", "##o"}},
		{"hi,hell", []string{"hi", ",", "he", "##ll"}},
		{"hex", []string{"[UNK]"}},        // "##x" is not in the vocabulary
		{"hellohello", []string{"[UNK]"}}, // 10 characters > 8
		{"hellohel", []string{"[UNK]"}},   // 8 characters, but "##h" is missing: the whole word
		{"[CLS]hi", []string{"[CLS]", "hi"}},
	} {
		got := tokStrs(tk, tk.Encode(tc.text, false))
		if !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q) = %q, want %q", tc.text, got, tc.want)
		}
	}
	ids, types := tk.EncodeTyped("hi hello")
	if want := []int{1, 5, 8, 7, 9, 2}; !slices.Equal(ids, want) || !slices.Equal(types, make([]int, len(want))) {
		t.Errorf("EncodeTyped = %v %v, want %v and zeros", ids, types, want)
	}
	if got := tk.Decode(ids, true); got != "hi hello" {
		t.Errorf("Decode = %q", got)
	}
}
