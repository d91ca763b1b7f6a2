package constrain

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dsmil/l7/plugins/internal/tokenizer"
)

var qwen = sync.OnceValues(func() (*Vocab, error) {
	v, tk, err := loadFamily("qwen3")
	qwenTok = tk
	return v, err
})

var llama2 = sync.OnceValues(func() (*Vocab, error) {
	v, _, err := loadFamily("llama2")
	return v, err
})

// loadFamily loads a tokenizer of the tokenizer package's testdata and its
// vocabulary (EOS from tokenizer_config.json).
func loadFamily(name string) (*Vocab, *tokenizer.Tokenizer, error) {
	dir := filepath.Join("..", "..", "..", "internal", "tokenizer", "testdata", name)
	f, err := os.Open(filepath.Join(dir, "tokenizer.json.gz"))
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, nil, err
	}
	tj, err := io.ReadAll(zr)
	if err != nil {
		return nil, nil, err
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return nil, nil, err
	}
	tk, err := tokenizer.FromFiles(tj, cfg)
	if err != nil {
		return nil, nil, err
	}
	var eos []int
	if e, ok := tk.EOS(); ok {
		eos = append(eos, e.ID)
	}
	v, err := VocabFromTokenizer(tk, eos)
	return v, tk, err
}

var qwenTok *tokenizer.Tokenizer

// qwenVocab is the Qwen3 vocabulary (151k tokens), loaded once.
func qwenVocab(t testing.TB) *Vocab {
	t.Helper()
	v, err := qwen()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// qwenTokens are the bytes of every Qwen3 id (nil for special ones).
func qwenTokens(t testing.TB) [][]byte {
	v := qwenVocab(t)
	toks := make([][]byte, v.Size())
	for id := range toks {
		toks[id] = v.Bytes(id)
	}
	return toks
}

// freshVocab is a new Vocab of the Qwen3 tokens: its analyses start empty.
func freshVocab(t testing.TB) *Vocab {
	t.Helper()
	v, err := NewVocab(qwenTokens(t), qwenVocab(t).eos)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// corpusSchema reads and compiles testdata/schemas/name.json.
func corpusSchema(t testing.TB, name string) ([]byte, *Grammar) {
	t.Helper()
	schema, err := os.ReadFile(filepath.Join("testdata", "schemas", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := CompileSchema(schema)
	if err != nil {
		t.Fatal(err)
	}
	return schema, g
}
