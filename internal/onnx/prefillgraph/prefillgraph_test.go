package prefillgraph_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/internal/onnx"
	"github.com/dsmil/l7/internal/onnx/prefillgraph"
	"google.golang.org/protobuf/proto"
)

// tiny writes the tiny preset (int4 unless edit changes it) into a
// temporary directory and returns its model file.
func tiny(t *testing.T, edit func(*mkmodel.Spec)) string {
	t.Helper()
	s, err := mkmodel.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	s.Seed, s.DType = 3, mkmodel.Int4
	if edit != nil {
		edit(&s)
	}
	r, err := mkmodel.Write(t.TempDir(), s)
	if err != nil {
		t.Fatal(err)
	}
	return r.ONNX
}

func read(t *testing.T, path string) *onnx.ModelProto {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := &onnx.ModelProto{}
	if err := proto.Unmarshal(b, m); err != nil {
		t.Fatal(err)
	}
	return m
}

func write(t *testing.T, path string, m *onnx.ModelProto) {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func convert(t *testing.T, src string) (string, *prefillgraph.Info, error) {
	t.Helper()
	dst := strings.TrimSuffix(src, ".onnx") + "_prefill.onnx"
	info, err := prefillgraph.File(src, dst, prefillgraph.Options{})
	return dst, info, err
}

func firstNBits(m *onnx.ModelProto) *onnx.NodeProto {
	for _, n := range m.Graph.Node {
		if n.GetOpType() == "MatMulNBits" {
			return n
		}
	}
	return nil
}

// TestErrors: the conversion refuses what it cannot convert with an error
// that names the node, and files that are not ONNX models.
func TestErrors(t *testing.T) {
	src := tiny(t, nil)
	for _, tc := range []struct {
		name string
		edit func(n *onnx.NodeProto, m *onnx.ModelProto)
		want string
	}{
		{"bits", func(n *onnx.NodeProto, _ *onnx.ModelProto) {
			for _, a := range n.Attribute {
				if a.GetName() == "bits" {
					a.I = proto.Int64(2)
				}
			}
		}, "bits 2 (the conversion handles 4 and 8)"},
		{"g_idx", func(n *onnx.NodeProto, _ *onnx.ModelProto) {
			n.Input = append(n.Input[:3], "", "g_idx")
		}, `g_idx input "g_idx"`},
		{"fp16-scales", func(n *onnx.NodeProto, m *onnx.ModelProto) {
			for _, t := range m.Graph.Initializer {
				if t.GetName() == n.Input[2] {
					t.DataType = proto.Int32(int32(onnx.TensorProto_FLOAT16))
				}
			}
		}, "float16 scales"},
		{"opset", func(_ *onnx.NodeProto, m *onnx.ModelProto) {
			m.OpsetImport[0].Version = proto.Int64(10)
		}, "default opset 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := read(t, src)
			n := firstNBits(m)
			tc.edit(n, m)
			p := filepath.Join(t.TempDir(), "model.onnx")
			write(t, p, m)
			dst, _, err := convert(t, p)
			if !errors.Is(err, prefillgraph.ErrUnsupported) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrUnsupported with %q", err, tc.want)
			}
			if tc.name != "opset" && !strings.Contains(err.Error(), n.GetName()) {
				t.Errorf("error %q does not name node %q", err, n.GetName())
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Errorf("a failed conversion left %s (%v)", dst, err)
			}
			if left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "*_data*")); len(left) > 0 {
				t.Errorf("a failed conversion left %v", left)
			}
		})
	}
	dir := t.TempDir()
	for name, content := range map[string]string{"text.onnx": "not a model\n", "empty.onnx": ""} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := convert(t, p); !errors.Is(err, prefillgraph.ErrNotONNX) {
			t.Errorf("%s: %v, want ErrNotONNX", name, err)
		}
	}
	if _, _, err := convert(t, filepath.Join(dir, "missing.onnx")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// A graph whose only MatMul multiplies two dynamic tensors.
	m := read(t, src)
	m.Graph.Node = []*onnx.NodeProto{{OpType: proto.String("MatMul"), Name: proto.String("mm"),
		Input: []string{"input_ids", "attention_mask"}, Output: []string{"logits"}}}
	p := filepath.Join(dir, "nothing.onnx")
	write(t, p, m)
	if _, _, err := convert(t, p); !errors.Is(err, prefillgraph.ErrNothing) {
		t.Errorf("no constant weight: %v, want ErrNothing", err)
	}
}

// TestUnchanged: the converted graph keeps the main graph's inputs,
// outputs and every initializer it does not convert, names and bytes
// (the embedding table among them), and no converted weight stays.
func TestUnchanged(t *testing.T) {
	src := tiny(t, func(s *mkmodel.Spec) { s.ExternalDataThreshold = -1 }) // weights in external data
	dst, info, err := convert(t, src)
	if err != nil {
		t.Fatal(err)
	}
	a, b := read(t, src), read(t, dst)
	if !proto.Equal(&onnx.GraphProto{Input: a.Graph.Input, Output: a.Graph.Output}, &onnx.GraphProto{Input: b.Graph.Input, Output: b.Graph.Output}) {
		t.Fatal("inputs or outputs changed")
	}
	bytesOf := func(path string, tp *onnx.TensorProto) []byte {
		if tp.GetDataLocation() != onnx.TensorProto_EXTERNAL {
			return tp.RawData
		}
		var loc string
		var off, n int
		for _, kv := range tp.ExternalData {
			switch kv.GetKey() {
			case "location":
				loc = kv.GetValue()
			case "offset":
				off = atoi(t, kv.GetValue())
			case "length":
				n = atoi(t, kv.GetValue())
			}
		}
		f, err := os.ReadFile(filepath.Join(filepath.Dir(path), loc))
		if err != nil {
			t.Fatal(err)
		}
		return f[off : off+n]
	}
	out := map[string]*onnx.TensorProto{}
	for _, tp := range b.Graph.Initializer {
		out[tp.GetName()] = tp
	}
	kept := 0
	for _, tp := range a.Graph.Initializer {
		o, ok := out[tp.GetName()]
		converted := strings.HasSuffix(tp.GetName(), ".qweight") || strings.HasSuffix(tp.GetName(), ".scales")
		switch {
		case converted && ok:
			t.Errorf("converted weight %s is still there", tp.GetName())
		case !converted && !ok:
			t.Errorf("initializer %s is gone", tp.GetName())
		case ok:
			kept++
			if !bytes.Equal(bytesOf(src, tp), bytesOf(dst, o)) || o.GetDataType() != tp.GetDataType() {
				t.Errorf("initializer %s changed", tp.GetName())
			}
		}
	}
	if kept == 0 || out["model.embed_tokens.weight"] == nil || info.Linears != 14 || len(info.Files) != 2 {
		t.Fatalf("kept %d initializers, info %+v", kept, info)
	}
}

func atoi(t *testing.T, s string) int {
	n := 0
	for _, c := range s {
		if c < '0' || c > '9' {
			t.Fatalf("not a number: %q", s)
		}
		n = n*10 + int(c-'0')
	}
	return n
}

// TestZeroPoints: explicit MatMulNBits zero points equal to the default
// (8 for int4) give the same int8 weights as none, and other zero points
// other ones.
func TestZeroPoints(t *testing.T) {
	src := tiny(t, nil)
	data := func(zp byte) []byte {
		m := read(t, src)
		for _, n := range m.Graph.Node {
			if n.GetOpType() != "MatMulNBits" {
				continue
			}
			var N, blocks int64
			for _, a := range n.Attribute {
				switch a.GetName() {
				case "N":
					N = a.GetI()
				case "K":
					blocks = (a.GetI() + 31) / 32
				}
			}
			name := n.GetName() + ".zp"
			m.Graph.Initializer = append(m.Graph.Initializer, &onnx.TensorProto{Name: proto.String(name),
				DataType: proto.Int32(int32(onnx.TensorProto_UINT8)), Dims: []int64{N, (blocks + 1) / 2},
				RawData: bytes.Repeat([]byte{zp<<4 | zp}, int(N*((blocks+1)/2)))})
			n.Input = append(n.Input[:3], name)
		}
		p := filepath.Join(t.TempDir(), "model.onnx")
		write(t, p, m)
		dst, _, err := convert(t, p)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(dst + "_data")
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	_, _, err := convert(t, src)
	if err != nil {
		t.Fatal(err)
	}
	none, err := os.ReadFile(strings.TrimSuffix(src, ".onnx") + "_prefill.onnx_data")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(data(8), none) {
		t.Error("zero points 8 (the default) changed the int8 weights")
	}
	if bytes.Equal(data(7), none) {
		t.Error("zero points 7 gave the default's int8 weights")
	}
}
