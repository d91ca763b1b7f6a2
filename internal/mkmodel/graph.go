package mkmodel

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dsmil/l7/internal/onnx"
	"github.com/dsmil/l7/internal/onnx/extdata"
	"github.com/dsmil/l7/internal/onnx/lastlogits"
	"github.com/dsmil/l7/internal/quant"
	"google.golang.org/protobuf/proto"
)

// ONNX element types (TensorProto.DataType).
const (
	elemFloat = int32(onnx.TensorProto_FLOAT)
	elemUint8 = int32(onnx.TensorProto_UINT8)
	elemInt32 = int32(onnx.TensorProto_INT32)
	elemInt64 = int32(onnx.TensorProto_INT64)
)

const msDomain = "com.microsoft"

// Graph I/O names, as Hugging Face Optimum exports them.
const (
	InputIDs      = "input_ids"
	AttentionMask = "attention_mask"
	PositionIDs   = "position_ids"
	Logits        = "logits"
)

// PastKey and friends name the KV-cache inputs and outputs of layer l.
func PastKey(l int) string      { return "past_key_values." + strconv.Itoa(l) + ".key" }
func PastValue(l int) string    { return "past_key_values." + strconv.Itoa(l) + ".value" }
func PresentKey(l int) string   { return "present." + strconv.Itoa(l) + ".key" }
func PresentValue(l int) string { return "present." + strconv.Itoa(l) + ".value" }

// initSink stores initializers: inline in the model proto, or, from 1 KiB,
// in the external data file when there is one.
type initSink struct {
	data *extdata.Writer // nil: everything inline
}

func (s *initSink) add(g *onnx.GraphProto, name string, dtype int32, dims []int64, raw []byte) error {
	t := &onnx.TensorProto{Name: proto.String(name), DataType: proto.Int32(dtype), Dims: dims}
	g.Initializer = append(g.Initializer, t)
	if s.data == nil || len(raw) < 1024 {
		t.RawData = raw
		return nil
	}
	return s.data.Write(t, raw)
}

func (s *initSink) close() error {
	if s.data == nil {
		return nil
	}
	return s.data.Close()
}

// graphBuilder accumulates nodes and initializers.
type graphBuilder struct {
	s    *Spec
	g    *onnx.GraphProto
	sink *initSink
	n    int // node counter, for unique names
	err  error
	// prefill: the layers' linears are int8 u8×s8 (prefill.go).
	prefill bool
	dq      map[string][3]string
}

func (b *graphBuilder) node(op, domain string, inputs []string, outputs []string, attrs ...*onnx.AttributeProto) {
	b.n++
	n := &onnx.NodeProto{Name: proto.String(fmt.Sprintf("%s_%d", op, b.n)), OpType: proto.String(op),
		Input: inputs, Output: outputs, Attribute: attrs}
	if domain != "" {
		n.Domain = proto.String(domain)
	}
	b.g.Node = append(b.g.Node, n)
}

// tmp returns a fresh intermediate value name.
func (b *graphBuilder) tmp(prefix string) string {
	b.n++
	return fmt.Sprintf("%s_%d", prefix, b.n)
}

func (b *graphBuilder) initF32(name string, dims []int64, v []float32) {
	if b.err != nil {
		return
	}
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	b.err = b.sink.add(b.g, name, elemFloat, dims, raw)
}

func (b *graphBuilder) initI64(name string, dims []int64, v ...int64) {
	raw := make([]byte, 8*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint64(raw[8*i:], uint64(x))
	}
	b.g.Initializer = append(b.g.Initializer, &onnx.TensorProto{Name: proto.String(name),
		DataType: proto.Int32(elemInt64), Dims: dims, RawData: raw})
}

func attrI(name string, v int64) *onnx.AttributeProto {
	t := onnx.AttributeProto_INT
	return &onnx.AttributeProto{Name: proto.String(name), Type: &t, I: proto.Int64(v)}
}

func attrF(name string, v float32) *onnx.AttributeProto {
	t := onnx.AttributeProto_FLOAT
	return &onnx.AttributeProto{Name: proto.String(name), Type: &t, F: proto.Float32(v)}
}

func attrInts(name string, v ...int64) *onnx.AttributeProto {
	t := onnx.AttributeProto_INTS
	return &onnx.AttributeProto{Name: proto.String(name), Type: &t, Ints: v}
}

// linear emits x·Wᵀ for an out×in weight w (PyTorch layout): MatMul with
// the transposed fp32 weight, or MatMulNBits with the quantized one.
func (b *graphBuilder) linear(x, name string, w []float32, out, in int) string {
	if b.prefill && name != "lm_head" {
		return b.linearU8S8(x, name, w, out, in)
	}
	y := b.tmp(name + "/out")
	if bits := b.s.DType.Bits(); bits > 0 {
		q := quant.Quantize(w, out, in, bits, b.s.BlockSize)
		blob := int64(q.BlockSize * bits / 8)
		if b.err == nil {
			b.err = b.sink.add(b.g, name+".qweight", elemUint8, []int64{int64(out), int64(q.Blocks), blob}, q.Data)
		}
		b.initF32(name+".scales", []int64{int64(out), int64(q.Blocks)}, q.Scales)
		b.node("MatMulNBits", msDomain, []string{x, name + ".qweight", name + ".scales"}, []string{y},
			attrI("K", int64(in)), attrI("N", int64(out)), attrI("bits", int64(bits)),
			attrI("block_size", int64(q.BlockSize)), attrI("accuracy_level", int64(b.s.accuracyLevel())))
		return y
	}
	b.initF32(name+".weight_t", []int64{int64(in), int64(out)}, transpose(w, out, in))
	b.node("MatMul", "", []string{x, name + ".weight_t"}, []string{y})
	return y
}

func (b *graphBuilder) rmsNorm(x, name string, w []float32) string {
	b.initF32(name, []int64{int64(len(w))}, w)
	y := b.tmp(name + "/out")
	b.node("SimplifiedLayerNormalization", "", []string{x, name}, []string{y},
		attrI("axis", -1), attrF("epsilon", float32(b.s.RMSEps)), attrI("stash_type", 1))
	return y
}

func (b *graphBuilder) add(x, y string) string {
	z := b.tmp("add")
	b.node("Add", "", []string{x, y}, []string{z})
	return z
}

func (b *graphBuilder) mul(x, y string) string {
	z := b.tmp("mul")
	b.node("Mul", "", []string{x, y}, []string{z})
	return z
}

func dimParam(p string) *onnx.TensorShapeProto_Dimension {
	return &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: p}}
}

func dimValue(v int) *onnx.TensorShapeProto_Dimension {
	return &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(v)}}
}

func valueInfo(name string, elem int32, dims ...*onnx.TensorShapeProto_Dimension) *onnx.ValueInfoProto {
	return &onnx.ValueInfoProto{Name: proto.String(name), Type: &onnx.TypeProto{
		Value: &onnx.TypeProto_TensorType{TensorType: &onnx.TypeProto_Tensor{
			ElemType: proto.Int32(elem), Shape: &onnx.TensorShapeProto{Dim: dims}}}}}
}

// writeONNX writes the model graph to dir/s.ONNXFile(), with external
// data next to it when the weights are big.
func writeONNX(dir string, s *Spec) (files []string, err error) {
	return writeGraph(dir, s, s.ONNXFile(), false)
}

// writeGraph writes the model graph to dir/file; prefill: with the
// layers' linears in int8 u8×s8 (Spec.PrefillGraph).
func writeGraph(dir string, s *Spec, file string, prefill bool) (files []string, err error) {
	path := filepath.Join(dir, file)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	sink := &initSink{}
	files = []string{path}
	if s.ExternalDataThreshold < 0 || s.estimateBytes() > s.ExternalDataThreshold {
		name := filepath.Base(path) + "_data"
		if sink.data, err = extdata.Create(filepath.Join(filepath.Dir(path), name), name); err != nil {
			return nil, err
		}
		files = append(files, sink.data.Name())
	}
	defer func() {
		if cerr := sink.close(); err == nil {
			err = cerr
		}
	}()

	g := &onnx.GraphProto{Name: proto.String("main_graph")}
	b := &graphBuilder{s: s, g: g, sink: sink, prefill: prefill, dq: map[string][3]string{}}
	w := weights{s}
	hq, hkv := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim

	g.Input = append(g.Input,
		valueInfo(InputIDs, elemInt64, dimParam("batch_size"), dimParam("sequence_length")),
		valueInfo(AttentionMask, elemInt64, dimParam("batch_size"), dimParam("total_sequence_length")),
		valueInfo(PositionIDs, elemInt64, dimParam("batch_size"), dimParam("sequence_length")))
	g.Output = append(g.Output, valueInfo(Logits, elemFloat, dimParam("batch_size"), dimParam("sequence_length"), dimValue(s.Vocab)))
	for l := 0; l < s.Layers; l++ {
		g.Input = append(g.Input,
			valueInfo(PastKey(l), elemFloat, dimParam("batch_size"), dimValue(s.KVHeads), dimParam("past_sequence_length"), dimValue(s.HeadDim)),
			valueInfo(PastValue(l), elemFloat, dimParam("batch_size"), dimValue(s.KVHeads), dimParam("past_sequence_length"), dimValue(s.HeadDim)))
		g.Output = append(g.Output,
			valueInfo(PresentKey(l), elemFloat, dimParam("batch_size"), dimValue(s.KVHeads), dimParam("total_sequence_length"), dimValue(s.HeadDim)),
			valueInfo(PresentValue(l), elemFloat, dimParam("batch_size"), dimValue(s.KVHeads), dimParam("total_sequence_length"), dimValue(s.HeadDim)))
	}

	// GroupQueryAttention wants seqlens_k = total length - 1 (int32 [B])
	// and total_sequence_length (int32 scalar): both from attention_mask.
	b.initI64("const.axes1", []int64{1}, 1)
	b.initI64("const.one", nil, 1)
	b.node("ReduceSum", "", []string{AttentionMask, "const.axes1"}, []string{"mask/sum"}, attrI("keepdims", 0))
	b.node("Sub", "", []string{"mask/sum", "const.one"}, []string{"mask/sum_m1"})
	b.node("Cast", "", []string{"mask/sum_m1"}, []string{"seqlens_k"}, attrI("to", int64(elemInt32)))
	b.node("Shape", "", []string{AttentionMask}, []string{"mask/shape"})
	b.node("Gather", "", []string{"mask/shape", "const.one"}, []string{"mask/total"}, attrI("axis", 0))
	b.node("Cast", "", []string{"mask/total"}, []string{"total_sequence_length"}, attrI("to", int64(elemInt32)))

	cos, sin := ropeCache(s)
	b.initF32("rope.cos_cache", []int64{int64(s.MaxPositions), int64(s.HeadDim / 2)}, cos)
	b.initF32("rope.sin_cache", []int64{int64(s.MaxPositions), int64(s.HeadDim / 2)}, sin)

	embed := w.embed()
	b.initF32("model.embed_tokens.weight", []int64{int64(s.Vocab), int64(s.Hidden)}, embed)
	h := "embed/out"
	b.node("Gather", "", []string{"model.embed_tokens.weight", InputIDs}, []string{h}, attrI("axis", 0))
	if !s.TieEmbeddings {
		embed = nil // not needed any more: free it before the layers
	}

	for l := 0; l < s.Layers; l++ {
		n := func(rest string) string { return layerName(l, rest) }
		x := b.rmsNorm(h, n("input_layernorm.weight"), w.norm(n("input_layernorm.weight")))
		q := b.linear(x, n("self_attn.q_proj"), w.linear(n("self_attn.q_proj.weight"), hq, s.Hidden), hq, s.Hidden)
		k := b.linear(x, n("self_attn.k_proj"), w.linear(n("self_attn.k_proj.weight"), hkv, s.Hidden), hkv, s.Hidden)
		v := b.linear(x, n("self_attn.v_proj"), w.linear(n("self_attn.v_proj.weight"), hkv, s.Hidden), hkv, s.Hidden)
		if s.Arch == ArchQwen2 {
			for _, p := range []struct {
				val  *string
				name string
				size int
			}{{&q, "q_proj", hq}, {&k, "k_proj", hkv}, {&v, "v_proj", hkv}} {
				bn := n("self_attn." + p.name + ".bias")
				b.initF32(bn, []int64{int64(p.size)}, w.bias(bn, p.size))
				*p.val = b.add(*p.val, bn)
			}
		}
		qr, kr := b.tmp(n("q_rot")), b.tmp(n("k_rot"))
		b.node("RotaryEmbedding", msDomain, []string{q, PositionIDs, "rope.cos_cache", "rope.sin_cache"}, []string{qr},
			attrI("interleaved", 0), attrI("num_heads", int64(s.Heads)))
		b.node("RotaryEmbedding", msDomain, []string{k, PositionIDs, "rope.cos_cache", "rope.sin_cache"}, []string{kr},
			attrI("interleaved", 0), attrI("num_heads", int64(s.KVHeads)))
		attn := b.tmp(n("attn"))
		b.node("GroupQueryAttention", msDomain,
			[]string{qr, kr, v, PastKey(l), PastValue(l), "seqlens_k", "total_sequence_length"},
			[]string{attn, PresentKey(l), PresentValue(l)},
			attrI("num_heads", int64(s.Heads)), attrI("kv_num_heads", int64(s.KVHeads)))
		o := b.linear(attn, n("self_attn.o_proj"), w.linear(n("self_attn.o_proj.weight"), s.Hidden, hq), s.Hidden, hq)
		h = b.add(h, o)

		x = b.rmsNorm(h, n("post_attention_layernorm.weight"), w.norm(n("post_attention_layernorm.weight")))
		gate := b.linear(x, n("mlp.gate_proj"), w.linear(n("mlp.gate_proj.weight"), s.Intermediate, s.Hidden), s.Intermediate, s.Hidden)
		up := b.linear(x, n("mlp.up_proj"), w.linear(n("mlp.up_proj.weight"), s.Intermediate, s.Hidden), s.Intermediate, s.Hidden)
		sig := b.tmp(n("mlp/sigmoid"))
		b.node("Sigmoid", "", []string{gate}, []string{sig})
		act := b.mul(b.mul(gate, sig), up)
		down := b.linear(act, n("mlp.down_proj"), w.linear(n("mlp.down_proj.weight"), s.Hidden, s.Intermediate), s.Hidden, s.Intermediate)
		h = b.add(h, down)
		if b.err != nil {
			return nil, b.err
		}
	}

	x := b.rmsNorm(h, "model.norm.weight", w.norm("model.norm.weight"))
	sliced := false // switchHead sliced the last position
	switch {
	case s.TieEmbeddings && s.DType == FP32:
		// Share the table: MatMul with its transpose (folded by ORT at load).
		b.node("Transpose", "", []string{"model.embed_tokens.weight"}, []string{"lm_head.weight_t"}, attrInts("perm", 1, 0))
		b.node("MatMul", "", []string{x, "lm_head.weight_t"}, []string{Logits})
	default:
		head := embed
		if !s.TieEmbeddings {
			head = w.lmHead()
		}
		var y string
		if prefill && !s.AllLogits && s.DType.Bits() > 0 {
			// The last position only, and the head's form by rows.
			y = b.switchHead(x, head, s.Vocab, s.Hidden)
			sliced = true
		} else {
			y = b.linear(x, "lm_head", head, s.Vocab, s.Hidden)
		}
		b.node("Identity", "", []string{y}, []string{Logits})
	}
	if b.err != nil {
		return nil, b.err
	}
	if sliced {
		g.Output[0].GetType().GetTensorType().GetShape().GetDim()[1].Value = &onnx.TensorShapeProto_Dimension_DimValue{DimValue: 1}
	} else if !s.AllLogits {
		if _, err := lastlogits.Graph(g, Logits, 17); err != nil {
			return nil, err
		}
	}

	m := &onnx.ModelProto{
		IrVersion:       proto.Int64(8),
		ProducerName:    proto.String("dsmil-mkmodel"),
		ProducerVersion: proto.String("1"),
		OpsetImport: []*onnx.OperatorSetIdProto{
			{Domain: proto.String(""), Version: proto.Int64(17)},
			{Domain: proto.String(msDomain), Version: proto.Int64(1)},
		},
		Graph: g,
		MetadataProps: []*onnx.StringStringEntryProto{
			{Key: proto.String("dsmil.random_weights"), Value: proto.String("true")},
			{Key: proto.String("dsmil.preset"), Value: proto.String(s.Name)},
		},
	}
	data, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("mkmodel: encoding %s: %w", path, err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return nil, err
	}
	return files, nil
}

// estimateBytes is the initializers' total size.
func (s *Spec) estimateBytes() int64 {
	h, v := int64(s.Hidden), int64(s.Vocab)
	linear := s.Params() - v*h // embedding stays fp32
	if s.TieEmbeddings && s.DType != FP32 {
		linear += v * h // a quantized copy for the LM head
	}
	var bytes int64
	if bits := s.DType.Bits(); bits > 0 {
		bytes = linear*int64(bits)/8 + linear/int64(s.BlockSize)*4
	} else {
		bytes = linear * 4
	}
	return bytes + v*h*4 + 2*int64(s.MaxPositions)*int64(s.HeadDim/2)*4
}
