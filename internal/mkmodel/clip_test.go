package mkmodel

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestCLIPTokenizer: the generated CLIP vocabulary has openai/CLIP's
// order (bytes, bytes with </w>, merges, the two specials), every merge
// joins two tokens of the vocabulary, and training is deterministic.
func TestCLIPTokenizer(t *testing.T) {
	a, b := NewCLIPTokenizer(), NewCLIPTokenizer()
	if !slices.Equal(a.Vocab, b.Vocab) || !slices.Equal(a.Merges, b.Merges) {
		t.Fatal("two trainings differ")
	}
	n := len(a.Vocab)
	if n < 700 || n > 1024 || a.Vocab[0] != "!" || a.Vocab[256] != "!</w>" || a.Vocab[n-2] != StartOfText || a.Vocab[n-1] != EndOfText {
		t.Fatalf("vocab of %d: %q %q %q %q", n, a.Vocab[0], a.Vocab[256], a.Vocab[n-2], a.Vocab[n-1])
	}
	seen := map[string]bool{}
	for _, v := range a.Vocab {
		if seen[v] {
			t.Fatalf("%q twice", v)
		}
		seen[v] = true
	}
	for i, m := range a.Merges {
		if !seen[m[0]] || !seen[m[1]] || !seen[m[0]+m[1]] {
			t.Fatalf("merge %d %q: a part or the result is not in the vocabulary", i, m)
		}
	}
	if !seen["the</w>"] {
		t.Error(`"the</w>" was not learned`)
	}
	t.Logf("%d tokens, %d merges", n, len(a.Merges))
}

// TestCLIPParams: the clip-vit-b32 preset has openai/clip-vit-base-patch32's
// 151 277 313 parameters but for logit_scale, which the two encoders do
// not use.
func TestCLIPParams(t *testing.T) {
	s, err := CLIPPreset("clip-vit-b32")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Params(); got != 151277312 {
		t.Errorf("clip-vit-b32 has %d parameters, want 151277312", got)
	}
	if _, err := CLIPPreset("nope"); err == nil {
		t.Error("unknown preset accepted")
	}
	bad := s
	bad.PatchSize = 30
	if err := bad.Validate(1024); err == nil {
		t.Error("patch size 30 of 224 accepted")
	}
}

// TestWriteCLIP: the tiny preset writes the transformers.js layout with
// configs that say what the graphs are.
func TestWriteCLIP(t *testing.T) {
	s, _ := CLIPPreset("tiny-clip")
	r, err := WriteCLIP(t.TempDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "onnx/text_model.onnx", "onnx/vision_model.onnx"} {
		if _, err := os.Stat(filepath.Join(r.Dir, f)); err != nil {
			t.Error(err)
		}
	}
	var cfg struct {
		Proj int `json:"projection_dim"`
		Text struct {
			Vocab int `json:"vocab_size"`
			EOS   int `json:"eos_token_id"`
		} `json:"text_config"`
		Vision struct {
			Image int `json:"image_size"`
		} `json:"vision_config"`
	}
	b, _ := os.ReadFile(filepath.Join(r.Dir, "config.json"))
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Proj != 24 || cfg.Text.Vocab != len(r.Tokenizer.Vocab) || cfg.Text.EOS != len(r.Tokenizer.Vocab)-1 || cfg.Vision.Image != 32 {
		t.Errorf("config.json: %+v", cfg)
	}
}
