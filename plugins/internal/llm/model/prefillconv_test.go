package model

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/internal/onnx"
	"github.com/dsmil/l7/internal/onnx/prefillgraph"
	"github.com/dsmil/l7/plugins/internal/llm/llmtest"
	"google.golang.org/protobuf/proto"
)

// converted copies the generated model res, removes the prefill graph the
// generator wrote (if any) and writes one with internal/onnx/prefillgraph
// instead; it returns the copy's directory and what the conversion did.
func converted(t *testing.T, res *mkmodel.Result) (string, *prefillgraph.Info) {
	t.Helper()
	dir := copyDir(t, res.Dir)
	src := filepath.Join(dir, "onnx", filepath.Base(res.ONNX))
	dst := prefillPath(src)
	for _, p := range []string{dst, dst + "_data"} {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	info, err := prefillgraph.File(src, dst, prefillgraph.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return dir, info
}

func openWith(t *testing.T, dir string, prefill bool, min int) *Model {
	t.Helper()
	o := testOptions
	o.AllLogits, o.PrefillGraph, o.PrefillMin = false, prefill, min
	m, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// prefillOut is what a prefill of prompt gives: the last position's
// logits and every KV cache tensor's bytes.
func prefillOut(t *testing.T, m *Model, prompt []int64) ([]float32, [][]byte) {
	t.Helper()
	s, err := m.NewSequence(0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Step(context.Background(), prompt)
	if err != nil {
		t.Fatal(err)
	}
	logits := append([]float32(nil), out[len(out)-m.Vocab():]...)
	var kv [][]byte
	for j := range 2 * m.Config.Layers {
		for h := range m.Config.KVHeads {
			kv = append(kv, append([]byte(nil), s.KVHeadBytes(j, h, 0, len(prompt))...))
		}
	}
	return logits, kv
}

// batchOut is the logits of a batch step of rows rows, each row a
// 6-token prompt then one token.
func batchOut(t *testing.T, m *Model, rows int) []float32 {
	t.Helper()
	ctx := context.Background()
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
		if _, err := s.Step(ctx, testPrompt(6, i)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Join(s); err != nil {
			t.Fatal(err)
		}
		s.Close()
		tokens[i] = int64(17 + i)
	}
	out, err := b.Step(ctx, tokens)
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), out...)
}

// TestConvertedPrefillGraph: converting the generator's main graph
// (int4, int8, tied and untied heads, last-position and all-position
// logits) gives a prefill graph that computes what the generator's own
// prefill graph computes, bit for bit: the last position's logits and
// the KV cache of prompts of several lengths, and the logits of batch
// steps under and from PrefillHeadRows rows (the If's two branches).
// Every step runs the prefill graph (PrefillMin 1).
func TestConvertedPrefillGraph(t *testing.T) {
	initORT(t)
	for _, tc := range []struct {
		name string
		edit func(*mkmodel.Spec)
	}{
		{"int4-tied", func(s *mkmodel.Spec) { s.DType = mkmodel.Int4 }},
		{"int4-untied-block16", func(s *mkmodel.Spec) { s.DType, s.TieEmbeddings, s.BlockSize = mkmodel.Int4, false, 16 }},
		{"int8-untied", func(s *mkmodel.Spec) { s.DType, s.TieEmbeddings = mkmodel.Int8, false }},
		{"int4-all-logits", func(s *mkmodel.Spec) { s.DType, s.AllLogits = mkmodel.Int4, true }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := llmtest.Tiny(t, "conv-"+tc.name, func(s *mkmodel.Spec) {
				s.Seed, s.PrefillGraph = 7, true
				tc.edit(s)
			})
			dir, info := converted(t, res)
			wantForm := "If:"
			if res.Spec.AllLogits {
				wantForm = "as it is: the logits output has every position"
			}
			if info.Linears != 7*res.Spec.Layers || !strings.HasPrefix(info.HeadForm, wantForm) {
				t.Fatalf("conversion: %+v", info)
			}
			gen, conv := openWith(t, res.Dir, true, 1), openWith(t, dir, true, 1)
			if conv.PrefillFile == "" || conv.SharedWeights != gen.SharedWeights || conv.SharedBytes != gen.SharedBytes {
				t.Fatalf("converted prefill graph %q shares %d tensors (%d bytes), the generator's %d (%d bytes)",
					conv.PrefillFile, conv.SharedWeights, conv.SharedBytes, gen.SharedWeights, gen.SharedBytes)
			}
			for _, n := range []int{1, 5, 13, 40} {
				p := testPrompt(n, n)
				gl, gkv := prefillOut(t, gen, p)
				cl, ckv := prefillOut(t, conv, p)
				if at, ok := sameBits(gl, cl); !ok {
					t.Fatalf("%d-token prefill: logit %d is %v, the generator's prefill graph gives %v", n, at, cl[at], gl[at])
				}
				for i := range gkv {
					if string(gkv[i]) != string(ckv[i]) {
						t.Fatalf("%d-token prefill: KV tensor %d head %d differs", n, i/gen.Config.KVHeads, i%gen.Config.KVHeads)
					}
				}
			}
			for _, rows := range []int{2, mkmodel.PrefillHeadRows, 8} {
				g, c := batchOut(t, gen, rows), batchOut(t, conv, rows)
				if at, ok := sameBits(g, c); !ok {
					t.Fatalf("batch of %d rows: logit %d is %v, the generator's prefill graph gives %v", rows, at, c[at], g[at])
				}
			}
		})
	}
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	return ab / math.Sqrt(aa*bb)
}

// TestConvertedFP32: an fp32 model's MatMul weights convert; its prefill
// graph's logits agree with the main graph's within int8 quantization
// (cosine > 0.99, the same greedy token) for prompts and batch steps.
// With a tied head (MatMul of the Transpose of the embedding table: no
// constant weight) the head is left as it is and the graph still runs.
func TestConvertedFP32(t *testing.T) {
	initORT(t)
	for _, tied := range []bool{false, true} {
		name := map[bool]string{false: "untied", true: "tied"}[tied]
		t.Run(name, func(t *testing.T) {
			res := llmtest.Tiny(t, "conv-fp32-"+name, func(s *mkmodel.Spec) { s.Seed, s.TieEmbeddings = 7, tied })
			dir, info := converted(t, res)
			if tied != strings.HasPrefix(info.HeadForm, "as it is: its weight is not a constant") || info.Linears != 7*res.Spec.Layers {
				t.Fatalf("conversion: %+v", info)
			}
			if tied && (len(info.Skipped) != 1 || !strings.Contains(info.Skipped[0], "not an initializer")) {
				t.Fatalf("skipped: %q", info.Skipped)
			}
			plain, conv := openWith(t, res.Dir, false, 0), openWith(t, dir, true, 1)
			// Within int8 quantization: cosine > 0.99 and max |Δlogit| ≤
			// 0.25 (TestPrefillGraph's bound for the generator's prefill
			// graph); the same greedy token for every prompt, and for
			// every batch row but a near tie (top-1 margin under twice
			// the row's error, which int8 may flip).
			check := func(what string, a, b []float32, ties bool) {
				t.Helper()
				v := plain.Vocab()
				for r := 0; r < len(a)/v; r++ {
					x, y := a[r*v:(r+1)*v], b[r*v:(r+1)*v]
					c, d := cosine(x, y), maxAbsDiff(x, y)
					_, same := sameBits(x, y)
					tie := ties && margin(x) < 2*d
					if c < 0.99 || d > 0.25 || same || (argmax(x) != argmax(y) && !tie) {
						t.Errorf("%s row %d: cosine %.5f, max |Δlogit| %.4f, greedy %d (main graph %d, margin %.4f), bit-identical %v",
							what, r, c, d, argmax(y), argmax(x), margin(x), same)
					}
				}
			}
			for _, n := range []int{1, 5, 13, 40} {
				p := testPrompt(n, n)
				a, _ := prefillOut(t, plain, p)
				b, _ := prefillOut(t, conv, p)
				check(fmt.Sprintf("%d-token prompt", n), a, b, false)
			}
			for _, rows := range []int{2, 8} {
				check(fmt.Sprintf("batch of %d", rows), batchOut(t, plain, rows), batchOut(t, conv, rows), true)
			}
		})
	}
}

// TestConvertedGreedy: a model given a converted prefill graph loads with
// Options.PrefillGraph, and greedy generation (prompt on the prefill
// graph, decode on the main graph) equals the one with the generator's
// prefill graph.
func TestConvertedGreedy(t *testing.T) {
	initORT(t)
	res := llmtest.Tiny(t, "conv-int4-tied", func(s *mkmodel.Spec) { s.Seed, s.PrefillGraph, s.DType = 7, true, mkmodel.Int4 })
	dir, _ := converted(t, res)
	greedy := func(m *Model) []int {
		s, err := m.NewSequence(0)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		feed := prompt
		var toks []int
		for range 12 {
			out, err := s.Step(context.Background(), feed)
			if err != nil {
				t.Fatal(err)
			}
			tok := argmax(out[len(out)-m.Vocab():])
			toks = append(toks, tok)
			feed = []int64{int64(tok)}
		}
		return toks
	}
	gen, conv := openWith(t, res.Dir, true, 8), openWith(t, dir, true, 8)
	a, b := greedy(gen), greedy(conv)
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("greedy tokens %v with the converted prefill graph, %v with the generator's", b, a)
		}
	}
	t.Logf("greedy: %v", a)
}

// margin is the gap between the largest and second largest logit.
func margin(x []float32) float64 {
	a, b := math.Inf(-1), math.Inf(-1)
	for _, v := range x {
		switch f := float64(v); {
		case f > a:
			a, b = f, a
		case f > b:
			b = f
		}
	}
	return a - b
}

// TestConvertedBias: a MatMulNBits with its bias as input 5 (as
// onnxruntime-genai writes Qwen2's q/k/v projections) converts to the
// u8×s8 product then an Add of the bias, so the prefill graph of a model
// with its bias Adds folded into the MatMulNBits computes bit for bit
// what the unfolded model's does.
func TestConvertedBias(t *testing.T) {
	initORT(t)
	res := llmtest.Tiny(t, "conv-int4-tied", func(s *mkmodel.Spec) { s.Seed, s.PrefillGraph, s.DType = 7, true, mkmodel.Int4 })
	plainDir, _ := converted(t, res)

	dir := copyDir(t, res.Dir)
	src := filepath.Join(dir, "onnx", filepath.Base(res.ONNX))
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	m := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	producer := map[string]*onnx.NodeProto{}
	for _, n := range m.Graph.Node {
		for _, o := range n.Output {
			producer[o] = n
		}
	}
	var nodes []*onnx.NodeProto
	folded := 0
	for _, n := range m.Graph.Node {
		if p := producer[n.Input[0]]; n.GetOpType() == "Add" && strings.HasSuffix(n.Input[1], ".bias") && p != nil && p.GetOpType() == "MatMulNBits" {
			p.Input = append(p.Input, "", "", n.Input[1])
			p.Output = n.Output
			folded++
			continue
		}
		nodes = append(nodes, n)
	}
	if folded != 3*res.Spec.Layers {
		t.Fatalf("folded %d bias Adds", folded)
	}
	m.Graph.Node = nodes
	if b, err = proto.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := prefillPath(src)
	os.Remove(dst)
	if _, err := prefillgraph.File(src, dst, prefillgraph.Options{}); err != nil {
		t.Fatal(err)
	}
	want, got := openWith(t, plainDir, true, 1), openWith(t, dir, true, 1)
	for _, n := range []int{3, 13} {
		a, akv := prefillOut(t, want, testPrompt(n, n))
		c, ckv := prefillOut(t, got, testPrompt(n, n))
		if at, ok := sameBits(a, c); !ok {
			t.Fatalf("%d-token prefill: logit %d is %v with the bias in MatMulNBits, %v with an Add", n, at, c[at], a[at])
		}
		for i := range akv {
			if string(akv[i]) != string(ckv[i]) {
				t.Fatalf("%d-token prefill: KV %d differs", n, i)
			}
		}
	}
	if at, ok := sameBits(batchOut(t, want, 8), batchOut(t, got, 8)); !ok {
		t.Fatalf("batch of 8: logit %d differs", at)
	}
}

// TestConvertedZeroPoints: MatMulNBits with uint8 zero points (as
// onnxruntime-genai's asymmetric int4 exports have) converts with the
// zero points ONNX Runtime applies: the model with zero points varying by
// row and block (a different model, computed by ORT's MatMulNBits) and
// its prefill graph agree within int8 quantization, as TestConvertedFP32
// checks. A nibble read in the wrong order shifts whole blocks by steps.
func TestConvertedZeroPoints(t *testing.T) {
	initORT(t)
	res := llmtest.Tiny(t, "conv-int4-untied-zp", func(s *mkmodel.Spec) {
		s.Seed, s.DType, s.TieEmbeddings = 7, mkmodel.Int4, false
	})
	dir := copyDir(t, res.Dir)
	src := filepath.Join(dir, "onnx", filepath.Base(res.ONNX))
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	m := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, node := range m.Graph.Node {
		if node.GetOpType() != "MatMulNBits" {
			continue
		}
		var N, K int64
		for _, a := range node.Attribute {
			switch a.GetName() {
			case "N":
				N = a.GetI()
			case "K":
				K = a.GetI()
			}
		}
		blocks := (K + int64(res.Spec.BlockSize) - 1) / int64(res.Spec.BlockSize)
		row := (blocks + 1) / 2
		zp := make([]byte, N*row)
		for r := range N {
			for b := range blocks {
				v := byte(6 + (r+3*b)%5) // 6..10 around the default 8
				zp[r*row+b/2] |= v << (4 * (b % 2))
			}
		}
		name := node.GetName() + ".zero_points"
		m.Graph.Initializer = append(m.Graph.Initializer, &onnx.TensorProto{Name: proto.String(name),
			DataType: proto.Int32(int32(onnx.TensorProto_UINT8)), Dims: []int64{N * row}, RawData: zp})
		node.Input = append(node.Input[:3], name)
		n++
	}
	if n != 7*res.Spec.Layers+1 {
		t.Fatalf("%d MatMulNBits given zero points", n)
	}
	if b, err = proto.Marshal(m); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := prefillgraph.File(src, prefillPath(src), prefillgraph.Options{}); err != nil {
		t.Fatal(err)
	}
	plain, conv := openWith(t, dir, false, 0), openWith(t, dir, true, 1)
	for _, n := range []int{1, 5, 13, 40} {
		a, _ := prefillOut(t, plain, testPrompt(n, n))
		c, _ := prefillOut(t, conv, testPrompt(n, n))
		if cs, d := cosine(a, c), maxAbsDiff(a, c); cs < 0.99 || d > 0.25 || argmax(a) != argmax(c) {
			t.Errorf("%d-token prompt: cosine %.5f, max |Δlogit| %.4f, greedy %d (main graph %d)", n, cs, d, argmax(c), argmax(a))
		}
	}
}
