package encoder

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/internal/onnx"
	"github.com/dsmil/l7/plugins/internal/ort"
	"google.golang.org/protobuf/proto"
)

// initORT loads ONNX Runtime, or skips when none is installed (make test
// always provides one).
func initORT(t testing.TB) {
	t.Helper()
	lib := ort.ResolveLibrary(os.Getenv)
	if lib == "" {
		t.Skip("ONNX Runtime is not installed: run make ort (make test does)")
	}
	if _, err := ort.Init(lib); err != nil {
		t.Fatal(err)
	}
}

// tinyEncoder writes the tiny-encoder preset with pooling and returns it
// loaded with its reference.
func tinyEncoder(t *testing.T, pooling string, normalize bool) (*Model, *mkmodel.EncoderReference) {
	t.Helper()
	initORT(t)
	s, err := mkmodel.EncoderPreset("tiny-encoder")
	if err != nil {
		t.Fatal(err)
	}
	s.Pooling, s.Normalize, s.Seed = pooling, normalize, 7
	r, err := mkmodel.WriteEncoder(filepath.Join(t.TempDir(), "enc"), s)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(r.Dir, "", ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	ref, err := mkmodel.NewEncoderReference(r.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return m, ref
}

var texts = []string{
	"The local plane answers questions on the machine itself.",
	"hello",
	"Hello, world! How are you today?",
	"unaffable tokenization of words the vocabulary lacks: zyx",
}

// TestMatchesReference runs the generated encoder on ONNX Runtime, four
// texts of different lengths in one padded batch, and compares each pooled
// vector with the Go reference forward pass of the same weights, for each
// pooling mode, with and without normalisation.
func TestMatchesReference(t *testing.T) {
	for _, tc := range []struct {
		pooling   string
		normalize bool
	}{{PoolMean, true}, {PoolCLS, false}, {PoolLastToken, true}, {PoolMean, false}} {
		t.Run(tc.pooling, func(t *testing.T) {
			m, ref := tinyEncoder(t, tc.pooling, tc.normalize)
			if m.Config.Pooling != tc.pooling || m.Config.Normalize != tc.normalize || !m.Config.RandomWeights || !m.hasTypes {
				t.Fatalf("config %+v, token types %v", m.Config, m.hasTypes)
			}
			seqs := make([]Sequence, len(texts))
			for i, s := range texts {
				seqs[i] = m.Encode(s)
			}
			if seqs[1].IDs[0] != 2 || seqs[1].IDs[len(seqs[1].IDs)-1] != 3 {
				t.Fatalf("%q encodes to %v: no [CLS] … [SEP]", texts[1], seqs[1].IDs)
			}
			got, err := m.Embed(context.Background(), seqs)
			if err != nil {
				t.Fatal(err)
			}
			worst := 0.0
			for i, s := range seqs {
				hidden, err := ref.Forward(s.IDs, s.TypeIDs)
				if err != nil {
					t.Fatal(err)
				}
				flat := make([]float32, 0, len(hidden)*m.Config.Hidden)
				for _, row := range hidden {
					flat = append(flat, row...)
				}
				want := Pool(tc.pooling, flat, len(s.IDs), m.Config.Hidden)
				if tc.normalize {
					Normalize(want)
				}
				if len(got[i]) != len(want) {
					t.Fatalf("text %d: %d values, want %d", i, len(got[i]), len(want))
				}
				for j := range want {
					d := math.Abs(float64(got[i][j] - want[j]))
					worst = max(worst, d)
					if d > 1e-4 {
						t.Fatalf("text %d (%d tokens) value %d: ORT %v, reference %v", i, len(s.IDs), j, got[i][j], want[j])
					}
				}
				if n := norm(got[i]); tc.normalize && math.Abs(n-1) > 1e-5 {
					t.Errorf("text %d: norm %v", i, n)
				}
			}
			t.Logf("%s: largest difference from the reference %.2g", tc.pooling, worst)
		})
	}
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// TestBatchIndependent: a sequence's vector is the same alone and padded
// in a batch with longer ones.
func TestBatchIndependent(t *testing.T) {
	m, _ := tinyEncoder(t, PoolMean, true)
	short := m.Encode("hello")
	alone, err := m.Embed(context.Background(), []Sequence{short})
	if err != nil {
		t.Fatal(err)
	}
	batched, err := m.Embed(context.Background(), []Sequence{m.Encode(texts[0]), short, m.Encode(texts[3])})
	if err != nil {
		t.Fatal(err)
	}
	for j := range alone[0] {
		if d := math.Abs(float64(alone[0][j] - batched[1][j])); d > 1e-5 {
			t.Fatalf("value %d: alone %v, batched %v", j, alone[0][j], batched[1][j])
		}
	}
}

// TestCheckSequence: the limits Embed enforces, with messages that name
// them.
func TestCheckSequence(t *testing.T) {
	m, _ := tinyEncoder(t, PoolMean, true)
	long := make([]int64, m.Config.MaxSeqLength+1)
	for _, tc := range []struct {
		s    Sequence
		want string
	}{
		{Sequence{}, "no tokens"},
		{Sequence{IDs: long}, "65 tokens; the model takes at most 64"},
		{Sequence{IDs: []int64{2, int64(m.Config.Vocab), 3}}, fmt.Sprintf("token 1 is id %d, outside the vocabulary of %d", m.Config.Vocab, m.Config.Vocab)},
		{Sequence{IDs: []int64{2, -1}}, "token 1 is id -1"},
		{Sequence{IDs: []int64{2, 3}, TypeIDs: []int64{0}}, "1 token type ids for 2 tokens"},
	} {
		err := m.CheckSequence(tc.s)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("CheckSequence(%v) = %v, want %q", tc.s, err, tc.want)
		}
		if _, err := m.Embed(context.Background(), []Sequence{m.Encode("ok"), tc.s}); err == nil || !strings.Contains(err.Error(), "sequence 1: ") {
			t.Errorf("Embed with %v: %v", tc.s, err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := m.Embed(ctx, []Sequence{m.Encode("ok")}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Embed: %v", err)
	}
}

// TestLayoutErrors: directories that are not encoders this package runs
// fail with ErrLayout naming what is wrong.
func TestLayoutErrors(t *testing.T) {
	write := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for name, body := range files {
			p := filepath.Join(dir, name)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	cfg := `{"hidden_size": 8, "max_position_embeddings": 16}`
	pool := `[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]`
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no config", map[string]string{}, "config.json"},
		{"max pooling", map[string]string{"config.json": cfg, "modules.json": pool, "1_Pooling/config.json": `{"pooling_mode_max_tokens": true}`}, "max, mean_sqrt_len and weightedmean"},
		{"two poolings", map[string]string{"config.json": cfg, "modules.json": pool, "1_Pooling/config.json": `{"pooling_mode_cls_token": true, "pooling_mode_mean_tokens": true}`}, "sets 2 of cls, mean and lasttoken"},
		{"dimension", map[string]string{"config.json": cfg, "modules.json": pool, "1_Pooling/config.json": `{"word_embedding_dimension": 9, "pooling_mode_cls_token": true}`}, "word_embedding_dimension 9"},
		{"dense", map[string]string{"config.json": cfg, "modules.json": `[{"type":"sentence_transformers.models.Dense","path":"2_Dense"}]`}, "Dense"},
		{"seq length", map[string]string{"config.json": cfg, "sentence_bert_config.json": `{"max_seq_length": 17}`}, "max_seq_length 17 exceeds"},
	} {
		_, err := LoadConfig(write(t, tc.files))
		if !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want ErrLayout naming %q", tc.name, err, tc.want)
		}
	}
	c, err := LoadConfig(write(t, map[string]string{"config.json": cfg}))
	if err != nil || c.Pooling != PoolMean || c.Normalize || c.MaxSeqLength != 16 {
		t.Errorf("bare transformer: %+v %v", c, err)
	}
}

// quantTexts are varied inputs for the quantized graph: lengths from one
// word to the tiny encoder's 64 tokens, punctuation, digits, repeats,
// words the vocabulary lacks.
var quantTexts = []string{
	"hello",
	"The local plane answers questions on the machine itself.",
	"Hello, world! How are you today?",
	"unaffable tokenization of words the vocabulary lacks: zyx",
	"1 2 3 4 5 6 7 8 9 10 11 12",
	"the the the the the the the the",
	"A quick brown fox jumps over the lazy dog; then it sleeps for 42 minutes, and wakes up hungry again at noon.",
	strings.Repeat("Embeddings map text to vectors. ", 2),
}

// TestQuantized writes the tiny encoder with its dynamic int8 graph
// (onnx/model_quantized.onnx: DynamicQuantizeLinear + MatMulInteger, int8
// embedding tables), runs both graphs on ONNX Runtime, and checks that
// Load picks the file it is given (the graphs differ in their op types and
// in their vectors) and that every quantized vector is within a cosine of
// 0.99 of its fp32 one.
func TestQuantized(t *testing.T) {
	initORT(t)
	s, _ := mkmodel.EncoderPreset("tiny-encoder")
	s.Seed, s.Quantized = 11, true
	r, err := mkmodel.WriteEncoder(filepath.Join(t.TempDir(), "enc"), s)
	if err != nil {
		t.Fatal(err)
	}
	ops := func(path string) map[string]int {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var m onnx.ModelProto
		if err := proto.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, node := range m.GetGraph().GetNode() {
			n[node.GetOpType()]++
		}
		return n
	}
	if r.QuantizedONNX != filepath.Join(r.Dir, "onnx", "model_quantized.onnx") {
		t.Fatalf("quantized graph at %s", r.QuantizedONNX)
	}
	// 6 linears a layer; q, k and v share one quantized input: 4
	// DynamicQuantizeLinear a layer. MatMul: only the two attention
	// products a layer are left in fp32.
	if n := ops(r.QuantizedONNX); n["MatMulInteger"] != 6*s.Layers || n["DynamicQuantizeLinear"] != 4*s.Layers || n["MatMul"] != 2*s.Layers || n["DequantizeLinear"] != 3 {
		t.Errorf("quantized graph ops %v", n)
	}
	if n := ops(r.ONNX); n["MatMulInteger"] != 0 || n["MatMul"] != 8*s.Layers {
		t.Errorf("fp32 graph ops %v", n)
	}

	load := func(file string) *Model {
		m, err := Load(r.Dir, file, ort.Options{IntraOpThreads: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	fp, q := load(""), load("onnx/model_quantized.onnx")
	if fp.File != DefaultFile || q.File != "onnx/model_quantized.onnx" {
		t.Errorf("files %q, %q", fp.File, q.File)
	}
	var seqs []Sequence
	for _, text := range quantTexts {
		seqs = append(seqs, fp.Encode(text))
	}
	want, err := fp.Embed(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.Embed(context.Background(), seqs)
	if err != nil {
		t.Fatal(err)
	}
	minCos, maxDiff := 1.0, 0.0
	for i := range want {
		var dot float64
		for k := range want[i] {
			dot += float64(want[i][k]) * float64(got[i][k])
			maxDiff = max(maxDiff, math.Abs(float64(want[i][k]-got[i][k])))
		}
		// Both are unit vectors: the dot product is the cosine.
		if dot < 0.99 {
			t.Errorf("text %d (%d tokens): cosine %.5f between the quantized and fp32 vectors, want ≥ 0.99", i, len(seqs[i].IDs), dot)
		}
		minCos = min(minCos, dot)
	}
	if maxDiff < 1e-4 {
		t.Errorf("the quantized vectors equal the fp32 ones within %g: the quantized graph did not run", maxDiff)
	}
	t.Logf("%d texts: cosine ≥ %.5f, largest difference %.4f", len(want), minCos, maxDiff)

	for _, file := range []string{"../model.onnx", "/etc/passwd", "onnx/model_int8.onnx"} {
		if _, err := Load(r.Dir, file, ort.Options{}); !errors.Is(err, ErrLayout) || !strings.Contains(err.Error(), file) {
			t.Errorf("Load %q: %v, want ErrLayout naming it", file, err)
		}
	}
}
