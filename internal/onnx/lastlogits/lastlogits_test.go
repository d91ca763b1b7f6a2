package lastlogits

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dsmil/l7/internal/onnx"
	"github.com/dsmil/l7/internal/onnx/weightref"
	"google.golang.org/protobuf/proto"
)

func vi(name string, dims ...any) *onnx.ValueInfoProto {
	var ds []*onnx.TensorShapeProto_Dimension
	for _, d := range dims {
		switch d := d.(type) {
		case int:
			ds = append(ds, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
		case string:
			ds = append(ds, &onnx.TensorShapeProto_Dimension{Value: &onnx.TensorShapeProto_Dimension_DimParam{DimParam: d}})
		}
	}
	return &onnx.ValueInfoProto{Name: proto.String(name), Type: &onnx.TypeProto{Value: &onnx.TypeProto_TensorType{
		TensorType: &onnx.TypeProto_Tensor{ElemType: proto.Int32(int32(onnx.TensorProto_FLOAT)), Shape: &onnx.TensorShapeProto{Dim: ds}}}}}
}

func node(op, name string, ins, outs []string) *onnx.NodeProto {
	return &onnx.NodeProto{OpType: proto.String(op), Name: proto.String(name), Input: ins, Output: outs}
}

func weight(name string, n int) *onnx.TensorProto {
	return &onnx.TensorProto{Name: proto.String(name), Dims: []int64{int64(n)},
		DataType: proto.Int32(int32(onnx.TensorProto_FLOAT)), RawData: make([]byte, 4*n)}
}

// optimum is the tail of a graph shaped like Hugging Face Optimum's Qwen2
// export: the final RMSNorm, then /lm_head/MatMul with a transposed weight
// initializer straight into the logits output [batch_size,
// sequence_length, vocab]; tail adds nodes between the MatMul and the
// output.
func optimum(tail func(g *onnx.GraphProto, y string) string) *onnx.ModelProto {
	g := &onnx.GraphProto{
		Name:  proto.String("main_graph"),
		Input: []*onnx.ValueInfoProto{vi("input_ids", "batch_size", "sequence_length")},
		Initializer: []*onnx.TensorProto{
			weight("model.embed_tokens.weight", 64), weight("model.norm.weight", 8), weight("onnx::MatMul_4817", 64),
		},
		Node: []*onnx.NodeProto{
			node("Gather", "/model/embed_tokens/Gather", []string{"model.embed_tokens.weight", "input_ids"}, []string{"/model/embed_tokens/Gather_output_0"}),
			node("SimplifiedLayerNormalization", "/model/norm/SimplifiedLayerNormalization",
				[]string{"/model/embed_tokens/Gather_output_0", "model.norm.weight"}, []string{"/model/norm/Mul_1_output_0"}),
		},
	}
	y := "/lm_head/MatMul_output_0"
	g.Node = append(g.Node, node("MatMul", "/lm_head/MatMul", []string{"/model/norm/Mul_1_output_0", "onnx::MatMul_4817"}, []string{y}))
	if tail != nil {
		y = tail(g, y)
	}
	if y != "logits" {
		g.Node = append(g.Node, node("Identity", "/logits", []string{y}, []string{"logits"}))
	}
	g.Output = []*onnx.ValueInfoProto{vi("logits", "batch_size", "sequence_length", 8), vi("present.0.key", "batch_size", 2, "total", 4)}
	return &onnx.ModelProto{IrVersion: proto.Int64(8), Graph: g,
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(14)}}}
}

// TestOptimumShape: the rewrite finds /lm_head/MatMul, slices its input,
// declares logits [batch_size, 1, vocab], and Model (on the encoding)
// gives exactly what Graph gives on the decoded model.
func TestOptimumShape(t *testing.T) {
	for _, tc := range []struct {
		name string
		tail func(g *onnx.GraphProto, y string) string
	}{
		{"matmul", nil},
		{"cast-bias-softcap", func(g *onnx.GraphProto, y string) string {
			g.Initializer = append(g.Initializer, weight("lm_head.bias", 8), weight("cap", 1))
			g.Node = append(g.Node,
				node("Add", "bias", []string{y, "lm_head.bias"}, []string{"b"}),
				node("Div", "div", []string{"b", "cap"}, []string{"d"}),
				node("Tanh", "tanh", []string{"d"}, []string{"th"}),
				node("Mul", "mul", []string{"cap", "th"}, []string{"m"}),
				node("Cast", "cast", []string{"m"}, []string{"logits"}))
			return "logits"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := optimum(tc.tail)
			data, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			got, info, err := Model(data, "logits")
			if err != nil {
				t.Fatal(err)
			}
			if info.Head != "MatMul /lm_head/MatMul" || info.Hidden != "/model/norm/Mul_1_output_0" {
				t.Fatalf("info %+v", info)
			}
			want := proto.Clone(m).(*onnx.ModelProto)
			if _, err := Graph(want.Graph, "logits", 14); err != nil {
				t.Fatal(err)
			}
			var dec onnx.ModelProto
			if err := proto.Unmarshal(got, &dec); err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(&dec, want) {
				t.Fatalf("Model and Graph differ:\n%v\n%v", &dec, want)
			}
			g := dec.Graph
			var slice, head *onnx.NodeProto
			for i, n := range g.Node {
				switch n.GetName() {
				case Prefix + "slice":
					slice = n
					if g.Node[i+1].GetName() != "/lm_head/MatMul" {
						t.Errorf("the Slice is not right before the LM head")
					}
				case "/lm_head/MatMul":
					head = n
				}
			}
			if slice == nil || head == nil {
				t.Fatal("no Slice or no LM head")
			}
			if slice.Input[0] != "/model/norm/Mul_1_output_0" || head.Input[0] != slice.Output[0] || head.Input[1] != "onnx::MatMul_4817" {
				t.Fatalf("slice %v, head %v", slice, head)
			}
			consts := map[string][]byte{}
			for _, in := range g.Initializer {
				consts[in.GetName()] = in.GetRawData()
			}
			for i, want := range []int64{-1, 1<<63 - 1, 1} {
				raw := consts[slice.Input[i+1]]
				if len(raw) != 8 {
					t.Fatalf("slice input %d: %d bytes", i+1, len(raw))
				}
				var v int64
				for j := 7; j >= 0; j-- {
					v = v<<8 | int64(raw[j])
				}
				if v != want {
					t.Errorf("slice input %d = %d, want %d", i+1, v, want)
				}
			}
			dims := g.Output[0].GetType().GetTensorType().GetShape().GetDim()
			if dims[0].GetDimParam() != "batch_size" || dims[1].GetDimValue() != 1 || dims[2].GetDimValue() != 8 {
				t.Fatalf("logits dims %v", dims)
			}
			if !proto.Equal(g.Output[1], m.Graph.Output[1]) || !proto.Equal(g.Initializer[0], m.Graph.Initializer[0]) {
				t.Fatal("other fields changed")
			}
			// Once is enough.
			if _, _, err := Model(got, "logits"); !errors.Is(err, ErrAlready) {
				t.Fatalf("second rewrite: %v, want ErrAlready", err)
			}
			// File gives the same bytes.
			path := filepath.Join(t.TempDir(), "model.onnx")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			fromFile, _, err := File(path, "logits", nil)
			if err != nil || string(fromFile) != string(got) {
				t.Fatalf("File: %v (same bytes: %v)", err, string(fromFile) == string(got))
			}
			// With weight references: the float initializers become
			// references to their bytes in the file, and resolving them
			// gives the same model.
			refs, _, err := File(path, "logits", &weightref.Options{Location: "model.onnx", MinBytes: -1})
			if err != nil {
				t.Fatal(err)
			}
			var withRefs, rewritten onnx.ModelProto
			if err := proto.Unmarshal(refs, &withRefs); err != nil {
				t.Fatal(err)
			}
			if err := proto.Unmarshal(got, &rewritten); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, x := range withRefs.Graph.Initializer {
				if x.GetDataLocation() != onnx.TensorProto_EXTERNAL {
					continue
				}
				kv := map[string]string{}
				for _, e := range x.ExternalData {
					kv[e.GetKey()] = e.GetValue()
				}
				off, _ := strconv.Atoi(kv["offset"])
				l, _ := strconv.Atoi(kv["length"])
				if kv["location"] != "model.onnx" || off+l > len(data) {
					t.Fatalf("%s: external data %v", x.GetName(), kv)
				}
				x.RawData, x.ExternalData, x.DataLocation = data[off:off+l], nil, nil
				n++
			}
			if n != len(m.Graph.Initializer) || !proto.Equal(&withRefs, &rewritten) {
				t.Fatalf("%d of %d initializers referenced; same model once resolved: %v", n, len(m.Graph.Initializer),
					proto.Equal(&withRefs, &rewritten))
			}
		})
	}
}

// TestUnrecognised: graphs whose LM head the rewrite cannot slice safely
// are refused with ErrPattern and left alone.
func TestUnrecognised(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m *onnx.ModelProto)
	}{
		{"reshape between", func(m *onnx.ModelProto) {
			g := m.Graph
			last := g.Node[len(g.Node)-1]
			last.OpType = proto.String("Reshape")
			last.Input = append(last.Input, "model.norm.weight")
		}},
		{"two dynamic operands", func(m *onnx.ModelProto) {
			g := m.Graph
			g.Node[2].Input[1] = "/model/embed_tokens/Gather_output_0"
		}},
		{"rank 2 logits", func(m *onnx.ModelProto) {
			d := m.Graph.Output[0].Type.GetTensorType().Shape
			d.Dim = d.Dim[1:]
		}},
		{"no logits output", func(m *onnx.ModelProto) { m.Graph.Output = m.Graph.Output[1:] }},
		{"opset 9", func(m *onnx.ModelProto) { m.OpsetImport[0].Version = proto.Int64(9) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := optimum(nil)
			tc.edit(m)
			data, err := proto.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, err := Model(data, "logits"); !errors.Is(err, ErrPattern) {
				t.Fatalf("Model: %v, want ErrPattern", err)
			}
		})
	}
}

// TestHead: Head finds the LM head whatever the positions the logits
// output declares, and refuses what plan refuses.
func TestHead(t *testing.T) {
	m := optimum(nil)
	i, err := Head(m.Graph, "logits")
	if err != nil || m.Graph.Node[i].GetName() != "/lm_head/MatMul" {
		t.Fatalf("Head: %d, %v", i, err)
	}
	if _, err := Graph(m.Graph, "logits", 14); err != nil {
		t.Fatal(err)
	}
	i, err = Head(m.Graph, "logits") // one position now: Graph would say ErrAlready
	if err != nil || m.Graph.Node[i].GetName() != "/lm_head/MatMul" {
		t.Fatalf("Head after the rewrite: %d, %v", i, err)
	}
	if _, err := Head(m.Graph, "nope"); !errors.Is(err, ErrPattern) {
		t.Fatalf("Head of a missing output: %v", err)
	}
}
