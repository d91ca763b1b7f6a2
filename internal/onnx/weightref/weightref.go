// Package weightref rewrites an encoded ONNX model so that its weights
// stay where they are: every large initializer whose bytes are inline
// (raw_data) becomes an external-data reference to the same bytes in the
// model file itself (location = the file, offset and length = where the
// raw_data lies in it). The rewritten model holds the graph only — a few
// hundred kilobytes for a model of hundreds of megabytes — and ONNX
// Runtime reads (maps) the weights from the original file, so handing it a
// model rewritten in memory (internal/onnx/lastlogits) does not put a
// second copy of the weights in memory.
//
// A Redirect can point an initializer at identical bytes in another file
// (Shared: the prefill graph's embedding and LM head at the main model
// file's), so that two sessions read one copy.
//
// ONNX Runtime resolves locations against the model file's directory, or
// for a model loaded from memory against the session configuration entry
// session.model_external_initializers_file_folder_path: the caller sets it
// to the directory of the files the references name.
package weightref

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/dsmil/l7/internal/onnx"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// DefaultMinBytes is Options.MinBytes' default: smaller initializers (norm
// weights, biases, shape constants) stay inline.
const DefaultMinBytes = 64 << 10

// Ref is where an initializer's bytes lie: a file (relative to the
// external-data folder), an offset and a length.
type Ref struct {
	Location string
	Offset   int64
	Length   int64
}

// Tensor is an initializer of an encoded model and where its bytes lie.
type Tensor struct {
	Name     string
	DataType int32
	Dims     []int64
	// Ref is the bytes' place: the model file's own bytes (Location =
	// the model's location) for raw_data, or its external data.
	Ref Ref
	// External: the model names its data in another file.
	External bool
}

// Options say which initializers become references.
type Options struct {
	// Location is the model file's name relative to the external-data
	// folder (its base name when the folder is its directory).
	Location string
	// MinBytes is the smallest raw_data made a reference; 0 means
	// DefaultMinBytes, < 0 every initializer with raw_data. int64 and
	// int32 tensors (shapes, axes: ONNX Runtime's shape inference reads
	// them from the graph) stay inline whatever their size.
	MinBytes int
	// Redirect, when set, is asked for every initializer (inline or
	// external) with its place; when it returns true the initializer
	// references the returned place instead.
	Redirect func(t Tensor) (Ref, bool)
}

// TensorProto field numbers.
const (
	tensorDims         = 1
	tensorDataType     = 2
	tensorName         = 8
	tensorRawData      = 9
	tensorExternalData = 13
	tensorDataLocation = 14
)

// ModelProto and GraphProto field numbers.
const (
	modelGraph = 7
	graphInit  = 5
)

// offsetIn is sub's offset in base; sub must be a sub-slice of base (both
// then end at the same backing array's end).
func offsetIn(base, sub []byte) int64 { return int64(cap(base) - cap(sub)) }

// decode reads an encoded TensorProto's header and the place of its
// bytes, and returns its raw_data (nil if none).
func decode(base, b []byte, location string) (Tensor, []byte, error) {
	t := Tensor{}
	var raw []byte
	hasRaw, hasLen := false, false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return t, nil, protowire.ParseError(n)
		}
		b = b[n:]
		switch {
		case num == tensorName && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return t, nil, protowire.ParseError(m)
			}
			t.Name, n = string(v), m
		case num == tensorRawData && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return t, nil, protowire.ParseError(m)
			}
			raw, hasRaw, n = v, true, m
		case num == tensorDataType && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return t, nil, protowire.ParseError(m)
			}
			t.DataType, n = int32(v), m
		case num == tensorDims && typ == protowire.VarintType:
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return t, nil, protowire.ParseError(m)
			}
			t.Dims, n = append(t.Dims, int64(v)), m
		case num == tensorDims && typ == protowire.BytesType: // packed
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return t, nil, protowire.ParseError(m)
			}
			for len(v) > 0 {
				d, k := protowire.ConsumeVarint(v)
				if k < 0 {
					return t, nil, protowire.ParseError(k)
				}
				t.Dims, v = append(t.Dims, int64(d)), v[k:]
			}
			n = m
		case num == tensorExternalData && typ == protowire.BytesType:
			v, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return t, nil, protowire.ParseError(m)
			}
			var kv onnx.StringStringEntryProto
			if err := proto.Unmarshal(v, &kv); err != nil {
				return t, nil, err
			}
			switch kv.GetKey() {
			case "location":
				t.Ref.Location, t.External = kv.GetValue(), true
			case "offset":
				o, err := strconv.ParseInt(kv.GetValue(), 10, 64)
				if err != nil {
					return t, nil, fmt.Errorf("external data offset: %w", err)
				}
				t.Ref.Offset = o
			case "length":
				l, err := strconv.ParseInt(kv.GetValue(), 10, 64)
				if err != nil {
					return t, nil, fmt.Errorf("external data length: %w", err)
				}
				t.Ref.Length, hasLen = l, true
			}
			n = m
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return t, nil, protowire.ParseError(n)
			}
		}
		b = b[n:]
	}
	switch {
	case t.External && !hasLen:
		t.Ref.Length = -1 // unknown: the rest of the file
	case !t.External && hasRaw:
		t.Ref = Ref{Location: location, Offset: offsetIn(base, raw), Length: int64(len(raw))}
	case !t.External:
		t.Ref = Ref{Location: location, Length: -1} // typed fields (float_data…): not a byte range
	}
	return t, raw, nil
}

// shapeType: integer tensors of these types may be shapes, axes or
// indices that ONNX Runtime's shape inference reads from the graph
// (it cannot read external data), so they stay inline.
func shapeType(dt int32) bool {
	return dt == int32(onnx.TensorProto_INT64) || dt == int32(onnx.TensorProto_INT32)
}

// initializer rewrites one encoded TensorProto b (a sub-slice of base),
// or says it stays as it is.
func (o *Options) initializer(base, b []byte) ([]byte, bool, error) {
	t, raw, err := decode(base, b, o.Location)
	if err != nil {
		return nil, false, err
	}
	ref, move := Ref{}, false
	if o.Redirect != nil && t.Ref.Length >= 0 && !shapeType(t.DataType) {
		ref, move = o.Redirect(t)
	}
	if !move && !t.External && raw != nil && !shapeType(t.DataType) {
		min := o.MinBytes
		if min == 0 {
			min = DefaultMinBytes
		}
		if len(raw) >= min {
			ref, move = t.Ref, true
		}
	}
	if !move {
		return nil, false, nil
	}
	out := make([]byte, 0, 256)
	for rest := b; len(rest) > 0; {
		num, typ, n := protowire.ConsumeTag(rest)
		if n < 0 {
			return nil, false, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, rest[n:])
		if m < 0 {
			return nil, false, protowire.ParseError(m)
		}
		if num != tensorRawData && num != tensorExternalData && num != tensorDataLocation {
			out = append(out, rest[:n+m]...)
		}
		rest = rest[n+m:]
	}
	for _, kv := range [][2]string{
		{"location", ref.Location},
		{"offset", strconv.FormatInt(ref.Offset, 10)},
		{"length", strconv.FormatInt(ref.Length, 10)},
	} {
		e, err := proto.Marshal(&onnx.StringStringEntryProto{Key: proto.String(kv[0]), Value: proto.String(kv[1])})
		if err != nil {
			return nil, false, err
		}
		out = protowire.AppendTag(out, tensorExternalData, protowire.BytesType)
		out = protowire.AppendBytes(out, e)
	}
	out = protowire.AppendTag(out, tensorDataLocation, protowire.VarintType)
	out = protowire.AppendVarint(out, uint64(onnx.TensorProto_EXTERNAL))
	return out, true, nil
}

// Initializer rewrites one graph field: an initializer's (its encoded
// TensorProto a sub-slice of base, the model file's bytes) tag and value,
// or returns field itself when it stays as it is.
func (o *Options) Initializer(base, field []byte) ([]byte, error) {
	num, typ, n := protowire.ConsumeTag(field)
	if n < 0 {
		return nil, protowire.ParseError(n)
	}
	if num != graphInit || typ != protowire.BytesType {
		return field, nil
	}
	v, m := protowire.ConsumeBytes(field[n:])
	if m < 0 {
		return nil, protowire.ParseError(m)
	}
	nv, changed, err := o.initializer(base, v)
	if err != nil {
		return nil, fmt.Errorf("weightref: initializer: %w", err)
	}
	if !changed {
		return field, nil
	}
	out := protowire.AppendTag(make([]byte, 0, len(nv)+8), graphInit, protowire.BytesType)
	return protowire.AppendBytes(out, nv), nil
}

// Fields splits an encoded message into its fields' bytes (tag included)
// and their numbers, without decoding them.
func Fields(b []byte) ([][]byte, []protowire.Number, error) {
	var out [][]byte
	var nums []protowire.Number
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, nil, protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, b[n:])
		if m < 0 {
			return nil, nil, protowire.ParseError(m)
		}
		out, nums = append(out, b[:n+m]), append(nums, num)
		b = b[n+m:]
	}
	return out, nums, nil
}

// bytesValue is a field's value when it is a bytes field.
func bytesValue(f []byte) ([]byte, bool) {
	_, typ, n := protowire.ConsumeTag(f)
	if n < 0 || typ != protowire.BytesType {
		return nil, false
	}
	v, m := protowire.ConsumeBytes(f[n:])
	return v, m >= 0
}

// graphOf returns the model's graph field value.
func graphOf(data []byte) ([]byte, error) {
	fields, nums, err := Fields(data)
	if err != nil {
		return nil, err
	}
	for i, f := range fields {
		if v, ok := bytesValue(f); ok && nums[i] == modelGraph {
			return v, nil
		}
	}
	return nil, errors.New("model has no graph")
}

// Model rewrites an encoded ModelProto data (the model file's whole
// bytes) with o; it changes nothing else. data is only read.
func Model(data []byte, o *Options) ([]byte, error) {
	top, nums, err := Fields(data)
	if err != nil {
		return nil, fmt.Errorf("weightref: model: %w", err)
	}
	var res []byte
	found := false
	for i, f := range top {
		g, ok := bytesValue(f)
		if nums[i] != modelGraph || !ok || found {
			res = append(res, f...)
			continue
		}
		found = true
		gf, _, err := Fields(g)
		if err != nil {
			return nil, fmt.Errorf("weightref: graph: %w", err)
		}
		var parts [][]byte
		glen := 0
		for _, field := range gf {
			nf, err := o.Initializer(data, field)
			if err != nil {
				return nil, err
			}
			parts, glen = append(parts, nf), glen+len(nf)
		}
		res = protowire.AppendTag(res, modelGraph, protowire.BytesType)
		res = protowire.AppendVarint(res, uint64(glen))
		for _, p := range parts {
			res = append(res, p...)
		}
	}
	if !found {
		return nil, errors.New("weightref: model has no graph")
	}
	return res, nil
}

// Initializers lists an encoded model's initializers and where their
// bytes lie; location names the model file (see Options.Location).
func Initializers(data []byte, location string) ([]Tensor, error) {
	g, err := graphOf(data)
	if err != nil {
		return nil, fmt.Errorf("weightref: %w", err)
	}
	gf, nums, err := Fields(g)
	if err != nil {
		return nil, fmt.Errorf("weightref: graph: %w", err)
	}
	var out []Tensor
	for i, f := range gf {
		v, ok := bytesValue(f)
		if nums[i] != graphInit || !ok {
			continue
		}
		t, _, err := decode(data, v, location)
		if err != nil {
			return nil, fmt.Errorf("weightref: initializer: %w", err)
		}
		out = append(out, t)
	}
	return out, nil
}

// Mapped is a file mapped read-only.
type Mapped struct {
	Data []byte
}

// Map maps the file at path read-only; Close unmaps it.
func Map(path string) (*Mapped, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("%s: empty file", path)
	}
	data, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("%s: mmap: %w", path, err)
	}
	return &Mapped{Data: data}, nil
}

// Close unmaps the file.
func (m *Mapped) Close() error {
	if m == nil || m.Data == nil {
		return nil
	}
	err := syscall.Munmap(m.Data)
	m.Data = nil
	return err
}

// Shared is a Redirect that points an initializer at the identical tensor
// (same name, element type, dimensions and bytes) of another model in the
// same folder (dir): other are that model's initializers. It compares the
// bytes by reading the files in chunks (not mapping them: the page cache
// is not the process's memory) and keeps them open until Close.
type Shared struct {
	dir   string
	other map[string]Tensor
	files map[string]*os.File
	// Moved counts the initializers redirected and their bytes.
	Moved      int
	MovedBytes int64
}

// NewShared prepares a Shared for models in dir that redirects tensors of
// at least min bytes.
func NewShared(dir string, other []Tensor, min int64) *Shared {
	s := &Shared{dir: dir, other: map[string]Tensor{}, files: map[string]*os.File{}}
	for _, t := range other {
		if t.Ref.Length > 0 && t.Ref.Length >= min {
			s.other[t.Name] = t
		}
	}
	return s
}

func (s *Shared) file(loc string) *os.File {
	if filepath.IsAbs(loc) || loc == "" {
		return nil
	}
	f, ok := s.files[loc]
	if !ok {
		f, _ = os.Open(filepath.Join(s.dir, filepath.FromSlash(loc)))
		s.files[loc] = f
	}
	return f
}

// equal compares the bytes at a and b (of equal length).
func (s *Shared) equal(a, b Ref) bool {
	fa, fb := s.file(a.Location), s.file(b.Location)
	if fa == nil || fb == nil {
		return false
	}
	const chunk = 1 << 20
	ba, bb := make([]byte, chunk), make([]byte, chunk)
	for off := int64(0); off < a.Length; off += chunk {
		n := min(chunk, a.Length-off)
		if _, err := fa.ReadAt(ba[:n], a.Offset+off); err != nil {
			return false
		}
		if _, err := fb.ReadAt(bb[:n], b.Offset+off); err != nil {
			return false
		}
		if !bytes.Equal(ba[:n], bb[:n]) {
			return false
		}
	}
	return true
}

// Redirect is the Options.Redirect.
func (s *Shared) Redirect(t Tensor) (Ref, bool) {
	o, ok := s.other[t.Name]
	if !ok || o.DataType != t.DataType || o.Ref.Length != t.Ref.Length || len(o.Dims) != len(t.Dims) {
		return Ref{}, false
	}
	for i := range o.Dims {
		if o.Dims[i] != t.Dims[i] {
			return Ref{}, false
		}
	}
	if o.Ref == t.Ref || !s.equal(o.Ref, t.Ref) {
		return Ref{}, false
	}
	s.Moved++
	s.MovedBytes += o.Ref.Length
	return o.Ref, true
}

// Close closes the files Redirect compared.
func (s *Shared) Close() error {
	var err error
	for _, f := range s.files {
		if f != nil {
			err = errors.Join(err, f.Close())
		}
	}
	s.files = nil
	return err
}

// NodeProto field numbers.
const (
	graphNode  = 1
	nodeInput  = 1
	nodeOpType = 4
	nodeDomain = 7
)

// Readers maps each tensor the main graph's nodes read to the operators
// that read it ("Gather", "com.microsoft:MatMulNBits"), once per node.
// Subgraphs (If, Loop) are not looked into.
func Readers(data []byte) (map[string][]string, error) {
	g, err := graphOf(data)
	if err != nil {
		return nil, fmt.Errorf("weightref: %w", err)
	}
	gf, nums, err := Fields(g)
	if err != nil {
		return nil, fmt.Errorf("weightref: graph: %w", err)
	}
	out := map[string][]string{}
	for i, f := range gf {
		v, ok := bytesValue(f)
		if nums[i] != graphNode || !ok {
			continue
		}
		nf, nn, err := Fields(v)
		if err != nil {
			return nil, fmt.Errorf("weightref: node: %w", err)
		}
		var op, domain string
		var ins []string
		for j, x := range nf {
			if nn[j] != nodeInput && nn[j] != nodeOpType && nn[j] != nodeDomain {
				continue
			}
			s, ok := bytesValue(x)
			if !ok {
				continue
			}
			switch nn[j] {
			case nodeInput:
				ins = append(ins, string(s))
			case nodeOpType:
				op = string(s)
			case nodeDomain:
				domain = string(s)
			}
		}
		if domain != "" && domain != "ai.onnx" {
			op = domain + ":" + op
		}
		seen := map[string]bool{}
		for _, in := range ins {
			if in != "" && !seen[in] {
				seen[in] = true
				out[in] = append(out[in], op)
			}
		}
	}
	return out, nil
}
