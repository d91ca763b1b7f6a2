// Package extdata writes an ONNX model's external data file: tensors'
// bytes appended at offsets aligned to 4 KiB (so that ONNX Runtime can map
// them), each tensor made to reference its bytes there. The model
// generator and the prefill-graph conversion write their weights with it.
package extdata

import (
	"bufio"
	"os"
	"strconv"

	"github.com/dsmil/l7/internal/onnx"
	"google.golang.org/protobuf/proto"
)

// Align is the alignment of every tensor's offset in the file.
const Align = 4096

// Writer appends tensors' bytes to one data file.
type Writer struct {
	location string // the file's name as the tensors reference it
	f        *os.File
	w        *bufio.Writer
	off      int64
}

// Create creates (or truncates) the data file at path; location is its
// name relative to the model's directory, which the tensors reference.
func Create(path, location string) (*Writer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &Writer{location: location, f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// Write appends raw at the next aligned offset and makes t reference it:
// its inline data is cleared, its data location set to EXTERNAL with the
// file's location, the offset and the length.
func (w *Writer) Write(t *onnx.TensorProto, raw []byte) error {
	if pad := (Align - w.off%Align) % Align; pad > 0 {
		if _, err := w.w.Write(make([]byte, pad)); err != nil {
			return err
		}
		w.off += pad
	}
	if _, err := w.w.Write(raw); err != nil {
		return err
	}
	loc := onnx.TensorProto_EXTERNAL
	t.RawData, t.FloatData, t.DataLocation = nil, nil, &loc
	t.ExternalData = []*onnx.StringStringEntryProto{
		{Key: proto.String("location"), Value: proto.String(w.location)},
		{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(w.off, 10))},
		{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(raw)))},
	}
	w.off += int64(len(raw))
	return nil
}

// Size is the file's length so far, padding included.
func (w *Writer) Size() int64 { return w.off }

// Name is the file's path.
func (w *Writer) Name() string { return w.f.Name() }

// Close flushes and closes the file. Later calls do nothing.
func (w *Writer) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.w.Flush()
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	w.f = nil
	return err
}
