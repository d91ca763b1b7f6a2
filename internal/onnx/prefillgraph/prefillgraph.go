// Package prefillgraph converts a decoder's ONNX graph into its prefill
// graph: the same model with every linear layer whose weight is a
// constant initializer in int8 through ONNX Runtime's u8×s8 GEMM (MLAS
// QGEMM, AMX tile kernels on CPUs with AMX-INT8), the form llm-amx's
// prefill_graph setting runs prompt chunks and large batch steps on and
// that internal/mkmodel writes for its own models (Spec.PrefillGraph).
//
// Each linear — com.microsoft MatMulNBits (4 or 8 bits, any block size,
// with or without zero points, float32 scales) or an ONNX MatMul whose
// second input is a rank-2 float32 initializer — becomes
//
//	DynamicQuantizeLinear(x)  (once per input tensor, shared by its readers)
//	MatMulInteger(x_u8, W_s8, x_zero_point) → Cast(float) → Mul(x_scale × W_scale)
//
// with W dequantized as MatMulNBits computes it and requantized per output
// channel (internal/quant, the generator's code, so a converted generator
// model is bit-identical to the generator's own prefill graph). When the
// logits output declares one position (the generator's graphs; llm-amx's
// load-time rewrite of all-position graphs), the LM head (found as
// internal/onnx/lastlogits finds it) becomes an If on the rows it
// multiplies: from HeadRows rows the int8 form, under it the original
// node. When the logits output has every position (Optimum's and
// onnxruntime-genai's exports), the LM head is left as it is, so that
// llm-amx's load-time last-position rewrite, which it applies to both
// graphs, finds it. Every other node and initializer is unchanged, names
// included; large initializers go to an external data file beside the
// output (<file>_data).
package prefillgraph

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"

	"github.com/dsmil/l7/internal/onnx"
	"github.com/dsmil/l7/internal/onnx/extdata"
	"github.com/dsmil/l7/internal/onnx/weightref"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// HeadRows is the number of rows (batch × positions reaching the LM head)
// from which the prefill graph's LM head multiplies in int8.
const HeadRows = 5

// DefaultLogits is the logits output's usual name.
const DefaultLogits = "logits"

var (
	// ErrNotONNX reports a file that is not an ONNX model.
	ErrNotONNX = errors.New("prefillgraph: not an ONNX model")
	// ErrUnsupported reports a linear the conversion cannot handle; the
	// message names the node.
	ErrUnsupported = errors.New("prefillgraph: unsupported")
	// ErrNothing reports a graph without a linear to convert.
	ErrNothing = errors.New("prefillgraph: no linear with a constant weight to convert")
)

// Options configure a conversion.
type Options struct {
	// Logits is the logits output's name; "" is DefaultLogits.
	Logits string
}

// Info says what a conversion did.
type Info struct {
	// Linears is the number of linears converted to u8×s8, the LM head
	// not counted.
	Linears int
	// Head is the LM head node ("MatMulNBits /lm_head/MatMulNBits"), ""
	// when lastlogits did not find one; HeadForm what became of it.
	Head, HeadForm string
	// Skipped lists the MatMul nodes left as they are, and why.
	Skipped []string
	// Files are the files written: the graph and its external data.
	Files []string
	// DataBytes is the size of the external data file.
	DataBytes int64
}

// Elements of TensorProto.DataType.
const (
	elemFloat   = int32(onnx.TensorProto_FLOAT)
	elemFloat16 = int32(onnx.TensorProto_FLOAT16)
	elemUint8   = int32(onnx.TensorProto_UINT8)
	elemInt8    = int32(onnx.TensorProto_INT8)
	elemInt64   = int32(onnx.TensorProto_INT64)
	elemInt32   = int32(onnx.TensorProto_INT32)
)

// File converts the decoder in the ONNX file src (inline weights or
// external data beside it) and writes its prefill graph to dst, with
// external data in dst + "_data". The model file is mapped and decoded
// without copying its main graph's weights: memory is the mapped pages
// read (up to the file's size) plus the largest converted weight in int8.
func File(src, dst string, o Options) (*Info, error) {
	if o.Logits == "" {
		o.Logits = DefaultLogits
	}
	m, mapped, err := load(src)
	if err != nil {
		return nil, err
	}
	defer mapped.Close()
	in := &source{dir: filepath.Dir(src), files: map[string]*weightref.Mapped{}}
	defer in.close()
	data := dst + "_data"
	tmp := data + ".tmp"
	out, err := extdata.Create(tmp, filepath.Base(data))
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			out.Close()
			os.Remove(tmp)
		}
	}()
	c := &converter{m: m, g: m.GetGraph(), src: in, sink: out, opts: o}
	info, err := c.convert()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	if err := c.writeInitializers(c.g); err != nil {
		return nil, err
	}
	if err := out.Close(); err != nil {
		return nil, err
	}
	m.MetadataProps = append(m.MetadataProps, &onnx.StringStringEntryProto{
		Key: proto.String("dsmil.prefill_graph_of"), Value: proto.String(filepath.Base(src))})
	enc, err := proto.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("prefillgraph: encoding %s: %w", dst, err)
	}
	if err := os.WriteFile(dst+".tmp", enc, 0o644); err != nil {
		return nil, err
	}
	info.Files = []string{dst}
	if out.Size() > 0 {
		if err := os.Rename(tmp, data); err != nil {
			return nil, err
		}
		info.Files, info.DataBytes = append(info.Files, data), out.Size()
	} else {
		os.Remove(tmp)
		os.Remove(data) // a stale one from an earlier conversion
	}
	if err := os.Rename(dst+".tmp", dst); err != nil {
		return nil, err
	}
	ok = true
	return info, nil
}

// load maps the file at path and decodes the model in it, except the
// bytes of the main graph's initializers: their raw_data are views of the
// mapping (the caller closes it when done), so the weights are not copied.
func load(path string) (*onnx.ModelProto, *weightref.Mapped, error) {
	f, err := weightref.Map(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil, err
		}
		return nil, nil, fmt.Errorf("%w: %v", ErrNotONNX, err)
	}
	m, err := decode(f.Data)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s: %v", ErrNotONNX, path, err)
	}
	if len(m.GetGraph().GetNode()) == 0 || len(m.GetOpsetImport()) == 0 {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s has no graph nodes or opset", ErrNotONNX, path)
	}
	return m, f, nil
}

// Field numbers: ModelProto.graph, GraphProto.initializer,
// TensorProto.raw_data.
const (
	modelGraph    = 7
	graphInit     = 5
	tensorRawData = 9
)

// value is a bytes field's value, nil for a field of another wire type.
func value(field []byte) []byte {
	_, typ, n := protowire.ConsumeTag(field)
	if typ != protowire.BytesType {
		return nil
	}
	v, _ := protowire.ConsumeBytes(field[n:])
	if v == nil {
		v = []byte{}
	}
	return v
}

// decode decodes an encoded ModelProto with the main graph's
// initializers' raw_data left in data (see load).
func decode(data []byte) (*onnx.ModelProto, error) {
	top, nums, err := weightref.Fields(data)
	if err != nil {
		return nil, err
	}
	var stripped []byte
	var raws [][]byte // per initializer, in order
	for i, f := range top {
		g := value(f)
		if nums[i] != modelGraph || g == nil {
			stripped = append(stripped, f...)
			continue
		}
		gfields, gnums, err := weightref.Fields(g)
		if err != nil {
			return nil, fmt.Errorf("graph: %w", err)
		}
		var graph []byte
		for j, gf := range gfields {
			t := value(gf)
			if gnums[j] != graphInit || t == nil {
				graph = append(graph, gf...)
				continue
			}
			tfields, tnums, err := weightref.Fields(t)
			if err != nil {
				return nil, fmt.Errorf("initializer: %w", err)
			}
			var tensor, raw []byte
			for k, tf := range tfields {
				if v := value(tf); tnums[k] == tensorRawData && v != nil {
					raw = v // the last one, as proto.Unmarshal keeps
					continue
				}
				tensor = append(tensor, tf...)
			}
			raws = append(raws, raw)
			graph = protowire.AppendTag(graph, graphInit, protowire.BytesType)
			graph = protowire.AppendBytes(graph, tensor)
		}
		stripped = protowire.AppendTag(stripped, modelGraph, protowire.BytesType)
		stripped = protowire.AppendBytes(stripped, graph)
	}
	m := &onnx.ModelProto{}
	if err := proto.Unmarshal(stripped, m); err != nil {
		return nil, err
	}
	inits := m.GetGraph().GetInitializer()
	if len(inits) != len(raws) {
		return nil, fmt.Errorf("%d initializers decoded, %d found", len(inits), len(raws))
	}
	for i, t := range inits {
		if raws[i] != nil {
			t.RawData = raws[i]
		}
	}
	return m, nil
}

// source reads initializers' bytes: raw_data, float_data or external
// data in files beside the model (mapped).
type source struct {
	dir   string
	files map[string]*weightref.Mapped
}

func (s *source) close() {
	for _, f := range s.files {
		f.Close()
	}
}

func external(t *onnx.TensorProto) (loc string, off, n int64, err error) {
	n = -1
	for _, kv := range t.GetExternalData() {
		switch kv.GetKey() {
		case "location":
			loc = kv.GetValue()
		case "offset":
			off, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		case "length":
			n, err = strconv.ParseInt(kv.GetValue(), 10, 64)
		}
		if err != nil {
			return "", 0, 0, fmt.Errorf("initializer %q: external data %s: %w", t.GetName(), kv.GetKey(), err)
		}
	}
	if loc == "" || filepath.IsAbs(loc) {
		return "", 0, 0, fmt.Errorf("initializer %q: external data location %q", t.GetName(), loc)
	}
	return loc, off, n, nil
}

// bytes returns t's little-endian bytes; external data is the mapped
// file's (read only).
func (s *source) bytes(t *onnx.TensorProto) ([]byte, error) {
	if t.GetDataLocation() == onnx.TensorProto_EXTERNAL {
		loc, off, n, err := external(t)
		if err != nil {
			return nil, err
		}
		f, ok := s.files[loc]
		if !ok {
			if f, err = weightref.Map(filepath.Join(s.dir, filepath.FromSlash(loc))); err != nil {
				return nil, fmt.Errorf("initializer %q: %w", t.GetName(), err)
			}
			s.files[loc] = f
		}
		if n < 0 {
			n = int64(len(f.Data)) - off
		}
		if off < 0 || off+n > int64(len(f.Data)) {
			return nil, fmt.Errorf("initializer %q: external data [%d, %d) past the end of %s (%d bytes)", t.GetName(), off, off+n, loc, len(f.Data))
		}
		return f.Data[off : off+n], nil
	}
	if t.RawData != nil {
		return t.RawData, nil
	}
	if t.GetDataType() == elemFloat && len(t.FloatData) > 0 {
		b := make([]byte, 4*len(t.FloatData))
		for i, v := range t.FloatData {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b, nil
	}
	return nil, fmt.Errorf("initializer %q: no raw_data, float_data or external data", t.GetName())
}

// floats decodes little-endian float32s.
func floats(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}

func elems(t *onnx.TensorProto) int64 {
	n := int64(1)
	for _, d := range t.GetDims() {
		n *= d
	}
	return n
}
