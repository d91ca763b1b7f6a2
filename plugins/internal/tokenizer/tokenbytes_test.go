package tokenizer

import (
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

// The bytes of the tokens of an encoded text are the text again (with the
// space a metaspace tokenizer prepends); byte-fallback and byte-level tokens
// give single bytes that need not be UTF-8 on their own.
func TestTokenBytes(t *testing.T) {
	for _, name := range []string{"qwen3", "llama3", "llama2"} {
		tk := family(t, name)
		for _, s := range corpus(t) {
			if !utf8.ValidString(s) {
				continue
			}
			ids := tk.Encode(s, false)
			if name == "llama2" && slices.ContainsFunc(ids, func(id int) bool { _, added := tk.addedByID[id]; return added }) {
				continue // the metaspace pre-tokenizer prepends a space after each added token
			}
			var sb strings.Builder
			for _, id := range ids {
				b, ok := tk.TokenBytes(id)
				if !ok {
					t.Fatalf("%s: TokenBytes(%d) not ok", name, id)
				}
				sb.Write(b)
			}
			got := sb.String()
			if name == "llama2" && s != "" {
				got = strings.TrimPrefix(got, " ")
			}
			want := s
			if tk.normalize != nil && name != "llama2" {
				want = tk.normalize.normalize(s) // Qwen's NFC
			}
			if got != want {
				t.Errorf("%s: bytes of Encode(%q) = %q", name, s, got)
			}
		}
	}
	q := family(t, "qwen3")
	if b, ok := q.TokenBytes(q.VocabSize()); ok || b != nil {
		t.Errorf("id past the vocabulary: %q, %v", b, ok)
	}
	eos, _ := q.EOS()
	if b, _ := q.TokenBytes(eos.ID); string(b) != eos.Content {
		t.Errorf("EOS bytes %q, want its content %q", b, eos.Content)
	}
	l := family(t, "llama2")
	id, ok := l.TokenID("<0xE2>")
	if !ok {
		t.Fatal("llama2 has no <0xE2>")
	}
	if b, _ := l.TokenBytes(id); string(b) != "\xe2" {
		t.Errorf("<0xE2> bytes %q", b)
	}
	id, _ = l.TokenID("\u2581the")
	if b, _ := l.TokenBytes(id); string(b) != " the" {
		t.Errorf("▁the bytes %q", b)
	}
	id, _ = q.TokenID("\u0120the")
	if b, _ := q.TokenBytes(id); string(b) != " the" {
		t.Errorf("Ġthe bytes %q", b)
	}
}
