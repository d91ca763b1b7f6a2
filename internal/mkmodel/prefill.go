package mkmodel

import (
	"math"

	"github.com/dsmil/l7/internal/onnx"
	"github.com/dsmil/l7/internal/onnx/prefillgraph"
	"github.com/dsmil/l7/internal/quant"
	"google.golang.org/protobuf/proto"
)

const elemInt8 = int32(onnx.TensorProto_INT8)

// linearU8S8 emits x·Wᵀ for an out×in weight w in the prefill graph's
// formulation (Spec.PrefillGraph): the activations quantized per tensor to
// uint8 by DynamicQuantizeLinear (once per tensor, shared by the linears
// that read it), the weight quantized per output channel to int8
// (symmetric; from the main graph's dequantized weights when it is
// quantized), MatMulInteger, then the int32 product cast to float and
// scaled by x_scale × w_scale. ONNX Runtime fuses the pattern into
// com.microsoft MatMulIntegerToFloat (DynamicQuantizeMatMul when the
// quantized activations have one reader), whose u8×s8 GEMM (MLAS QGEMM)
// runs AMX tile kernels on CPUs with AMX-INT8 (bench/linear measures it).
func (b *graphBuilder) linearU8S8(x, name string, w []float32, out, in int) string {
	q, ok := b.dq[x]
	if !ok {
		q = [3]string{b.tmp(x + "/q"), b.tmp(x + "/scale"), b.tmp(x + "/zero_point")}
		b.node("DynamicQuantizeLinear", "", []string{x}, q[:])
		b.dq[x] = q
	}
	// The decode graph's weights, so that both graphs are the same model:
	// an int4 or int8 model's blocks dequantized, then requantized per
	// output channel (one block per row), stored uint8 around 128.
	if bits := b.s.DType.Bits(); bits > 0 {
		w = quant.Quantize(w, out, in, bits, b.s.BlockSize).Dequantize()
	}
	qw := quant.ToS8(w, out, in) // [in, out], int8
	if b.err == nil {
		b.err = b.sink.add(b.g, name+".weight_s8", elemInt8, []int64{int64(in), int64(out)}, qw.Data)
	}
	b.initF32(name+".weight_scale", []int64{int64(out)}, qw.Scales)
	i32, f, s, y := b.tmp(name+"/i32"), b.tmp(name+"/f32"), b.tmp(name+"/scale"), b.tmp(name+"/out")
	b.node("MatMulInteger", "", []string{q[0], name + ".weight_s8", q[2]}, []string{i32})
	b.node("Cast", "", []string{i32}, []string{f}, attrI("to", int64(elemFloat)))
	b.node("Mul", "", []string{q[1], name + ".weight_scale"}, []string{s})
	b.node("Mul", "", []string{f, s}, []string{y})
	return y
}

// PrefillHeadRows is the number of rows from which the prefill graph's LM
// head multiplies in int8 (see switchHead): a batch step of that many
// rows or more. A prefill chunk (one row, its last position) keeps the
// main graph's head.
const PrefillHeadRows = prefillgraph.HeadRows

// switchHead writes the prefill graph's LM head (logits of the last
// position of each row) for hidden state x and the out×in head weight w:
// an If on the number of rows the head multiplies (batch × positions
// after slicing the last position). From PrefillHeadRows rows, the u8×s8
// form of the layers (linearU8S8: AMX on CPUs with AMX-INT8); under it,
// the main graph's head (MatMulNBits). For Qwen2.5's head (151 936 × 896)
// MatMulNBits is the faster at one row — the product is bound by reading
// the weights, and int4 reads half the bytes — and the slower from about
// 5–8 rows, where its cost grows with the rows and the u8×s8 GEMM's
// hardly does (bench/linear -layers 0 -head 151936; docs/performance.md).
// A prefill chunk is one row; a batch step of the prefill graph has
// Options.PrefillMin rows or more. Both heads hold the same weights (the
// int8 one requantized from the int4 one), so the logits agree within
// int8 quantization.
func (b *graphBuilder) switchHead(x string, w []float32, out, in int) string {
	b.initI64("lm_head.slice_starts", []int64{1}, -1)
	b.initI64("lm_head.slice_ends", []int64{1}, math.MaxInt64)
	b.initI64("lm_head.slice_axes", []int64{1}, 1)
	b.initI64("lm_head.int8_after", nil, PrefillHeadRows-1)
	last := b.tmp("lm_head/last")
	b.node("Slice", "", []string{x, "lm_head.slice_starts", "lm_head.slice_ends", "lm_head.slice_axes"}, []string{last})
	shape, rows, cond := b.tmp("lm_head/shape"), b.tmp("lm_head/rows"), b.tmp("lm_head/int8")
	b.node("Shape", "", []string{last}, []string{shape}, attrI("start", 0), attrI("end", 2))
	b.node("ReduceProd", "", []string{shape}, []string{rows}, attrI("keepdims", 0))
	b.node("Greater", "", []string{rows, "lm_head.int8_after"}, []string{cond})

	// Each branch is built in its own graph, its weights its own
	// initializers.
	branch := func(name string, build func() string) *onnx.GraphProto {
		outer := b.g
		b.g = &onnx.GraphProto{Name: proto.String(name)}
		y := build()
		g := b.g
		g.Output = []*onnx.ValueInfoProto{valueInfo(y, elemFloat, dimParam("batch_size"), dimValue(1), dimValue(out))}
		b.g = outer
		return g
	}
	then := branch("lm_head_int8", func() string { return b.linearU8S8(last, "lm_head", w, out, in) })
	els := branch("lm_head_nbits", func() string { return b.linear(last, "lm_head", w, out, in) }) // linear: never u8×s8 for lm_head
	y := b.tmp("lm_head/out")
	gt := onnx.AttributeProto_GRAPH
	b.node("If", "", []string{cond}, []string{y},
		&onnx.AttributeProto{Name: proto.String("then_branch"), Type: &gt, G: then},
		&onnx.AttributeProto{Name: proto.String("else_branch"), Type: &gt, G: els})
	return y
}
