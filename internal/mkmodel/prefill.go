package mkmodel

import "github.com/dsmil/l7/internal/onnx"

const elemInt8 = int32(onnx.TensorProto_INT8)

// linearU8S8 emits x·Wᵀ for an out×in weight w in the prefill graph's
// formulation (Spec.PrefillGraph): the activations quantized per tensor to
// uint8 by DynamicQuantizeLinear (once per tensor, shared by the linears
// that read it), the weight quantized per output channel to int8
// (symmetric; from the main graph's dequantized weights when it is
// quantized), MatMulInteger, then the int32 product cast to float and
// scaled by x_scale × w_scale. ONNX Runtime fuses the pattern into
// com.microsoft MatMulIntegerToFloat, whose u8×s8 GEMM (MLAS QGEMM) runs
// AMX tile kernels on CPUs with AMX-INT8 (bench/linear measures it).
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
		w = quantize(w, out, in, bits, b.s.BlockSize).Dequantize()
	}
	qw := quantize(w, out, in, 8, in)
	wt := make([]byte, in*out) // [in, out], int8
	for r := 0; r < out; r++ {
		for k := 0; k < in; k++ {
			wt[k*out+r] = qw.Data[r*in+k] - 128
		}
	}
	if b.err == nil {
		b.err = b.sink.add(b.g, name+".weight_s8", elemInt8, []int64{int64(in), int64(out)}, wt)
	}
	b.initF32(name+".weight_scale", []int64{int64(out)}, qw.Scales)
	i32, f, s, y := b.tmp(name+"/i32"), b.tmp(name+"/f32"), b.tmp(name+"/scale"), b.tmp(name+"/out")
	b.node("MatMulInteger", "", []string{q[0], name + ".weight_s8", q[2]}, []string{i32})
	b.node("Cast", "", []string{i32}, []string{f}, attrI("to", int64(elemFloat)))
	b.node("Mul", "", []string{q[1], name + ".weight_scale"}, []string{s})
	b.node("Mul", "", []string{f, s}, []string{y})
	return y
}
