package dbe

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// randFrame builds a random valid frame.
func randFrame(r *rand.Rand) *Frame {
	f := &Frame{
		Type:          []MsgType{MsgChatReq, MsgChatResp, MsgChatChunk, MsgError, MsgTunnelData, 0x7E}[r.IntN(6)],
		CorrelationID: r.Uint64(),
	}
	if r.IntN(2) == 0 {
		f.Flags = FlagEndStream
	}
	perm := r.Perm(len(registry) - 1)
	for _, p := range perm[:r.IntN(len(perm)+1)] {
		f.TLVs = append(f.TLVs, TLV{Type: registry[p+1].typ, Value: randValue(r, registry[p+1].typ)})
	}
	for range r.IntN(4) {
		v := make([]byte, r.IntN(40))
		for i := range v {
			v[i] = byte(r.Uint32())
		}
		at := r.IntN(len(f.TLVs) + 1)
		f.TLVs = append(f.TLVs[:at], append([]TLV{{Type: TLVType(0x100 + r.IntN(0x7E00)), Value: v}}, f.TLVs[at:]...)...)
	}
	f.Payload = make([]byte, r.IntN(3000))
	for i := range f.Payload {
		f.Payload[i] = byte(r.Uint32())
	}
	return f
}

func randValue(r *rand.Rand, t TLVType) []byte {
	switch t {
	case TLVTenantID:
		return []byte("tenant-" + string(rune('A'+r.IntN(26))) + "-é")
	case TLVCompartmentMask:
		return []byte{byte(r.IntN(16)) | byte(r.IntN(2))<<7}
	case TLVClassification:
		return []byte{byte(1 + r.IntN(5))}
	case TLVROELevel:
		return []byte{byte(1 + r.IntN(3))}
	case TLVLayerPath:
		p := make([]byte, 1+r.IntN(16))
		for i := range p {
			p[i] = byte(1 + r.IntN(9))
		}
		return p
	case TLVDeviceIDSrc, TLVDeviceIDDst:
		return []byte{byte(r.IntN(104))}
	case TLVProfile:
		return []byte("llm-" + string(rune('a'+r.IntN(26))) + ".v1_x")
	case TLVClaimToken:
		b := make([]byte, 1+r.IntN(5000))
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		return b
	case TLVTimestamp:
		return []byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())}
	case TLVRequestID:
		b := make([]byte, 16)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		b[0] |= 1
		return b
	case TLVTimeoutMS:
		return []byte{0, 0, byte(r.Uint32()), 1}
	}
	panic(t)
}

func equalFrames(a, b *Frame) bool {
	if a.Type != b.Type || a.Flags != b.Flags || a.CorrelationID != b.CorrelationID ||
		!bytes.Equal(a.Payload, b.Payload) || len(a.TLVs) != len(b.TLVs) {
		return false
	}
	for i := range a.TLVs {
		if a.TLVs[i].Type != b.TLVs[i].Type || !bytes.Equal(a.TLVs[i].Value, b.TLVs[i].Value) {
			return false
		}
	}
	return true
}

// TestRoundTripProperty: encode → decode gives the same frame, and the
// encoding is canonical (decode → encode gives the same bytes).
func TestRoundTripProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 2000 {
		f := randFrame(r)
		b, err := f.MarshalBinary()
		if err != nil {
			t.Fatalf("#%d encode: %v", i, err)
		}
		if len(b) != f.EncodedLen() {
			t.Fatalf("#%d EncodedLen %d, encoded %d", i, f.EncodedLen(), len(b))
		}
		g, err := Decode(b)
		if err != nil {
			t.Fatalf("#%d decode: %v", i, err)
		}
		if !equalFrames(f, g) {
			t.Fatalf("#%d round trip differs", i)
		}
		b2, err := g.AppendBinary([]byte("prefix"))
		if err != nil || !bytes.Equal(b2[6:], b) || string(b2[:6]) != "prefix" {
			t.Fatalf("#%d re-encode differs (%v)", i, err)
		}
	}
}

func TestEncodeRefusesInvalid(t *testing.T) {
	cases := []struct {
		name string
		f    Frame
		want error
	}{
		{"type zero", Frame{}, ErrInvalidMsgType},
		{"reserved flag", Frame{Type: MsgHealth, Flags: 0x4}, ErrReservedFlags},
		{"unknown critical", Frame{Type: MsgHealth, TLVs: []TLV{{0xC123, nil}}}, ErrUnknownCriticalTLV},
		{"duplicate", Frame{Type: MsgHealth, TLVs: []TLV{{TLVProfile, []byte("a")}, {TLVProfile, []byte("b")}}}, ErrDuplicateTLV},
		{"bad value", Frame{Type: MsgHealth, TLVs: []TLV{{TLVDeviceIDDst, []byte{200}}}}, ErrInvalidTLV},
		{"value too long", Frame{Type: MsgHealth, TLVs: []TLV{{0x4000, make([]byte, 70000)}}}, ErrInvalidTLV},
		{"block too large", Frame{Type: MsgHealth, TLVs: []TLV{{0x4000, make([]byte, 40000)}, {0x4000, make([]byte, 40000)}}}, ErrFrameTooLarge},
		{"too many", Frame{Type: MsgHealth, TLVs: make([]TLV, 257)}, ErrTooManyTLVs},
		{"type 0", Frame{Type: MsgHealth, TLVs: []TLV{{0, nil}}}, ErrInvalidTLVType},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := c.f.MarshalBinary(); !errors.Is(err, c.want) {
				t.Fatalf("err %v, want %v", err, c.want)
			}
		})
	}
}

func TestMaxFrameSize(t *testing.T) {
	f := &Frame{Type: MsgTunnelData, Payload: make([]byte, 1000)}
	b, _ := f.MarshalBinary()
	if err := DecodeInto(new(Frame), b, 1024); err != nil {
		t.Fatalf("1024-byte frame at limit 1024: %v", err)
	}
	if err := DecodeInto(new(Frame), b, 1023); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("limit 1023: %v", err)
	}
}

func TestTypedAccessors(t *testing.T) {
	var f Frame
	f.Type = MsgChatReq
	now := time.Date(2026, 11, 27, 12, 0, 0, 123456789, time.UTC)
	id := [16]byte{0x01, 0x92, 0xf1, 0xa8, 0x3c, 0x4d, 0x7e, 0x5f, 0x8a, 0x9b, 0x0c, 0x1d, 0x2e, 0x3f, 0x4a, 0x5b}
	f.SetTenantID("LOCAL_TOOL_USER")
	f.SetCompartmentMask(CompartmentSOC | CompartmentDEV)
	f.SetClassification(TSSim)
	f.SetROELevel(Training)
	f.SetLayerPath(3, 5, 7)
	f.SetDeviceIDSrc(0)
	f.SetDeviceIDDst(43)
	f.SetProfile("llm-7b-amx")
	f.SetClaimToken([]byte{1, 2, 3})
	f.SetTimestamp(now)
	f.SetRequestID(id)
	f.SetTimeout(1500*time.Millisecond + 1)
	f.SetProfile("echo") // replaces
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	g, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckRequired(g); err != nil {
		t.Fatal(err)
	}
	ten, _ := g.TenantID()
	cm, _ := g.CompartmentMask()
	cl, _ := g.Classification()
	roe, _ := g.ROELevel()
	lp, _ := g.LayerPath()
	src, _ := g.DeviceIDSrc()
	dst, _ := g.DeviceIDDst()
	prof, _ := g.Profile()
	tok, _ := g.ClaimToken()
	ts, _ := g.Timestamp()
	rid, _ := g.RequestID()
	to, _ := g.Timeout()
	got := []any{ten, cm.String(), cl.String(), roe.String(), lp, src, dst, prof, tok, rid, to, len(g.TLVs)}
	want := []any{"LOCAL_TOOL_USER", "SOC|DEV", "TS_SIM", "TRAINING", []byte{3, 5, 7}, uint8(0), uint8(43), "echo", []byte{1, 2, 3}, id, 1501 * time.Millisecond, 12}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %v\nwant %v", got, want)
	}
	if d := ts.Sub(now); d > 0 || d < -16*time.Microsecond {
		t.Fatalf("timestamp %v, want within 2^-16 s below %v", ts, now)
	}
	if FormatUUID(rid) != "0192f1a8-3c4d-7e5f-8a9b-0c1d2e3f4a5b" {
		t.Fatal(FormatUUID(rid))
	}
	g.Del(TLVProfile)
	if err := CheckRequired(g); !errors.Is(err, ErrMissingTLV) {
		t.Fatalf("after Del: %v", err)
	}
}

func TestTimestampRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 100000 {
		v := r.Uint64() & 0xFFFFFFFFFFFF
		if got := EncodeTimestamp(DecodeTimestamp(v)); got != v {
			t.Fatalf("EncodeTimestamp(DecodeTimestamp(%#x)) = %#x", v, got)
		}
	}
	if EncodeTimestamp(time.Unix(-5, 0)) != 0 || EncodeTimestamp(time.Unix(1<<33, 0)) != 0xFFFFFFFFFFFF {
		t.Fatal("out-of-range times not clamped")
	}
}

// TestEnumNames pins the names and wire values of CLASSIFICATION, ROE_LEVEL
// and COMPARTMENT_MASK, which dsmil.hcl spells too.
func TestEnumNames(t *testing.T) {
	for i, n := range []string{"UNCLAS", "SECRET", "TS", "TS_SIM", "EXEC"} {
		c, ok := ClassificationByName(n)
		if !ok || uint8(c) != uint8(i+1) || c.String() != n {
			t.Errorf("classification %s: %d %v", n, c, ok)
		}
	}
	for i, n := range []string{"ANALYSIS_ONLY", "SOC_ASSIST", "TRAINING"} {
		r, ok := ROELevelByName(n)
		if !ok || uint8(r) != uint8(i+1) || r.String() != n {
			t.Errorf("roe %s: %d %v", n, r, ok)
		}
	}
	want := []struct {
		name string
		bit  Compartment
	}{{"SOC", 0x01}, {"DEV", 0x02}, {"LAB", 0x04}, {"CRYPTO", 0x08}, {"KINETIC", 0x80}}
	all := Compartments()
	if len(all) != len(want) {
		t.Fatalf("Compartments() = %v, want %d", all, len(want))
	}
	for i, w := range want {
		c, ok := CompartmentByName(w.name)
		if !ok || c != w.bit || all[i] != w.bit || c.String() != w.name {
			t.Errorf("compartment %s: %#x %v, Compartments()[%d] = %#x", w.name, c, ok, i, all[i])
		}
	}
	if _, ok := ClassificationByName("unclas"); ok {
		t.Error("names are case-sensitive")
	}
	if _, ok := ROELevelByName("NONE"); ok {
		t.Error("ROE NONE")
	}
	if _, ok := CompartmentByName("SOC|DEV"); ok {
		t.Error("CompartmentByName accepts a mask")
	}
}

func TestNames(t *testing.T) {
	for _, e := range errorNames {
		if ErrorByName(e.name) != e.err || ErrorName(e.err) != e.name {
			t.Errorf("%s does not round-trip", e.name)
		}
	}
	for mt, n := range msgNames {
		if got, ok := MsgTypeByName(n); !ok || got != mt || !mt.Known() {
			t.Errorf("%s", n)
		}
	}
	for _, r := range registry[1:] {
		if got, ok := TLVTypeByName(r.name); !ok || got != r.typ || !r.typ.Known() {
			t.Errorf("%s", r.name)
		}
	}
	if MsgType(0x99).String() != "MSG_0x99" || TLVType(0x4001).String() != "TLV_0x4001" || Code(99).String() != "CODE_99" {
		t.Error("unknown names")
	}
	if CodeFor(ErrFrameTooLarge) != CodeFrameTooLarge || CodeFor(ErrBadMagic) != CodeMalformedFrame ||
		CodeFor(ErrMissingTLV) != CodeInvalidRequest || CodeFor(ErrUnsupportedVersion) != CodeUnsupportedVersion {
		t.Error("CodeFor")
	}
}

func TestPeekTLV(t *testing.T) {
	f := &Frame{Type: MsgChatReq, TLVs: []TLV{{TLVTenantID, []byte("T")}, {TLVProfile, []byte("echo")}}, Payload: []byte("x")}
	b, _ := f.MarshalBinary()
	h, v, ok, err := PeekTLV(b, TLVProfile, 0)
	if err != nil || !ok || string(v) != "echo" || h.Type != MsgChatReq {
		t.Fatalf("%v %q %v %v", h, v, ok, err)
	}
	if _, _, ok, err := PeekTLV(b, TLVRequestID, 0); ok || err != nil {
		t.Fatalf("absent TLV: %v %v", ok, err)
	}
	if _, _, _, err := PeekTLV(b[:HeaderSize+3], TLVProfile, 0); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated: %v", err)
	}
}

// IsResponse: every registered type is a request, a response or a
// connection message, and the response payloads are exactly those §5 says
// a worker sends.
func TestIsResponse(t *testing.T) {
	want := map[MsgType]bool{MsgChatResp: true, MsgChatChunk: true, MsgAgentResult: true, MsgModelStatus: true,
		MsgPolicyResult: true, MsgEmbedResp: true, MsgError: true}
	for ty := range 256 {
		mt := MsgType(ty)
		if mt.IsResponse() != want[mt] {
			t.Errorf("%s: IsResponse %v", mt, mt.IsResponse())
		}
	}
}
