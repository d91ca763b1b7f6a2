// Command linear measures ONNX Runtime formulations of a decoder's linear
// layers side by side, to find the one that prefills fastest on this CPU
// (issue 18 part 2).
//
// It builds, in memory, a stack of Qwen2.5-0.5B-shaped layers (hidden 896,
// q/o 896×896, k/v 896×128, gate/up 896×4864, down 4864×896; a residual
// add and a gated product between them, no attention) with random weights
// in each formulation:
//
//   - nbits4: com.microsoft MatMulNBits, 4-bit, block 128, accuracy_level 4
//     (what dsmil-mkmodel's int4 and genai's int4 exports use);
//   - nbits8: the same with 8-bit weights (dsmil-mkmodel's int8);
//   - nbits4acc1: nbits4 at accuracy_level 1 (fp32 compute);
//   - qdq: DynamicQuantizeLinear on the activations (per tensor, u8) and
//     MatMulInteger with int8 weights, scaled back with Cast and Mul, the
//     QDQ pattern ONNX Runtime's optimizer fuses into
//     MatMulIntegerToFloat (its u8×s8 GEMM, MLAS QGEMM);
//   - dqmm: com.microsoft DynamicQuantizeMatMul (the same GEMM, one op);
//   - fp32: MatMul with float weights (MLAS SGEMM);
//   - bf16: Cast to bfloat16 and MatMul in bfloat16 (whether the CPU
//     execution provider has such a kernel at all).
//
// and runs each at every M (tokens per run) in interleaved rounds, printing
// medians and each formulation's time relative to nbits4.
//
// -head N appends an LM head (hidden × N, in the same formulation) to the
// stack; -layers 0 -head 151936 measures Qwen2.5's LM head alone.
//
//	go run ./bench/linear -m 1,32,128,512 -layers 8 -rounds 7
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/dsmil/l7/internal/onnx"
	ortgo "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/proto"
)

const (
	hidden = 896
	qkv    = 128 // k and v: 2 KV heads × 64
	inter  = 4864
	block  = 128
)

type builder struct {
	form  string
	g     *onnx.GraphProto
	rng   *rand.Rand
	n     int
	bytes int64 // weight bytes
	dq    map[string][3]string
}

func (b *builder) tmp(p string) string { b.n++; return p + "_" + strconv.Itoa(b.n) }

func (b *builder) node(op, domain string, ins, outs []string, attrs ...*onnx.AttributeProto) {
	n := &onnx.NodeProto{OpType: proto.String(op), Input: ins, Output: outs, Attribute: attrs}
	if domain != "" {
		n.Domain = proto.String(domain)
	}
	b.g.Node = append(b.g.Node, n)
}

func (b *builder) init(name string, dt onnx.TensorProto_DataType, dims []int64, raw []byte) {
	b.g.Initializer = append(b.g.Initializer, &onnx.TensorProto{Name: proto.String(name), Dims: dims,
		DataType: proto.Int32(int32(dt)), RawData: raw})
	b.bytes += int64(len(raw))
}

func (b *builder) randBytes(n int) []byte {
	r := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := b.rng.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			r[i+j] = byte(v >> (8 * j))
		}
	}
	return r
}

func f32s(v []float32) []byte {
	r := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(r[4*i:], math.Float32bits(x))
	}
	return r
}

func (b *builder) scales(n int, s float32) []byte {
	v := make([]float32, n)
	for i := range v {
		v[i] = s * (0.5 + b.rng.Float32())
	}
	return f32s(v)
}

func attrI(n string, v int64) *onnx.AttributeProto {
	return &onnx.AttributeProto{Name: proto.String(n), Type: onnx.AttributeProto_INT.Enum(), I: proto.Int64(v)}
}

// linear emits y = x·W for a K×N weight in the builder's formulation.
func (b *builder) linear(x string, k, n int) string {
	w := b.tmp("w")
	y := b.tmp("y")
	switch b.form {
	case "nbits4", "nbits8", "nbits4acc1":
		bits, acc := 4, 4
		if b.form == "nbits8" {
			bits = 8
		}
		if b.form == "nbits4acc1" {
			acc = 1 // fp32 compute: blocks dequantized for SGEMM
		}
		blocks := k / block
		b.init(w, onnx.TensorProto_UINT8, []int64{int64(n), int64(blocks), int64(block * bits / 8)}, b.randBytes(n*blocks*block*bits/8))
		b.init(w+".scales", onnx.TensorProto_FLOAT, []int64{int64(n * blocks)}, b.scales(n*blocks, 0.02/float32(int(1)<<(bits-1))))
		b.node("MatMulNBits", "com.microsoft", []string{x, w, w + ".scales"}, []string{y},
			attrI("K", int64(k)), attrI("N", int64(n)), attrI("bits", int64(bits)), attrI("block_size", block), attrI("accuracy_level", int64(acc)))
	case "qdq":
		q, ok := b.dq[x]
		if !ok { // quantize each activation once, as a QDQ export does
			q = [3]string{b.tmp("xq"), b.tmp("xs"), b.tmp("xzp")}
			b.node("DynamicQuantizeLinear", "", []string{x}, q[:])
			b.dq[x] = q
		}
		b.init(w, onnx.TensorProto_INT8, []int64{int64(k), int64(n)}, b.randBytes(k*n))
		b.init(w+".scales", onnx.TensorProto_FLOAT, []int64{int64(n)}, b.scales(n, 0.02/127))
		i32, f, s := b.tmp("i32"), b.tmp("f"), b.tmp("s")
		b.node("MatMulInteger", "", []string{q[0], w, q[2]}, []string{i32})
		b.node("Cast", "", []string{i32}, []string{f}, attrI("to", int64(onnx.TensorProto_FLOAT)))
		b.node("Mul", "", []string{q[1], w + ".scales"}, []string{s})
		b.node("Mul", "", []string{f, s}, []string{y})
	case "dqmm":
		b.init(w, onnx.TensorProto_INT8, []int64{int64(k), int64(n)}, b.randBytes(k*n))
		b.init(w+".scales", onnx.TensorProto_FLOAT, []int64{int64(n)}, b.scales(n, 0.02/127))
		b.node("DynamicQuantizeMatMul", "com.microsoft", []string{x, w, w + ".scales"}, []string{y})
	case "fp32":
		v := make([]float32, k*n)
		for i := range v {
			v[i] = float32(b.rng.NormFloat64() * 0.02)
		}
		b.init(w, onnx.TensorProto_FLOAT, []int64{int64(k), int64(n)}, f32s(v))
		b.node("MatMul", "", []string{x, w}, []string{y})
	case "bf16":
		raw := make([]byte, 2*k*n)
		for i := 0; i < k*n; i++ {
			binary.LittleEndian.PutUint16(raw[2*i:], uint16(math.Float32bits(float32(b.rng.NormFloat64()*0.02))>>16))
		}
		b.init(w, onnx.TensorProto_BFLOAT16, []int64{int64(k), int64(n)}, raw)
		xb, yb := b.tmp("xb"), b.tmp("yb")
		b.node("Cast", "", []string{x}, []string{xb}, attrI("to", int64(onnx.TensorProto_BFLOAT16)))
		b.node("MatMul", "", []string{xb, w}, []string{yb})
		b.node("Cast", "", []string{yb}, []string{y}, attrI("to", int64(onnx.TensorProto_FLOAT)))
	default:
		panic("unknown formulation " + b.form)
	}
	return y
}

// model builds the layer stack in one formulation.
func model(form string, layers, head int) ([]byte, int64, error) {
	dim := func(p string) *onnx.TensorShapeProto_Dimension {
		return &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: p}}
	}
	val := func(v int64) *onnx.TensorShapeProto_Dimension {
		return &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: v}}
	}
	vi := func(name string) *onnx.ValueInfoProto {
		return &onnx.ValueInfoProto{Name: proto.String(name), Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
			TensorType: &onnx.TypeProto_Tensor{ElemType: proto.Int32(int32(onnx.TensorProto_FLOAT)),
				Shape: &onnx.TensorShapeProto{Dim: []*onnx.TensorShapeProto_Dimension{dim("batch"), dim("m"), val(hidden)}}}}}}
	}
	b := &builder{form: form, g: &onnx.GraphProto{Name: proto.String("linear")}, rng: rand.New(rand.NewPCG(1, 2)),
		dq: map[string][3]string{}}
	b.g.Input = []*onnx.ValueInfoProto{vi("x")}
	h := "x"
	for l := 0; l < layers; l++ {
		q := b.linear(h, hidden, hidden)
		k := b.linear(h, hidden, qkv)
		v := b.linear(h, hidden, qkv)
		o := b.linear(q, hidden, hidden)
		gate := b.linear(h, hidden, inter)
		up := b.linear(h, hidden, inter)
		// k and v feed attention in a real layer; here they join the
		// residual through a cheap reduction so they are not pruned.
		kv := b.tmp("kv")
		b.node("Add", "", []string{k, v}, []string{kv})
		kvs := b.tmp("kvs")
		b.node("ReduceMean", "", []string{kv}, []string{kvs}, &onnx.AttributeProto{Name: proto.String("axes"),
			Type: onnx.AttributeProto_INTS.Enum(), Ints: []int64{-1}})
		act := b.tmp("act")
		b.node("Mul", "", []string{gate, up}, []string{act})
		down := b.linear(act, inter, hidden)
		s1, s2, s3 := b.tmp("r"), b.tmp("r"), b.tmp("r")
		b.node("Add", "", []string{h, o}, []string{s1})
		b.node("Add", "", []string{s1, down}, []string{s2})
		b.node("Add", "", []string{s2, kvs}, []string{s3})
		h = s3
	}
	out := vi("y")
	if head > 0 { // an LM head over a vocabulary of head ids
		h = b.linear(h, hidden, head)
		out.GetType().GetTensorType().GetShape().Dim[2] = val(int64(head))
	}
	b.node("Identity", "", []string{h}, []string{"y"})
	b.g.Output = []*onnx.ValueInfoProto{out}
	m := &onnx.ModelProto{IrVersion: proto.Int64(8), Graph: b.g, ProducerName: proto.String("bench/linear"),
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)},
			{Domain: proto.String("com.microsoft"), Version: proto.Int64(1)}}}
	data, err := proto.Marshal(m)
	return data, b.bytes, err
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

func main() {
	var (
		formsF  = flag.String("forms", "nbits4,nbits8,qdq,dqmm,fp32,bf16", "formulations")
		msF     = flag.String("m", "1,32,128,512", "tokens per run")
		layers  = flag.Int("layers", 8, "layers in the stack")
		rounds  = flag.Int("rounds", 7, "interleaved rounds")
		threads = flag.Int("threads", runtime.NumCPU(), "intra-op threads")
		lib     = flag.String("ort", os.Getenv("DSMIL_ORT_LIB"), "libonnxruntime.so")
		loop    = flag.String("loop", "", "FORM:M:SECONDS — only run FORM at M for SECONDS (for perf record)")
		head    = flag.Int("head", 0, "vocabulary of an LM head (hidden × head) after the layers; 0: none (151936: Qwen2.5's)")
	)
	flag.Parse()
	if *lib == "" {
		fmt.Fprintln(os.Stderr, "set DSMIL_ORT_LIB or -ort")
		os.Exit(2)
	}
	ortgo.SetSharedLibraryPath(*lib)
	if err := ortgo.InitializeEnvironment(ortgo.WithLogLevelError()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	forms := strings.Split(*formsF, ",")
	var ms []int
	for _, f := range strings.Split(*msF, ",") {
		n, err := strconv.Atoi(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "-m:", err)
			os.Exit(2)
		}
		ms = append(ms, n)
	}
	var loopSecs float64
	if *loop != "" {
		p := strings.Split(*loop, ":")
		if len(p) != 3 {
			fmt.Fprintln(os.Stderr, "-loop FORM:M:SECONDS")
			os.Exit(2)
		}
		forms = []string{p[0]}
		m, _ := strconv.Atoi(p[1])
		ms = []int{m}
		loopSecs, _ = strconv.ParseFloat(p[2], 64)
	}
	type sess struct {
		form  string
		s     *ortgo.DynamicAdvancedSession
		bytes int64
	}
	var ss []sess
	for _, f := range forms {
		data, wb, err := model(f, *layers, *head)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		so, err := ortgo.NewSessionOptions()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		_ = so.SetIntraOpNumThreads(*threads)
		_ = so.SetInterOpNumThreads(1)
		_ = so.SetGraphOptimizationLevel(ortgo.GraphOptimizationLevelEnableAll)
		s, err := ortgo.NewDynamicAdvancedSessionWithONNXData(data, []string{"x"}, []string{"y"}, so)
		so.Destroy()
		if err != nil {
			fmt.Printf("%-7s cannot load: %v\n", f, firstLine(err.Error()))
			continue
		}
		ss = append(ss, sess{f, s, wb})
	}
	run := func(s *ortgo.DynamicAdvancedSession, m int) (time.Duration, error) {
		x := make([]float32, m*hidden)
		for i := range x {
			x[i] = float32(math.Sin(float64(i)))
		}
		xt, err := ortgo.NewTensor(ortgo.NewShape(1, int64(m), hidden), x)
		if err != nil {
			return 0, err
		}
		defer xt.Destroy()
		outs := []ortgo.Value{nil}
		t0 := time.Now()
		err = s.Run([]ortgo.Value{xt}, outs)
		d := time.Since(t0)
		if outs[0] != nil {
			outs[0].Destroy()
		}
		return d, err
	}
	if loopSecs > 0 {
		end := time.Now().Add(time.Duration(loopSecs * float64(time.Second)))
		n := 0
		for time.Now().Before(end) {
			if _, err := run(ss[0].s, ms[0]); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			n++
		}
		fmt.Printf("%s M=%d: %d runs\n", forms[0], ms[0], n)
		return
	}
	fmt.Printf("%d layers, %d threads, %d rounds; weights per formulation:", *layers, *threads, *rounds)
	for _, s := range ss {
		fmt.Printf(" %s %.0f MB", s.form, float64(s.bytes)/1e6)
	}
	fmt.Println()
	for _, m := range ms {
		times := make([][]float64, len(ss))
		ok := make([]bool, len(ss))
		for i, s := range ss { // warm-up
			_, err := run(s.s, m)
			ok[i] = err == nil
			if err != nil {
				fmt.Printf("%-7s M=%d: %v\n", s.form, m, firstLine(err.Error()))
			}
		}
		for r := 0; r < *rounds; r++ {
			for j := range ss {
				i := (j + r) % len(ss) // rotate the order
				if !ok[i] {
					continue
				}
				d, err := run(ss[i].s, m)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(1)
				}
				times[i] = append(times[i], float64(d.Microseconds())/1e3)
			}
		}
		base := 0.0
		for i, s := range ss {
			if s.form == "nbits4" && ok[i] {
				base = median(times[i])
			}
		}
		for i, s := range ss {
			if !ok[i] {
				continue
			}
			md := median(times[i])
			rel := ""
			if base > 0 {
				rel = fmt.Sprintf("%.2f× nbits4's time", md/base)
			}
			fmt.Printf("M=%-4d %-7s %9.2f ms  %8.0f tok/s  %s\n", m, s.form, md, float64(m)/md*1e3, rel)
		}
	}
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
