package mkmodel

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokenizer(t *testing.T) {
	a, b := NewTokenizer(), NewTokenizer()
	if a.Size() != 512 || len(a.Merges) != numMerges {
		t.Fatalf("size %d, merges %d", a.Size(), len(a.Merges))
	}
	ids := map[int]string{}
	for tok, id := range a.Vocab {
		if prev, dup := ids[id]; dup {
			t.Fatalf("id %d is both %q and %q", id, prev, tok)
		}
		ids[id] = tok
	}
	for i := 0; i < len(a.Vocab); i++ {
		if _, ok := ids[i]; !ok {
			t.Fatalf("vocab ids are not dense: %d missing", i)
		}
	}
	for i, m := range a.Merges {
		l, r, ok := strings.Cut(m, " ")
		if !ok || a.Vocab[l+r] == 0 && l+r != ids[0] {
			t.Fatalf("merge %d %q: result not in vocab", i, m)
		}
		if _, ok := a.Vocab[l]; !ok {
			t.Fatalf("merge %d %q: %q not in vocab", i, m, l)
		}
		if b.Merges[i] != m {
			t.Fatalf("merges differ between runs at %d", i)
		}
	}
	if a.Specials[IMEnd] != 511 || a.Specials[EndOfText] != 509 {
		t.Errorf("specials = %v", a.Specials)
	}
	// GPT-2's byte map: "!" is id 0, space is "Ġ".
	if a.Vocab["!"] != 0 || a.Vocab["Ġ"] == 0 {
		t.Errorf("byte tokens: ! = %d, Ġ = %d", a.Vocab["!"], a.Vocab["Ġ"])
	}
}

func TestSpecValidate(t *testing.T) {
	for _, name := range PresetNames() {
		s, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Validate(512); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
	if s, _ := Preset("qwen2.5-0.5b"); s.Params() < 490e6 || s.Params() > 500e6 {
		t.Errorf("qwen2.5-0.5b has %d params, want ~494M", s.Params())
	}
	if _, err := Preset("gpt-5"); !errors.Is(err, ErrSpec) {
		t.Errorf("unknown preset: %v", err)
	}
	bad := Spec{Layers: 1, Hidden: 64, Heads: 4, KVHeads: 3, Intermediate: 8, DType: "fp8", BlockSize: 48, Vocab: 10}
	err := bad.Validate(512)
	for _, want := range []string{"kv heads (3) must divide heads (4)", `dtype "fp8"`, "block size 48", "vocab (10) is smaller"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to mention %q", err, want)
		}
	}
}

// TestWriteDeterministic writes the tiny model twice and checks the files
// are identical, complete and well-formed.
func TestWriteDeterministic(t *testing.T) {
	s, _ := Preset("tiny")
	s.DType = Int4
	var results []*Result
	for i := 0; i < 2; i++ {
		r, err := Write(t.TempDir(), s)
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, r)
	}
	a, b := results[0], results[1]
	if len(a.Files) != 5 {
		t.Errorf("files = %v", a.Files)
	}
	for i := range a.Files {
		x, _ := os.ReadFile(a.Files[i])
		y, _ := os.ReadFile(b.Files[i])
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between runs", filepath.Base(a.Files[i]))
		}
	}
	var cfg struct {
		Layers int    `json:"num_hidden_layers"`
		Vocab  int    `json:"vocab_size"`
		Tmpl   string `json:"chat_template"`
	}
	raw, _ := os.ReadFile(filepath.Join(a.Dir, "config.json"))
	json.Unmarshal(raw, &cfg)
	if cfg.Layers != 2 || cfg.Vocab != 512 {
		t.Errorf("config.json: %s", raw)
	}
	raw, _ = os.ReadFile(filepath.Join(a.Dir, "tokenizer_config.json"))
	json.Unmarshal(raw, &cfg)
	if cfg.Tmpl != ChatMLTemplate {
		t.Errorf("chat_template = %q", cfg.Tmpl)
	}
	if filepath.Base(a.ONNX) != "model_q4.onnx" {
		t.Errorf("ONNX = %s", a.ONNX)
	}
}

func TestReferenceNeedsValidatedSpec(t *testing.T) {
	s, _ := Preset("tiny")
	if _, err := NewReference(s); !errors.Is(err, ErrSpec) {
		t.Errorf("NewReference(unvalidated) = %v", err)
	}
}

// TestWriteEncoder writes the tiny encoder twice: identical files, the
// sentence-transformers layout, and a vocabulary with BERT's specials first.
func TestWriteEncoder(t *testing.T) {
	s, err := EncoderPreset("tiny-encoder")
	if err != nil {
		t.Fatal(err)
	}
	a, err := WriteEncoder(t.TempDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	b, err := WriteEncoder(t.TempDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"config.json", "modules.json", "1_Pooling/config.json", "sentence_bert_config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx"} {
		x, errA := os.ReadFile(filepath.Join(a.Dir, f))
		y, errB := os.ReadFile(filepath.Join(b.Dir, f))
		if errA != nil || errB != nil || !bytes.Equal(x, y) {
			t.Errorf("%s: missing (%v, %v) or different between runs", f, errA, errB)
		}
	}
	if a.Vocab[0] != "[PAD]" || a.Vocab[2] != "[CLS]" || a.Vocab[3] != "[SEP]" || a.Spec.Vocab != len(a.Vocab) || a.Spec.MaxSeqLength != 64 {
		t.Errorf("vocab starts %q, spec %+v", a.Vocab[:5], a.Spec)
	}
	m, err := EncoderPreset("minilm-l6")
	if err != nil || m.Validate(len(a.Vocab)) != nil || m.Hidden != 384 || m.Layers != 6 || m.Vocab != 30522 {
		t.Errorf("minilm-l6: %+v %v", m, err)
	}
	if _, err := EncoderPreset("bert-large"); !errors.Is(err, ErrSpec) {
		t.Errorf("unknown preset: %v", err)
	}
	bad := EncoderSpec{Layers: 1, Hidden: 30, Heads: 4, Intermediate: 8, MaxPositions: 8, TypeVocab: 1, MaxSeqLength: 9, Pooling: "max", Vocab: 10}
	err = bad.Validate(100)
	for _, want := range []string{"heads (4) must divide hidden (30)", "vocab (10) is smaller", "max_seq_length (9) exceeds", `pooling "max"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate = %v, want it to mention %q", err, want)
		}
	}
	if _, err := NewEncoderReference(s); !errors.Is(err, ErrSpec) {
		t.Errorf("NewEncoderReference(unvalidated) = %v", err)
	}
}
