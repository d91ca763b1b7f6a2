package mkmodel

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Arch is a decoder architecture.
type Arch string

const (
	// ArchLlama is Llama / TinyLlama / Mistral: no attention biases.
	ArchLlama Arch = "llama"
	// ArchQwen2 is Qwen2 / Qwen2.5: biases on the q, k and v projections.
	ArchQwen2 Arch = "qwen2"
)

// DType is how the linear layers' weights are stored.
type DType string

const (
	// FP32 stores every weight as float32 and uses MatMul.
	FP32 DType = "fp32"
	// Int8 stores linear weights as 8-bit MatMulNBits blocks.
	Int8 DType = "int8"
	// Int4 stores linear weights as 4-bit MatMulNBits blocks.
	Int4 DType = "int4"
)

// Bits is the weight width of a quantized dtype (0 for FP32).
func (d DType) Bits() int {
	switch d {
	case Int8:
		return 8
	case Int4:
		return 4
	}
	return 0
}

// ErrSpec reports an invalid Spec.
var ErrSpec = errors.New("mkmodel: invalid spec")

// Spec is the shape and storage of a generated model. The zero value of an
// optional field takes the default Validate fills in.
type Spec struct {
	// Name names the model in config.json's _name_or_path; default the
	// preset name or "dsmil-random".
	Name string

	// Arch is the architecture: ArchLlama or ArchQwen2. Default ArchQwen2.
	Arch Arch

	// Layers is num_hidden_layers.
	Layers int

	// Hidden is hidden_size.
	Hidden int

	// Heads is num_attention_heads.
	Heads int

	// KVHeads is num_key_value_heads; it divides Heads. Default Heads.
	KVHeads int

	// HeadDim is head_dim. Default Hidden/Heads.
	HeadDim int

	// Intermediate is the MLP's intermediate_size.
	Intermediate int

	// Vocab is vocab_size; 0 means the generated tokenizer's size. It must
	// be at least the tokenizer's size.
	Vocab int

	// MaxPositions is max_position_embeddings (the RoPE cache length).
	// Default 2048.
	MaxPositions int

	// RopeTheta is rope_theta. Default 10000.
	RopeTheta float64

	// RMSEps is rms_norm_eps. Default 1e-6.
	RMSEps float64

	// TieEmbeddings shares the embedding table with the LM head.
	TieEmbeddings bool

	// DType is the linear layers' weight storage. Default FP32.
	DType DType

	// BlockSize is the MatMulNBits block size along K (16, 32, 64, 128 or
	// 256) for Int8 and Int4. Default 32.
	BlockSize int

	// AccuracyLevel is MatMulNBits' accuracy_level: 0 computes in fp32
	// from dequantized weights, 4 quantizes activations to int8 (fast;
	// int8 weights at level 0 are pathologically slow in ORT 1.30).
	// Default 4; set NoAccuracyLevel for 0.
	AccuracyLevel int

	// NoAccuracyLevel forces AccuracyLevel 0 (the zero value means 4).
	NoAccuracyLevel bool

	// Seed selects the pseudo-random weights. Equal specs with equal seeds
	// give byte-identical files.
	Seed uint64

	// ExternalDataThreshold is the total initializer size in bytes above
	// which weights go to an external .onnx_data file (protobuf caps a
	// model file at 2 GiB). Default 1.5 GiB; -1 always writes external data.
	ExternalDataThreshold int64

	// AllLogits writes the LM head for every position fed, as Optimum's
	// exports do. By default the graph computes the logits of each row's
	// last position only (logits [batch, 1, vocab]; package
	// internal/onnx/lastlogits), which is all a generator reads.
	AllLogits bool

	// PrefillGraph also writes PrefillFile(): the same model with the
	// layers' linear weights in int8 (per output channel, quantized from
	// the same float weights) multiplied through ONNX Runtime's u8×s8 GEMM
	// (DynamicQuantizeLinear + MatMulInteger, fused by ORT into
	// MatMulIntegerToFloat; AMX kernels where the CPU has AMX-INT8), for
	// prefill chunks (llm-amx's prefill_graph setting). The LM head and
	// the embedding are the main graph's.
	PrefillGraph bool
}

// presets are the named shapes; Vocab 0 means the tokenizer's size.
var presets = map[string]Spec{
	// tiny is for tests: small enough that the reference forward pass and
	// ORT run in milliseconds, with GQA (2 query heads per KV head).
	"tiny": {Arch: ArchQwen2, Layers: 2, Hidden: 64, Heads: 4, KVHeads: 2, HeadDim: 16,
		Intermediate: 128, MaxPositions: 512, RopeTheta: 10000, RMSEps: 1e-6, TieEmbeddings: true},
	"qwen2.5-0.5b": {Arch: ArchQwen2, Layers: 24, Hidden: 896, Heads: 14, KVHeads: 2, HeadDim: 64,
		Intermediate: 4864, Vocab: 151936, MaxPositions: 32768, RopeTheta: 1e6, RMSEps: 1e-6, TieEmbeddings: true},
	"tinyllama-1.1b": {Arch: ArchLlama, Layers: 22, Hidden: 2048, Heads: 32, KVHeads: 4, HeadDim: 64,
		Intermediate: 5632, Vocab: 32000, MaxPositions: 2048, RopeTheta: 10000, RMSEps: 1e-5},
	"llama-7b": {Arch: ArchLlama, Layers: 32, Hidden: 4096, Heads: 32, KVHeads: 32, HeadDim: 128,
		Intermediate: 11008, Vocab: 32000, MaxPositions: 4096, RopeTheta: 10000, RMSEps: 1e-5},
}

// Preset returns the named shape (see PresetNames) with Name set.
func Preset(name string) (Spec, error) {
	s, ok := presets[name]
	if !ok {
		return Spec{}, fmt.Errorf("%w: unknown preset %q (have %s)", ErrSpec, name, strings.Join(PresetNames(), ", "))
	}
	s.Name = name
	return s, nil
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	var names []string
	for n := range presets {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// accuracyLevel is the MatMulNBits accuracy_level attribute.
func (s *Spec) accuracyLevel() int {
	if s.NoAccuracyLevel {
		return 0
	}
	return s.AccuracyLevel
}

// Validate fills in defaults and checks the shape; vocab is the
// tokenizer's size.
func (s *Spec) Validate(vocab int) error {
	if s.Name == "" {
		s.Name = "dsmil-random"
	}
	if s.Arch == "" {
		s.Arch = ArchQwen2
	}
	if s.DType == "" {
		s.DType = FP32
	}
	if s.KVHeads == 0 {
		s.KVHeads = s.Heads
	}
	if s.Heads > 0 && s.HeadDim == 0 {
		s.HeadDim = s.Hidden / s.Heads
	}
	if s.Vocab == 0 {
		s.Vocab = vocab
	}
	if s.MaxPositions == 0 {
		s.MaxPositions = 2048
	}
	if s.RopeTheta == 0 {
		s.RopeTheta = 10000
	}
	if s.RMSEps == 0 {
		s.RMSEps = 1e-6
	}
	if s.BlockSize == 0 {
		s.BlockSize = 32
	}
	if s.AccuracyLevel == 0 && !s.NoAccuracyLevel {
		s.AccuracyLevel = 4
	}
	if s.ExternalDataThreshold == 0 {
		s.ExternalDataThreshold = 3 << 29 // 1.5 GiB
	}
	var bad []string
	check := func(ok bool, msg string, args ...any) {
		if !ok {
			bad = append(bad, fmt.Sprintf(msg, args...))
		}
	}
	check(s.Arch == ArchLlama || s.Arch == ArchQwen2, "arch %q is not llama or qwen2", s.Arch)
	check(s.DType == FP32 || s.DType == Int8 || s.DType == Int4, "dtype %q is not fp32, int8 or int4", s.DType)
	check(s.Layers > 0, "layers must be > 0")
	check(s.Hidden > 0, "hidden must be > 0")
	check(s.Heads > 0, "heads must be > 0")
	check(s.KVHeads > 0 && s.Heads%s.KVHeads == 0, "kv heads (%d) must divide heads (%d)", s.KVHeads, s.Heads)
	check(s.HeadDim > 0 && s.HeadDim%2 == 0, "head dim (%d) must be even and > 0", s.HeadDim)
	check(s.Intermediate > 0, "intermediate must be > 0")
	check(s.Vocab >= vocab, "vocab (%d) is smaller than the tokenizer (%d tokens)", s.Vocab, vocab)
	check(s.MaxPositions > 0, "max positions must be > 0")
	switch s.BlockSize {
	case 16, 32, 64, 128, 256:
	default:
		check(false, "block size %d is not 16, 32, 64, 128 or 256", s.BlockSize)
	}
	check(s.accuracyLevel() >= 0 && s.accuracyLevel() <= 4, "accuracy level %d is not 0-4", s.accuracyLevel())
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s", ErrSpec, strings.Join(bad, "; "))
	}
	return nil
}

// Params is the number of weights of the model.
func (s *Spec) Params() int64 {
	h, q, kv, i := int64(s.Hidden), int64(s.Heads*s.HeadDim), int64(s.KVHeads*s.HeadDim), int64(s.Intermediate)
	perLayer := 2*h + h*q + 2*h*kv + q*h + 3*h*i
	if s.Arch == ArchQwen2 {
		perLayer += q + 2*kv
	}
	n := int64(s.Layers)*perLayer + int64(s.Vocab)*h + h
	if !s.TieEmbeddings {
		n += int64(s.Vocab) * h
	}
	return n
}

// KVBytesPerToken is the KV cache size of one token at float32:
// layers × kv_heads × head_dim × 2 (key and value) × 4 bytes.
func (s *Spec) KVBytesPerToken() int64 {
	return int64(s.Layers) * int64(s.KVHeads) * int64(s.HeadDim) * 2 * 4
}

// PrefillFile is the prefill graph's file (see PrefillGraph): ONNXFile
// with "_prefill" before ".onnx".
func (s *Spec) PrefillFile() string {
	return strings.TrimSuffix(s.ONNXFile(), ".onnx") + "_prefill.onnx"
}

// ONNXFile is the model file name, relative to the model directory, for
// the spec's dtype: onnx/model.onnx (fp32), onnx/model_int8.onnx,
// onnx/model_q4.onnx (transformers.js names).
func (s *Spec) ONNXFile() string {
	switch s.DType {
	case Int8:
		return "onnx/model_int8.onnx"
	case Int4:
		return "onnx/model_q4.onnx"
	}
	return "onnx/model.onnx"
}
