package prefillgraph

import (
	"github.com/dsmil/l7/internal/onnx"
	"google.golang.org/protobuf/proto"
)

// inlineMax is the largest initializer kept inline in the graph.
const inlineMax = 1024

// add adds a new initializer to g, written to the data file when large.
func (c *converter) add(g *onnx.GraphProto, name string, dtype int32, dims []int64, raw []byte) error {
	t := &onnx.TensorProto{Name: proto.String(name), DataType: proto.Int32(dtype), Dims: dims}
	g.Initializer = append(g.Initializer, t)
	c.added[t] = true
	if len(raw) <= inlineMax {
		t.RawData = raw
		return nil
	}
	return c.sink.Write(t, raw)
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
		if err := c.sink.Write(t, raw); err != nil {
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
