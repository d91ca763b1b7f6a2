package shim

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/config/configtest"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

var fuzzHCL = configtest.EchoPlane("/bin/true", configtest.Tenant{KeySHA256: config.HashKey("test")})

// FuzzDecodeRequest feeds arbitrary bodies to both completion endpoints'
// parser. Whatever the bytes, it must not panic; a refusal is a 4xx with a
// message (client input never makes a 5xx); an accepted body becomes an
// L7_CHAT_REQ frame with every required TLV that encodes, decodes and
// carries exactly the parsed parameters.
func FuzzDecodeRequest(f *testing.F) {
	cfg, diags := config.Parse(filepath.Join(f.TempDir(), "dsmil.hcl"), []byte(fuzzHCL))
	if diags.HasErrors() {
		f.Fatal(diags)
	}
	s, err := New(Config{Shim: cfg.Shim, Tenants: cfg.Tenants, Models: cfg.Models, Router: &capture{},
		ClaimSource: func(*config.Tenant) []byte { return []byte("claim") }})
	if err != nil {
		f.Fatal(err)
	}
	tenant := cfg.Tenants[0]
	for _, seed := range []string{
		`{"model":"dsmil-echo","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"dsmil-echo","prompt":"hi","max_tokens":4,"temperature":0,"logit_bias":{"64":100}}`,
		`{"model":"dsmil-echo","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}],"stream":true,"stream_options":{"include_usage":true},"stop":["x"],"top_k":5,"seed":1}`,
		`{"model":"dsmil-echo","messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},{"role":"tool","tool_call_id":"c","content":"1"}]}`,
		`{"model":"dsmil-echo","logit_bias":{"-1":5,"x":1e400}}`,
		`{"model":1}`, `[]`, `{`, ``, `null`, `{"model":"dsmil-echo","messages":"hi","n":2,"logprobs":true}`,
	} {
		f.Add([]byte(seed), false)
		f.Add([]byte(seed), true)
	}
	now := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body []byte, text bool) {
		ep := chatEndpoint
		if text {
			ep = textEndpoint
		}
		call, e := s.decodeRequest(body, ep, tenant)
		if e != nil {
			if e.status < 400 || e.status > 499 || e.message == "" || e.typ == "" {
				t.Fatalf("refusal %d %q %q for %q", e.status, e.typ, e.message, body)
			}
			return
		}
		fr, err := s.frame(call, tenant, [16]byte{1}, now)
		if err != nil {
			t.Fatalf("accepted body %q makes no frame: %v", body, err)
		}
		if err := dbe.CheckRequired(fr); err != nil || fr.Type != dbe.MsgChatReq {
			t.Fatalf("frame %s for %q: %v", fr.Type, body, err)
		}
		wire, err := fr.MarshalBinary()
		if err != nil {
			t.Fatalf("frame for %q does not encode: %v", body, err)
		}
		back, err := dbe.Decode(wire)
		if err != nil || !bytes.Equal(back.Payload, fr.Payload) {
			t.Fatalf("frame for %q does not decode: %v", body, err)
		}
		var p l7v1.L7ChatRequest
		if err := proto.Unmarshal(back.Payload, &p); err != nil || !proto.Equal(&p, call.params) {
			t.Fatalf("payload for %q: %v\n got %v\nwant %v", body, err, &p, call.params)
		}
	})
}
