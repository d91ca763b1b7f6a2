package prefillgraph

import (
	"fmt"
	"math"
	"strings"

	"github.com/dsmil/l7/internal/onnx"
	"github.com/dsmil/l7/internal/onnx/extdata"
	"github.com/dsmil/l7/internal/onnx/lastlogits"
	"github.com/dsmil/l7/internal/quant"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

const msDomain = "com.microsoft"

// converter rewrites one model's main graph.
type converter struct {
	m    *onnx.ModelProto
	g    *onnx.GraphProto
	src  *source
	sink *extdata.Writer
	opts Options

	inits   map[string]*onnx.TensorProto // the main graph's
	readers map[string]int               // nodes (subgraphs included) reading each name
	taken   map[string]bool              // every name in use
	s8      map[string][2]string         // converted weights by their inputs: int8 weight, scales
	drop    map[string]bool              // initializers of converted linears
	added   map[*onnx.TensorProto]bool   // initializers the conversion wrote
}

// linear is a node the conversion turns into u8×s8.
type linear struct {
	node    *onnx.NodeProto
	x       string // activations
	n, k    int    // out × in
	key     string // the weight's initializers, joined
	weights []string
	bias    string // an initializer added after the product, or ""
	// rows returns rows [r0, r1) of the out×in weight as the node
	// computes with it.
	rows func(r0, r1 int) []float32
}

func (c *converter) convert() (*Info, error) {
	g := c.g
	opset := int64(-1)
	for _, op := range c.m.GetOpsetImport() {
		if d := op.GetDomain(); d == "" || d == "ai.onnx" {
			opset = op.GetVersion()
		}
	}
	if opset < 11 {
		return nil, fmt.Errorf("%w: default opset %d (DynamicQuantizeLinear needs 11)", ErrUnsupported, opset)
	}
	c.inits, c.readers, c.taken = map[string]*onnx.TensorProto{}, map[string]int{}, map[string]bool{}
	c.s8, c.drop, c.added = map[string][2]string{}, map[string]bool{}, map[*onnx.TensorProto]bool{}
	for _, t := range g.GetInitializer() {
		c.inits[t.GetName()] = t
		c.taken[t.GetName()] = true
	}
	for _, v := range g.GetInput() {
		c.taken[v.GetName()] = true
	}
	countReaders(g, c.readers, c.taken)

	info := &Info{}
	head := -1
	lastOnly := false
	if h, err := lastlogits.Head(g, c.opts.Logits); err == nil {
		head = h
		info.Head = g.Node[h].GetOpType() + " " + g.Node[h].GetName()
		for _, o := range g.GetOutput() {
			if o.GetName() == c.opts.Logits {
				d := o.GetType().GetTensorType().GetShape().GetDim()
				lastOnly = len(d) == 3 && d[1].GetDimValue() == 1
			}
		}
	}
	var nodes []*onnx.NodeProto
	dq := map[string][3]string{}
	for i, n := range g.GetNode() {
		l, skip, err := c.linear(n)
		if err != nil {
			return nil, err
		}
		if skip != "" {
			info.Skipped = append(info.Skipped, skip)
		}
		switch {
		case i == head && l != nil && lastOnly:
			ns, err := c.switchHead(n, l)
			if err != nil {
				return nil, err
			}
			nodes = append(nodes, ns...)
			info.HeadForm = fmt.Sprintf("If: int8 u8×s8 from %d rows, else the original %s", HeadRows, n.GetOpType())
		case i == head:
			nodes = append(nodes, n)
			switch {
			case l == nil:
				info.HeadForm = "as it is: its weight is not a constant initializer"
			default:
				info.HeadForm = "as it is: the logits output has every position (llm-amx slices the last one when it loads both graphs)"
			}
		case l == nil:
			nodes = append(nodes, n)
		default:
			ns, err := c.u8s8(g, dq, l, n.GetOutput()[0])
			if err != nil {
				return nil, err
			}
			nodes = append(nodes, ns...)
			info.Linears++
		}
	}
	if info.Linears == 0 {
		return nil, ErrNothing
	}
	g.Node = nodes
	// The converted linears' weights go when nothing reads them any more.
	after := map[string]int{}
	countReaders(g, after, nil)
	var keep []*onnx.TensorProto
	for _, t := range g.GetInitializer() {
		if c.drop[t.GetName()] && after[t.GetName()] == 0 {
			continue
		}
		keep = append(keep, t)
	}
	g.Initializer = keep
	var ins []*onnx.ValueInfoProto
	for _, v := range g.GetInput() {
		if !c.drop[v.GetName()] || after[v.GetName()] > 0 {
			ins = append(ins, v)
		}
	}
	g.Input = ins
	return info, nil
}

// countReaders counts the nodes of g and its subgraphs reading each name
// (and, with taken, records every name used).
func countReaders(g *onnx.GraphProto, readers map[string]int, taken map[string]bool) {
	if taken != nil {
		for _, t := range g.GetInitializer() {
			taken[t.GetName()] = true
		}
	}
	for _, n := range g.GetNode() {
		seen := map[string]bool{}
		for _, in := range n.GetInput() {
			if in != "" && !seen[in] {
				seen[in] = true
				readers[in]++
			}
		}
		if taken != nil {
			for _, o := range n.GetOutput() {
				taken[o] = true
			}
			taken[n.GetName()] = true
		}
		for _, a := range n.GetAttribute() {
			if a.G != nil {
				countReaders(a.G, readers, taken)
			}
			for _, sg := range a.Graphs {
				countReaders(sg, readers, taken)
			}
		}
	}
	for _, o := range g.GetOutput() {
		readers[o.GetName()]++
	}
}

// fresh returns an unused name starting with base.
func (c *converter) fresh(base string) string {
	name := base
	for i := 2; c.taken[name]; i++ {
		name = fmt.Sprintf("%s_%d", base, i)
	}
	c.taken[name] = true
	return name
}

func attrInt(n *onnx.NodeProto, name string) (int64, bool) {
	for _, a := range n.GetAttribute() {
		if a.GetName() == name {
			return a.GetI(), true
		}
	}
	return 0, false
}

// linear says whether n is a linear to convert (l), or a MatMul left as
// it is (skip says why), or a linear the conversion refuses (err).
func (c *converter) linear(n *onnx.NodeProto) (l *linear, skip string, err error) {
	op, domain := n.GetOpType(), n.GetDomain()
	ins := n.GetInput()
	in := func(i int) string {
		if i < len(ins) {
			return ins[i]
		}
		return ""
	}
	switch {
	case domain == msDomain && op == "MatMulNBits":
		return c.matMulNBits(n, in)
	case (domain == "" || domain == "ai.onnx") && op == "MatMul":
		w := c.inits[in(1)]
		switch {
		case len(ins) != 2 || len(n.GetOutput()) != 1:
			return nil, fmt.Sprintf("MatMul %q: %d inputs, %d outputs", n.GetName(), len(ins), len(n.GetOutput())), nil
		case w == nil:
			return nil, fmt.Sprintf("MatMul %q: its second input %q is not an initializer", n.GetName(), in(1)), nil
		case c.inits[in(0)] != nil:
			return nil, fmt.Sprintf("MatMul %q: its first input is an initializer", n.GetName()), nil
		case w.GetDataType() != elemFloat || len(w.GetDims()) != 2:
			return nil, fmt.Sprintf("MatMul %q: weight %q is not a rank-2 float32 tensor", n.GetName(), w.GetName()), nil
		}
		k, nn := int(w.Dims[0]), int(w.Dims[1])
		b, err := c.src.bytes(w)
		if err != nil {
			return nil, "", err
		}
		if int64(len(b)) != 4*elems(w) {
			return nil, "", fmt.Errorf("%w: MatMul %q: weight %q has %d bytes, want %d", ErrUnsupported, n.GetName(), w.GetName(), len(b), 4*elems(w))
		}
		// Rows of the out×in matrix are columns of the in×out weight.
		rows := func(r0, r1 int) []float32 {
			out := make([]float32, (r1-r0)*k)
			for kk := 0; kk < k; kk++ {
				src := b[(kk*nn+r0)*4 : (kk*nn+r1)*4]
				for r := 0; r < r1-r0; r++ {
					out[r*k+kk] = math.Float32frombits(uint32(src[4*r]) | uint32(src[4*r+1])<<8 | uint32(src[4*r+2])<<16 | uint32(src[4*r+3])<<24)
				}
			}
			return out
		}
		return &linear{node: n, x: in(0), n: nn, k: k, key: w.GetName(), weights: []string{w.GetName()}, rows: rows}, "", nil
	}
	return nil, "", nil
}

func (c *converter) matMulNBits(n *onnx.NodeProto, in func(int) string) (*linear, string, error) {
	name := n.GetName()
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: MatMulNBits node %q: %s", ErrUnsupported, name, fmt.Sprintf(format, a...))
	}
	bits, _ := attrInt(n, "bits")
	K, okK := attrInt(n, "K")
	N, okN := attrInt(n, "N")
	block, okB := attrInt(n, "block_size")
	switch {
	case !okK || !okN || !okB:
		return nil, "", bad("no K, N or block_size attribute")
	case bits != 4 && bits != 8:
		return nil, "", bad("bits %d (the conversion handles 4 and 8)", bits)
	case in(4) != "":
		return nil, "", bad("g_idx input %q (act-order quantization) is not supported", in(4))
	case block < 16 || block&(block-1) != 0 || K <= 0 || N <= 0:
		return nil, "", bad("K %d, N %d, block_size %d", K, N, block)
	case len(n.GetOutput()) != 1:
		return nil, "", bad("%d outputs", len(n.GetOutput()))
	}
	B, S := c.inits[in(1)], c.inits[in(2)]
	if B == nil || S == nil {
		return nil, fmt.Sprintf("MatMulNBits %q: its weight or scales are not initializers", name), nil
	}
	blocks := (K + block - 1) / block
	q := &quant.Quantized{N: int(N), K: int(K), Bits: int(bits), BlockSize: int(block), Blocks: int(blocks)}
	var err error
	if B.GetDataType() != elemUint8 {
		return nil, "", bad("weight %q has element type %d, want uint8", B.GetName(), B.GetDataType())
	}
	if q.Data, err = c.src.bytes(B); err != nil {
		return nil, "", err
	}
	if want := N * blocks * block * bits / 8; int64(len(q.Data)) != want {
		return nil, "", bad("weight %q has %d bytes, want %d", B.GetName(), len(q.Data), want)
	}
	switch S.GetDataType() {
	case elemFloat:
	case elemFloat16:
		return nil, "", bad("float16 scales (float16 activations) are not supported")
	default:
		return nil, "", bad("scales %q have element type %d", S.GetName(), S.GetDataType())
	}
	sb, err := c.src.bytes(S)
	if err != nil {
		return nil, "", err
	}
	if int64(len(sb)) != 4*N*blocks {
		return nil, "", bad("scales %q have %d bytes, want %d", S.GetName(), len(sb), 4*N*blocks)
	}
	q.Scales = floats(sb)
	weights := []string{B.GetName(), S.GetName()}
	if z := in(3); z != "" {
		Z := c.inits[z]
		switch {
		case Z == nil:
			return nil, fmt.Sprintf("MatMulNBits %q: its zero points are not an initializer", name), nil
		case Z.GetDataType() != elemUint8:
			return nil, "", bad("zero points %q have element type %d (the conversion handles uint8)", z, Z.GetDataType())
		}
		if q.ZeroPoints, err = c.src.bytes(Z); err != nil {
			return nil, "", err
		}
		if want := N * ((blocks*bits + 7) / 8); int64(len(q.ZeroPoints)) != want {
			return nil, "", bad("zero points %q have %d bytes, want %d", z, len(q.ZeroPoints), want)
		}
		weights = append(weights, z)
	}
	l := &linear{node: n, x: in(0), n: int(N), k: int(K), key: strings.Join(weights, "\x00"), weights: weights,
		rows: func(r0, r1 int) []float32 { return q.Rows(r0, r1).Dequantize() }}
	if bias := in(5); bias != "" {
		t := c.inits[bias]
		if t == nil || t.GetDataType() != elemFloat || elems(t) != N {
			return nil, "", bad("bias %q is not a float32 initializer of %d elements", bias, N)
		}
		l.bias = bias
	}
	for _, extra := range n.GetInput()[min(len(n.GetInput()), 6):] {
		if extra != "" {
			return nil, "", bad("input %q past the sixth", extra)
		}
	}
	return l, "", nil
}

// u8s8 returns the nodes computing l's output y in the u8×s8 form, and
// adds the int8 weight to the graph g (the main graph or a branch), whose
// DynamicQuantizeLinear nodes dq are shared by the linears reading one
// tensor.
func (c *converter) u8s8(g *onnx.GraphProto, dq map[string][3]string, l *linear, y string) ([]*onnx.NodeProto, error) {
	var nodes []*onnx.NodeProto
	base := "prefill/" + l.node.GetName()
	if l.node.GetName() == "" {
		base = "prefill/" + y
	}
	q, ok := dq[l.x]
	if !ok {
		q = [3]string{c.fresh(l.x + "/prefill_u8"), c.fresh(l.x + "/prefill_scale"), c.fresh(l.x + "/prefill_zero_point")}
		nodes = append(nodes, c.node("DynamicQuantizeLinear", l.x+"/prefill_quantize", []string{l.x}, q[:]))
		dq[l.x] = q
	}
	w, ok := c.s8[l.key+"\x00"+g.GetName()]
	if !ok {
		s8 := quant.NewS8(l.n, l.k)
		chunk := max(1, (1<<22)/l.k) // rows dequantized at a time: 16 MB of float32
		for r := 0; r < l.n; r += chunk {
			s8.SetRows(r, l.rows(r, min(r+chunk, l.n)))
		}
		w = [2]string{c.fresh(l.weights[0] + ".s8"), c.fresh(l.weights[0] + ".s8_scale")}
		if err := c.add(g, w[0], elemInt8, []int64{int64(l.k), int64(l.n)}, s8.Data); err != nil {
			return nil, err
		}
		if err := c.add(g, w[1], elemFloat, []int64{int64(l.n)}, f32bytes(s8.Scales)); err != nil {
			return nil, err
		}
		c.s8[l.key+"\x00"+g.GetName()] = w
	}
	for _, name := range l.weights {
		c.drop[name] = true
		// The original bytes are not needed any more when nothing else
		// reads them: free them now rather than at the end.
		if t := c.inits[name]; t != nil && c.readers[name] <= 1 && g == c.g {
			t.RawData = nil
		}
	}
	i32, f, s := c.fresh(base+"/i32"), c.fresh(base+"/f32"), c.fresh(base+"/scale")
	out := y
	if l.bias != "" {
		out = c.fresh(base + "/product")
	}
	nodes = append(nodes,
		c.node("MatMulInteger", base+"/MatMulInteger", []string{q[0], w[0], q[2]}, []string{i32}),
		c.node("Cast", base+"/Cast", []string{i32}, []string{f}, attrI("to", int64(elemFloat))),
		c.node("Mul", base+"/Scale", []string{q[1], w[1]}, []string{s}),
		c.node("Mul", base+"/Mul", []string{f, s}, []string{out}))
	if l.bias != "" {
		nodes = append(nodes, c.node("Add", base+"/Bias", []string{out, l.bias}, []string{y}))
	}
	return nodes, nil
}

// switchHead returns the nodes of the LM head n (linear l) as an If on
// the rows it multiplies: from HeadRows rows, l in u8×s8 (its int8 weight
// in the branch), else n itself (its weight initializers, read by nothing
// else, moved into the branch).
func (c *converter) switchHead(n *onnx.NodeProto, l *linear) ([]*onnx.NodeProto, error) {
	y := n.GetOutput()[0]
	shape, lead, rows, cond := c.fresh("prefill/lm_head/shape"), c.fresh("prefill/lm_head/leading"),
		c.fresh("prefill/lm_head/rows"), c.fresh("prefill/lm_head/int8")
	consts := map[string]int64{"starts": 0, "ends": -1, "axes": 0, "int8_after": HeadRows - 1}
	names := map[string]string{}
	for _, k := range []string{"starts", "ends", "axes", "int8_after"} {
		names[k] = c.fresh("prefill/lm_head." + k)
		dims := []int64{1}
		if k == "int8_after" {
			dims = nil
		}
		c.g.Initializer = append(c.g.Initializer, &onnx.TensorProto{Name: proto.String(names[k]), DataType: proto.Int32(elemInt64),
			Dims: dims, RawData: protowire.AppendFixed64(nil, uint64(consts[k]))})
	}
	nodes := []*onnx.NodeProto{
		c.node("Shape", "prefill/lm_head/Shape", []string{l.x}, []string{shape}),
		c.node("Slice", "prefill/lm_head/Slice", []string{shape, names["starts"], names["ends"], names["axes"]}, []string{lead}),
		c.node("ReduceProd", "prefill/lm_head/ReduceProd", []string{lead}, []string{rows}, attrI("keepdims", 0)),
		c.node("Greater", "prefill/lm_head/Greater", []string{rows, names["int8_after"]}, []string{cond}),
	}
	out := func(name string) []*onnx.ValueInfoProto {
		return []*onnx.ValueInfoProto{{Name: proto.String(name), Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
			TensorType: &onnx.TypeProto_Tensor{ElemType: proto.Int32(elemFloat)}}}}}
	}
	then := &onnx.GraphProto{Name: proto.String(c.fresh("prefill_lm_head_int8"))}
	yThen := c.fresh(y + "/int8")
	ns, err := c.u8s8(then, map[string][3]string{}, l, yThen)
	if err != nil {
		return nil, err
	}
	then.Node, then.Output = ns, out(yThen)

	els := &onnx.GraphProto{Name: proto.String(c.fresh("prefill_lm_head_original"))}
	yElse := c.fresh(y + "/original")
	orig := proto.Clone(n).(*onnx.NodeProto)
	orig.Output = []string{yElse}
	els.Node, els.Output = []*onnx.NodeProto{orig}, out(yElse)
	var keep []*onnx.TensorProto
	moved := map[string]bool{}
	for _, w := range l.weights {
		moved[w] = c.readers[w] == 1 // the head alone
	}
	for _, t := range c.g.Initializer {
		if moved[t.GetName()] {
			els.Initializer = append(els.Initializer, t)
			continue
		}
		keep = append(keep, t)
	}
	c.g.Initializer = keep
	for _, w := range l.weights {
		delete(c.drop, w) // the original node still reads them
	}
	gt := onnx.AttributeProto_GRAPH
	nodes = append(nodes, c.node("If", "prefill/lm_head/If", []string{cond}, []string{y},
		&onnx.AttributeProto{Name: proto.String("then_branch"), Type: &gt, G: then},
		&onnx.AttributeProto{Name: proto.String("else_branch"), Type: &gt, G: els}))
	return nodes, nil
}

func (c *converter) node(op, name string, ins, outs []string, attrs ...*onnx.AttributeProto) *onnx.NodeProto {
	return &onnx.NodeProto{Name: proto.String(c.fresh(name)), OpType: proto.String(op), Input: ins, Output: outs, Attribute: attrs}
}

func attrI(name string, v int64) *onnx.AttributeProto {
	t := onnx.AttributeProto_INT
	return &onnx.AttributeProto{Name: proto.String(name), Type: &t, I: proto.Int64(v)}
}

func f32bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		u := math.Float32bits(x)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	return b
}
