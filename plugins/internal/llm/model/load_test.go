package model

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/internal/onnx/weightref"
	"github.com/dsmil/l7/plugins/internal/llm/llmtest"
)

// embedModel is a small model whose weights are mostly its fp32
// embedding table (65536 × 256: 64 MiB), int4 linears, a tied int4 LM
// head, all positions' logits (so Open rewrites it) and a prefill graph.
func embedModel(t *testing.T) (*mkmodel.Result, int64) {
	const vocab, hidden = 65536, 256
	res := llmtest.Tiny(t, "embed-64mib-prefill", func(s *mkmodel.Spec) {
		s.Seed, s.DType, s.AllLogits, s.PrefillGraph = 5, mkmodel.Int4, true, true
		s.Vocab, s.Hidden, s.Heads, s.KVHeads, s.HeadDim, s.Intermediate = vocab, hidden, 4, 2, 64, 512
	})
	return res, vocab * hidden * 4
}

func fileSize(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// quiesce opens and closes a tiny model (ONNX Runtime's one-time costs,
// such as its kernel registry, are then paid), returns the Go heap's free
// memory to the OS and resets the peak resident set, so that what follows
// is measured from here.
func quiesce(t *testing.T) int64 {
	m, err := Open(tiny(t, "qwen2-fp32-tied", nil).Dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	runtime.GC()
	debug.FreeOSMemory()
	if err := resetPeak(); err != nil {
		t.Skipf("cannot reset the peak resident set: %v", err)
	}
	return procStatus("VmRSS")
}

// TestOpenMemory: opening a model ONNX Runtime's way costs the weights
// once, not a rewritten copy beside them. Open rewrites the graph
// (last-position logits) and hands ONNX Runtime the graph with its
// weights as references to the model file; the resident set while opening
// stays far under the file's size (the embedding table, most of it, is
// mapped and read a row at a time). Before, the rewritten copy alone was
// the file's size and ONNX Runtime parsed a second.
func TestOpenMemory(t *testing.T) {
	initORT(t)
	res, emb := embedModel(t)
	file := fileSize(t, res.ONNX)
	o := testOptions
	o.AllLogits = false
	before := quiesce(t)
	m, err := Open(res.Dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	peak, after := procStatus("VmHWM")-before, procStatus("VmRSS")-before
	t.Logf("model file %d MiB (embedding %d MiB): peak +%d MiB while opening, +%d MiB after",
		file>>20, emb>>20, peak>>20, after>>20)
	if !m.LastLogits {
		t.Fatalf("not rewritten: %s", m.LogitsRewrite)
	}
	if peak > file/2 {
		t.Fatalf("opening a %d MiB model took the peak resident set up by %d MiB, want < half the file", file>>20, peak>>20)
	}
	s, err := m.NewSequence(0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Step(context.Background(), prompt); err != nil {
		t.Fatal(err)
	}
}

// TestPrefillSharesEmbedding: with the prefill graph, the embedding table
// both graphs hold is in memory once (the prefill session reads the main
// file's bytes), and the model's weight bytes — what llm-amx counts
// against memory_budget — count it once: Inspect's figure before loading
// is Open's after.
func TestPrefillSharesEmbedding(t *testing.T) {
	initORT(t)
	res, emb := embedModel(t)
	mainFile, preFile := fileSize(t, res.ONNX), fileSize(t, prefillPath(res.ONNX))
	o := testOptions
	o.AllLogits, o.PrefillGraph = false, true
	ins, err := Inspect(res.Dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if want := mainFile + preFile - emb; ins.Files.WeightBytes != want {
		t.Fatalf("Inspect: weight bytes %d, want %d (both files, the %d-byte embedding once)", ins.Files.WeightBytes, want, emb)
	}
	before := quiesce(t)
	m, err := Open(res.Dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	grew := procStatus("VmRSS") - before
	t.Logf("files %d + %d MiB, embedding %d MiB: resident set +%d MiB after opening both graphs; shared %d tensors, %d bytes",
		mainFile>>20, preFile>>20, emb>>20, grew>>20, m.SharedWeights, m.SharedBytes)
	if m.SharedWeights != 1 || m.SharedBytes != emb || m.Files.WeightBytes != ins.Files.WeightBytes {
		t.Fatalf("shared %d tensors, %d bytes; weight bytes %d, Inspect's %d", m.SharedWeights, m.SharedBytes,
			m.Files.WeightBytes, ins.Files.WeightBytes)
	}
	// Everything but the embedding, once each: the table's two copies
	// (before) would be 2 × 64 MiB more.
	if limit := mainFile + preFile - 2*emb + emb/2; grew > limit {
		t.Fatalf("opening both graphs grew the resident set by %d MiB, want < %d MiB", grew>>20, limit>>20)
	}
	// A prefill step (the prefill graph) and a decode step run.
	s, err := m.NewSequence(0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, feed := range [][]int64{prompt, {17}} {
		if _, err := s.Step(context.Background(), feed); err != nil {
			t.Fatal(err)
		}
	}
}

// TestPrefillSharesOnlyEqualBytes: a prefill graph whose embedding table
// has the main graph's name and shape but other bytes keeps its own, and
// the weight bytes count both.
func TestPrefillSharesOnlyEqualBytes(t *testing.T) {
	initORT(t)
	res := tiny(t, "qwen2-int4-prefill-alllogits", func(s *mkmodel.Spec) { s.DType, s.PrefillGraph = mkmodel.Int4, true })
	dir := copyDir(t, res.Dir)
	o := testOptions
	o.AllLogits, o.PrefillGraph = false, true
	m0, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	shared, onnx := m0.SharedBytes, m0.Files.ONNX
	m0.Close()
	if shared == 0 {
		t.Fatal("the tiny model's prefill graph shares nothing")
	}
	pre := prefillPath(onnx)
	f, err := weightref.Map(pre)
	if err != nil {
		t.Fatal(err)
	}
	ts, err := weightref.Initializers(f.Data, "")
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var at int64 = -1
	for _, x := range ts {
		if x.Name == "model.embed_tokens.weight" {
			at = x.Ref.Offset
		}
	}
	if at < 0 {
		t.Fatalf("no model.embed_tokens.weight in %s", pre)
	}
	b, err := os.ReadFile(pre)
	if err != nil {
		t.Fatal(err)
	}
	b[at+5] ^= 0x40
	if err := os.WriteFile(pre, b, 0o644); err != nil {
		t.Fatal(err)
	}
	ins, err := Inspect(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.SharedWeights != 0 || m.SharedBytes != 0 || m.Files.WeightBytes != ins.Files.WeightBytes+shared {
		t.Fatalf("shared %d tensors, %d bytes; weight bytes %d, want Inspect's %d + %d", m.SharedWeights, m.SharedBytes,
			m.Files.WeightBytes, ins.Files.WeightBytes, shared)
	}
}

// TestPrefillSharesExternalData: when both graphs keep their weights in
// external data files, the prefill graph's embedding table is read from
// the main graph's data file, and a prefill step and a decode step run.
func TestPrefillSharesExternalData(t *testing.T) {
	initORT(t)
	res := tiny(t, "qwen2-int4-prefill-external", func(s *mkmodel.Spec) {
		s.DType, s.PrefillGraph, s.ExternalDataThreshold = mkmodel.Int4, true, -1
	})
	o := testOptions
	o.AllLogits, o.PrefillGraph = false, true
	ins, err := Inspect(res.Dir, o)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Open(res.Dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	emb := int64(res.Spec.Vocab * res.Spec.Hidden * 4)
	if len(m.Files.ExternalData) == 0 || m.SharedWeights != 1 || m.SharedBytes != emb || m.Files.WeightBytes != ins.Files.WeightBytes {
		t.Fatalf("external data %v; shared %d tensors, %d bytes (embedding %d); weight bytes %d, Inspect's %d",
			m.Files.ExternalData, m.SharedWeights, m.SharedBytes, emb, m.Files.WeightBytes, ins.Files.WeightBytes)
	}
	s, err := m.NewSequence(0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, feed := range [][]int64{prompt, {17}} {
		if _, err := s.Step(context.Background(), feed); err != nil {
			t.Fatal(err)
		}
	}
}
