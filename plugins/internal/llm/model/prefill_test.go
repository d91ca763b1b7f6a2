package model

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/internal/llm/llmtest"
)

// TestPrefillGraph: with Options.PrefillGraph, steps of at least
// PrefillMin tokens run the int8 u8×s8 prefill graph and shorter ones the
// main graph (bit-identical to a model opened without it); the prefill
// graph's logits and KV cache are the same model's within int8
// quantization, so greedy decode after it agrees with the main graph's.
func TestPrefillGraph(t *testing.T) {
	initORT(t)
	res := llmtest.Tiny(t, "qwen2-int4-prefill", func(s *mkmodel.Spec) {
		s.Seed, s.DType, s.PrefillGraph = 7, mkmodel.Int4, true
	})
	if _, err := os.Stat(filepath.Join(res.Dir, "onnx", "model_q4_prefill.onnx")); err != nil {
		t.Fatal(err)
	}
	open := func(prefill bool) *Model {
		o := testOptions
		o.AllLogits, o.PrefillGraph, o.PrefillMin = false, prefill, 8
		m, err := Open(res.Dir, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	plain, pre := open(false), open(true)
	if _, err := Open(tiny(t, "qwen2-fp32-tied", nil).Dir, Options{PrefillGraph: true}); !errors.Is(err, ErrLayout) {
		t.Fatalf("PrefillGraph without a prefill graph: %v, want ErrLayout", err)
	}
	if ins, err := Inspect(res.Dir, Options{PrefillGraph: true}); err != nil || ins.Files.WeightBytes <= plain.Files.WeightBytes {
		t.Fatalf("Inspect with PrefillGraph: %v, weights %d (without: %d)", err, ins.Files.WeightBytes, plain.Files.WeightBytes)
	}
	if plain.PrefillFile != "" || !strings.HasSuffix(pre.PrefillFile, "model_q4_prefill.onnx") || pre.PrefillMin != 8 {
		t.Fatalf("PrefillFile %q / %q, PrefillMin %d", plain.PrefillFile, pre.PrefillFile, pre.PrefillMin)
	}
	if pre.sessionFor(7) != pre.session || pre.sessionFor(8) != pre.prefill || plain.sessionFor(100) != plain.session {
		t.Fatal("sessionFor does not pick by step size")
	}
	ctx := context.Background()
	v := plain.Vocab()
	run := func(m *Model, feeds ...[]int64) [][]float32 {
		s, err := m.NewSequence(0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var outs [][]float32
		for _, f := range feeds {
			out, err := s.Step(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			outs = append(outs, append([]float32(nil), out[len(out)-v:]...))
		}
		return outs
	}
	// Steps under PrefillMin: the main graph, bit for bit.
	short := [][]int64{prompt[:7], prompt[7:], {17}}
	a, b := run(plain, short...), run(pre, short...)
	for i := range a {
		if at, ok := sameBits(a[i], b[i]); !ok {
			t.Fatalf("short step %d: logit %d differs (%v, %v)", i, at, a[i][at], b[i][at])
		}
	}
	// A 13-token prefill in the prefill graph, then decode in the main
	// graph: close to the main graph all along, and not identical (the
	// prefill graph did run).
	long := [][]int64{prompt, {17}, {300}}
	a, b = run(plain, long...), run(pre, long...)
	var differ bool
	for i := range a {
		var worst float64
		for j := range a[i] {
			worst = max(worst, math.Abs(float64(a[i][j]-b[i][j])))
			differ = differ || a[i][j] != b[i][j]
		}
		// Logits have std ≈ 1; accuracy_level 4 alone moves them by up
		// to 0.25 from the fp32 reference (TestReferenceLogits).
		if worst > 0.25 {
			t.Errorf("step %d: max |Δlogit| %.4g", i, worst)
		}
		if argmax(a[i]) != argmax(b[i]) {
			t.Errorf("step %d: greedy token %d with the prefill graph, %d without", i, argmax(b[i]), argmax(a[i]))
		}
	}
	if !differ {
		t.Error("the prefill graph gave the main graph's logits bit for bit: did it run?")
	}
}
