package constrain

import (
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/dsmil/l7/plugins/llm-amx/internal/tokenizer"
)

var qwen = sync.OnceValues(func() (*Vocab, error) {
	dir := filepath.Join("..", "tokenizer", "testdata", "qwen3")
	f, err := os.Open(filepath.Join(dir, "tokenizer.json.gz"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, err
	}
	tj, err := io.ReadAll(zr)
	if err != nil {
		return nil, err
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if err != nil {
		return nil, err
	}
	tk, err := tokenizer.FromFiles(tj, cfg)
	if err != nil {
		return nil, err
	}
	qwenTok = tk
	var eos []int
	if e, ok := tk.EOS(); ok {
		eos = append(eos, e.ID)
	}
	return VocabFromTokenizer(tk, eos)
})

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
