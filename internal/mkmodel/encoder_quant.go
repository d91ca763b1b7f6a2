package mkmodel

import (
	"math"

	"github.com/dsmil/l7/internal/onnx"
	"google.golang.org/protobuf/proto"
)

// QuantizedEncoderFile is where a sentence-transformers repository keeps
// its dynamically quantized encoder, relative to the model directory: the
// file Optimum's `optimum-cli onnxruntime quantize --avx512_vnni` and
// transformers.js's conversion script write, and transformers.js loads
// for dtype "q8".
const QuantizedEncoderFile = "onnx/model_quantized.onnx"

// symmetricInt8 quantizes v per tensor to int8, symmetric around 0
// (ONNX Runtime's QuantType.QInt8 weights: zero point 0, scale
// max|v|/127).
func symmetricInt8(v []float32) (q []byte, scale float32) {
	var amax float64
	for _, x := range v {
		amax = max(amax, math.Abs(float64(x)))
	}
	scale = float32(amax / 127)
	q = make([]byte, len(v))
	if scale == 0 {
		return q, 1
	}
	for i, x := range v {
		r := math.Round(float64(x) / float64(scale))
		q[i] = byte(int8(max(-127, min(127, r))))
	}
	return q, scale
}

// int8Init adds an int8 initializer and its per-tensor scale and zero
// point (0), named name, name+"_scale" and name+"_zero_point".
func (b *graphBuilder) int8Init(name string, dims []int64, v []float32) {
	q, scale := symmetricInt8(v)
	if b.err == nil {
		b.err = b.sink.add(b.g, name, elemInt8, dims, q)
	}
	b.initF32(name+"_scale", nil, []float32{scale})
	b.g.Initializer = append(b.g.Initializer, &onnx.TensorProto{Name: proto.String(name + "_zero_point"),
		DataType: proto.Int32(elemInt8), RawData: []byte{0}})
}

// dynQuantLinear emits x·W for an in×out weight wt (already transposed) in
// the form ONNX Runtime's dynamic quantization (quantize_dynamic, which
// Optimum's --avx512_vnni calls) writes: x quantized per tensor to uint8
// by DynamicQuantizeLinear (once per tensor, shared by every linear that
// reads it), the weight per tensor to int8 with an explicit zero point,
// MatMulInteger, the int32 product cast to float and scaled by x_scale ×
// w_scale. ONNX Runtime fuses it into MatMulIntegerToFloat, whose u8×s8
// GEMM runs AMX tile kernels on CPUs with AMX-INT8.
func (b *graphBuilder) dynQuantLinear(x, name string, wt []float32, in, out int) string {
	q, ok := b.dq[x]
	if !ok {
		q = [3]string{b.tmp(x + "/quantized"), b.tmp(x + "/scale"), b.tmp(x + "/zero_point")}
		b.node("DynamicQuantizeLinear", "", []string{x}, q[:])
		b.dq[x] = q
	}
	w := name + ".weight_quantized"
	b.int8Init(w, []int64{int64(in), int64(out)}, wt)
	i32, f, s, y := b.tmp(name+"/MatMulInteger"), b.tmp(name+"/Cast"), b.tmp(name+"/scale"), b.tmp(name+"/out")
	b.node("MatMulInteger", "", []string{q[0], w, q[2], w + "_zero_point"}, []string{i32})
	b.node("Cast", "", []string{i32}, []string{f}, attrI("to", int64(elemFloat)))
	b.node("Mul", "", []string{q[1], w + "_scale"}, []string{s})
	b.node("Mul", "", []string{f, s}, []string{y})
	return y
}

// quantGather emits an embedding lookup in quantize_dynamic's form for a
// Gather of a constant table: the table in int8 (per tensor), Gather, then
// DequantizeLinear.
func (b *graphBuilder) quantGather(name string, dims []int64, table []float32, ids, out string) {
	q := name + "_quantized"
	b.int8Init(q, dims, table)
	g := b.tmp(name + "/Gather")
	b.node("Gather", "", []string{q, ids}, []string{g}, attrI("axis", 0))
	b.node("DequantizeLinear", "", []string{g, q + "_scale", q + "_zero_point"}, []string{out})
}
