package model

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/internal/onnx/weightref"
	"github.com/dsmil/l7/plugins/internal/llm/llmtest"
)

// sameBits reports the first index where a and b differ bit for bit.
func sameBits(a, b []float32) (int, bool) {
	if len(a) != len(b) {
		return -1, false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return i, false
		}
	}
	return 0, true
}

// TestLastLogits: a graph that computes every position's logits, opened
// as it is (AllLogits), rewritten at load time (the default) and written
// by the generator with the last position only, gives bit-identical logits
// for the last position of every prefill chunk and decode step — one row
// from the last-only graphs — and of every row of a batch. "generated"
// reads the weights from the model file as Open does by default
// (weightref), "rewritten" every float and int8 initializer however small,
// and "all" none (ONNX Runtime reads the file itself): the logits agree
// bit for bit.
func TestLastLogits(t *testing.T) {
	initORT(t)
	for _, tc := range []struct {
		name string
		edit func(*mkmodel.Spec)
	}{
		{"qwen2-fp32-tied", nil},
		{"llama-fp32-untied", func(s *mkmodel.Spec) { s.Arch, s.TieEmbeddings, s.KVHeads = mkmodel.ArchLlama, false, 4 }},
		{"qwen2-int4-b32-acc4", func(s *mkmodel.Spec) { s.DType = mkmodel.Int4 }},
		{"llama-int8-b32-acc4", func(s *mkmodel.Spec) {
			s.Arch, s.TieEmbeddings, s.DType = mkmodel.ArchLlama, false, mkmodel.Int8
		}},
		{"qwen2-fp32-external", func(s *mkmodel.Spec) { s.ExternalDataThreshold = -1 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			full := tiny(t, tc.name, tc.edit)
			gen := llmtest.Tiny(t, tc.name+"-last", func(s *mkmodel.Spec) {
				s.Seed = 7
				if tc.edit != nil {
					tc.edit(s)
				}
			})
			open := func(dir string, all bool, refMin int) *Model {
				o := testOptions
				o.AllLogits = all
				defer func(old int) { weightRefMin = old }(weightRefMin)
				weightRefMin = refMin
				m, err := Open(dir, o)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { m.Close() })
				return m
			}
			mAll := open(full.Dir, true, math.MaxInt)
			mRewritten, mGen := open(full.Dir, false, -1), open(gen.Dir, false, weightref.DefaultMinBytes)
			if mAll.LastLogits || mAll.LogitsRewrite != "" {
				t.Fatalf("AllLogits: LastLogits %v, rewrite %q", mAll.LastLogits, mAll.LogitsRewrite)
			}
			if !mRewritten.LastLogits || !strings.HasPrefix(mRewritten.LogitsRewrite, "last position only") {
				t.Fatalf("rewritten: LastLogits %v, rewrite %q", mRewritten.LastLogits, mRewritten.LogitsRewrite)
			}
			if !mGen.LastLogits || mGen.LogitsRewrite != "" {
				t.Fatalf("generated: LastLogits %v, rewrite %q", mGen.LastLogits, mGen.LogitsRewrite)
			}
			v := mAll.Vocab()
			ctx := context.Background()
			var seqs []*Sequence
			for _, m := range []*Model{mAll, mRewritten, mGen} {
				s, err := m.NewSequence(0)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				seqs = append(seqs, s)
			}
			// Prefill chunks of 5 and 8 tokens, then three decode steps.
			feeds := [][]int64{prompt[:5], prompt[5:], {17}, {300}, {5}}
			for step, feed := range feeds {
				var outs [][]float32
				for i, s := range seqs {
					out, err := s.Step(ctx, feed)
					if err != nil {
						t.Fatalf("step %d, model %d: %v", step, i, err)
					}
					outs = append(outs, out)
				}
				if len(outs[0]) != len(feed)*v || len(outs[1]) != v || len(outs[2]) != v {
					t.Fatalf("step %d: %d, %d, %d logits for %d tokens, want %d, %d, %d",
						step, len(outs[0]), len(outs[1]), len(outs[2]), len(feed), len(feed)*v, v, v)
				}
				last := outs[0][len(outs[0])-v:]
				for i, name := range []string{"rewritten", "generated"} {
					if at, ok := sameBits(outs[i+1], last); !ok {
						t.Fatalf("step %d: %s logit %d = %v, all positions' %v", step, name, at, outs[i+1][at], last[at])
					}
				}
			}
			// A batch of two rows of different lengths: every row's logits.
			var batchOuts [][]float32
			for _, m := range []*Model{mAll, mRewritten} {
				b, err := m.NewBatch()
				if err != nil {
					t.Fatal(err)
				}
				defer b.Close()
				for i := 0; i < 2; i++ {
					s, err := m.NewSequence(0)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := s.Step(ctx, testPrompt(5+4*i, i)); err != nil {
						t.Fatal(err)
					}
					if _, err := b.Join(s); err != nil {
						t.Fatal(err)
					}
					s.Close()
				}
				var out []float32
				for _, tok := range []int64{3, 9} {
					if out, err = b.Step(ctx, []int64{tok, tok + 1}); err != nil {
						t.Fatal(err)
					}
				}
				batchOuts = append(batchOuts, append([]float32(nil), out...))
			}
			if len(batchOuts[1]) != 2*v {
				t.Fatalf("batch of 2: %d logits, want %d", len(batchOuts[1]), 2*v)
			}
			if at, ok := sameBits(batchOuts[1], batchOuts[0]); !ok {
				t.Fatalf("batch: rewritten logit %d (row %d) = %v, all positions' %v", at, at/v, batchOuts[1][at], batchOuts[0][at])
			}
		})
	}
}
