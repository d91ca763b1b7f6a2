package model

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
)

var prompt = []int64{509, 72, 101, 108, 108, 111, 300, 44, 400, 12, 33, 510, 7}

// TestReferenceLogits compares ORT's logits for a prompt with the plain-Go
// reference forward pass, for each architecture and dtype.
func TestReferenceLogits(t *testing.T) {
	initORT(t)
	for _, tc := range []struct {
		name string
		edit func(*mkmodel.Spec)
		tol  float64
	}{
		{"qwen2-fp32-tied", nil, 1e-4},
		{"llama-fp32-untied", func(s *mkmodel.Spec) { s.Arch, s.TieEmbeddings, s.KVHeads = mkmodel.ArchLlama, false, 4 }, 1e-4},
		// accuracy_level 0 computes in fp32 from the dequantized weights:
		// as exact as fp32.
		{"qwen2-int4-b32-acc0", func(s *mkmodel.Spec) { s.DType, s.NoAccuracyLevel = mkmodel.Int4, true }, 1e-4},
		{"llama-int8-b32-acc0", func(s *mkmodel.Spec) {
			s.Arch, s.TieEmbeddings, s.DType, s.NoAccuracyLevel = mkmodel.ArchLlama, false, mkmodel.Int8, true
		}, 1e-4},
		{"qwen2-int4-b128-acc0", func(s *mkmodel.Spec) { s.DType, s.BlockSize, s.NoAccuracyLevel = mkmodel.Int4, 128, true }, 1e-4},
		// accuracy_level 4 also quantizes the activations to int8 per
		// block, which the reference does not: logits (std ~1) move by a
		// few hundredths.
		{"qwen2-int4-b32-acc4", func(s *mkmodel.Spec) { s.DType = mkmodel.Int4 }, 0.25},
		{"qwen2-int8-b32-acc4", func(s *mkmodel.Spec) { s.DType = mkmodel.Int8 }, 0.25},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tiny(t, tc.name, tc.edit)
			m, err := Open(res.Dir, testOptions)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			seq, err := m.NewSequence(0)
			if err != nil {
				t.Fatal(err)
			}
			defer seq.Close()
			got, err := seq.Step(context.Background(), prompt)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := mkmodel.NewReference(res.Spec)
			if err != nil {
				t.Fatal(err)
			}
			want, err := ref.Forward(prompt)
			if err != nil {
				t.Fatal(err)
			}
			v := m.Vocab()
			var worst float64
			agree := 0
			for i := range prompt {
				row := got[i*v : (i+1)*v]
				worst = max(worst, maxAbsDiff(row, want[i]))
				if argmax(row) == argmax(want[i]) {
					agree++
				}
			}
			t.Logf("max |ORT - reference| = %.3g over %d×%d logits; argmax agrees at %d/%d positions",
				worst, len(prompt), v, agree, len(prompt))
			if worst > tc.tol {
				t.Errorf("max abs logit difference %.3g > %.3g", worst, tc.tol)
			}
		})
	}
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// TestStepConsistency checks that the KV cache carries state between
// steps: the prompt's logits are the same whether it is fed in one step,
// token by token, or in chunks.
func TestStepConsistency(t *testing.T) {
	initORT(t)
	for _, tc := range []struct {
		name string
		edit func(*mkmodel.Spec)
	}{
		{"qwen2-fp32-tied", nil},
		{"qwen2-int4-b32-acc4", func(s *mkmodel.Spec) { s.DType = mkmodel.Int4 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := tiny(t, tc.name, tc.edit)
			m, err := Open(res.Dir, testOptions)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			v := m.Vocab()
			run := func(chunks ...int) []float32 {
				seq, err := m.NewSequence(0)
				if err != nil {
					t.Fatal(err)
				}
				defer seq.Close()
				var all []float32
				at := 0
				for _, c := range chunks {
					out, err := seq.Step(context.Background(), prompt[at:at+c])
					if err != nil {
						t.Fatalf("chunks %v: step at %d: %v", chunks, at, err)
					}
					all = append(all, out...)
					at += c
				}
				if seq.Len() != len(prompt) {
					t.Fatalf("Len = %d, want %d", seq.Len(), len(prompt))
				}
				return all
			}
			full := run(len(prompt))
			ones := make([]int, len(prompt))
			for i := range ones {
				ones[i] = 1
			}
			for _, chunks := range [][]int{ones, {5, 1, 1, 6}, {1, 12}} {
				got := run(chunks...)
				if d := maxAbsDiff(got, full); d > 1e-4 {
					t.Errorf("chunks %v: max |Δlogit| = %.3g vs one pass", chunks, d)
				}
			}
			_ = v
		})
	}
}

func TestSequenceLimitsAndCancel(t *testing.T) {
	initORT(t)
	res := tiny(t, "qwen2-fp32-tied", nil)
	m, err := Open(res.Dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	seq, err := m.NewSequence(8)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	if _, err := seq.Step(context.Background(), prompt[:6]); err != nil {
		t.Fatal(err)
	}
	if _, err := seq.Step(context.Background(), prompt[:3]); !errors.Is(err, ErrContextFull) {
		t.Errorf("step past MaxLen: err = %v, want ErrContextFull", err)
	}
	if _, err := seq.Step(context.Background(), []int64{int64(m.Vocab())}); err == nil {
		t.Error("out-of-vocabulary token accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := seq.Step(ctx, prompt[6:7]); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled step: err = %v, want context.Canceled", err)
	}
	if seq.Len() != 6 {
		t.Errorf("Len after failed steps = %d, want 6", seq.Len())
	}
	// The sequence still works, and matches a fresh one-pass run.
	got, err := seq.Step(context.Background(), prompt[6:8])
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := m.NewSequence(0)
	defer fresh.Close()
	want, err := fresh.Step(context.Background(), prompt[:8])
	if err != nil {
		t.Fatal(err)
	}
	v := m.Vocab()
	if d := maxAbsDiff(got, want[6*v:]); d > 1e-4 {
		t.Errorf("after failures: max |Δlogit| = %.3g", d)
	}
	seq.Reset()
	if _, err := seq.Step(context.Background(), prompt[:8]); err != nil {
		t.Fatalf("after Reset: %v", err)
	}
	if seq.KVBytes() == 0 {
		t.Error("KVBytes = 0")
	}
}

func TestOpenInfo(t *testing.T) {
	initORT(t)
	res := tiny(t, "qwen2-fp32-tied", nil)
	m, err := Open(res.Dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	s := res.Spec
	c := m.Config
	if c.Layers != s.Layers || c.Heads != s.Heads || c.KVHeads != s.KVHeads || c.HeadDim != s.HeadDim ||
		c.Hidden != s.Hidden || c.Vocab != s.Vocab || c.MaxPositions != s.MaxPositions || c.RopeTheta != s.RopeTheta {
		t.Errorf("config %+v does not match spec %+v", c, s)
	}
	eos := []int{res.Tokenizer.Specials[mkmodel.IMEnd], res.Tokenizer.Specials[mkmodel.EndOfText]}
	if len(c.EOS) != 2 || c.EOS[0] != eos[0] || c.EOS[1] != eos[1] {
		t.Errorf("EOS = %v, want %v", c.EOS, eos)
	}
	if !c.RandomWeights {
		t.Error("RandomWeights = false for a generated model")
	}
	if got, want := m.KVBytesPerToken(), s.KVBytesPerToken(); got != want {
		t.Errorf("KVBytesPerToken = %d, want %d", got, want)
	}
	if m.Files.Format != FormatOptimum || filepath.Base(m.Files.ONNX) != "model.onnx" || m.Files.WeightBytes == 0 {
		t.Errorf("files = %+v", m.Files)
	}
}

// TestExternalData loads a model whose weights are in model.onnx_data
// and checks it computes what the inline one does.
func TestExternalData(t *testing.T) {
	initORT(t)
	inline := tiny(t, "qwen2-fp32-tied", nil)
	ext := tiny(t, "qwen2-fp32-tied-external", func(s *mkmodel.Spec) { s.ExternalDataThreshold = -1 })
	var outs [][]float32
	for _, res := range []*mkmodel.Result{inline, ext} {
		m, err := Open(res.Dir, testOptions)
		if err != nil {
			t.Fatal(err)
		}
		seq, _ := m.NewSequence(0)
		out, err := seq.Step(context.Background(), prompt)
		if err != nil {
			t.Fatal(err)
		}
		outs = append(outs, append([]float32(nil), out...))
		seq.Close()
		m.Close()
	}
	m, err := Inspect(ext.Dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files.ExternalData) != 1 || !strings.HasSuffix(m.Files.ExternalData[0], "model.onnx_data") {
		t.Errorf("ExternalData = %v", m.Files.ExternalData)
	}
	if d := maxAbsDiff(outs[0], outs[1]); d != 0 {
		t.Errorf("external vs inline: max |Δlogit| = %g", d)
	}
}

// TestGenAILayout reads a directory in the onnxruntime-genai layout.
func TestGenAILayout(t *testing.T) {
	initORT(t)
	res := tiny(t, "qwen2-fp32-tied", nil)
	dir := copyDir(t, res.Dir)
	os.Remove(filepath.Join(dir, "config.json"))
	os.Remove(filepath.Join(dir, "generation_config.json"))
	s := res.Spec
	writeJSONFile(t, filepath.Join(dir, "genai_config.json"), genAI(s, "onnx/model.onnx", "past_key_values.%d.key"))
	m, err := Open(dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Files.Format != FormatGenAI || m.Config.Layers != s.Layers || m.Config.Vocab != s.Vocab || len(m.Config.EOS) != 1 {
		t.Errorf("genai: files %+v config %+v", m.Files, m.Config)
	}
	seq, _ := m.NewSequence(0)
	defer seq.Close()
	if _, err := seq.Step(context.Background(), prompt); err != nil {
		t.Fatal(err)
	}
}

func genAI(s mkmodel.Spec, file, pastKey string) map[string]any {
	return map[string]any{"model": map[string]any{
		"type": "qwen2", "vocab_size": s.Vocab, "context_length": s.MaxPositions,
		"eos_token_id": 511, "bos_token_id": 509, "pad_token_id": 509,
		"decoder": map[string]any{
			"filename": file, "head_size": s.HeadDim, "hidden_size": s.Hidden,
			"num_attention_heads": s.Heads, "num_hidden_layers": s.Layers, "num_key_value_heads": s.KVHeads,
			"inputs": map[string]any{"input_ids": "input_ids", "attention_mask": "attention_mask",
				"position_ids": "position_ids", "past_key_names": pastKey, "past_value_names": "past_key_values.%d.value"},
			"outputs": map[string]any{"logits": "logits", "present_key_names": "present.%d.key",
				"present_value_names": "present.%d.value"},
		},
	}}
}

func writeJSONFile(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// editJSON rewrites one field of a JSON file.
func editJSON(t testing.TB, path, key string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if v == nil {
		delete(m, key)
	} else {
		m[key] = v
	}
	writeJSONFile(t, path, m)
}

// TestMalformed checks the errors for broken model directories. It needs
// no ONNX Runtime: Inspect does every check Open does before loading.
func TestMalformed(t *testing.T) {
	res := tiny(t, "qwen2-fp32-tied", nil)
	ext := tiny(t, "qwen2-fp32-tied-external", func(s *mkmodel.Spec) { s.ExternalDataThreshold = -1 })
	for _, tc := range []struct {
		name    string
		src     *mkmodel.Result
		variant string
		breakIt func(dir string)
		wantErr error
		want    []string
	}{
		{name: "not a directory", breakIt: func(dir string) { os.RemoveAll(dir) }, wantErr: ErrLayout, want: []string{"is not a directory"}},
		{name: "no config.json", breakIt: func(dir string) { os.Remove(filepath.Join(dir, "config.json")) },
			wantErr: ErrLayout, want: []string{"has no config.json"}},
		{name: "no tokenizer.json", breakIt: func(dir string) { os.Remove(filepath.Join(dir, "tokenizer.json")) },
			wantErr: ErrLayout, want: []string{"no tokenizer.json"}},
		{name: "no onnx", breakIt: func(dir string) { os.RemoveAll(filepath.Join(dir, "onnx")) },
			wantErr: ErrLayout, want: []string{"has no model.onnx or onnx/model*.onnx"}},
		{name: "variant missing", variant: "q4", wantErr: ErrLayout, want: []string{"model_q4.onnx", "found onnx/model.onnx"}},
		{name: "explicit file missing", variant: "onnx/other.onnx", wantErr: ErrLayout, want: []string{"other.onnx does not exist"}},
		{name: "bad json", breakIt: func(dir string) { os.WriteFile(filepath.Join(dir, "config.json"), []byte("{"), 0o644) },
			wantErr: ErrConfig, want: []string{"config.json"}},
		{name: "no layers", breakIt: func(dir string) { editJSON(t, filepath.Join(dir, "config.json"), "num_hidden_layers", nil) },
			wantErr: ErrConfig, want: []string{"num_hidden_layers is missing"}},
		{name: "no eos", breakIt: func(dir string) {
			editJSON(t, filepath.Join(dir, "config.json"), "eos_token_id", nil)
			editJSON(t, filepath.Join(dir, "generation_config.json"), "eos_token_id", nil)
		}, wantErr: ErrConfig, want: []string{"no eos_token_id"}},
		{name: "eos out of vocab", breakIt: func(dir string) {
			editJSON(t, filepath.Join(dir, "generation_config.json"), "eos_token_id", []int{100000})
		}, wantErr: ErrConfig, want: []string{"eos_token_id 100000 is outside"}},
		{name: "kv heads ∤ heads", breakIt: func(dir string) { editJSON(t, filepath.Join(dir, "config.json"), "num_key_value_heads", 3) },
			wantErr: ErrConfig, want: []string{"does not divide"}},
		{name: "more layers than graph", breakIt: func(dir string) { editJSON(t, filepath.Join(dir, "config.json"), "num_hidden_layers", 3) },
			wantErr: ErrGraph, want: []string{`no input "past_key_values.2.key"`, `no output "present.2.value"`}},
		{name: "fewer layers than graph", breakIt: func(dir string) { editJSON(t, filepath.Join(dir, "config.json"), "num_hidden_layers", 1) },
			wantErr: ErrGraph, want: []string{`has input "past_key_values.1.key" but config.json says num_hidden_layers 1`}},
		{name: "kv heads mismatch", breakIt: func(dir string) { editJSON(t, filepath.Join(dir, "config.json"), "num_key_value_heads", 4) },
			wantErr: ErrGraph, want: []string{"dimension 1 is 2, but the config says 4"}},
		{name: "head dim mismatch", breakIt: func(dir string) { editJSON(t, filepath.Join(dir, "config.json"), "head_dim", 8) },
			wantErr: ErrGraph, want: []string{"dimension 3 is 16, but the config says 8"}},
		{name: "vocab mismatch", breakIt: func(dir string) { editJSON(t, filepath.Join(dir, "config.json"), "vocab_size", 1000) },
			wantErr: ErrGraph, want: []string{"logits float[batch_size, sequence_length, 512]: dimension 2 is 512, but the config says 1000"}},
		{name: "wrong input names", breakIt: func(dir string) {
			os.Remove(filepath.Join(dir, "config.json"))
			writeJSONFile(t, filepath.Join(dir, "genai_config.json"), genAI(res.Spec, "onnx/model.onnx", "past.%d.k"))
		}, wantErr: ErrGraph, want: []string{`no input "past.0.k"`, "graph input past_key_values.0.key float[", "is not one the plugin feeds"}},
		{name: "genai file missing", breakIt: func(dir string) {
			writeJSONFile(t, filepath.Join(dir, "genai_config.json"), genAI(res.Spec, "model.onnx", "past_key_values.%d.key"))
		}, wantErr: ErrLayout, want: []string{"model.onnx (model.decoder.filename in genai_config.json)"}},
		{name: "not onnx", breakIt: func(dir string) {
			os.WriteFile(filepath.Join(dir, "onnx", "model.onnx"), []byte("this is not a protobuf\xff\xff"), 0o644)
		}, wantErr: ErrLayout, want: []string{"not a readable ONNX model"}},
		{name: "external data missing", src: ext, breakIt: func(dir string) { os.Remove(filepath.Join(dir, "onnx", "model.onnx_data")) },
			wantErr: ErrLayout, want: []string{"refers to external data model.onnx_data, missing"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			if src == nil {
				src = res
			}
			dir := copyDir(t, src.Dir)
			if tc.breakIt != nil {
				tc.breakIt(dir)
			}
			_, err := Inspect(dir, Options{Variant: tc.variant})
			if err == nil {
				t.Fatal("Inspect succeeded")
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestLocateVariants checks the preference order of Optimum files.
func TestLocateVariants(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"config.json", "tokenizer.json", "onnx/model.onnx", "onnx/model_int8.onnx", "model_q4.onnx"} {
		os.MkdirAll(filepath.Dir(filepath.Join(dir, f)), 0o755)
		os.WriteFile(filepath.Join(dir, f), []byte("x"), 0o644)
	}
	for variant, want := range map[string]string{
		"": "model_q4.onnx", "int8": "onnx/model_int8.onnx", "fp32": "onnx/model.onnx", "onnx/model_int8.onnx": "onnx/model_int8.onnx",
	} {
		f, err := Locate(dir, variant)
		if err != nil {
			t.Fatalf("variant %q: %v", variant, err)
		}
		if rel, _ := filepath.Rel(dir, f.ONNX); rel != want {
			t.Errorf("variant %q: picked %s, want %s", variant, rel, want)
		}
	}
}

func TestOpenWithoutORT(t *testing.T) {
	// Whether or not another test loaded ORT, Open of a missing directory
	// fails cleanly.
	if _, err := Open(filepath.Join(t.TempDir(), "none"), Options{}); err == nil {
		t.Error("Open of a missing directory succeeded")
	}
}
