// Package lastlogits rewrites a decoder's ONNX graph so that it computes
// the logits of the last position only.
//
// A decoder exported by Optimum, onnxruntime-genai or the model generator
// ends in an LM head, logits = MatMul(norm(hidden), W) (or MatMulNBits, or
// that followed by a Cast, a bias Add or a soft-capping Div/Tanh/Mul),
// computed for every position fed: a 128-token prefill computes 128 rows of
// vocabulary logits of which a generator reads one. The rewrite inserts
//
//	Slice(hidden, starts=[-1], ends=[INT64_MAX], axes=[1])
//
// before the LM head, so the logits output becomes [batch, 1, vocab]: the
// same rank, the last position of every row of the batch. Each row's logits
// are computed from that row's hidden state alone by the same kernels, so
// they are the ones the unrewritten graph gives for the last position
// (the package's tests check bit-equality on ONNX Runtime).
//
// Graph works on a decoded GraphProto (the generator). Model works on an
// encoded ModelProto without decoding its weights: it re-encodes the nodes
// and the output it changes and copies every other field's bytes, so a
// model of hundreds of megabytes costs one copy and no per-tensor work;
// ModelRefs (and File) with weightref options turn the large initializers
// into references to their bytes in the file instead, so the result is
// the graph alone.
package lastlogits

import (
	"errors"
	"fmt"
	"math"
	"os"
	"syscall"

	"github.com/dsmil/l7/internal/onnx"
	"github.com/dsmil/l7/internal/onnx/weightref"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// ErrAlready reports a graph whose logits output is already declared with
// a sequence dimension of 1.
var ErrAlready = errors.New("lastlogits: the logits output already has one position")

// ErrPattern reports a graph whose LM head the rewrite does not recognise;
// it is left as it is.
var ErrPattern = errors.New("lastlogits: LM head not recognised")

// Prefix starts the names of the tensors and the node the rewrite adds.
const Prefix = "lastlogits/"

// passThrough are the operators that may sit between the LM head's MatMul
// and the logits output: each is element-wise in its first input and takes
// only constants otherwise, so it commutes with slicing the sequence axis.
var passThrough = map[string]bool{
	"Identity": true, "Cast": true, "Add": true, "Sub": true, "Mul": true,
	"Div": true, "Tanh": true,
}

// Info says what a rewrite did.
type Info struct {
	// Head is the LM head node whose input is sliced ("MatMul lm_head").
	Head string
	// Hidden is the tensor sliced: the LM head's input.
	Hidden string
}

// plan finds the LM head in nodes: the index of the MatMul (or
// com.microsoft MatMulNBits) whose first input is the hidden state and
// whose path to the logits output is pass-through operators with constant
// other inputs.
func plan(nodes []*onnx.NodeProto, initializers map[string]bool, output *onnx.ValueInfoProto) (int, error) {
	dims := output.GetType().GetTensorType().GetShape().GetDim()
	if len(dims) != 3 {
		return -1, fmt.Errorf("%w: logits output %q has %d declared dimensions, want 3", ErrPattern, output.GetName(), len(dims))
	}
	if dims[1].GetDimValue() == 1 {
		return -1, ErrAlready
	}
	return head(nodes, initializers, output.GetName())
}

// head finds the LM head feeding the tensor name (see plan).
func head(nodes []*onnx.NodeProto, initializers map[string]bool, name string) (int, error) {
	producer := map[string]int{}
	for i, n := range nodes {
		for _, o := range n.GetOutput() {
			producer[o] = i
		}
	}
	memo := map[string]bool{}
	var isConst func(name string, depth int) bool
	isConst = func(name string, depth int) bool {
		if initializers[name] {
			return true
		}
		if v, ok := memo[name]; ok {
			return v
		}
		i, ok := producer[name]
		if !ok || depth > 8 {
			return false
		}
		memo[name] = false // cycles are not constant
		c := true
		for _, in := range nodes[i].GetInput() {
			if in != "" && !isConst(in, depth+1) {
				c = false
				break
			}
		}
		memo[name] = c
		return c
	}
	for hops := 0; hops < 16; hops++ {
		i, ok := producer[name]
		if !ok {
			return -1, fmt.Errorf("%w: %q is not produced by a node", ErrPattern, name)
		}
		n := nodes[i]
		op, domain := n.GetOpType(), n.GetDomain()
		switch {
		case (domain == "" || domain == "ai.onnx") && op == "MatMul",
			domain == "com.microsoft" && op == "MatMulNBits":
			ins := n.GetInput()
			if len(ins) < 2 || isConst(ins[0], 0) {
				return -1, fmt.Errorf("%w: %s node %q has no dynamic first input", ErrPattern, op, n.GetName())
			}
			for _, w := range ins[1:] {
				if w != "" && !isConst(w, 0) {
					return -1, fmt.Errorf("%w: %s node %q multiplies two dynamic tensors", ErrPattern, op, n.GetName())
				}
			}
			return i, nil
		case (domain == "" || domain == "ai.onnx") && passThrough[op]:
			ins := n.GetInput()
			if len(ins) == 0 {
				return -1, fmt.Errorf("%w: %s node %q has no input", ErrPattern, op, n.GetName())
			}
			next := ""
			for _, in := range ins {
				if in == "" || isConst(in, 0) {
					continue
				}
				if next != "" {
					return -1, fmt.Errorf("%w: %s node %q before the logits has two dynamic inputs", ErrPattern, op, n.GetName())
				}
				next = in
			}
			if next == "" {
				return -1, fmt.Errorf("%w: the logits are constant", ErrPattern)
			}
			name = next
		default:
			return -1, fmt.Errorf("%w: %s node %q between the LM head and the logits", ErrPattern, op, n.GetName())
		}
	}
	return -1, fmt.Errorf("%w: no MatMul within 16 nodes of the logits", ErrPattern)
}

// sliceTensors are the Slice node's constant inputs.
func sliceTensors() []*onnx.TensorProto {
	i64 := func(name string, v int64) *onnx.TensorProto {
		raw := protowire.AppendFixed64(nil, uint64(v))
		return &onnx.TensorProto{Name: proto.String(Prefix + name), Dims: []int64{1},
			DataType: proto.Int32(int32(onnx.TensorProto_INT64)), RawData: raw}
	}
	return []*onnx.TensorProto{i64("starts", -1), i64("ends", math.MaxInt64), i64("axes", 1)}
}

// edit makes the Slice node and changes head to read its output.
func edit(head *onnx.NodeProto) (*onnx.NodeProto, Info) {
	hidden := head.Input[0]
	sliced := Prefix + hidden
	head.Input[0] = sliced
	slice := &onnx.NodeProto{
		Name:   proto.String(Prefix + "slice"),
		OpType: proto.String("Slice"),
		Input:  []string{hidden, Prefix + "starts", Prefix + "ends", Prefix + "axes"},
		Output: []string{sliced},
	}
	return slice, Info{Head: head.GetOpType() + " " + head.GetName(), Hidden: hidden}
}

// setOnePosition declares the logits output's sequence dimension as 1.
func setOnePosition(out *onnx.ValueInfoProto) {
	d := out.GetType().GetTensorType().GetShape().GetDim()[1]
	d.Value = &onnx.TensorShapeProto_Dimension_DimValue{DimValue: 1}
	d.Denotation = nil
}

func checkOpset(version int64) error {
	if version < 10 {
		return fmt.Errorf("%w: default opset %d has no Slice with inputs (want ≥ 10)", ErrPattern, version)
	}
	return nil
}

// Graph rewrites g in place so that its output logits holds the last
// position only. opset is the model's default-domain opset version.
func Graph(g *onnx.GraphProto, logits string, opset int64) (Info, error) {
	if err := checkOpset(opset); err != nil {
		return Info{}, err
	}
	var out *onnx.ValueInfoProto
	for _, o := range g.GetOutput() {
		if o.GetName() == logits {
			out = o
		}
	}
	if out == nil {
		return Info{}, fmt.Errorf("%w: no output %q", ErrPattern, logits)
	}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	i, err := plan(g.Node, inits, out)
	if err != nil {
		return Info{}, err
	}
	slice, info := edit(g.Node[i])
	g.Node = append(g.Node[:i], append([]*onnx.NodeProto{slice}, g.Node[i:]...)...)
	g.Initializer = append(g.Initializer, sliceTensors()...)
	setOnePosition(out)
	return info, nil
}

// Head returns the index in g.Node of the LM head that computes the
// logits output, found as Graph finds it (a MatMul or com.microsoft
// MatMulNBits with a constant weight, then only pass-through operators),
// whatever the number of positions the output declares: the prefill-graph
// conversion (internal/onnx/prefillgraph) uses it on graphs that already
// compute the last position only.
func Head(g *onnx.GraphProto, logits string) (int, error) {
	found := false
	for _, o := range g.GetOutput() {
		found = found || o.GetName() == logits
	}
	if !found {
		return -1, fmt.Errorf("%w: no output %q", ErrPattern, logits)
	}
	inits := map[string]bool{}
	for _, t := range g.GetInitializer() {
		inits[t.GetName()] = true
	}
	return head(g.Node, inits, logits)
}

// span is one top-level field of a message: its bytes, tag included.
type span struct {
	num protowire.Number
	typ protowire.Type
	raw []byte // the whole field
	val []byte // the value of a bytes field
}

func spans(b []byte) ([]span, error) {
	var out []span
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		s := span{num: num, typ: typ, raw: b[:n+m]}
		if typ == protowire.BytesType {
			s.val, _ = protowire.ConsumeBytes(b[n:])
		}
		out = append(out, s)
		b = b[n+m:]
	}
	return out, nil
}

// initializerName reads a TensorProto's name without its data.
func initializerName(b []byte) (string, error) {
	ss, err := spans(b)
	if err != nil {
		return "", err
	}
	for _, s := range ss {
		if s.num == 8 && s.typ == protowire.BytesType {
			return string(s.val), nil
		}
	}
	return "", nil
}

func appendMessage(b []byte, num protowire.Number, m proto.Message) ([]byte, error) {
	v, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v), nil
}

// ModelProto and GraphProto field numbers.
const (
	modelGraph    = 7
	modelOpset    = 8
	graphNode     = 1
	graphInit     = 5
	graphOutput   = 12
	graphSparseIn = 15
)

// Model rewrites an encoded ModelProto (see Graph) and returns the new
// encoding. data is only read.
func Model(data []byte, logits string) ([]byte, Info, error) {
	return ModelRefs(data, logits, nil)
}

// ModelRefs is Model that also rewrites the initializers with refs (when
// not nil): the large ones become references to their bytes in the model
// file (data must then be the whole file), so the result holds the graph
// without the weights.
func ModelRefs(data []byte, logits string, refs *weightref.Options) ([]byte, Info, error) {
	top, err := spans(data)
	if err != nil {
		return nil, Info{}, fmt.Errorf("lastlogits: model: %w", err)
	}
	gi := -1
	opset := int64(-1)
	for i, s := range top {
		switch {
		case s.num == modelGraph && s.typ == protowire.BytesType:
			gi = i
		case s.num == modelOpset && s.typ == protowire.BytesType:
			var op onnx.OperatorSetIdProto
			if err := proto.Unmarshal(s.val, &op); err != nil {
				return nil, Info{}, fmt.Errorf("lastlogits: opset_import: %w", err)
			}
			if d := op.GetDomain(); d == "" || d == "ai.onnx" {
				opset = op.GetVersion()
			}
		}
	}
	if gi < 0 {
		return nil, Info{}, fmt.Errorf("lastlogits: model has no graph")
	}
	if err := checkOpset(opset); err != nil {
		return nil, Info{}, err
	}
	fields, err := spans(top[gi].val)
	if err != nil {
		return nil, Info{}, fmt.Errorf("lastlogits: graph: %w", err)
	}
	var nodes []*onnx.NodeProto
	nodeField := map[int]int{} // node index → field index
	inits := map[string]bool{}
	outField := -1
	var out *onnx.ValueInfoProto
	for fi, s := range fields {
		if s.typ != protowire.BytesType {
			continue
		}
		switch s.num {
		case graphNode:
			n := &onnx.NodeProto{}
			if err := proto.Unmarshal(s.val, n); err != nil {
				return nil, Info{}, fmt.Errorf("lastlogits: node: %w", err)
			}
			nodeField[len(nodes)] = fi
			nodes = append(nodes, n)
		case graphInit, graphSparseIn:
			name, err := initializerName(s.val)
			if err != nil {
				return nil, Info{}, fmt.Errorf("lastlogits: initializer: %w", err)
			}
			inits[name] = true
		case graphOutput:
			o := &onnx.ValueInfoProto{}
			if err := proto.Unmarshal(s.val, o); err != nil {
				return nil, Info{}, fmt.Errorf("lastlogits: output: %w", err)
			}
			if o.GetName() == logits {
				outField, out = fi, o
			}
		}
	}
	if out == nil {
		return nil, Info{}, fmt.Errorf("%w: no output %q", ErrPattern, logits)
	}
	hi, err := plan(nodes, inits, out)
	if err != nil {
		return nil, Info{}, err
	}
	slice, info := edit(nodes[hi])
	setOnePosition(out)

	// The new graph is the old one's field bytes with three fields
	// replaced and three added; it is written straight into the result so
	// that the weights are copied once.
	var parts [][]byte
	glen := 0
	add := func(b []byte) { parts = append(parts, b); glen += len(b) }
	msg := func(num protowire.Number, m proto.Message) error {
		b, err := appendMessage(nil, num, m)
		if err == nil {
			add(b)
		}
		return err
	}
	for fi, s := range fields {
		switch fi {
		case nodeField[hi]:
			if err = msg(graphNode, slice); err == nil {
				err = msg(graphNode, nodes[hi])
			}
		case outField:
			err = msg(graphOutput, out)
		default:
			if refs == nil || s.num != graphInit {
				add(s.raw)
				break
			}
			var b []byte
			if b, err = refs.Initializer(data, s.raw); err == nil {
				add(b)
			}
		}
		if err != nil {
			return nil, Info{}, err
		}
	}
	for _, t := range sliceTensors() {
		if err = msg(graphInit, t); err != nil {
			return nil, Info{}, err
		}
	}
	res := make([]byte, 0, len(data)-len(top[gi].raw)+glen+16)
	for i, s := range top {
		if i != gi {
			res = append(res, s.raw...)
			continue
		}
		res = protowire.AppendTag(res, modelGraph, protowire.BytesType)
		res = protowire.AppendVarint(res, uint64(glen))
		for _, p := range parts {
			res = append(res, p...)
		}
	}
	return res, info, nil
}

// File rewrites the model in the ONNX file at path (see ModelRefs),
// mapping the file instead of reading it, so that the weights are copied
// once, or not at all with refs.
func File(path, logits string, refs *weightref.Options) ([]byte, Info, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, Info{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, Info{}, err
	}
	if st.Size() == 0 {
		return nil, Info{}, fmt.Errorf("lastlogits: %s: empty file", path)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, Info{}, fmt.Errorf("lastlogits: %s: mmap: %w", path, err)
	}
	defer syscall.Munmap(data)
	return ModelRefs(data, logits, refs)
}
