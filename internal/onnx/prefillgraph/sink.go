package prefillgraph

import (
	"bufio"
	"os"
	"strconv"

	"github.com/dsmil/l7/internal/onnx"
	"google.golang.org/protobuf/proto"
)

// inlineMax is the largest initializer kept inline in the graph.
const inlineMax = 1024

// sink appends initializers' bytes to the external data file, at offsets
// aligned to 4 KiB (so ONNX Runtime can map them).
type sink struct {
	location string // the data file's name, relative to the graph's directory
	f        *os.File
	w        *bufio.Writer
	off      int64
}

func newSink(path, location string) (*sink, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	return &sink{location: location, f: f, w: bufio.NewWriterSize(f, 1<<20)}, nil
}

// external writes raw and makes t reference it.
func (s *sink) external(t *onnx.TensorProto, raw []byte) error {
	if pad := (4096 - s.off%4096) % 4096; pad > 0 {
		if _, err := s.w.Write(make([]byte, pad)); err != nil {
			return err
		}
		s.off += pad
	}
	if _, err := s.w.Write(raw); err != nil {
		return err
	}
	loc := onnx.TensorProto_EXTERNAL
	t.RawData, t.FloatData, t.DataLocation = nil, nil, &loc
	t.ExternalData = []*onnx.StringStringEntryProto{
		{Key: proto.String("location"), Value: proto.String(s.location)},
		{Key: proto.String("offset"), Value: proto.String(strconv.FormatInt(s.off, 10))},
		{Key: proto.String("length"), Value: proto.String(strconv.Itoa(len(raw)))},
	}
	s.off += int64(len(raw))
	return nil
}

func (s *sink) close() error {
	if s.f == nil {
		return nil
	}
	err := s.w.Flush()
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}

// add adds a new initializer to g, written to the data file when large.
func (c *converter) add(g *onnx.GraphProto, name string, dtype int32, dims []int64, raw []byte) error {
	t := &onnx.TensorProto{Name: proto.String(name), DataType: proto.Int32(dtype), Dims: dims}
	g.Initializer = append(g.Initializer, t)
	c.added[t] = true
	if len(raw) <= inlineMax {
		t.RawData = raw
		return nil
	}
	return c.sink.external(t, raw)
}

// writeInitializers moves g's (and its subgraphs') initializers that are
// external data in the source model, or large raw_data, to the output's
// data file, with their bytes unchanged. Integer tensors of shape types
// stay inline (ONNX Runtime's shape inference reads them from the
// graph), unless they were external already.
func (c *converter) writeInitializers(g *onnx.GraphProto) error {
	for _, t := range g.GetInitializer() {
		if c.added[t] {
			continue
		}
		ext := t.GetDataLocation() == onnx.TensorProto_EXTERNAL
		shapeType := t.GetDataType() == elemInt64 || t.GetDataType() == elemInt32
		if !ext && (t.RawData == nil || len(t.RawData) <= inlineMax || shapeType) {
			continue
		}
		raw, err := c.src.bytes(t)
		if err != nil {
			return err
		}
		if err := c.sink.external(t, raw); err != nil {
			return err
		}
	}
	for _, n := range g.GetNode() {
		for _, a := range n.GetAttribute() {
			if a.G != nil {
				if err := c.writeInitializers(a.G); err != nil {
					return err
				}
			}
			for _, sg := range a.Graphs {
				if err := c.writeInitializers(sg); err != nil {
					return err
				}
			}
		}
	}
	return nil
}
