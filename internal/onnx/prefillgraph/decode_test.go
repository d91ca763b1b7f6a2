package prefillgraph

import (
	"testing"

	"github.com/dsmil/l7/internal/onnx"
	"google.golang.org/protobuf/proto"
)

func sampleModel() *onnx.ModelProto {
	f := int32(onnx.TensorProto_FLOAT)
	return &onnx.ModelProto{IrVersion: proto.Int64(8),
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph: &onnx.GraphProto{Name: proto.String("g"),
			Node: []*onnx.NodeProto{{OpType: proto.String("MatMul"), Input: []string{"x", "w"}, Output: []string{"y"}}},
			Initializer: []*onnx.TensorProto{
				{Name: proto.String("w"), DataType: &f, Dims: []int64{2, 2}, RawData: []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}},
				{Name: proto.String("typed"), DataType: &f, Dims: []int64{2}, FloatData: []float32{1, 2}},
				{Name: proto.String("empty"), DataType: &f, Dims: []int64{0}, RawData: []byte{}},
			}}}
}

// FuzzDecode: decode (the weights left in the input) reads exactly what
// proto.Unmarshal reads, and fails exactly when it fails.
func FuzzDecode(f *testing.F) {
	b, err := proto.Marshal(sampleModel())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte("not a model\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		want := &onnx.ModelProto{}
		werr := proto.Unmarshal(data, want)
		got, gerr := decode(data)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("proto.Unmarshal: %v, decode: %v", werr, gerr)
		}
		if werr == nil && !proto.Equal(got, want) {
			t.Fatalf("decode gives\n%v\nproto.Unmarshal\n%v", got, want)
		}
	})
}

// TestDecodeShares: decode's raw_data are views of its input, not copies.
func TestDecodeShares(t *testing.T) {
	b, err := proto.Marshal(sampleModel())
	if err != nil {
		t.Fatal(err)
	}
	m, err := decode(b)
	if err != nil {
		t.Fatal(err)
	}
	raw := m.Graph.Initializer[0].RawData
	if len(raw) != 16 || cap(b)-cap(raw) < 0 || &b[cap(b)-cap(raw)] != &raw[0] {
		t.Fatal("raw_data was copied")
	}
}
