package encoder

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"

	"github.com/dsmil/l7/internal/slicepool"
	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/plugins/internal/tokenizer"
	ortgo "github.com/yalue/onnxruntime_go"
)

// Graph I/O names, as Optimum exports them.
const (
	inputIDs          = "input_ids"
	attentionMask     = "attention_mask"
	tokenTypeIDs      = "token_type_ids"
	lastHiddenState   = "last_hidden_state"
	sentenceEmbedding = "sentence_embedding"
)

// DefaultFile is the encoder graph Load reads unless told otherwise,
// relative to the model directory: Optimum's fp32 export.
// "onnx/model_quantized.onnx" is the dynamically quantized (int8) one the
// same repositories ship.
const DefaultFile = "onnx/model.onnx"

// ErrNotInitialized reports a Load before ort.Init.
var ErrNotInitialized = errors.New("encoder: ONNX Runtime is not initialized (ort.Init)")

// Sequence is one encoder input: token ids with the special tokens, and
// their token type ids (nil: all 0). For a dual encoder (the clip package)
// an input may be an image instead: Image holds its pixel values and IDs
// is empty.
type Sequence struct {
	IDs     []int64
	TypeIDs []int64
	Image   []float32
}

// Model is a loaded encoder. It is safe for concurrent use.
type Model struct {
	// Dir is the model directory; File the graph in it (DefaultFile, or
	// what Load was given).
	Dir, File string
	// Config is what the directory says about the model.
	Config *Config
	// Tokenizer is the model's tokenizer.
	Tokenizer *tokenizer.Tokenizer

	hasTypes bool   // the graph takes token_type_ids
	output   string // last_hidden_state (pooled here) or sentence_embedding
	padID    int64
	session  *ortgo.DynamicAdvancedSession
}

// Load opens the encoder in dir with its graph file, a slash-separated
// path inside dir ("" means DefaultFile). ort.Init must have been called.
func Load(dir, file string, opts ort.Options) (*Model, error) {
	if ort.Loaded() == nil {
		return nil, ErrNotInitialized
	}
	if file == "" {
		file = DefaultFile
	}
	if !filepath.IsLocal(filepath.FromSlash(file)) {
		return nil, fmt.Errorf("%w: the graph file %q is not a path inside the model directory", ErrLayout, file)
	}
	c, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLayout, err)
	}
	onnxPath := filepath.Join(dir, filepath.FromSlash(file))
	ins, outs, err := ortgo.GetInputOutputInfo(onnxPath)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrLayout, onnxPath, err)
	}
	m := &Model{Dir: dir, File: file, Config: c, Tokenizer: tok}
	if p, ok := tok.Pad(); ok {
		m.padID = int64(p.ID)
	}
	names := func(infos []ortgo.InputOutputInfo) []string {
		var n []string
		for _, i := range infos {
			n = append(n, i.Name)
		}
		return n
	}
	inNames, outNames := names(ins), names(outs)
	for _, want := range []string{inputIDs, attentionMask} {
		if !slices.Contains(inNames, want) {
			return nil, fmt.Errorf("%w: %s has no input %s (it has %v)", ErrLayout, onnxPath, want, inNames)
		}
	}
	feed := []string{inputIDs, attentionMask}
	for _, n := range inNames {
		switch n {
		case inputIDs, attentionMask:
		case tokenTypeIDs:
			m.hasTypes = true
			feed = append(feed, tokenTypeIDs)
		default:
			return nil, fmt.Errorf("%w: %s has input %s, which an encoder does not take", ErrLayout, onnxPath, n)
		}
	}
	switch {
	case slices.Contains(outNames, sentenceEmbedding):
		m.output = sentenceEmbedding
	case slices.Contains(outNames, lastHiddenState):
		m.output = lastHiddenState
	default:
		return nil, fmt.Errorf("%w: %s has neither a last_hidden_state nor a sentence_embedding output (it has %v)", ErrLayout, onnxPath, outNames)
	}
	so, err := opts.SessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	m.session, err = ortgo.NewDynamicAdvancedSession(onnxPath, feed, []string{m.output}, so)
	if err != nil {
		return nil, fmt.Errorf("encoder: ONNX Runtime cannot load %s: %w", onnxPath, err)
	}
	return m, nil
}

// Close releases the ONNX Runtime session.
func (m *Model) Close() error {
	if m.session == nil {
		return nil
	}
	err := m.session.Destroy()
	m.session = nil
	return err
}

// Encode tokenizes text as the model expects (special tokens added) and
// returns its sequence.
func (m *Model) Encode(text string) Sequence {
	ids, types := m.Tokenizer.EncodeTyped(text)
	s := Sequence{IDs: make([]int64, len(ids)), TypeIDs: make([]int64, len(types))}
	for i, id := range ids {
		s.IDs[i] = int64(id)
	}
	for i, t := range types {
		s.TypeIDs[i] = int64(t)
	}
	return s
}

// Embed runs seqs as one batch, padded to the longest, and returns one
// pooled (and, if the model says so, unit-length) vector per sequence.
// Every sequence must be 1 to Config.MaxSeqLength ids of the vocabulary;
// the caller checks (CheckSequence) so that it can name the bad input.
func (m *Model) Embed(ctx context.Context, seqs []Sequence) ([][]float32, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	longest := 0
	for i, s := range seqs {
		if err := m.CheckSequence(s); err != nil {
			return nil, fmt.Errorf("sequence %d: %w", i, err)
		}
		longest = max(longest, len(s.IDs))
	}
	B, S, H := len(seqs), longest, m.Config.Hidden
	inBuf := int64Bufs.Get(3 * B * S)
	defer int64Bufs.Put(inBuf)
	in := *inBuf
	clear(in) // mask and types are 0 on padding
	ids, mask := in[:B*S], in[B*S:2*B*S]
	var types []int64
	if m.hasTypes {
		types = in[2*B*S:]
	}
	for b, s := range seqs {
		row := ids[b*S : (b+1)*S]
		copy(row, s.IDs)
		for i := len(s.IDs); i < S; i++ {
			row[i] = m.padID
		}
		for i := range s.IDs {
			mask[b*S+i] = 1
		}
		if types != nil && s.TypeIDs != nil {
			copy(types[b*S:], s.TypeIDs)
		}
	}
	shape := ortgo.NewShape(int64(B), int64(S))
	var ins []ortgo.Value
	defer func() {
		for _, v := range ins {
			_ = v.Destroy()
		}
	}()
	for _, data := range [][]int64{ids, mask, types} {
		if data == nil {
			continue
		}
		t, err := ortgo.NewTensor(shape, data)
		if err != nil {
			return nil, fmt.Errorf("encoder: input tensor: %w", err)
		}
		ins = append(ins, t)
	}
	outShape := ortgo.NewShape(int64(B), int64(S), int64(H))
	if m.output == sentenceEmbedding {
		outShape = ortgo.NewShape(int64(B), int64(H))
	}
	outBuf := float32Bufs.Get(int(outShape.FlattenedSize()))
	defer float32Bufs.Put(outBuf)
	out, err := ortgo.NewTensor(outShape, *outBuf)
	if err != nil {
		return nil, fmt.Errorf("encoder: output tensor: %w", err)
	}
	defer out.Destroy()
	if err := m.run(ctx, ins, []ortgo.Value{out}); err != nil {
		return nil, err
	}
	data := out.GetData()
	vecs := make([][]float32, B)
	for b, s := range seqs {
		if m.output == sentenceEmbedding {
			vecs[b] = slices.Clone(data[b*H : (b+1)*H])
		} else {
			vecs[b] = Pool(m.Config.Pooling, data[b*S*H:(b+1)*S*H], len(s.IDs), H)
		}
		if m.Config.Normalize {
			Normalize(vecs[b])
		}
	}
	return vecs, nil
}

// float32Bufs and int64Bufs hold the buffers of runs' outputs and inputs
// for the next run: the hidden states of a 32 × 16 batch are 786 KB and of
// a 32 × 512 one 25 MB, and allocating them for every run kept the
// plugin's garbage collector busy on the cores the runs use
// (docs/performance.md). ONNX Runtime writes every element of an output;
// inputs are cleared before use.
var (
	float32Bufs slicepool.Pool[float32]
	int64Bufs   slicepool.Pool[int64]
)

// CheckSequence reports why the model cannot take s, or nil.
func (m *Model) CheckSequence(s Sequence) error {
	switch {
	case len(s.IDs) == 0:
		return errors.New("no tokens")
	case len(s.IDs) > m.Config.MaxSeqLength:
		return fmt.Errorf("%d tokens; the model takes at most %d", len(s.IDs), m.Config.MaxSeqLength)
	case s.TypeIDs != nil && len(s.TypeIDs) != len(s.IDs):
		return fmt.Errorf("%d token type ids for %d tokens", len(s.TypeIDs), len(s.IDs))
	}
	vocab := m.Config.Vocab
	if vocab <= 0 {
		vocab = m.Tokenizer.VocabSize()
	}
	for i, id := range s.IDs {
		if id < 0 || id >= int64(vocab) {
			return fmt.Errorf("token %d is id %d, outside the vocabulary of %d", i, id, vocab)
		}
	}
	return nil
}

// run runs the session, terminating it if ctx is cancelled meanwhile.
func (m *Model) run(ctx context.Context, ins, outs []ortgo.Value) error {
	ro, err := ortgo.NewRunOptions()
	if err != nil {
		return fmt.Errorf("encoder: run options: %w", err)
	}
	defer ro.Destroy()
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		_ = ro.Terminate()
	})
	err = m.session.RunWithOptions(ins, outs, ro)
	if !stop() {
		<-done
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("encoder: cancelled: %w", cerr)
		}
		return fmt.Errorf("encoder: run: %w", err)
	}
	return ctx.Err()
}

// Pool reduces the hidden states of one sequence (S×H row-major, of which
// the first n rows are tokens and the rest padding) to one vector: the
// first token's (cls), the mean over the tokens (mean), or the last
// token's (lasttoken).
func Pool(mode string, hidden []float32, n, H int) []float32 {
	out := make([]float32, H)
	switch mode {
	case PoolCLS:
		copy(out, hidden[:H])
	case PoolLastToken:
		copy(out, hidden[(n-1)*H:n*H])
	default:
		acc := make([]float64, H)
		for t := 0; t < n; t++ {
			for i, v := range hidden[t*H : (t+1)*H] {
				acc[i] += float64(v)
			}
		}
		for i := range out {
			out[i] = float32(acc[i] / float64(n))
		}
	}
	return out
}

// Normalize scales v to unit length in place (as torch's F.normalize, with
// its 1e-12 floor on the norm) and returns it.
func Normalize(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	n := max(math.Sqrt(sum), 1e-12)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
	return v
}
