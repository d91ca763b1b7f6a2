package dbe

// This file writes the conformance vectors in testdata/vectors with a byte
// builder that does not use the codec, so the vectors check the codec rather
// than restate it. Regenerate with: go test ./sdk/dbe -run TestVectors -update

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// vector is the JSON description of one test vector (docs/dbe.md §9).
type vector struct {
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Valid       bool       `json:"valid"`
	Error       string     `json:"error,omitempty"`          // decode error name when !Valid
	Required    string     `json:"required_error,omitempty"` // CheckRequired error name, if any
	Header      *vecHeader `json:"header,omitempty"`
	TLVs        []vecTLV   `json:"tlvs,omitempty"`
	PayloadHex  string     `json:"payload_hex,omitempty"`
	Hex         string     `json:"-"` // written to NAME.hex
	Num         int        `json:"-"` // the NNN of its file names
}

type vecHeader struct {
	Version       int    `json:"version"`
	MsgType       string `json:"msg_type"` // "0x41"
	MsgName       string `json:"msg_name"`
	Flags         string `json:"flags"` // "0x0001"
	TLVLen        uint32 `json:"tlv_len"`
	PayloadLen    uint32 `json:"payload_len"`
	CorrelationID string `json:"correlation_id"` // decimal, may exceed 2^53
}

type vecTLV struct {
	Type     string `json:"type"` // "0x8001"
	Name     string `json:"name"`
	Critical bool   `json:"critical"`
	Length   int    `json:"length"`
	ValueHex string `json:"value_hex"`
	Value    string `json:"value,omitempty"` // human rendering of a registered TLV
}

// raw builds frames byte by byte.
type raw struct {
	magic      [2]byte
	version    byte
	msgType    byte
	flags      uint16
	reserved   uint16
	corr       uint64
	tlvs       []rawTLV
	payload    []byte
	tlvLenOver *uint32 // override the header's TLV length
	payLenOver *uint32
	trunc      int // drop this many bytes from the end
	extra      []byte
}

type rawTLV struct {
	typ     uint16
	value   []byte
	human   string
	lenOver *int
}

func frame(mt byte, corr uint64, tlvs ...rawTLV) *raw {
	return &raw{magic: [2]byte{'D', 'B'}, version: 1, msgType: mt, corr: corr, tlvs: tlvs}
}

func (r *raw) bytes() []byte {
	var block []byte
	for _, t := range r.tlvs {
		n := len(t.value)
		if t.lenOver != nil {
			n = *t.lenOver
		}
		block = binary.BigEndian.AppendUint16(block, t.typ)
		block = binary.BigEndian.AppendUint16(block, uint16(n))
		block = append(block, t.value...)
	}
	tl, pl := uint32(len(block)), uint32(len(r.payload))
	if r.tlvLenOver != nil {
		tl = *r.tlvLenOver
	}
	if r.payLenOver != nil {
		pl = *r.payLenOver
	}
	b := []byte{r.magic[0], r.magic[1], r.version, r.msgType}
	b = binary.BigEndian.AppendUint16(b, r.flags)
	b = binary.BigEndian.AppendUint16(b, r.reserved)
	b = binary.BigEndian.AppendUint32(b, tl)
	b = binary.BigEndian.AppendUint32(b, pl)
	b = binary.BigEndian.AppendUint64(b, r.corr)
	b = append(b, block...)
	b = append(b, r.payload...)
	b = append(b, r.extra...)
	return b[:len(b)-r.trunc]
}

var tlvNames = map[uint16]string{
	0x8001: "TENANT_ID", 0x8002: "COMPARTMENT_MASK", 0x8003: "CLASSIFICATION", 0x8004: "ROE_LEVEL",
	0x0005: "LAYER_PATH", 0x8006: "DEVICE_ID_SRC", 0x8007: "DEVICE_ID_DST", 0x8008: "L7_PROFILE",
	0x8009: "L7_CLAIM_TOKEN", 0x000A: "TIMESTAMP", 0x000B: "REQUEST_ID", 0x000C: "TIMEOUT_MS",
}

var msgNamesGen = map[byte]string{
	0x01: "HANDSHAKE", 0x02: "TUNNEL_DATA", 0x03: "CLOSE", 0x04: "ERROR", 0x05: "CANCEL", 0x06: "HEALTH",
	0x41: "L7_CHAT_REQ", 0x42: "L7_CHAT_RESP", 0x43: "L7_AGENT_TASK", 0x44: "L7_AGENT_RESULT",
	0x45: "L7_MODEL_STATUS", 0x46: "L7_POLICY_CHECK", 0x47: "L7_CHAT_CHUNK", 0x48: "L7_POLICY_RESULT",
	0x49: "L7_EMBED_REQ", 0x4A: "L7_EMBED_RESP",
}

func (r *raw) describe(name, desc string) vector {
	v := vector{Name: name, Description: desc, Valid: true, Hex: hex.EncodeToString(r.bytes())}
	tl := 0
	for _, t := range r.tlvs {
		tl += 4 + len(t.value)
		nm := tlvNames[t.typ]
		if nm == "" {
			nm = fmt.Sprintf("TLV_0x%04X", t.typ)
		}
		v.TLVs = append(v.TLVs, vecTLV{
			Type: fmt.Sprintf("0x%04X", t.typ), Name: nm, Critical: t.typ&0x8000 != 0,
			Length: len(t.value), ValueHex: hex.EncodeToString(t.value), Value: t.human,
		})
	}
	mn := msgNamesGen[r.msgType]
	if mn == "" {
		mn = fmt.Sprintf("MSG_0x%02X", r.msgType)
	}
	v.Header = &vecHeader{
		Version: int(r.version), MsgType: fmt.Sprintf("0x%02X", r.msgType), MsgName: mn,
		Flags: fmt.Sprintf("0x%04X", r.flags), TLVLen: uint32(tl), PayloadLen: uint32(len(r.payload)),
		CorrelationID: fmt.Sprint(r.corr),
	}
	v.PayloadHex = hex.EncodeToString(r.payload)
	return v
}

func (r *raw) invalid(name, desc, errName string) vector {
	return vector{Name: name, Description: desc, Valid: false, Error: errName, Hex: hex.EncodeToString(r.bytes())}
}

// TLV constructors with their human renderings.
func tTenant(s string) rawTLV              { return rawTLV{typ: 0x8001, value: []byte(s), human: s} }
func tCompartment(b byte, h string) rawTLV { return rawTLV{typ: 0x8002, value: []byte{b}, human: h} }
func tClass(b byte, h string) rawTLV       { return rawTLV{typ: 0x8003, value: []byte{b}, human: h} }
func tROE(b byte, h string) rawTLV         { return rawTLV{typ: 0x8004, value: []byte{b}, human: h} }
func tLayers(h string, l ...byte) rawTLV   { return rawTLV{typ: 0x0005, value: l, human: h} }
func tSrc(d byte) rawTLV                   { return rawTLV{typ: 0x8006, value: []byte{d}, human: fmt.Sprint(d)} }
func tDst(d byte) rawTLV                   { return rawTLV{typ: 0x8007, value: []byte{d}, human: fmt.Sprint(d)} }
func tProfile(s string) rawTLV             { return rawTLV{typ: 0x8008, value: []byte(s), human: s} }
func tClaim(b []byte) rawTLV               { return rawTLV{typ: 0x8009, value: b} }
func tTimestamp(sec uint32, frac uint16, h string) rawTLV {
	v := binary.BigEndian.AppendUint32(nil, sec)
	v = binary.BigEndian.AppendUint16(v, frac)
	return rawTLV{typ: 0x000A, value: v, human: h}
}
func tReqID(h string) rawTLV {
	b, err := hex.DecodeString(strings.ReplaceAll(h, "-", ""))
	if err != nil {
		panic(err)
	}
	return rawTLV{typ: 0x000B, value: b, human: h}
}
func tTimeout(ms uint32) rawTLV {
	return rawTLV{typ: 0x000C, value: binary.BigEndian.AppendUint32(nil, ms), human: fmt.Sprint(ms)}
}
func tRaw(typ uint16, v []byte) rawTLV { return rawTLV{typ: typ, value: v} }

const reqID = "0192f1a8-3c4d-7e5f-8a9b-0c1d2e3f4a5b"

// typicalChatTLVs are the 11 TLVs of spec §2.3 as the shim sends them.
func typicalChatTLVs() []rawTLV {
	return []rawTLV{
		tTenant("SOC_TEAM_ALPHA"),
		tCompartment(0x07, "SOC|DEV|LAB"),
		tClass(0x02, "SECRET"),
		tROE(0x01, "ANALYSIS_ONLY"),
		tLayers("3→5→7", 3, 5, 7),
		tSrc(0),
		tDst(43),
		tProfile("llm-7b-amx"),
		tClaim([]byte("claim-token-placeholder: opaque to the codec")),
		tTimestamp(1763856000, 0x8000, "2025-11-23T00:00:00.500000000Z"),
		tReqID(reqID),
	}
}

func generateVectors() []vector {
	var vs []vector
	// Vectors are numbered in the order they are added, from next: a gap
	// (next set ahead) keeps numbers that another branch has taken free.
	next := 1
	add := func(v vector) {
		v.Num = next
		next++
		vs = append(vs, v)
	}
	with := func(r *raw, f func(*raw)) *raw { f(r); return r }

	// Valid frames.
	chat := frame(0x41, 1, typicalChatTLVs()...)
	chat.payload = []byte("\x0a\x11llama-7b-int8-amx\x12\x16\x0a\x04user\x12\x0eWhat is DSMIL?\x50\x64")
	add(chat.describe("chat_req_typical", "L7_CHAT_REQ with all 11 TLVs of spec §2.3 and a payload"))
	add(with(frame(0x42, 1, tReqID(reqID), tSrc(47), tDst(0)), func(r *raw) {
		r.flags = 0x0001
		r.payload = []byte{0x3a, 0x0a, 'l', 'l', 'm', '-', '7', 'b', '-', 'a', 'm', 'x'}
	}).describe("chat_resp_end_stream", "L7_CHAT_RESP, the single final frame of a non-streamed request: END_STREAM set"))
	add(with(frame(0x47, 1, tReqID(reqID)), func(r *raw) { r.payload = []byte{0x2a, 0x02, 'H', 'i'} }).
		describe("chat_chunk", "L7_CHAT_CHUNK in the middle of a stream: END_STREAM clear"))
	add(with(frame(0x47, 1, tReqID(reqID)), func(r *raw) { r.flags = 1 }).
		describe("chat_chunk_last", "last L7_CHAT_CHUNK: END_STREAM set, empty payload"))
	task := frame(0x43, 7, tTenant("SOC_TEAM_ALPHA"), tCompartment(0x01, "SOC"), tClass(0x01, "UNCLAS"),
		tROE(0x02, "SOC_ASSIST"), tProfile("agent"), tReqID(reqID), tDst(48))
	task.payload = []byte{0x0a, 0x09, 's', 'u', 'm', 'm', 'a', 'r', 'i', 'z', 'e'}
	add(task.describe("agent_task", "L7_AGENT_TASK routed to the agent harness (device 48)"))
	add(with(frame(0x44, 7, tReqID(reqID), tSrc(48)), func(r *raw) { r.flags = 1; r.payload = []byte{0x08, 0x01, 0x12, 0x02, 'o', 'k'} }).
		describe("agent_result", "L7_AGENT_RESULT"))
	add(with(frame(0x45, 9, tSrc(47)), func(r *raw) { r.flags = 1; r.payload = []byte{0x0a, 0x03, 'a', 'm', 'x'} }).
		describe("model_status", "L7_MODEL_STATUS answering HEALTH 9"))
	add(frame(0x46, 3, tTenant("LOCAL_TOOL_USER"), tCompartment(0x02, "DEV"), tClass(0x01, "UNCLAS"),
		tROE(0x03, "TRAINING"), tProfile("llm-1b-npu")).describe("policy_check", "L7_POLICY_CHECK with the attributes a decision needs"))
	add(with(frame(0x48, 3), func(r *raw) { r.flags = 1; r.payload = []byte{0x08, 0x01} }).
		describe("policy_result", "L7_POLICY_RESULT: allow"))
	add(with(frame(0x01, 0), func(r *raw) { r.payload = []byte{0x01, 0x02, 0x03} }).
		describe("handshake", "HANDSHAKE on correlation id 0; payload defined by the channel layer"))
	add(with(frame(0x02, 0), func(r *raw) { r.payload = []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") }).
		describe("tunnel_data", "TUNNEL_DATA carrying the first bytes of a tunnelled HTTP/2 connection"))
	add(with(frame(0x03, 0), func(r *raw) { r.payload = []byte{0x08, 0x01, 0x12, 0x03, 'b', 'y', 'e'} }).
		describe("close", "CLOSE with code MALFORMED_FRAME"))
	add(with(frame(0x04, 1, tReqID(reqID)), func(r *raw) {
		r.flags = 1
		r.payload = []byte{0x08, 0x08, 0x12, 0x07, 'K', 'I', 'N', 'E', 'T', 'I', 'C'}
	}).describe("error_policy_denied", "ERROR with code POLICY_DENIED ending request 1"))
	add(frame(0x05, 1).describe("cancel", "CANCEL request 1: no TLVs, no payload"))
	add(frame(0x06, 9).describe("health", "HEALTH: the smallest valid frame, 24 bytes"))
	add(with(frame(0x7F, 5, tRaw(0x4001, []byte{1})), func(r *raw) { r.payload = []byte{0xff} }).
		describe("unknown_msg_type", "an unregistered message type decodes; the receiver answers ERROR UNKNOWN_MSG_TYPE"))
	add(frame(0x06, 0xFFFFFFFFFFFFFFFF).describe("correlation_id_max", "correlation id 2^64-1"))
	add(frame(0x41, 2, tTenant("SOC_TEAM_ALPHA"), tRaw(0x4001, []byte("keep me")), tCompartment(0x01, "SOC"),
		tRaw(0x4001, nil), tClass(0x01, "UNCLAS"), tROE(0x01, "ANALYSIS_ONLY"), tProfile("llm-7b-amx"), tReqID(reqID),
		tRaw(0x7FFF, []byte{0, 1, 2})).
		describe("unknown_noncritical_preserved", "unknown non-critical TLVs (0x4001 twice, one empty, and 0x7FFF) are skipped and preserved in place"))
	add(frame(0x41, 3, tReqID(reqID), tProfile("echo"), tROE(0x02, "SOC_ASSIST"), tClass(0x03, "TS"),
		tCompartment(0x08, "CRYPTO"), tTenant("B")).describe("tlv_order_free", "registered TLVs in descending order: order carries no meaning"))
	add(frame(0x06, 10, tTenant(strings.Repeat("Ω", 64))).describe("tenant_max_len", "TENANT_ID of 128 bytes of UTF-8 (64 × U+03A9)"))
	add(frame(0x06, 11, tTenant("Ünïcode-Tenant ✓")).describe("tenant_unicode", "TENANT_ID with non-ASCII letters and a space"))
	add(frame(0x06, 12, tCompartment(0x8F, "SOC|DEV|LAB|CRYPTO|KINETIC")).describe("compartment_all", "every compartment bit, KINETIC included: the codec accepts it, policy denies it"))
	add(frame(0x06, 13, tCompartment(0x00, "NONE")).describe("compartment_none", "an empty compartment mask"))
	for i, c := range []string{"UNCLAS", "SECRET", "TS", "TS_SIM", "EXEC"} {
		add(frame(0x06, 20+uint64(i), tClass(byte(i+1), c)).describe("classification_"+strings.ToLower(c), "CLASSIFICATION "+c))
	}
	for i, r := range []string{"ANALYSIS_ONLY", "SOC_ASSIST", "TRAINING"} {
		add(frame(0x06, 30+uint64(i), tROE(byte(i+1), r)).describe("roe_"+strings.ToLower(r), "ROE_LEVEL "+r))
	}
	add(frame(0x06, 40, tLayers("9", 9)).describe("layer_path_single", "LAYER_PATH of one layer"))
	add(frame(0x06, 41, tLayers("1→2→3→4→5→6→7→8→9→1→2→3→4→5→6→7", 1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, 4, 5, 6, 7)).
		describe("layer_path_max", "LAYER_PATH of 16 layers"))
	add(frame(0x06, 42, tSrc(0), tDst(103)).describe("device_bounds", "DEVICE_ID_SRC 0 and DEVICE_ID_DST 103"))
	add(frame(0x06, 43, tProfile("a")).describe("profile_min", "one-character L7_PROFILE"))
	add(frame(0x06, 44, tProfile("a"+strings.Repeat("b.c_d-", 10)+"xyz")).describe("profile_max", "L7_PROFILE of 64 bytes"))
	big := make([]byte, 16384)
	for i := range big {
		big[i] = byte(i * 7)
	}
	add(frame(0x06, 45, tClaim(big)).describe("claim_token_max", "L7_CLAIM_TOKEN of 16384 bytes"))
	add(frame(0x06, 46, tTimestamp(0, 0, "1970-01-01T00:00:00.000000000Z")).describe("timestamp_epoch", "TIMESTAMP 0"))
	add(frame(0x06, 47, tTimestamp(0xFFFFFFFF, 0xFFFF, "2106-02-07T06:28:15.999984742Z")).describe("timestamp_max", "the largest TIMESTAMP; the fraction decodes rounded up to whole nanoseconds"))
	add(frame(0x06, 48, tTimestamp(1700000000, 1, "2023-11-14T22:13:20.000015259Z")).describe("timestamp_one_tick", "TIMESTAMP one tick (2^-16 s) past a whole second"))
	add(frame(0x06, 49, tTimeout(1), tReqID("ffffffff-ffff-ffff-ffff-ffffffffffff")).describe("timeout_min_reqid_max", "TIMEOUT_MS 1 and an all-ones REQUEST_ID"))
	add(frame(0x06, 50, tTimeout(0xFFFFFFFF)).describe("timeout_max", "TIMEOUT_MS 2^32-1"))
	add(with(frame(0x02, 0), func(r *raw) { r.payload = make([]byte, 70000) }).describe("payload_large", "a 70000-byte payload: payloads are not bound by the TLV block limit"))
	add(with(frame(0x41, 4, tTenant("T"), tCompartment(1, "SOC"), tClass(1, "UNCLAS"), tROE(1, "ANALYSIS_ONLY"), tReqID(reqID)),
		func(*raw) {}).describe("chat_req_missing_profile", "decodes, but L7_CHAT_REQ requires L7_PROFILE"))
	vs[len(vs)-1].Required = "MISSING_TLV"
	add(frame(0x42, 4).describe("chat_resp_missing_request_id", "decodes, but L7_CHAT_RESP requires REQUEST_ID"))
	vs[len(vs)-1].Required = "MISSING_TLV"

	// Invalid frames.
	u32 := func(v uint32) *uint32 { return &v }
	iv := func(v int) *int { return &v }
	add(with(frame(0x06, 1), func(r *raw) { r.trunc = 14 }).invalid("short_header", "10 bytes: shorter than the header", "TRUNCATED"))
	add(frame(0x06, 1).invalid("empty_input", "", "TRUNCATED"))
	vs[len(vs)-1].Hex = ""
	add(with(frame(0x41, 1, typicalChatTLVs()...), func(r *raw) { r.payload = []byte("abc"); r.trunc = 1 }).
		invalid("short_body", "one byte missing from the payload", "TRUNCATED"))
	add(with(frame(0x06, 1), func(r *raw) { r.extra = []byte{0} }).invalid("trailing_byte", "one byte after the frame", "TRAILING_BYTES"))
	add(with(frame(0x06, 1), func(r *raw) { r.magic = [2]byte{'D', 'C'} }).invalid("bad_magic", "magic 'DC'", "BAD_MAGIC"))
	add(with(frame(0x06, 1), func(r *raw) { r.magic = [2]byte{'P', 'R'} }).invalid("http2_preface", "a plain HTTP/2 client preface is not DBE", "BAD_MAGIC"))
	vs[len(vs)-1].Hex = hex.EncodeToString([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
	add(with(frame(0x06, 1), func(r *raw) { r.version = 2 }).invalid("version_2", "version 2", "UNSUPPORTED_VERSION"))
	add(with(frame(0x06, 1), func(r *raw) { r.version = 0 }).invalid("version_0", "version 0", "UNSUPPORTED_VERSION"))
	add(frame(0x00, 1).invalid("msg_type_zero", "message type 0 is never valid", "INVALID_MSG_TYPE"))
	add(with(frame(0x06, 1), func(r *raw) { r.flags = 0x0002 }).invalid("reserved_flag_1", "flag bit 1 is reserved", "RESERVED_FLAGS"))
	add(with(frame(0x06, 1), func(r *raw) { r.flags = 0x8001 }).invalid("reserved_flag_15", "flag bit 15 is reserved", "RESERVED_FLAGS"))
	add(with(frame(0x06, 1), func(r *raw) { r.reserved = 1 }).invalid("reserved_field", "header bytes 6–7 must be zero", "RESERVED_FIELD"))
	add(with(frame(0x06, 1), func(r *raw) { r.tlvLenOver = u32(65537) }).invalid("tlv_block_too_large", "TLV block length 65537 > 65536, rejected from the header alone", "FRAME_TOO_LARGE"))
	add(with(frame(0x02, 1), func(r *raw) { r.payLenOver = u32(16<<20 - 23) }).invalid("frame_too_large", "header declares 16 MiB + 1 byte; rejected before reading or allocating the body", "FRAME_TOO_LARGE"))
	add(with(frame(0x02, 1), func(r *raw) { r.payLenOver = u32(0xFFFFFFFF) }).invalid("payload_len_max", "payload length 2^32-1", "FRAME_TOO_LARGE"))
	add(with(frame(0x06, 1, tTenant("A"), tRaw(0x0000, nil)), func(r *raw) { r.tlvLenOver = u32(7); r.trunc = 2 }).
		invalid("tlv_header_overrun", "a 7-byte TLV block holding a 5-byte TLV and 2 stray bytes: too short for a TLV header", "TLV_OVERRUN"))
	add(frame(0x06, 1, rawTLV{typ: 0x8001, value: []byte("AB"), lenOver: iv(3)}).invalid("tlv_value_overrun", "TENANT_ID declares 3 bytes, the block holds 2", "TLV_OVERRUN"))
	add(frame(0x06, 1, tRaw(0x0000, nil)).invalid("tlv_type_zero", "TLV type 0x0000 is reserved", "INVALID_TLV_TYPE"))
	add(frame(0x06, 1, tRaw(0x8000, []byte{1})).invalid("tlv_type_critical_zero", "TLV type 0x8000 is reserved", "INVALID_TLV_TYPE"))
	add(frame(0x06, 1, tRaw(0x0001, []byte("SOC"))).invalid("tlv_wrong_critical_bit", "0x0001: TENANT_ID's code without its critical bit", "INVALID_TLV_TYPE"))
	add(frame(0x06, 1, tRaw(0x800A, make([]byte, 6))).invalid("tlv_wrong_critical_bit_2", "0x800A: TIMESTAMP's code with a critical bit it does not have", "INVALID_TLV_TYPE"))
	add(frame(0x06, 1, tRaw(0xC001, []byte{1})).invalid("unknown_critical", "unknown critical TLV 0xC001", "UNKNOWN_CRITICAL_TLV"))
	add(frame(0x06, 1, tTenant("A"), tTenant("B")).invalid("duplicate_tenant", "TENANT_ID twice", "DUPLICATE_TLV"))
	add(frame(0x06, 1, tReqID(reqID), tReqID(reqID)).invalid("duplicate_request_id", "REQUEST_ID twice, even with equal values", "DUPLICATE_TLV"))
	many := make([]rawTLV, 257)
	for i := range many {
		many[i] = tRaw(0x4002, nil)
	}
	add(frame(0x06, 1, many...).invalid("too_many_tlvs", "257 TLVs", "TOO_MANY_TLVS"))
	bad := []struct {
		name, desc string
		t          rawTLV
	}{
		{"tenant_empty", "empty TENANT_ID", tRaw(0x8001, nil)},
		{"tenant_too_long", "TENANT_ID of 129 bytes", tRaw(0x8001, []byte(strings.Repeat("a", 129)))},
		{"tenant_bad_utf8", "TENANT_ID that is not UTF-8", tRaw(0x8001, []byte{'a', 0xff})},
		{"tenant_control", "TENANT_ID with a newline", tRaw(0x8001, []byte("a\nb"))},
		{"tenant_c1_control", "TENANT_ID with U+0085", tRaw(0x8001, []byte("a\u0085"))},
		{"compartment_reserved_bit", "COMPARTMENT_MASK with reserved bit 0x10", tRaw(0x8002, []byte{0x11})},
		{"compartment_two_bytes", "COMPARTMENT_MASK of 2 bytes", tRaw(0x8002, []byte{0, 1})},
		{"classification_zero", "CLASSIFICATION 0", tRaw(0x8003, []byte{0})},
		{"classification_six", "CLASSIFICATION 6", tRaw(0x8003, []byte{6})},
		{"roe_zero", "ROE_LEVEL 0", tRaw(0x8004, []byte{0})},
		{"roe_four", "ROE_LEVEL 4", tRaw(0x8004, []byte{4})},
		{"roe_empty", "ROE_LEVEL of 0 bytes", tRaw(0x8004, nil)},
		{"layer_path_empty", "empty LAYER_PATH", tRaw(0x0005, nil)},
		{"layer_path_zero", "LAYER_PATH with layer 0", tRaw(0x0005, []byte{3, 0})},
		{"layer_path_ten", "LAYER_PATH with layer 10", tRaw(0x0005, []byte{10})},
		{"layer_path_too_long", "LAYER_PATH of 17 layers", tRaw(0x0005, []byte(strings.Repeat("\x07", 17)))},
		{"device_src_104", "DEVICE_ID_SRC 104", tRaw(0x8006, []byte{104})},
		{"device_dst_255", "DEVICE_ID_DST 255", tRaw(0x8007, []byte{255})},
		{"device_two_bytes", "DEVICE_ID_DST of 2 bytes", tRaw(0x8007, []byte{0, 43})},
		{"profile_empty", "empty L7_PROFILE", tRaw(0x8008, nil)},
		{"profile_upper", "L7_PROFILE with an upper-case letter", tRaw(0x8008, []byte("LLM-7b"))},
		{"profile_leading_dash", "L7_PROFILE starting with '-'", tRaw(0x8008, []byte("-llm"))},
		{"profile_slash", "L7_PROFILE with '/'", tRaw(0x8008, []byte("llm/7b"))},
		{"profile_too_long", "L7_PROFILE of 65 bytes", tRaw(0x8008, []byte(strings.Repeat("a", 65)))},
		{"claim_empty", "empty L7_CLAIM_TOKEN", tRaw(0x8009, nil)},
		{"claim_too_long", "L7_CLAIM_TOKEN of 16385 bytes", tRaw(0x8009, make([]byte, 16385))},
		{"timestamp_short", "TIMESTAMP of 5 bytes", tRaw(0x000A, make([]byte, 5))},
		{"timestamp_long", "TIMESTAMP of 8 bytes", tRaw(0x000A, make([]byte, 8))},
		{"request_id_nil", "the nil UUID as REQUEST_ID", tRaw(0x000B, make([]byte, 16))},
		{"request_id_short", "REQUEST_ID of 15 bytes", tRaw(0x000B, []byte(strings.Repeat("\x01", 15)))},
		{"timeout_zero", "TIMEOUT_MS 0", tRaw(0x000C, make([]byte, 4))},
		{"timeout_short", "TIMEOUT_MS of 2 bytes", tRaw(0x000C, []byte{0, 1})},
	}
	for _, b := range bad {
		add(frame(0x06, 1, b.t).invalid(b.name, b.desc, "INVALID_TLV"))
	}

	// Added with the embeddings messages, after the others so that no
	// earlier vector is renumbered.
	embed := frame(0x49, 11, tTenant("SOC_TEAM_ALPHA"), tCompartment(0x01, "SOC"), tClass(0x01, "UNCLAS"),
		tROE(0x02, "SOC_ASSIST"), tProfile("embed"), tReqID(reqID), tDst(49))
	embed.payload = []byte("\x0a\x0bdsmil-embed\x12\x07\x0a\x05hello")
	add(embed.describe("embed_req", "L7_EMBED_REQ: one text input for the embeddings worker (device 49)"))
	add(with(frame(0x4A, 11, tReqID(reqID), tSrc(49)), func(r *raw) {
		r.flags = 1
		// data: {index 0, values [1, 0]}; usage: {prompt_tokens 3, total_tokens 3}
		r.payload = []byte{0x12, 0x0a, 0x12, 0x08, 0, 0, 0x80, 0x3f, 0, 0, 0, 0, 0x1a, 0x04, 0x08, 0x03, 0x18, 0x03}
	}).describe("embed_resp", "L7_EMBED_RESP: one two-dimensional vector, END_STREAM set"))

	// Limits (docs/dbe.md §3, §11). Numbered from 105: 103 and 104 are
	// L7_EMBED_REQ and L7_EMBED_RESP, added on another branch; when the two
	// meet, those come first and next = 105 changes nothing.
	next = max(next, 105)
	add(frame(0x06, 51, tRaw(0x4001, make([]byte, 65532))).describe("tlv_value_max",
		"the largest TLV value: 65532 bytes, which with its 4-byte TLV header fills the 65536-byte TLV block (the length field could say 65535)"))
	add(with(frame(0x06, 1, rawTLV{typ: 0x4001, value: make([]byte, 65532), lenOver: iv(65533)}), func(*raw) {}).
		invalid("tlv_value_over_block", "a 65536-byte TLV block whose one TLV declares 65533 bytes: no value longer than 65532 fits", "TLV_OVERRUN"))
	return vs
}
