package dbe

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
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

// TestVectorJSONRules holds every vector file to the rendering rules of
// docs/dbe.md §10: which keys appear, how codes, names and values are
// spelled. (That the codec renders values the same way is checked by
// TestVectors.)
func TestVectorJSONRules(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	if err != nil || len(files) < 100 {
		t.Fatalf("%d vector files (%v)", len(files), err)
	}
	lowerHex := regexp.MustCompile(`^([0-9a-f]{2})*$`)
	valueRule := map[string]*regexp.Regexp{
		"COMPARTMENT_MASK": regexp.MustCompile(`^(NONE|(SOC|DEV|LAB|CRYPTO|KINETIC)(\|(DEV|LAB|CRYPTO|KINETIC))*)$`),
		"CLASSIFICATION":   regexp.MustCompile(`^(UNCLAS|SECRET|TS|TS_SIM|EXEC)$`),
		"ROE_LEVEL":        regexp.MustCompile(`^(ANALYSIS_ONLY|SOC_ASSIST|TRAINING)$`),
		"LAYER_PATH":       regexp.MustCompile(`^[1-9](→[1-9])*$`),
		"DEVICE_ID_SRC":    regexp.MustCompile(`^(0|[1-9][0-9]*)$`),
		"DEVICE_ID_DST":    regexp.MustCompile(`^(0|[1-9][0-9]*)$`),
		"TIMESTAMP":        regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$`),
		"REQUEST_ID":       regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`),
		"TIMEOUT_MS":       regexp.MustCompile(`^[1-9][0-9]*$`),
	}
	for _, file := range files {
		b, _ := os.ReadFile(file)
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(file)
		has := func(m map[string]any, k string) bool { _, ok := m[k]; return ok }
		for _, k := range []string{"name", "description", "valid"} {
			if !has(v, k) {
				t.Errorf("%s: no %q", name, k)
			}
		}
		if v["valid"] == false {
			for _, k := range []string{"header", "tlvs", "payload_hex", "required_error"} {
				if has(v, k) {
					t.Errorf("%s: an invalid vector has %q", name, k)
				}
			}
			if s, _ := v["error"].(string); s == "" {
				t.Errorf("%s: an invalid vector without its error", name)
			}
			continue
		}
		if has(v, "error") {
			t.Errorf("%s: a valid vector has \"error\"", name)
		}
		if r, ok := v["required_error"]; ok && r != "MISSING_TLV" {
			t.Errorf("%s: required_error %v", name, r)
		}
		h, _ := v["header"].(map[string]any)
		if h == nil {
			t.Fatalf("%s: no header", name)
		}
		mt, mn := h["msg_type"].(string), h["msg_name"].(string)
		code, err := strconv.ParseUint(strings.TrimPrefix(mt, "0x"), 16, 8)
		if !regexp.MustCompile(`^0x[0-9A-F]{2}$`).MatchString(mt) || err != nil || mn != MsgType(code).String() ||
			!regexp.MustCompile(`^0x[0-9A-F]{4}$`).MatchString(h["flags"].(string)) {
			t.Errorf("%s: header %v", name, h)
		}
		if !MsgType(code).Known() && mn != fmt.Sprintf("MSG_0x%02X", code) {
			t.Errorf("%s: unknown type named %s", name, mn)
		}
		if has(v, "tlvs") != (h["tlv_len"].(float64) > 0) || has(v, "payload_hex") != (h["payload_len"].(float64) > 0) {
			t.Errorf("%s: \"tlvs\" and \"payload_hex\" must appear exactly when not empty", name)
		}
		if p, ok := v["payload_hex"].(string); ok && !lowerHex.MatchString(p) {
			t.Errorf("%s: payload_hex not lowercase hex", name)
		}
		tlvs, _ := v["tlvs"].([]any)
		for _, x := range tlvs {
			tl := x.(map[string]any)
			ty, tn := tl["type"].(string), tl["name"].(string)
			code, err := strconv.ParseUint(strings.TrimPrefix(ty, "0x"), 16, 16)
			if !regexp.MustCompile(`^0x[0-9A-F]{4}$`).MatchString(ty) || err != nil || tn != TLVType(code).String() ||
				tl["critical"] != TLVType(code).Critical() || !lowerHex.MatchString(tl["value_hex"].(string)) {
				t.Errorf("%s: TLV %v", name, tl)
			}
			wantValue := TLVType(code).Known() && TLVType(code) != TLVClaimToken
			val, hasValue := tl["value"].(string)
			if hasValue != wantValue {
				t.Errorf("%s: TLV %s has a value: %v, want %v", name, tn, hasValue, wantValue)
			}
			if re := valueRule[tn]; hasValue && re != nil && !re.MatchString(val) {
				t.Errorf("%s: %s rendered %q", name, tn, val)
			}
		}
	}
}
