package mkmodel

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Result describes a written model directory.
type Result struct {
	// Dir is the model directory.
	Dir string
	// ONNX is the model file.
	ONNX string
	// Files are all the files written, ONNX and external data included.
	Files []string
	// Spec is the spec with its defaults filled in.
	Spec Spec
	// Tokenizer is the generated tokenizer.
	Tokenizer *Tokenizer
}

// Write writes a model with spec s into dir (created if needed): the
// tokenizer and config files and s.ONNXFile(). Writing another dtype into
// the same directory adds its ONNX file next to the first.
func Write(dir string, s Spec) (*Result, error) {
	tok := NewTokenizer()
	if err := s.Validate(tok.Size()); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r := &Result{Dir: dir, Spec: s, Tokenizer: tok}
	eos := []int{tok.Specials[IMEnd], tok.Specials[EndOfText]}
	arch, modelType := "Qwen2ForCausalLM", "qwen2"
	if s.Arch == ArchLlama {
		arch, modelType = "LlamaForCausalLM", "llama"
	}
	cfg := map[string]any{
		"_name_or_path":           "dsmil-random/" + s.Name,
		"architectures":           []string{arch},
		"model_type":              modelType,
		"hidden_act":              "silu",
		"hidden_size":             s.Hidden,
		"intermediate_size":       s.Intermediate,
		"num_hidden_layers":       s.Layers,
		"num_attention_heads":     s.Heads,
		"num_key_value_heads":     s.KVHeads,
		"head_dim":                s.HeadDim,
		"max_position_embeddings": s.MaxPositions,
		"rope_theta":              s.RopeTheta,
		"rms_norm_eps":            s.RMSEps,
		"tie_word_embeddings":     s.TieEmbeddings,
		"vocab_size":              s.Vocab,
		"bos_token_id":            tok.Specials[EndOfText],
		"eos_token_id":            tok.Specials[IMEnd],
		"torch_dtype":             "float32",
		"use_cache":               true,
		"attention_bias":          s.Arch == ArchQwen2,
		"dsmil": map[string]any{
			"generator":      "dsmil-mkmodel",
			"random_weights": true,
			"preset":         s.Name,
			"seed":           s.Seed,
		},
	}
	gen := map[string]any{
		"bos_token_id": tok.Specials[EndOfText],
		"eos_token_id": eos,
		"pad_token_id": tok.Specials[EndOfText],
		"do_sample":    false,
	}
	for _, f := range []struct {
		name string
		v    any
	}{
		{"config.json", cfg},
		{"generation_config.json", gen},
		{"tokenizer.json", tok.tokenizerJSON()},
		{"tokenizer_config.json", tok.tokenizerConfigJSON(s.MaxPositions)},
	} {
		p := filepath.Join(dir, f.name)
		if err := writeJSON(p, f.v); err != nil {
			return nil, err
		}
		r.Files = append(r.Files, p)
	}
	files, err := writeONNX(dir, &r.Spec)
	if err != nil {
		return nil, fmt.Errorf("mkmodel: writing the ONNX model: %w", err)
	}
	r.ONNX = files[0]
	r.Files = append(r.Files, files...)
	if s.PrefillGraph {
		files, err := writeGraph(dir, &r.Spec, r.Spec.PrefillFile(), true)
		if err != nil {
			return nil, fmt.Errorf("mkmodel: writing the prefill graph: %w", err)
		}
		r.Files = append(r.Files, files...)
	}
	sort.Strings(r.Files)
	return r, nil
}

func writeJSON(path string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("mkmodel: encoding %s: %w", filepath.Base(path), err)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}
