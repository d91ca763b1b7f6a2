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

// TestBatchPrefillGraph: a batch step of n rows is an M = n product for
// every linear, as an n-token prefill is, so with Options.PrefillGraph a
// batch of PrefillMin rows or more runs the prefill graph (its logits close
// to the main graph's, same greedy tokens, not bit-identical) and a smaller
// batch the main graph, bit for bit.
func TestBatchPrefillGraph(t *testing.T) {
	initORT(t)
	res := llmtest.Tiny(t, "qwen2-int4-prefill", func(s *mkmodel.Spec) {
		s.Seed, s.DType, s.PrefillGraph = 7, mkmodel.Int4, true
	})
	ctx := context.Background()
	step := func(prefill bool, rows int) []float32 {
		o := testOptions
		o.AllLogits, o.PrefillGraph, o.PrefillMin = false, prefill, 8
		m, err := Open(res.Dir, o)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		b, err := m.NewBatch()
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		tokens := make([]int64, rows)
		for i := range rows {
			s, err := m.NewSequence(0)
			if err != nil {
				t.Fatal(err)
			}
			// Prompts of 5 tokens: under PrefillMin, so every row's cache
			// comes from the main graph in both models.
			if _, err := s.Step(ctx, testPrompt(5, i)); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Join(s); err != nil {
				t.Fatal(err)
			}
			tokens[i] = int64(17 + i)
		}
		out, err := b.Step(ctx, tokens)
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), out...)
	}
	v := 0
	for _, rows := range []int{7, 8} {
		a, b := step(false, rows), step(true, rows)
		if v == 0 {
			v = len(a) / rows
		}
		if rows < 8 {
			if at, ok := sameBits(a, b); !ok {
				t.Fatalf("%d rows: logit %d differs (%v, %v): a batch under PrefillMin ran the prefill graph", rows, at, a[at], b[at])
			}
			continue
		}
		var worst float64
		differ := false
		for j := range a {
			worst = max(worst, math.Abs(float64(a[j]-b[j])))
			differ = differ || a[j] != b[j]
		}
		if !differ {
			t.Fatalf("%d rows: the main graph's logits bit for bit: the batch did not run the prefill graph", rows)
		}
		if worst > 0.25 {
			t.Errorf("%d rows: max |Δlogit| %.4g", rows, worst)
		}
		for r := range rows {
			if x, y := argmax(a[r*v:(r+1)*v]), argmax(b[r*v:(r+1)*v]); x != y {
				t.Errorf("row %d: greedy token %d with the prefill graph, %d without", r, y, x)
			}
		}
	}
}

// TestPrefillHead: the prefill graph's LM head multiplies through
// MatMulNBits (the main graph's int4 head) under mkmodel.PrefillHeadRows
// rows and through the int8 u8×s8 GEMM from there. Identical rows in a
// batch get identical layer results whatever the batch size (per-tensor
// activation scales are those of one row; the int8 products are exact), so
// a row's logits in a batch under the threshold equal a lone row's within
// MatMulNBits' rounding across row counts, and from the threshold differ
// by the int8 head's quantization: more than that rounding, within the
// prefill graph's tolerance, with the same greedy token.
func TestPrefillHead(t *testing.T) {
	initORT(t)
	res := llmtest.Tiny(t, "qwen2-int4-prefill", func(s *mkmodel.Spec) {
		s.Seed, s.DType, s.PrefillGraph = 7, mkmodel.Int4, true
	})
	o := testOptions
	o.AllLogits, o.PrefillGraph, o.PrefillMin = false, true, 1 // every step on the prefill graph
	m, err := Open(res.Dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	v := m.Vocab()
	step := func(rows int) []float32 {
		b, err := m.NewBatch()
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		tokens := make([]int64, rows)
		for i := range rows {
			s, err := m.NewSequence(0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := s.Step(ctx, testPrompt(6, 0)); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Join(s); err != nil {
				t.Fatal(err)
			}
			s.Close()
			tokens[i] = 17
		}
		out, err := b.Step(ctx, tokens)
		if err != nil {
			t.Fatal(err)
		}
		return append([]float32(nil), out...)
	}
	// MatMulNBits' logits move by up to 1e-3 with the row count
	// (TestBatchMatchesAlone's int4 tolerance).
	const rounding = 1e-3
	one := step(1)
	for _, rows := range []int{mkmodel.PrefillHeadRows - 1, mkmodel.PrefillHeadRows} {
		out := step(rows)
		for r := range rows {
			var worst float64
			for j := range v {
				worst = max(worst, math.Abs(float64(out[r*v+j]-one[j])))
			}
			int8Head := rows >= mkmodel.PrefillHeadRows
			switch {
			case !int8Head && worst > rounding:
				t.Errorf("%d rows, row %d: max |Δlogit| %.4g from a lone row: not the int4 head", rows, r, worst)
			case int8Head && worst <= rounding:
				t.Errorf("%d rows, row %d: max |Δlogit| %.4g from a lone row: the int8 head did not run", rows, r, worst)
			case int8Head && worst > 0.25:
				t.Errorf("%d rows, row %d: max |Δlogit| %.4g from a lone row: the int8 head is not the model's", rows, r, worst)
			}
			if x, y := argmax(one), argmax(out[r*v:(r+1)*v]); x != y {
				t.Errorf("%d rows, row %d: greedy token %d, a lone row's %d", rows, r, y, x)
			}
			if r == 0 {
				t.Logf("%d rows: max |Δlogit| from a lone row %.3g", rows, worst)
			}
		}
	}
}
