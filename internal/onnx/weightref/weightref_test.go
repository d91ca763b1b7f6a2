package weightref

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/dsmil/l7/internal/onnx"
	"google.golang.org/protobuf/proto"
)

func tensor(name string, dt onnx.TensorProto_DataType, n int, fill byte) *onnx.TensorProto {
	raw := bytes.Repeat([]byte{fill}, n)
	for i := range raw {
		raw[i] += byte(i * 7)
	}
	return &onnx.TensorProto{Name: proto.String(name), DataType: proto.Int32(int32(dt)), Dims: []int64{int64(n)}, RawData: raw}
}

func node(op string, ins ...string) *onnx.NodeProto {
	return &onnx.NodeProto{OpType: proto.String(op), Input: ins, Output: []string{op + "_out"}}
}

// testModel has a large float table read by Gather, a large uint8 matrix
// read by MatMulNBits, a small float vector, a large int64 tensor and a
// tensor already in external data.
func testModel() *onnx.ModelProto {
	loc := onnx.TensorProto_EXTERNAL
	ext := &onnx.TensorProto{Name: proto.String("ext"), DataType: proto.Int32(int32(onnx.TensorProto_FLOAT)), Dims: []int64{4},
		DataLocation: &loc, ExternalData: []*onnx.StringStringEntryProto{
			{Key: proto.String("location"), Value: proto.String("w.bin")},
			{Key: proto.String("offset"), Value: proto.String("4096")},
			{Key: proto.String("length"), Value: proto.String("16")},
		}}
	mm := node("MatMulNBits", "Gather_out", "big_u8", "", "small")
	mm.Domain = proto.String("com.microsoft")
	return &onnx.ModelProto{IrVersion: proto.Int64(8), Graph: &onnx.GraphProto{
		Name: proto.String("g"),
		Node: []*onnx.NodeProto{node("Gather", "table", "ids"), mm, node("Add", "MatMulNBits_out", "small", "small")},
		Initializer: []*onnx.TensorProto{
			tensor("table", onnx.TensorProto_FLOAT, 100_000, 1),
			tensor("big_u8", onnx.TensorProto_UINT8, 70_000, 2),
			tensor("small", onnx.TensorProto_FLOAT, 100, 3),
			tensor("shape", onnx.TensorProto_INT64, 80_000, 4),
			ext,
		},
	}}
}

func marshal(t *testing.T, m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// resolve turns the references to loc back into raw_data read from data.
func resolve(t *testing.T, m *onnx.ModelProto, loc string, data []byte) {
	for _, x := range m.Graph.Initializer {
		kv := map[string]string{}
		for _, e := range x.ExternalData {
			kv[e.GetKey()] = e.GetValue()
		}
		if kv["location"] != loc {
			continue
		}
		off, _ := strconv.Atoi(kv["offset"])
		n, _ := strconv.Atoi(kv["length"])
		x.RawData, x.ExternalData, x.DataLocation = data[off:off+n], nil, nil
	}
}

// TestModel: the large float and uint8 initializers become references to
// their raw_data's place in the file, the small one, the int64 one (shape
// inference reads such) and the one in external data stay as they are, and
// nothing else changes.
func TestModel(t *testing.T) {
	orig := testModel()
	data := marshal(t, orig)
	out, err := Model(data, &Options{Location: "model.onnx"})
	if err != nil {
		t.Fatal(err)
	}
	got := &onnx.ModelProto{}
	if err := proto.Unmarshal(out, got); err != nil {
		t.Fatal(err)
	}
	if len(out) > 100_000 {
		t.Fatalf("rewritten model is %d bytes: the weights are still in it", len(out))
	}
	for _, x := range got.Graph.Initializer {
		external := x.GetDataLocation() == onnx.TensorProto_EXTERNAL
		want := x.GetName() == "table" || x.GetName() == "big_u8" || x.GetName() == "ext"
		if external != want || (external && x.RawData != nil) {
			t.Errorf("%s: external %v (raw_data %d bytes), want %v", x.GetName(), external, len(x.RawData), want)
		}
	}
	resolve(t, got, "model.onnx", data)
	if !proto.Equal(got, orig) {
		t.Fatal("the rewritten model's references do not give back the original")
	}
	// MinBytes < 0: every float and uint8 initializer.
	out, err = Model(data, &Options{Location: "model.onnx", MinBytes: -1})
	if err != nil {
		t.Fatal(err)
	}
	got = &onnx.ModelProto{}
	if err := proto.Unmarshal(out, got); err != nil {
		t.Fatal(err)
	}
	if got.Graph.Initializer[2].GetDataLocation() != onnx.TensorProto_EXTERNAL || got.Graph.Initializer[3].RawData == nil {
		t.Fatalf("MinBytes -1: small %v, shape %v", got.Graph.Initializer[2].GetDataLocation(), got.Graph.Initializer[3].GetDataLocation())
	}
	resolve(t, got, "model.onnx", data)
	if !proto.Equal(got, orig) {
		t.Fatal("MinBytes -1: the references do not give back the original")
	}
}

func TestInitializersAndReaders(t *testing.T) {
	data := marshal(t, testModel())
	ts, err := Initializers(data, "m.onnx")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range ts {
		names = append(names, x.Name)
		if x.Name == "table" {
			if x.External || x.Ref.Location != "m.onnx" || x.Ref.Length != 100_000 || !slices.Equal(x.Dims, []int64{100_000}) ||
				x.DataType != int32(onnx.TensorProto_FLOAT) {
				t.Fatalf("table: %+v", x)
			}
			if want := testModel().Graph.Initializer[0].RawData; !bytes.Equal(data[x.Ref.Offset:x.Ref.Offset+x.Ref.Length], want) {
				t.Fatal("table: the offset does not point at its bytes")
			}
		}
		if x.Name == "ext" && (!x.External || x.Ref != (Ref{"w.bin", 4096, 16})) {
			t.Fatalf("ext: %+v", x)
		}
	}
	if !slices.Equal(names, []string{"table", "big_u8", "small", "shape", "ext"}) {
		t.Fatalf("initializers %v", names)
	}
	r, err := Readers(data)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r["table"], []string{"Gather"}) || !slices.Equal(r["big_u8"], []string{"com.microsoft:MatMulNBits"}) ||
		!slices.Equal(r["small"], []string{"com.microsoft:MatMulNBits", "Add"}) {
		t.Fatalf("readers %v", r)
	}
}

// TestShared: a tensor with the other model's name, type, shape and bytes
// is pointed at the other model's bytes; one whose bytes differ, or whose
// shape does, is not, nor an int64 one (it stays inline).
func TestShared(t *testing.T) {
	dir := t.TempDir()
	mainModel := testModel()
	mainData := marshal(t, mainModel)
	other := testModel()
	other.Graph.Initializer[1].RawData[69_999] ^= 1 // big_u8 differs in its last byte
	other.Graph.Initializer[2].Dims = []int64{10, 10}
	otherData := marshal(t, other)
	for name, b := range map[string][]byte{"main.onnx": mainData, "other.onnx": otherData} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mainInits, err := Initializers(mainData, "main.onnx")
	if err != nil {
		t.Fatal(err)
	}
	s := NewShared(dir, mainInits, 0)
	defer s.Close()
	out, err := Model(otherData, &Options{Location: "other.onnx", Redirect: s.Redirect})
	if err != nil {
		t.Fatal(err)
	}
	if s.Moved != 1 || s.MovedBytes != 100_000 {
		t.Fatalf("moved %d tensors, %d bytes; want the table's 100000", s.Moved, s.MovedBytes)
	}
	got := &onnx.ModelProto{}
	if err := proto.Unmarshal(out, got); err != nil {
		t.Fatal(err)
	}
	locs := map[string]string{}
	for _, x := range got.Graph.Initializer {
		for _, e := range x.ExternalData {
			if e.GetKey() == "location" {
				locs[x.GetName()] = e.GetValue()
			}
		}
	}
	if locs["table"] != "main.onnx" || locs["big_u8"] != "other.onnx" || locs["small"] != "" || locs["shape"] != "" ||
		locs["ext"] != "w.bin" {
		t.Fatalf("locations %v", locs)
	}
	resolve(t, got, "main.onnx", mainData)
	resolve(t, got, "other.onnx", otherData)
	if !proto.Equal(got, other) {
		t.Fatal("the redirected model does not give back the original")
	}
}

func FuzzModel(f *testing.F) {
	small := testModel()
	for _, x := range small.Graph.Initializer {
		if x.RawData != nil {
			x.RawData, x.Dims = x.RawData[:8], []int64{8}
		}
	}
	b, _ := proto.Marshal(small)
	f.Add(b)
	f.Add([]byte{0x3a, 0x03, 0x2a, 0x01, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) {
		out, err := Model(data, &Options{Location: "m.onnx", MinBytes: -1})
		if _, ierr := Initializers(data, "m.onnx"); ierr != nil && err == nil {
			// Model copies what it does not look into; Initializers
			// decodes every initializer's header, as Model does.
			t.Fatalf("Model accepted what Initializers refused: %v", ierr)
		}
		Readers(data)
		if err != nil {
			return
		}
		var m onnx.ModelProto
		if proto.Unmarshal(data, &m) == nil {
			if err := proto.Unmarshal(out, &m); err != nil {
				t.Fatalf("a valid model became an invalid one: %v", err)
			}
		}
	})
}
