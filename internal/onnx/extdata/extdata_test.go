package extdata

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/dsmil/l7/internal/onnx"
)

// TestWrite: tensors land at 4 KiB-aligned offsets with their own bytes,
// each referencing location, offset and length, its inline data cleared;
// Close twice is fine.
func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.onnx_data")
	w, err := Create(path, "m.onnx_data")
	if err != nil {
		t.Fatal(err)
	}
	a := &onnx.TensorProto{RawData: []byte{9}, FloatData: []float32{1}}
	b := &onnx.TensorProto{}
	rawA, rawB := bytes.Repeat([]byte{1}, 5000), []byte{2, 3, 4}
	if err := w.Write(a, rawA); err != nil {
		t.Fatal(err)
	}
	if err := w.Write(b, rawB); err != nil {
		t.Fatal(err)
	}
	if w.Size() != 2*Align+3 {
		t.Errorf("size %d, want %d", w.Size(), 2*Align+3)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		t   *onnx.TensorProto
		raw []byte
		off int
	}{{a, rawA, 0}, {b, rawB, 2 * Align}} {
		if tc.t.GetDataLocation() != onnx.TensorProto_EXTERNAL || tc.t.RawData != nil || tc.t.FloatData != nil {
			t.Fatalf("tensor not made external: %v", tc.t)
		}
		got := map[string]string{}
		for _, e := range tc.t.GetExternalData() {
			got[e.GetKey()] = e.GetValue()
		}
		if got["location"] != "m.onnx_data" || got["offset"] != strconv.Itoa(tc.off) || got["length"] != strconv.Itoa(len(tc.raw)) {
			t.Errorf("external data %v, want offset %d length %d", got, tc.off, len(tc.raw))
		}
		if !bytes.Equal(file[tc.off:tc.off+len(tc.raw)], tc.raw) {
			t.Errorf("bytes at %d are not the tensor's", tc.off)
		}
	}
}
