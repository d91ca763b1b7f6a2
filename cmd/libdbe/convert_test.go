package main

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
)

// Every registered TLV's JSON form encodes to the bytes the dbe accessors
// write and decodes back to the same JSON.
func TestTLVJSONRoundTrip(t *testing.T) {
	for _, c := range []struct{ name, js, back string }{
		{"TENANT_ID", `"SOC_TEAM_ALPHA"`, `"SOC_TEAM_ALPHA"`},
		{"COMPARTMENT_MASK", `["SOC","LAB"]`, `5`},
		{"COMPARTMENT_MASK", `3`, `3`},
		{"CLASSIFICATION", `"SECRET"`, `"SECRET"`},
		{"CLASSIFICATION", `3`, `"TS"`},
		{"ROE_LEVEL", `"SOC_ASSIST"`, `"SOC_ASSIST"`},
		{"LAYER_PATH", `[3,5,7]`, `[3,5,7]`},
		{"DEVICE_ID_DST", `43`, `43`},
		{"L7_PROFILE", `"llm-7b-amx"`, `"llm-7b-amx"`},
		{"L7_CLAIM_TOKEN", `"AAFvcGFxdWU="`, `"AAFvcGFxdWU="`},
		{"TIMESTAMP", `1700000000000015259`, `1700000000000015259`},
		{"REQUEST_ID", `"0192f1a8-3c4d-7e5f-8a9b-0c1d2e3f4a5b"`, `"0192f1a8-3c4d-7e5f-8a9b-0c1d2e3f4a5b"`},
		{"TIMEOUT_MS", `1500`, `1500`},
		{"TLV_0x4001", `"AQID"`, `"AQID"`},
	} {
		typ, v, err := tlvValueFromJSON(c.name, []byte(c.js))
		if err != nil {
			t.Fatalf("%s %s: %v", c.name, c.js, err)
		}
		got, err := tlvValueToJSON(typ, v)
		if err != nil {
			t.Fatalf("%s: decode: %v", c.name, err)
		}
		b, _ := json.Marshal(got)
		if string(b) != c.back {
			t.Errorf("%s %s: back as %s, want %s", c.name, c.js, b, c.back)
		}
	}
	var f dbe.Frame
	f.SetTimestamp(time.Unix(0, 1700000000000015259))
	want, _ := f.Get(dbe.TLVTimestamp)
	if _, v, _ := tlvValueFromJSON("TIMESTAMP", []byte(`1700000000000015259`)); !bytes.Equal(v, want) {
		t.Errorf("TIMESTAMP bytes %x, SetTimestamp writes %x", v, want)
	}
}

func TestTLVJSONErrors(t *testing.T) {
	for _, c := range []struct{ name, js string }{
		{"NO_SUCH", `1`},
		{"TENANT_ID", `5`},
		{"COMPARTMENT_MASK", `["SOC","MOON"]`},
		{"CLASSIFICATION", `"TOP"`},
		{"REQUEST_ID", `"0192f1a8"`},
		{"DEVICE_ID_DST", `300`},
		{"L7_CLAIM_TOKEN", `"%%%"`},
	} {
		if _, _, err := tlvValueFromJSON(c.name, []byte(c.js)); err == nil {
			t.Errorf("%s %s: accepted", c.name, c.js)
		}
	}
}

// FuzzFrameJSON: any text is a frame or an error, never a panic; a frame
// that encodes decodes back to the same JSON.
func FuzzFrameJSON(f *testing.F) {
	f.Add(`{"version":1,"msg_type":65,"flags":0,"correlation_id":1,"tlvs":[{"type":32769,"value":"VA=="}],"payload":""}`)
	f.Add(`{"msg_type":6}`)
	f.Add(`{"msg_type":65,"tlvs":[{"type":32770,"value":"/w=="}]}`)
	f.Fuzz(func(t *testing.T, s string) {
		fr, err := frameFromJSON([]byte(s))
		if err != nil {
			return
		}
		b, err := fr.MarshalBinary()
		if err != nil {
			return
		}
		var back dbe.Frame
		if err := dbe.DecodeInto(&back, b, dbe.DefaultMaxFrameSize); err != nil {
			return // the encoder does not validate everything the decoder does
		}
		j1, _ := json.Marshal(frameToJSON(&back))
		fr2, err := frameFromJSON(j1)
		if err != nil {
			t.Fatalf("our own JSON %s: %v", j1, err)
		}
		b2, _ := fr2.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatalf("re-encoded %x, was %x", b2, b)
		}
	})
}
