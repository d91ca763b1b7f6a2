package dbe

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors")

const vectorDir = "testdata/vectors"

func writeVectors(t *testing.T) {
	t.Helper()
	if err := os.RemoveAll(vectorDir); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(vectorDir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, v := range generateVectors() {
		if names[v.Name] {
			t.Fatalf("duplicate vector name %s", v.Name)
		}
		names[v.Name] = true
		base := filepath.Join(vectorDir, fmt.Sprintf("%03d-%s", v.Num, v.Name))
		j, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(base+".json", append(j, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(base+".hex", []byte(v.Hex+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func loadVectors(t *testing.T) []vector {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(vectorDir, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no vectors in %s (%v)", vectorDir, err)
	}
	sort.Strings(files)
	var vs []vector
	for _, f := range files {
		j, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v vector
		if err := json.Unmarshal(j, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		h, err := os.ReadFile(strings.TrimSuffix(f, ".json") + ".hex")
		if err != nil {
			t.Fatal(err)
		}
		v.Hex = strings.TrimSpace(string(h))
		vs = append(vs, v)
	}
	return vs
}

// TestVectors checks the codec against every conformance vector: valid
// frames decode to exactly what the JSON describes and re-encode to the same
// bytes; invalid frames fail with the named error.
func TestVectors(t *testing.T) {
	if *update {
		writeVectors(t)
	}
	vs := loadVectors(t)
	if want := len(generateVectors()); len(vs) != want {
		t.Fatalf("%d vectors on disk, generator makes %d: run with -update", len(vs), want)
	}
	for _, v := range vs {
		t.Run(v.Name, func(t *testing.T) {
			b, err := hex.DecodeString(v.Hex)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Decode(b)
			if !v.Valid {
				if err == nil {
					t.Fatalf("decoded; want %s", v.Error)
				}
				if got := ErrorName(err); got != v.Error {
					t.Fatalf("error %q (%v), want %s", got, err, v.Error)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			checkVector(t, v, f)
			enc, err := f.MarshalBinary()
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if !bytes.Equal(enc, b) {
				t.Fatalf("re-encoding differs:\n got %x\nwant %x", enc, b)
			}
			err = CheckRequired(f)
			if got := ErrorName(err); got != v.Required {
				t.Fatalf("CheckRequired = %q (%v), want %q", got, err, v.Required)
			}
		})
	}
}

func checkVector(t *testing.T, v vector, f *Frame) {
	t.Helper()
	h := v.Header
	if got := fmt.Sprintf("0x%02X", uint8(f.Type)); got != h.MsgType || f.Type.String() != h.MsgName {
		t.Errorf("msg type %s %s, want %s %s", got, f.Type, h.MsgType, h.MsgName)
	}
	if got := fmt.Sprintf("0x%04X", uint16(f.Flags)); got != h.Flags {
		t.Errorf("flags %s, want %s", got, h.Flags)
	}
	if got := fmt.Sprint(f.CorrelationID); got != h.CorrelationID {
		t.Errorf("correlation id %s, want %s", got, h.CorrelationID)
	}
	if got := hex.EncodeToString(f.Payload); got != v.PayloadHex {
		t.Errorf("payload %s, want %s", got, v.PayloadHex)
	}
	if len(f.TLVs) != len(v.TLVs) {
		t.Fatalf("%d TLVs, want %d", len(f.TLVs), len(v.TLVs))
	}
	hdr, err := PeekHeader([]byte(mustHex(v.Hex)), 0)
	if err != nil || hdr.TLVLen != h.TLVLen || hdr.PayloadLen != h.PayloadLen || int(hdr.Version) != h.Version {
		t.Errorf("header %+v (%v), want %+v", hdr, err, *h)
	}
	for i, want := range v.TLVs {
		got := f.TLVs[i]
		if fmt.Sprintf("0x%04X", uint16(got.Type)) != want.Type || got.Type.String() != want.Name ||
			got.Type.Critical() != want.Critical || len(got.Value) != want.Length ||
			hex.EncodeToString(got.Value) != want.ValueHex {
			t.Errorf("TLV %d = %s %x, want %+v", i, got.Type, got.Value, want)
		}
		if want.Value != "" {
			if r := render(f, got.Type); r != want.Value {
				t.Errorf("TLV %d %s renders %q, want %q", i, want.Name, r, want.Value)
			}
		}
	}
}

func mustHex(s string) string {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// render gives the human form of a registered TLV through the typed
// accessors, as the vectors' "value" fields spell it.
func render(f *Frame, t TLVType) string {
	switch t {
	case TLVTenantID:
		s, _ := f.TenantID()
		return s
	case TLVCompartmentMask:
		c, _ := f.CompartmentMask()
		return c.String()
	case TLVClassification:
		c, _ := f.Classification()
		return c.String()
	case TLVROELevel:
		r, _ := f.ROELevel()
		return r.String()
	case TLVLayerPath:
		p, _ := f.LayerPath()
		parts := make([]string, len(p))
		for i, l := range p {
			parts[i] = fmt.Sprint(l)
		}
		return strings.Join(parts, "→")
	case TLVDeviceIDSrc:
		d, _ := f.DeviceIDSrc()
		return fmt.Sprint(d)
	case TLVDeviceIDDst:
		d, _ := f.DeviceIDDst()
		return fmt.Sprint(d)
	case TLVProfile:
		s, _ := f.Profile()
		return s
	case TLVTimestamp:
		ts, _ := f.Timestamp()
		return ts.Format("2006-01-02T15:04:05.000000000Z07:00")
	case TLVRequestID:
		id, _ := f.RequestID()
		return FormatUUID(id)
	case TLVTimeoutMS:
		d, _ := f.Timeout()
		return fmt.Sprint(int64(d / time.Millisecond))
	}
	return ""
}

// TestVectorCoverage makes sure the vectors exercise every registered TLV,
// every registered message type and every decode error.
func TestVectorCoverage(t *testing.T) {
	vs := loadVectors(t)
	tlvs, msgs, errs := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, v := range vs {
		if v.Header != nil {
			msgs[v.Header.MsgName] = true
		}
		for _, x := range v.TLVs {
			tlvs[x.Name] = true
		}
		errs[v.Error] = true
		errs[v.Required] = true
	}
	for _, r := range registry[1:] {
		if !tlvs[r.name] {
			t.Errorf("no vector carries %s", r.name)
		}
	}
	for _, n := range msgNames {
		if !msgs[n] {
			t.Errorf("no vector of message type %s", n)
		}
	}
	for _, e := range errorNames {
		if !errs[e.name] {
			t.Errorf("no vector fails with %s", e.name)
		}
	}
}
