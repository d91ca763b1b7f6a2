package model

import (
	"fmt"
	"strings"

	"github.com/dsmil/l7/internal/onnx"
	"github.com/dsmil/l7/internal/onnx/weightref"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// ElemType is an ONNX tensor element type.
type ElemType int32

// The element types the plugin handles.
const (
	ElemFloat   = ElemType(onnx.TensorProto_FLOAT)
	ElemFloat16 = ElemType(onnx.TensorProto_FLOAT16)
	ElemInt64   = ElemType(onnx.TensorProto_INT64)
	ElemInt32   = ElemType(onnx.TensorProto_INT32)
	ElemBool    = ElemType(onnx.TensorProto_BOOL)
)

func (e ElemType) String() string {
	if n, ok := onnx.TensorProto_DataType_name[int32(e)]; ok {
		return strings.ToLower(n)
	}
	return fmt.Sprintf("type(%d)", int32(e))
}

// Size is the element's size in bytes (0 if unknown).
func (e ElemType) Size() int {
	switch e {
	case ElemFloat, ElemInt32:
		return 4
	case ElemFloat16:
		return 2
	case ElemInt64:
		return 8
	case ElemBool:
		return 1
	}
	return 0
}

// Dim is one dimension of a graph input or output: a fixed Value, or a
// symbolic Param (Value -1).
type Dim struct {
	Value int64
	Param string
}

func (d Dim) String() string {
	if d.Value >= 0 {
		return fmt.Sprint(d.Value)
	}
	if d.Param != "" {
		return d.Param
	}
	return "?"
}

// TensorInfo is a graph input or output.
type TensorInfo struct {
	Name string
	Elem ElemType
	// Shape is nil when the graph declares none.
	Shape []Dim
}

func (t TensorInfo) String() string {
	var dims []string
	for _, d := range t.Shape {
		dims = append(dims, d.String())
	}
	return fmt.Sprintf("%s %s[%s]", t.Name, t.Elem, strings.Join(dims, ", "))
}

// GraphInfo is what Open reads from an ONNX file without loading it.
type GraphInfo struct {
	Inputs  []TensorInfo
	Outputs []TensorInfo
	// ExternalData are the external data files the initializers name,
	// relative to the model file's directory, each once.
	ExternalData []string
	// Opsets maps operator-set domains ("" for ai.onnx) to versions.
	Opsets map[string]int64
	// Metadata is the model's metadata_props.
	Metadata map[string]string
	// Ops counts the main graph's nodes by operator, "op_type" for the
	// default domain and "domain:op_type" for others
	// ("com.microsoft:GroupQueryAttention").
	Ops map[string]int
}

// ReadGraphInfo reads the inputs, outputs, opsets, metadata and external
// data references of an ONNX model. It maps the file and skips over the
// weights, so it costs little even for a multi-gigabyte model.
func ReadGraphInfo(path string) (*GraphInfo, error) {
	m, err := weightref.Map(path)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	data := m.Data
	gi, err := parseModel(data)
	if err != nil {
		return nil, fmt.Errorf("%s: not a readable ONNX model: %w", path, err)
	}
	return gi, nil
}

// fields calls fn for each top-level field of a protobuf message.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		if typ == protowire.BytesType {
			v, n = protowire.ConsumeBytes(b)
		} else {
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return protowire.ParseError(n)
		}
		if err := fn(num, typ, v); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

func parseModel(data []byte) (*GraphInfo, error) {
	gi := &GraphInfo{Opsets: map[string]int64{}, Metadata: map[string]string{}, Ops: map[string]int{}}
	var graph []byte
	err := fields(data, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 7: // graph
			graph = v
		case 8: // opset_import
			var op onnx.OperatorSetIdProto
			if err := proto.Unmarshal(v, &op); err != nil {
				return err
			}
			gi.Opsets[op.GetDomain()] = op.GetVersion()
		case 14: // metadata_props
			var kv onnx.StringStringEntryProto
			if err := proto.Unmarshal(v, &kv); err != nil {
				return err
			}
			gi.Metadata[kv.GetKey()] = kv.GetValue()
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if graph == nil {
		return nil, fmt.Errorf("no graph")
	}
	inits := map[string]bool{}
	ext := map[string]bool{}
	var inputs, outputs []*onnx.ValueInfoProto
	err = fields(graph, func(num protowire.Number, typ protowire.Type, v []byte) error {
		if typ != protowire.BytesType {
			return nil
		}
		switch num {
		case 1: // node
			op, err := nodeOp(v)
			if err != nil {
				return err
			}
			gi.Ops[op]++
		case 5: // initializer: read its name and external data, skip the data
			name, loc, err := initializerRef(v)
			if err != nil {
				return err
			}
			inits[name] = true
			if loc != "" && !ext[loc] {
				ext[loc] = true
				gi.ExternalData = append(gi.ExternalData, loc)
			}
		case 11, 12: // input, output
			vi := &onnx.ValueInfoProto{}
			if err := proto.Unmarshal(v, vi); err != nil {
				return err
			}
			if num == 11 {
				inputs = append(inputs, vi)
			} else {
				outputs = append(outputs, vi)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, vi := range inputs {
		if !inits[vi.GetName()] { // IR < 4 lists initializers as inputs too
			gi.Inputs = append(gi.Inputs, tensorInfo(vi))
		}
	}
	for _, vi := range outputs {
		gi.Outputs = append(gi.Outputs, tensorInfo(vi))
	}
	return gi, nil
}

// initializerRef returns a TensorProto's name and external data location
// without decoding its data.
func initializerRef(b []byte) (name, location string, err error) {
	err = fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == 8 && typ == protowire.BytesType:
			name = string(v)
		case num == 13 && typ == protowire.BytesType:
			var kv onnx.StringStringEntryProto
			if err := proto.Unmarshal(v, &kv); err != nil {
				return err
			}
			if kv.GetKey() == "location" {
				location = kv.GetValue()
			}
		}
		return nil
	})
	return name, location, err
}

// nodeOp returns a NodeProto's operator: "op_type", or "domain:op_type"
// outside the default domain.
func nodeOp(b []byte) (string, error) {
	var op, domain string
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == 4 && typ == protowire.BytesType:
			op = string(v)
		case num == 7 && typ == protowire.BytesType:
			domain = string(v)
		}
		return nil
	})
	if domain != "" && domain != "ai.onnx" {
		op = domain + ":" + op
	}
	return op, err
}

func tensorInfo(vi *onnx.ValueInfoProto) TensorInfo {
	ti := TensorInfo{Name: vi.GetName()}
	tt := vi.GetType().GetTensorType()
	if tt == nil {
		return ti
	}
	ti.Elem = ElemType(tt.GetElemType())
	if sh := tt.GetShape(); sh != nil {
		ti.Shape = make([]Dim, 0, len(sh.GetDim()))
		for _, d := range sh.GetDim() {
			switch v := d.GetValue().(type) {
			case *onnx.TensorShapeProto_Dimension_DimValue:
				ti.Shape = append(ti.Shape, Dim{Value: v.DimValue})
			case *onnx.TensorShapeProto_Dimension_DimParam:
				ti.Shape = append(ti.Shape, Dim{Value: -1, Param: v.DimParam})
			default:
				ti.Shape = append(ti.Shape, Dim{Value: -1})
			}
		}
	}
	return ti
}
