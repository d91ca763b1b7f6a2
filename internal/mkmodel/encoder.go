package mkmodel

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/dsmil/l7/internal/onnx"
	"google.golang.org/protobuf/proto"
)

// Pooling modes of a sentence-transformers Pooling module (1_Pooling).
const (
	PoolMean      = "mean"
	PoolCLS       = "cls"
	PoolLastToken = "lasttoken"
)

// Graph I/O names of a BERT encoder, as Optimum exports it.
const (
	TokenTypeIDs    = "token_type_ids"
	LastHiddenState = "last_hidden_state"
)

// EncoderSpec is the shape of a BERT-architecture sentence encoder
// (all-MiniLM-L6-v2 and the other sentence-transformers BERTs): post-norm
// layers with GELU feed-forward, learned absolute positions, token types.
type EncoderSpec struct {
	// Name names the shape (config.json's _name_or_path).
	Name string
	// Layers, Hidden, Heads, Intermediate are BERT's num_hidden_layers,
	// hidden_size, num_attention_heads, intermediate_size.
	Layers, Hidden, Heads, Intermediate int
	// Vocab is the embedding table's rows (≥ the generated tokenizer's
	// size; 0 means exactly that).
	Vocab int
	// MaxPositions is max_position_embeddings.
	MaxPositions int
	// TypeVocab is type_vocab_size.
	TypeVocab int
	// LayerNormEps is layer_norm_eps; 0 means BERT's 1e-12.
	LayerNormEps float64
	// MaxSeqLength is sentence_bert_config.json's max_seq_length; 0 means
	// MaxPositions.
	MaxSeqLength int
	// Pooling is PoolMean (the default), PoolCLS or PoolLastToken.
	Pooling string
	// Normalize adds the Normalize module (unit-length vectors).
	Normalize bool
	// Seed seeds the weights.
	Seed uint64
	// Quantized also writes QuantizedEncoderFile: the same weights
	// dynamically quantized to int8 (the linears as DynamicQuantizeLinear +
	// MatMulInteger, the embedding tables as int8 + DequantizeLinear), the
	// layout of the onnx/model_quantized.onnx sentence-transformers
	// repositories ship.
	Quantized bool
}

var encoderPresets = map[string]EncoderSpec{
	// all-MiniLM-L6-v2's shape (22.7M parameters; its vocabulary is BERT's
	// 30 522 tokens, of which the generated tokenizer uses the first).
	"minilm-l6": {Name: "minilm-l6", Layers: 6, Hidden: 384, Heads: 12, Intermediate: 1536, Vocab: 30522,
		MaxPositions: 512, TypeVocab: 2, MaxSeqLength: 256, Pooling: PoolMean, Normalize: true},
	// A tiny shape for tests and the Go reference.
	"tiny-encoder": {Name: "tiny-encoder", Layers: 2, Hidden: 32, Heads: 4, Intermediate: 64,
		MaxPositions: 64, TypeVocab: 2, Pooling: PoolMean, Normalize: true},
}

// EncoderPreset returns a named encoder shape.
func EncoderPreset(name string) (EncoderSpec, error) {
	s, ok := encoderPresets[name]
	if !ok {
		names := make([]string, 0, len(encoderPresets))
		for n := range encoderPresets {
			names = append(names, n)
		}
		sort.Strings(names)
		return EncoderSpec{}, fmt.Errorf("%w: unknown encoder preset %q (have %s)", ErrSpec, name, strings.Join(names, ", "))
	}
	return s, nil
}

// IsEncoderPreset reports whether name is an encoder preset.
func IsEncoderPreset(name string) bool { _, ok := encoderPresets[name]; return ok }

// Validate fills in the defaults and checks s; vocab is the tokenizer's
// size.
func (s *EncoderSpec) Validate(vocab int) error {
	if s.Vocab == 0 {
		s.Vocab = vocab
	}
	if s.LayerNormEps == 0 {
		s.LayerNormEps = 1e-12
	}
	if s.MaxSeqLength == 0 {
		s.MaxSeqLength = s.MaxPositions
	}
	if s.Pooling == "" {
		s.Pooling = PoolMean
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if s.Layers < 1 || s.Hidden < 1 || s.Heads < 1 || s.Intermediate < 1 || s.MaxPositions < 1 || s.TypeVocab < 1 {
		bad("layers, hidden, heads, intermediate, max positions and type vocab must be positive")
	}
	if s.Heads > 0 && s.Hidden%s.Heads != 0 {
		bad("heads (%d) must divide hidden (%d)", s.Heads, s.Hidden)
	}
	if s.Vocab < vocab {
		bad("vocab (%d) is smaller than the tokenizer's %d tokens", s.Vocab, vocab)
	}
	if s.MaxSeqLength > s.MaxPositions {
		bad("max_seq_length (%d) exceeds max positions (%d)", s.MaxSeqLength, s.MaxPositions)
	}
	if !slices.Contains([]string{PoolMean, PoolCLS, PoolLastToken}, s.Pooling) {
		bad("pooling %q is not mean, cls or lasttoken", s.Pooling)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrSpec, errors.Join(errs...))
	}
	return nil
}

// WordPieceVocab is the generated encoder's tokenizer vocabulary, id
// order: BERT's five special tokens, the printable ASCII characters and
// their "##" continuations, then the lower-cased words of the training text
// by frequency.
func WordPieceVocab() []string {
	v := []string{"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
	for c := '!'; c <= '~'; c++ {
		if unicode.IsUpper(c) {
			continue
		}
		v = append(v, string(c))
	}
	for c := '!'; c <= '~'; c++ {
		if unicode.IsLetter(c) && unicode.IsLower(c) || unicode.IsDigit(c) {
			v = append(v, "##"+string(c))
		}
	}
	count := map[string]int{}
	for _, w := range strings.FieldsFunc(strings.ToLower(trainingText), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		if len(w) > 1 {
			count[w]++
		}
	}
	words := make([]string, 0, len(count))
	for w := range count {
		words = append(words, w)
	}
	sort.Slice(words, func(i, j int) bool {
		if count[words[i]] != count[words[j]] {
			return count[words[i]] > count[words[j]]
		}
		return words[i] < words[j]
	})
	return append(v, words...)
}

// wordPieceTokenizerJSON is a BERT-uncased tokenizer.json over vocab, the
// sections bert-base-uncased's has.
func wordPieceTokenizerJSON(vocab []string) map[string]any {
	ids := make(map[string]int, len(vocab))
	for i, t := range vocab {
		ids[t] = i
	}
	added := []map[string]any{}
	for _, t := range vocab[:5] {
		added = append(added, map[string]any{"id": ids[t], "content": t, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": true})
	}
	special := func(t string, typ int) map[string]any {
		return map[string]any{"SpecialToken": map[string]any{"id": t, "type_id": typ}}
	}
	seq := func(id string, typ int) map[string]any {
		return map[string]any{"Sequence": map[string]any{"id": id, "type_id": typ}}
	}
	return map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added,
		"normalizer":    map[string]any{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": nil, "lowercase": true},
		"pre_tokenizer": map[string]any{"type": "BertPreTokenizer"},
		"post_processor": map[string]any{
			"type":   "TemplateProcessing",
			"single": []any{special("[CLS]", 0), seq("A", 0), special("[SEP]", 0)},
			"pair":   []any{special("[CLS]", 0), seq("A", 0), special("[SEP]", 0), seq("B", 1), special("[SEP]", 1)},
			"special_tokens": map[string]any{
				"[CLS]": map[string]any{"id": "[CLS]", "ids": []int{ids["[CLS]"]}, "tokens": []string{"[CLS]"}},
				"[SEP]": map[string]any{"id": "[SEP]", "ids": []int{ids["[SEP]"]}, "tokens": []string{"[SEP]"}},
			},
		},
		"decoder": map[string]any{"type": "WordPiece", "prefix": "##", "cleanup": true},
		"model": map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
			"max_input_chars_per_word": 100, "vocab": ids},
	}
}

// EncoderResult describes a written encoder directory.
type EncoderResult struct {
	// Dir is the model directory; ONNX its onnx/model.onnx.
	Dir, ONNX string
	// QuantizedONNX is its onnx/model_quantized.onnx when Spec.Quantized.
	QuantizedONNX string
	// Spec is the spec with its defaults filled in.
	Spec EncoderSpec
	// Vocab is the tokenizer's vocabulary, by id.
	Vocab []string
}

// WriteEncoder writes a sentence-transformers model directory with random
// weights: config.json, modules.json, 1_Pooling/config.json,
// sentence_bert_config.json, tokenizer.json, tokenizer_config.json and
// onnx/model.onnx (fp32; input_ids, attention_mask, token_type_ids →
// last_hidden_state), plus 2_Normalize when s.Normalize.
func WriteEncoder(dir string, s EncoderSpec) (*EncoderResult, error) {
	vocab := WordPieceVocab()
	if err := s.Validate(len(vocab)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "onnx"), 0o755); err != nil {
		return nil, err
	}
	modules := []map[string]any{
		{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
		{"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
	}
	if s.Normalize {
		modules = append(modules, map[string]any{"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
		if err := os.MkdirAll(filepath.Join(dir, "2_Normalize"), 0o755); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "1_Pooling"), 0o755); err != nil {
		return nil, err
	}
	files := []struct {
		name string
		v    any
	}{
		{"config.json", map[string]any{
			"_name_or_path": "dsmil-random/" + s.Name, "architectures": []string{"BertModel"}, "model_type": "bert",
			"hidden_act": "gelu", "hidden_size": s.Hidden, "intermediate_size": s.Intermediate,
			"num_hidden_layers": s.Layers, "num_attention_heads": s.Heads, "max_position_embeddings": s.MaxPositions,
			"type_vocab_size": s.TypeVocab, "vocab_size": s.Vocab, "layer_norm_eps": s.LayerNormEps,
			"pad_token_id": 0, "position_embedding_type": "absolute", "torch_dtype": "float32",
			"dsmil": map[string]any{"generator": "dsmil-mkmodel", "random_weights": true, "preset": s.Name, "seed": s.Seed},
		}},
		{"modules.json", modules},
		{"1_Pooling/config.json", map[string]any{
			"word_embedding_dimension": s.Hidden, "pooling_mode_cls_token": s.Pooling == PoolCLS,
			"pooling_mode_mean_tokens": s.Pooling == PoolMean, "pooling_mode_max_tokens": false,
			"pooling_mode_mean_sqrt_len_tokens": false, "pooling_mode_weightedmean_tokens": false,
			"pooling_mode_lasttoken": s.Pooling == PoolLastToken, "include_prompt": true,
		}},
		{"sentence_bert_config.json", map[string]any{"max_seq_length": s.MaxSeqLength, "do_lower_case": false}},
		{"tokenizer.json", wordPieceTokenizerJSON(vocab)},
		{"tokenizer_config.json", map[string]any{
			"tokenizer_class": "BertTokenizer", "do_lower_case": true, "clean_up_tokenization_spaces": true,
			"cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]", "unk_token": "[UNK]", "mask_token": "[MASK]",
			"model_max_length": s.MaxSeqLength, "strip_accents": nil, "tokenize_chinese_chars": true,
		}},
	}
	for _, f := range files {
		if err := writeJSON(filepath.Join(dir, f.name), f.v); err != nil {
			return nil, err
		}
	}
	r := &EncoderResult{Dir: dir, ONNX: filepath.Join(dir, "onnx", "model.onnx"), Spec: s, Vocab: vocab}
	if err := writeEncoderONNX(r.ONNX, &r.Spec, false); err != nil {
		return nil, fmt.Errorf("mkmodel: writing the ONNX encoder: %w", err)
	}
	if s.Quantized {
		r.QuantizedONNX = filepath.Join(dir, filepath.FromSlash(QuantizedEncoderFile))
		if err := writeEncoderONNX(r.QuantizedONNX, &r.Spec, true); err != nil {
			return nil, fmt.Errorf("mkmodel: writing the quantized ONNX encoder: %w", err)
		}
	}
	return r, nil
}

// encoderWeights are the encoder's deterministic weights, by Hugging Face
// parameter name.
type encoderWeights struct{ s *EncoderSpec }

func (w encoderWeights) linear(name string, out, in int) []float32 {
	return gen(w.s.Seed, name+".weight", out, in, 1/math.Sqrt(float64(in)))
}

func (w encoderWeights) bias(name string, n int) []float32 {
	return gen(w.s.Seed, name+".bias", 1, n, 0.1/math.Sqrt(3))
}

// layerNorm is a LayerNorm's weight (1 ± 0.1) and bias (± 0.1).
func (w encoderWeights) layerNorm(name string) (gamma, beta []float32) {
	gamma = gen(w.s.Seed, name+".weight", 1, w.s.Hidden, 0.1/math.Sqrt(3))
	for i := range gamma {
		gamma[i]++
	}
	return gamma, w.bias(name, w.s.Hidden)
}

func (w encoderWeights) table(name string, rows int) []float32 {
	return gen(w.s.Seed, name, rows, w.s.Hidden, 1)
}

func encLayer(l int, rest string) string { return "encoder.layer." + strconv.Itoa(l) + "." + rest }

// writeEncoderONNX writes the BERT graph with standard ONNX operators
// (opset 17): embeddings (word + position + token type, LayerNorm),
// attention with the mask as an additive bias, post-norm residuals, the
// exact (erf) GELU. quantized writes the linears and the embedding tables
// in dynamic int8 (dynQuantLinear, quantGather); the attention products,
// LayerNorms and GELU stay fp32, as quantize_dynamic leaves them.
func writeEncoderONNX(path string, s *EncoderSpec, quantized bool) error {
	g := &onnx.GraphProto{Name: proto.String("main_graph")}
	b := &graphBuilder{g: g, sink: &initSink{}, dq: map[string][3]string{}}
	w := encoderWeights{s}
	H, hd := s.Hidden, s.Hidden/s.Heads
	g.Input = append(g.Input,
		valueInfo(InputIDs, elemInt64, dimParam("batch_size"), dimParam("sequence_length")),
		valueInfo(AttentionMask, elemInt64, dimParam("batch_size"), dimParam("sequence_length")),
		valueInfo(TokenTypeIDs, elemInt64, dimParam("batch_size"), dimParam("sequence_length")))
	g.Output = append(g.Output, valueInfo(LastHiddenState, elemFloat, dimParam("batch_size"), dimParam("sequence_length"), dimValue(H)))

	fp := func(name string, dims []int64, v []float32) { b.initF32(name, dims, v) }
	lin := func(x, name string, out, in int) string {
		wt := transpose(w.linear(name, out, in), out, in)
		fp(name+".bias", []int64{int64(out)}, w.bias(name, out))
		if quantized {
			return b.add(b.dynQuantLinear(x, name, wt, in, out), name+".bias")
		}
		fp(name+".weight_t", []int64{int64(in), int64(out)}, wt)
		y := b.tmp(name + "/mm")
		b.node("MatMul", "", []string{x, name + ".weight_t"}, []string{y})
		return b.add(y, name+".bias")
	}
	// table adds an embedding table and looks ids up in it.
	table := func(name string, rows int, ids, out string) {
		dims, v := []int64{int64(rows), int64(H)}, w.table(name, rows)
		if quantized {
			b.quantGather(name, dims, v, ids, out)
			return
		}
		fp(name, dims, v)
		b.node("Gather", "", []string{name, ids}, []string{out}, attrI("axis", 0))
	}
	ln := func(x, name string) string {
		gamma, beta := w.layerNorm(name)
		fp(name+".weight", []int64{int64(H)}, gamma)
		fp(name+".bias", []int64{int64(H)}, beta)
		y := b.tmp(name + "/out")
		b.node("LayerNormalization", "", []string{x, name + ".weight", name + ".bias"}, []string{y},
			attrI("axis", -1), attrF("epsilon", float32(s.LayerNormEps)))
		return y
	}

	// Embeddings.
	b.initI64("const.zero", nil, 0)
	b.initI64("const.one", nil, 1)
	b.initI64("const.axes12", []int64{2}, 1, 2)
	table("embeddings.word_embeddings.weight", s.Vocab, InputIDs, "emb/word")
	b.node("Shape", "", []string{InputIDs}, []string{"ids/shape"})
	b.node("Gather", "", []string{"ids/shape", "const.one"}, []string{"ids/seq"}, attrI("axis", 0))
	b.node("Range", "", []string{"const.zero", "ids/seq", "const.one"}, []string{"emb/positions"})
	table("embeddings.position_embeddings.weight", s.MaxPositions, "emb/positions", "emb/pos")
	table("embeddings.token_type_embeddings.weight", s.TypeVocab, TokenTypeIDs, "emb/type")
	h := ln(b.add(b.add("emb/word", "emb/pos"), "emb/type"), "embeddings.LayerNorm")

	// The mask as an additive bias [B, 1, 1, S]: 0 where attended, the
	// float32 minimum where padded.
	b.node("Cast", "", []string{AttentionMask}, []string{"mask/f"}, attrI("to", int64(elemFloat)))
	b.node("Unsqueeze", "", []string{"mask/f", "const.axes12"}, []string{"mask/4d"})
	fp("const.onef", nil, []float32{1})
	fp("const.minf", nil, []float32{-math.MaxFloat32})
	b.node("Sub", "", []string{"const.onef", "mask/4d"}, []string{"mask/inv"})
	b.node("Mul", "", []string{"mask/inv", "const.minf"}, []string{"mask/bias"})

	b.initI64("const.heads_shape", []int64{4}, 0, 0, int64(s.Heads), int64(hd))
	b.initI64("const.hidden_shape", []int64{3}, 0, 0, int64(H))
	fp("const.scale", nil, []float32{float32(1 / math.Sqrt(float64(hd)))})
	fp("const.half", nil, []float32{0.5})
	fp("const.sqrt2", nil, []float32{float32(math.Sqrt2)})
	heads := func(x string, perm ...int64) string {
		r, t := b.tmp("heads/r"), b.tmp("heads/t")
		b.node("Reshape", "", []string{x, "const.heads_shape"}, []string{r})
		b.node("Transpose", "", []string{r}, []string{t}, attrInts("perm", perm...))
		return t
	}
	for l := 0; l < s.Layers; l++ {
		n := func(rest string) string { return encLayer(l, rest) }
		q := heads(lin(h, n("attention.self.query"), H, H), 0, 2, 1, 3)
		k := heads(lin(h, n("attention.self.key"), H, H), 0, 2, 3, 1)
		v := heads(lin(h, n("attention.self.value"), H, H), 0, 2, 1, 3)
		scores := b.tmp(n("scores"))
		b.node("MatMul", "", []string{q, k}, []string{scores})
		probs := b.tmp(n("probs"))
		b.node("Softmax", "", []string{b.add(b.mul(scores, "const.scale"), "mask/bias")}, []string{probs}, attrI("axis", -1))
		ctx, ctxT, ctxR := b.tmp(n("ctx")), b.tmp(n("ctx/t")), b.tmp(n("ctx/r"))
		b.node("MatMul", "", []string{probs, v}, []string{ctx})
		b.node("Transpose", "", []string{ctx}, []string{ctxT}, attrInts("perm", 0, 2, 1, 3))
		b.node("Reshape", "", []string{ctxT, "const.hidden_shape"}, []string{ctxR})
		h = ln(b.add(lin(ctxR, n("attention.output.dense"), H, H), h), n("attention.output.LayerNorm"))

		x := lin(h, n("intermediate.dense"), s.Intermediate, H)
		div, erf := b.tmp(n("gelu/div")), b.tmp(n("gelu/erf"))
		b.node("Div", "", []string{x, "const.sqrt2"}, []string{div})
		b.node("Erf", "", []string{div}, []string{erf})
		gelu := b.mul(b.mul(x, "const.half"), b.add(erf, "const.onef"))
		h = ln(b.add(lin(gelu, n("output.dense"), H, s.Intermediate), h), n("output.LayerNorm"))
		if b.err != nil {
			return b.err
		}
	}
	b.node("Identity", "", []string{h}, []string{LastHiddenState})
	if b.err != nil {
		return b.err
	}
	m := &onnx.ModelProto{
		IrVersion: proto.Int64(8), ProducerName: proto.String("dsmil-mkmodel"), ProducerVersion: proto.String("1"),
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph:       g,
		MetadataProps: []*onnx.StringStringEntryProto{
			{Key: proto.String("dsmil.random_weights"), Value: proto.String("true")},
			{Key: proto.String("dsmil.preset"), Value: proto.String(s.Name)},
		},
	}
	if quantized {
		m.MetadataProps = append(m.MetadataProps, &onnx.StringStringEntryProto{Key: proto.String("dsmil.quantization"),
			Value: proto.String("dynamic int8: DynamicQuantizeLinear + MatMulInteger, int8 weights per tensor (quantize_dynamic's QInt8)")})
	}
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("mkmodel: encoding %s: %w", path, err)
	}
	return os.WriteFile(path, data, 0o644)
}
