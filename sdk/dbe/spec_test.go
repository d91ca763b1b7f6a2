package dbe

import (
	"encoding/hex"
	"slices"
	"testing"
)

// Tests that hold the codec and the vectors to rules of docs/dbe.md that
// the vectors alone do not pin down.

// registryKey is a TLV's position in registry order (docs/dbe.md §3): the
// low 15 bits of a registered code, the critical bit ignored; unregistered
// codes after every registered one.
func registryKey(t TLVType) int {
	if t.Known() {
		return int(t &^ CriticalBit)
	}
	return 1 << 16
}

// TestTLVRegistryOrder: registry order is the §4 table's order and differs
// from ascending 16-bit code order; the vectors the spec names as written in
// registry order are, tlv_order_free is not, and an encoder keeps whatever
// order its TLV list has (it must not sort).
func TestTLVRegistryOrder(t *testing.T) {
	want := []TLVType{TLVTenantID, TLVCompartmentMask, TLVClassification, TLVROELevel, TLVLayerPath,
		TLVDeviceIDSrc, TLVDeviceIDDst, TLVProfile, TLVClaimToken, TLVTimestamp, TLVRequestID, TLVTimeoutMS}
	var reg []TLVType
	for _, r := range registry[1:] {
		reg = append(reg, r.typ)
	}
	if !slices.Equal(reg, want) {
		t.Fatalf("registry order %v, want %v", reg, want)
	}
	byKey := slices.SortedFunc(slices.Values(want), func(a, b TLVType) int { return registryKey(a) - registryKey(b) })
	byCode := slices.Sorted(slices.Values(want))
	if !slices.Equal(byKey, want) || slices.Equal(byCode, want) {
		t.Fatalf("registry order must be the low-15-bit order and differ from the code order: %v %v", byKey, byCode)
	}
	ordered := func(f *Frame) bool {
		return slices.IsSortedFunc(f.TLVs, func(a, b TLV) int { return registryKey(a.Type) - registryKey(b.Type) })
	}
	seen := map[string]bool{}
	for _, v := range loadVectors(t) {
		want, named := map[string]bool{"chat_req_typical": true, "policy_check": true, "tlv_order_free": false}[v.Name]
		if !named {
			continue
		}
		seen[v.Name] = true
		b, _ := hex.DecodeString(v.Hex)
		f, err := Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if ordered(f) != want {
			t.Errorf("%s: in registry order = %v, want %v", v.Name, !want, want)
		}
		// Re-encoding keeps the wire order, whatever it is.
		f.TLVs[0], f.TLVs[len(f.TLVs)-1] = f.TLVs[len(f.TLVs)-1], f.TLVs[0]
		g, err := Decode(mustEncode(t, f))
		if err != nil || g.TLVs[0].Type != f.TLVs[0].Type {
			t.Errorf("%s: the encoder reordered TLVs (%v)", v.Name, err)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("vectors missing: saw %v", seen)
	}
}

func mustEncode(t *testing.T, f *Frame) []byte {
	t.Helper()
	b, err := f.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTLVValueLimit (docs/dbe.md §3): the length field allows 65535, but a
// value is at most 65532 bytes, what fits the 65536-byte TLV block with its
// TLV header; the encoder refuses anything longer.
func TestTLVValueLimit(t *testing.T) {
	for _, n := range []int{65532, 65533, 65535, 65536} {
		f := &Frame{Type: MsgHealth, CorrelationID: 1, TLVs: []TLV{{Type: 0x4001, Value: make([]byte, n)}}}
		b, err := f.MarshalBinary()
		switch {
		case n == 65532:
			if err != nil || len(b) != HeaderSize+MaxTLVBlock {
				t.Fatalf("%d-byte value: %v", n, err)
			}
		case n <= 0xFFFF:
			if ErrorName(err) != "FRAME_TOO_LARGE" {
				t.Fatalf("%d-byte value: %v, want FRAME_TOO_LARGE (the block would exceed 65536)", n, err)
			}
		default:
			if ErrorName(err) != "INVALID_TLV" {
				t.Fatalf("%d-byte value: %v, want INVALID_TLV (the length field cannot say it)", n, err)
			}
		}
	}
}
