package main

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dsmil/l7/sdk/client"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// The JSON forms of the ABI (docs/libdbe.md). Byte strings are base64, as
// encoding/json writes []byte.

type frameJSON struct {
	Version       int       `json:"version"`
	MsgType       uint8     `json:"msg_type"`
	MsgName       string    `json:"msg_name,omitempty"`
	Flags         uint16    `json:"flags"`
	CorrelationID uint64    `json:"correlation_id"`
	TLVs          []tlvJSON `json:"tlvs"`
	Payload       []byte    `json:"payload"`
}

type tlvJSON struct {
	Type  uint16 `json:"type"`
	Name  string `json:"name,omitempty"`
	Value []byte `json:"value"`
}

func frameToJSON(f *dbe.Frame) frameJSON {
	j := frameJSON{Version: dbe.Version, MsgType: uint8(f.Type), MsgName: f.Type.String(), Flags: uint16(f.Flags),
		CorrelationID: f.CorrelationID, TLVs: []tlvJSON{}, Payload: f.Payload}
	for _, t := range f.TLVs {
		j.TLVs = append(j.TLVs, tlvJSON{Type: uint16(t.Type), Name: t.Type.String(), Value: t.Value})
	}
	return j
}

func frameFromJSON(b []byte) (*dbe.Frame, error) {
	var j frameJSON
	if err := strictJSON(b, &j); err != nil {
		return nil, invalid("frame: %v", err)
	}
	if j.Version != 0 && j.Version != dbe.Version {
		return nil, invalid("frame: version %d, this library speaks DBE v%d", j.Version, dbe.Version)
	}
	f := &dbe.Frame{Type: dbe.MsgType(j.MsgType), Flags: dbe.Flags(j.Flags), CorrelationID: j.CorrelationID, Payload: j.Payload}
	for _, t := range j.TLVs {
		f.TLVs = append(f.TLVs, dbe.TLV{Type: dbe.TLVType(t.Type), Value: t.Value})
	}
	return f, nil
}

// strictJSON decodes one JSON value into v, refusing unknown fields and
// trailing data.
func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("data after the JSON value")
	}
	return nil
}

// tlvType resolves a TLV name: a registered name (TENANT_ID), its rendering
// of an unknown code (TLV_0x4001) or a number (0x4001, 16385).
func tlvType(name string) (dbe.TLVType, error) {
	if t, ok := dbe.TLVTypeByName(name); ok {
		return t, nil
	}
	n, err := strconv.ParseUint(strings.TrimPrefix(name, "TLV_"), 0, 16)
	if err != nil {
		return 0, invalid("unknown TLV %q", name)
	}
	return dbe.TLVType(n), nil
}

// tlvValueFromJSON encodes a TLV value from its JSON form: strings for
// TENANT_ID and L7_PROFILE, a number or a list of names for
// COMPARTMENT_MASK, a name or a number for CLASSIFICATION and ROE_LEVEL,
// a list of layers for LAYER_PATH, numbers for DEVICE_ID_* and TIMEOUT_MS,
// nanoseconds since the Unix epoch for TIMESTAMP, the 8-4-4-4-12 form for
// REQUEST_ID, base64 for L7_CLAIM_TOKEN and unregistered types.
func tlvValueFromJSON(name string, js []byte) (dbe.TLVType, []byte, error) {
	t, err := tlvType(name)
	if err != nil {
		return 0, nil, err
	}
	bad := func(err error) (dbe.TLVType, []byte, error) {
		return 0, nil, invalid("%s: %v", t, err)
	}
	var f dbe.Frame
	switch t {
	case dbe.TLVTenantID, dbe.TLVProfile:
		var s string
		if err := json.Unmarshal(js, &s); err != nil {
			return bad(err)
		}
		f.Set(t, []byte(s))
	case dbe.TLVCompartmentMask:
		c, err := compartmentFromJSON(js)
		if err != nil {
			return bad(err)
		}
		f.SetCompartmentMask(c)
	case dbe.TLVClassification:
		n, err := enumFromJSON(js, func(s string) (uint8, bool) { c, ok := dbe.ClassificationByName(s); return uint8(c), ok })
		if err != nil {
			return bad(err)
		}
		f.SetClassification(dbe.Classification(n))
	case dbe.TLVROELevel:
		n, err := enumFromJSON(js, func(s string) (uint8, bool) { r, ok := dbe.ROELevelByName(s); return uint8(r), ok })
		if err != nil {
			return bad(err)
		}
		f.SetROELevel(dbe.ROELevel(n))
	case dbe.TLVLayerPath:
		var layers []uint8
		if err := json.Unmarshal(js, &layers); err != nil {
			return bad(err)
		}
		f.SetLayerPath(layers...)
	case dbe.TLVDeviceIDSrc, dbe.TLVDeviceIDDst:
		var d uint8
		if err := json.Unmarshal(js, &d); err != nil {
			return bad(err)
		}
		f.Set(t, []byte{d})
	case dbe.TLVTimestamp:
		var ns int64
		if err := json.Unmarshal(js, &ns); err != nil {
			return bad(err)
		}
		f.SetTimestamp(time.Unix(0, ns))
	case dbe.TLVRequestID:
		var s string
		if err := json.Unmarshal(js, &s); err != nil {
			return bad(err)
		}
		id, err := parseUUID(s)
		if err != nil {
			return bad(err)
		}
		f.SetRequestID(id)
	case dbe.TLVTimeoutMS:
		var ms uint32
		if err := json.Unmarshal(js, &ms); err != nil {
			return bad(err)
		}
		f.SetTimeout(time.Duration(ms) * time.Millisecond)
	default: // L7_CLAIM_TOKEN and unregistered types: bytes
		var b []byte
		if err := json.Unmarshal(js, &b); err != nil {
			return bad(err)
		}
		f.Set(t, b)
	}
	v, _ := f.Get(t)
	return t, v, nil
}

// tlvValueToJSON is the JSON form of a TLV value (see tlvValueFromJSON);
// the value is validated first.
func tlvValueToJSON(t dbe.TLVType, v []byte) (any, error) {
	if err := dbe.ValidateTLV(t, v); err != nil {
		return nil, err
	}
	f := dbe.Frame{TLVs: []dbe.TLV{{Type: t, Value: v}}}
	switch t {
	case dbe.TLVTenantID, dbe.TLVProfile:
		return string(v), nil
	case dbe.TLVCompartmentMask:
		c, _ := f.CompartmentMask()
		return uint8(c), nil
	case dbe.TLVClassification:
		c, _ := f.Classification()
		return c.String(), nil
	case dbe.TLVROELevel:
		r, _ := f.ROELevel()
		return r.String(), nil
	case dbe.TLVLayerPath:
		out := make([]int, len(v))
		for i, l := range v {
			out[i] = int(l)
		}
		return out, nil
	case dbe.TLVDeviceIDSrc, dbe.TLVDeviceIDDst:
		return int(v[0]), nil
	case dbe.TLVTimestamp:
		ts, _ := f.Timestamp()
		return ts.UnixNano(), nil
	case dbe.TLVRequestID:
		id, _ := f.RequestID()
		return dbe.FormatUUID(id), nil
	case dbe.TLVTimeoutMS:
		d, _ := f.Timeout()
		return d.Milliseconds(), nil
	}
	return v, nil
}

func compartmentFromJSON(js []byte) (dbe.Compartment, error) {
	var n uint8
	if json.Unmarshal(js, &n) == nil {
		return dbe.Compartment(n), nil
	}
	var names []string
	if err := json.Unmarshal(js, &names); err != nil {
		return 0, fmt.Errorf("want a number or a list of compartment names: %v", err)
	}
	var c dbe.Compartment
	for _, s := range names {
		x, ok := dbe.CompartmentByName(s)
		if !ok {
			return 0, fmt.Errorf("unknown compartment %q", s)
		}
		c |= x
	}
	return c, nil
}

func enumFromJSON(js []byte, byName func(string) (uint8, bool)) (uint8, error) {
	var n uint8
	if json.Unmarshal(js, &n) == nil {
		return n, nil
	}
	var s string
	if err := json.Unmarshal(js, &s); err != nil {
		return 0, fmt.Errorf("want a name or a number: %v", err)
	}
	n, ok := byName(s)
	if !ok {
		return 0, fmt.Errorf("unknown name %q", s)
	}
	return n, nil
}

// parseUUID reads the 8-4-4-4-12 form.
func parseUUID(s string) ([16]byte, error) {
	var id [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return id, fmt.Errorf("%q is not a UUID (8-4-4-4-12 hex digits)", s)
	}
	h := s[:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(id[:], []byte(h)); err != nil {
		return id, fmt.Errorf("%q is not a UUID: %v", s, err)
	}
	return id, nil
}

// payloadFromJSON encodes a payload from its protobuf JSON form (field
// names as in l7.proto or lowerCamelCase).
func payloadFromJSON(t dbe.MsgType, js []byte) ([]byte, error) {
	m := client.Payload(t)
	if m == nil {
		return nil, invalid("%s carries no protobuf payload", t)
	}
	if err := protojson.Unmarshal(js, m); err != nil {
		return nil, invalid("%s payload: %v", t, err)
	}
	return proto.Marshal(m)
}

// payloadToJSON decodes a payload to protobuf JSON (l7.proto's field
// names, enums by name, 64-bit integers as strings as protojson writes
// them).
func payloadToJSON(t dbe.MsgType, b []byte) ([]byte, error) {
	m := client.Payload(t)
	if m == nil {
		return nil, invalid("%s carries no protobuf payload", t)
	}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, mux.Errorf(dbe.CodeMalformedFrame, "%s payload: %v", t, err)
	}
	return protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
}

// registryJSON lists the registered names and codes, so that bindings
// need not copy them.
func registryJSON() map[string]any {
	msgs, tlvs, codes := map[string]int{}, map[string]int{}, map[string]int{}
	for t := 0; t < 256; t++ {
		if mt := dbe.MsgType(t); mt.Known() {
			msgs[mt.String()] = t
		}
	}
	for t := 0; t < 1<<16; t++ {
		if tt := dbe.TLVType(t); tt.Known() {
			tlvs[tt.String()] = t
		}
	}
	for c := dbe.Code(1); c < 256; c++ {
		if s := c.String(); !strings.HasPrefix(s, "CODE_") {
			codes[s] = int(c)
		}
	}
	comps := map[string]int{}
	for _, c := range dbe.Compartments() {
		comps[c.String()] = int(c)
	}
	classes, roes := map[string]int{}, map[string]int{}
	for n := 1; n < 16; n++ {
		if s := dbe.Classification(n).String(); !strings.Contains(s, "_0x") && !strings.HasPrefix(s, "CLASSIFICATION_") {
			classes[s] = n
		}
		if _, ok := dbe.ROELevelByName(dbe.ROELevel(n).String()); ok {
			roes[dbe.ROELevel(n).String()] = n
		}
	}
	return map[string]any{"abi_version": 1, "dbe_version": dbe.Version, "msg_types": msgs, "tlv_types": tlvs, "error_codes": codes,
		"compartments": comps, "classifications": classes, "roe_levels": roes, "flag_end_stream": int(dbe.FlagEndStream),
		"max_frame_size": dbe.DefaultMaxFrameSize}
}
