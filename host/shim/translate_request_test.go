package shim

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// capture is a router that records the frame it gets and answers with a
// fixed response.
type capture struct {
	mu    sync.Mutex
	frame *dbe.Frame
}

func (c *capture) Forward(_ context.Context, req *dbe.Frame, out func(*dbe.Frame, proto.Message)) func() {
	c.mu.Lock()
	c.frame = req
	c.mu.Unlock()
	b, _ := proto.Marshal(&l7v1.L7ChatResponse{Choices: []*l7v1.Choice{{Message: &l7v1.Message{Role: "assistant", Content: "ok"}, Text: "ok"}}})
	out(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: b}, nil)
	return func() {}
}

func (c *capture) last() *dbe.Frame {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := c.frame
	c.frame = nil
	return f
}

// TestFrame checks every TLV of the L7_CHAT_REQ and the payload built from
// every honoured field.
func TestFrame(t *testing.T) {
	rt := &capture{}
	now := time.Date(2026, 3, 4, 5, 6, 7, 500_000_000, time.UTC)
	_, base := startShim(t, func(c *Config) {
		c.Router = rt
		c.Now = func() time.Time { return now }
		c.Shim.RequestTimeout = 90 * time.Second
		c.ClaimSource = func(t *config.Tenant) []byte { return []byte("claim-for-" + t.Name) }
	})
	clientID := "0190a5f3-7b1c-7def-8123-456789abcdef"
	resp, body := call(t, "POST", base+"/v1/chat/completions", keyT, `{
		"model": "dsmil-slow",
		"messages": [
			{"role": "system", "content": "sys"},
			{"role": "user", "name": "ann", "content": [
				{"type": "text", "text": "look"},
				{"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}},
				{"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
			]},
			{"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
			{"role": "tool", "tool_call_id": "c1", "content": "42"}
		],
		"temperature": 0.5, "top_p": 0.9, "top_k": 9999999999, "min_p": 0.05, "seed": -7,
		"stop": ["a", "b"], "max_completion_tokens": 64, "presence_penalty": -1.5,
		"frequency_penalty": 2, "repetition_penalty": 1.1, "n": 1, "user": "u-1",
		"stream": false, "logit_bias": {"50256": -100, "7": 2.5}, "logprobs": false, "response_format": {"type": "text"},
		"tools": [], "tool_choice": "none", "parallel_tool_calls": true, "metadata": {"ignored": "yes"}
	}`, "X-Request-Id", strings.ToUpper(clientID))
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Request-Id"); got != clientID {
		t.Fatalf("x-request-id %q, want the client's %q", got, clientID)
	}
	f := rt.last()
	if err := dbe.CheckRequired(f); err != nil || f.Type != dbe.MsgChatReq {
		t.Fatalf("%v %v", f.Type, err)
	}
	var order []dbe.TLVType
	for _, x := range f.TLVs {
		order = append(order, x.Type)
	}
	want := []dbe.TLVType{dbe.TLVTenantID, dbe.TLVCompartmentMask, dbe.TLVClassification, dbe.TLVROELevel, dbe.TLVDeviceIDSrc,
		dbe.TLVDeviceIDDst, dbe.TLVProfile, dbe.TLVClaimToken, dbe.TLVTimestamp, dbe.TLVRequestID, dbe.TLVTimeoutMS}
	if len(order) != len(want) {
		t.Fatalf("TLVs %v, want %v", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("TLVs %v, want %v", order, want)
		}
	}
	tenant, _ := f.TenantID()
	comp, _ := f.CompartmentMask()
	class, _ := f.Classification()
	roe, _ := f.ROELevel()
	src, _ := f.DeviceIDSrc()
	dst, _ := f.DeviceIDDst()
	prof, _ := f.Profile()
	claim, _ := f.ClaimToken()
	ts, _ := f.Timestamp()
	rid, _ := f.RequestID()
	tmo, _ := f.Timeout()
	if tenant != "T" || comp != dbe.CompartmentSOC|dbe.CompartmentDEV || class != dbe.Secret || roe != dbe.SOCAssist ||
		src != 0 || dst != 43 || prof != "slow" || string(claim) != "claim-for-T" || !ts.Equal(now) ||
		dbe.FormatUUID(rid) != clientID || tmo != 90*time.Second {
		t.Fatalf("TLVs: %q %v %v %v %d %d %q %q %v %s %v", tenant, comp, class, roe, src, dst, prof, claim, ts, dbe.FormatUUID(rid), tmo)
	}
	var p l7v1.L7ChatRequest
	if err := proto.Unmarshal(f.Payload, &p); err != nil {
		t.Fatal(err)
	}
	wantP := `{"model":"dsmil-slow","messages":[{"role":"system","content":"sys"},` +
		`{"role":"user","parts":[{"text":"look"},{"imageUrl":{"url":"https://example.com/a.png","detail":"low"}},{"imageData":{"data":"iVBORw0KGgo=","mimeType":"image/png"}}],"name":"ann"},` +
		`{"role":"assistant","toolCalls":[{"id":"c1","type":"function","name":"f","argumentsJson":"{}"}]},` +
		`{"role":"tool","content":"42","toolCallId":"c1"}],` +
		`"temperature":0.5,"topP":0.9,"topK":2147483647,"minP":0.05,"seed":"-7","stop":["a","b"],"maxTokens":64,` +
		`"presencePenalty":-1.5,"frequencyPenalty":2,"repetitionPenalty":1.1,"user":"u-1","toolChoice":{"mode":"TOOL_CHOICE_MODE_NONE"},` +
		`"logitBias":{"7":2.5,"50256":-100},"parallelToolCalls":true}`
	if got, _ := (protojson.MarshalOptions{}).Marshal(&p); compactJSON(t, string(got)) != wantP {
		t.Fatalf("payload\n got %s\nwant %s", compactJSON(t, string(got)), wantP)
	}

	// Without a client id or claim source: a fresh UUIDv7, no claim TLV;
	// a legacy completion carries the prompt.
	_, base = startShim(t, func(c *Config) { c.Router = rt })
	resp, body = call(t, "POST", base+"/v1/completions", keyLimited, `{"model":"dsmil-echo","prompt":"p","stream":false}`,
		"X-Request-Id", "not-a-uuid")
	f = rt.last()
	rid, _ = f.RequestID()
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != 200 || id != dbe.FormatUUID(rid) || id[14] != '7' || strings.Contains(string(body), "not-a-uuid") {
		t.Fatalf("%d %s %s", resp.StatusCode, id, body)
	}
	if _, ok := f.ClaimToken(); ok {
		t.Fatal("claim token without a claim source")
	}
	proto.Unmarshal(f.Payload, &p)
	if p.GetPrompt() != "p" || len(p.GetMessages()) != 0 || p.Temperature != nil || p.GetMaxTokens() != 0 {
		t.Fatalf("payload %v", &p)
	}
	if comp, _ := f.CompartmentMask(); comp != dbe.CompartmentSOC {
		t.Fatalf("LIMITED compartments %v", comp)
	}
}

func compactJSON(t *testing.T, s string) string {
	t.Helper()
	return strings.NewReplacer(" ", "", "\n", "").Replace(s)
}

// TestValidation: every invalid request is a 400 naming the parameter,
// and the router is never called.
func TestValidation(t *testing.T) {
	rt := &capture{}
	_, base := startShim(t, func(c *Config) { c.Router = rt })
	const msgs = `"messages":[{"role":"user","content":"hi"}]`
	for _, tc := range []struct {
		path, body, param, code string
	}{
		{"chat", `{`, "", "invalid_json"},
		{"chat", `[]`, "", "invalid_json"},
		{"chat", ``, "", "invalid_json"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `} {}`, "", "invalid_json"},
		{"chat", `{` + msgs + `}`, "model", "missing_required_parameter"},
		{"chat", `{"model":7,` + msgs + `}`, "model", "invalid_type"},
		{"chat", `{"model":"dsmil-echo"}`, "messages", "missing_required_parameter"},
		{"chat", `{"model":"dsmil-echo","messages":[]}`, "messages", "invalid_value"},
		{"chat", `{"model":"dsmil-echo","messages":{}}`, "messages", "invalid_type"},
		{"chat", `{"model":"dsmil-echo","messages":[{"role":"wizard","content":"x"}]}`, "messages[0].role", "invalid_value"},
		{"chat", `{"model":"dsmil-echo","messages":[{"content":"x"}]}`, "messages[0].role", "invalid_value"},
		{"chat", `{"model":"dsmil-echo","messages":[{"role":"user"}]}`, "messages[0].content", "missing_required_parameter"},
		{"chat", `{"model":"dsmil-echo","messages":[{"role":"user","content":5}]}`, "messages[0].content", "invalid_type"},
		{"chat", `{"model":"dsmil-echo","messages":[{"role":"user","content":[{"type":"input_audio"}]}]}`, "messages[0].content[0].type", "unsupported_value"},
		{"chat", `{"model":"dsmil-echo","messages":[{"role":"user","content":[{"type":"text"}]}]}`, "messages[0].content[0].text", "missing_required_parameter"},
		{"chat", `{"model":"dsmil-echo","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,%%%"}}]}]}`, "messages[0].content[0].image_url.url", "invalid_value"},
		{"chat", `{"model":"dsmil-echo","prompt":"x",` + msgs + `}`, "prompt", "unsupported_parameter"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"temperature":2.5}`, "temperature", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"temperature":"hot"}`, "temperature", "invalid_type"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"top_p":1.01}`, "top_p", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"top_k":-1}`, "top_k", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"top_k":1.5}`, "top_k", "invalid_type"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"min_p":-0.1}`, "min_p", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"seed":1e30}`, "seed", "invalid_type"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"presence_penalty":-2.1}`, "presence_penalty", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"frequency_penalty":3}`, "frequency_penalty", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"repetition_penalty":0}`, "repetition_penalty", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"max_tokens":0}`, "max_tokens", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"max_completion_tokens":-5}`, "max_completion_tokens", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"max_tokens":5,"max_completion_tokens":6}`, "max_tokens", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"n":129}`, "n", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"n":0}`, "n", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"stop":["a","b","c","d","e"]}`, "stop", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"stop":7}`, "stop", "invalid_type"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"stream":"yes"}`, "stream", "invalid_type"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"stream_options":{"include_usage":true}}`, "stream_options", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"logprobs":1}`, "logprobs", "invalid_type"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"top_logprobs":2}`, "top_logprobs", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"logprobs":true,"top_logprobs":21}`, "top_logprobs", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"logprobs":true,"top_logprobs":-1}`, "top_logprobs", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"response_format":{"type":"xml"}}`, "response_format.type", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"response_format":{}}`, "response_format.type", "missing_required_parameter"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"response_format":{"type":"json_schema"}}`, "response_format.json_schema", "missing_required_parameter"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"response_format":{"type":"json_schema","json_schema":{}}}`, "response_format.json_schema.name", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x"}}}`, "response_format.json_schema.schema", "missing_required_parameter"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":[1]}}}`, "response_format.json_schema.schema", "invalid_type"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"tools":[{"type":"retrieval"}]}`, "tools[0].type", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"tools":[{"type":"function"}]}`, "tools[0].function", "missing_required_parameter"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"tools":[{"type":"function","function":{"name":"get weather"}}]}`, "tools[0].function.name", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]}`, "tools[1].function.name", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"tools":[{"type":"function","function":{"name":"f","parameters":"x"}}]}`, "tools[0].function.parameters", "invalid_type"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"tools":[` + strings.Repeat(`{"type":"function","function":{"name":"f"}},`, 128) + `{}]}`, "tools", "array_above_max_length"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"tool_choice":"required"}`, "tool_choice", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"tool_choice":"sometimes"}`, "tool_choice", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}}`, "tool_choice.function.name", "invalid_value"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}}],"response_format":{"type":"json_object"}}`, "response_format", "unsupported_parameter"},
		{"chat", `{"model":"dsmil-echo","messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{"}}]}]}`, "messages[1].tool_calls[0].function.arguments", "invalid_value"},
		{"chat", `{"model":"dsmil-echo","messages":[{"role":"user","content":"x"},{"role":"assistant","content":null,"tool_calls":[{"type":"function","function":{"name":"f","arguments":"{}"}}]}]}`, "messages[1].tool_calls[0].id", "missing_required_parameter"},
		{"chat", `{"model":"dsmil-echo","messages":[{"role":"user","content":"x"},{"role":"assistant","content":null}]}`, "messages[1].content", "missing_required_parameter"},
		{"chat", `{"model":"dsmil-echo","messages":[{"role":"user","content":"x"},{"role":"tool","content":"42"}]}`, "messages[1].tool_call_id", "missing_required_parameter"},
		{"chat", `{"model":"dsmil-echo","messages":[{"role":"user","content":"x","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]}]}`, "messages[0].tool_calls", "invalid_value"},
		{"text", `{"model":"dsmil-echo","prompt":"x","tools":[{"type":"function","function":{"name":"f"}}]}`, "tools", "unsupported_parameter"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"functions":[{"name":"f"}]}`, "functions", "unsupported_parameter"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"function_call":{"name":"f"}}`, "function_call", "unsupported_parameter"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"modalities":["text","audio"]}`, "modalities", "unsupported_parameter"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"audio":{"voice":"x"}}`, "audio", "unsupported_parameter"},
		{"chat", `{"model":"dsmil-echo",` + msgs + `,"prediction":{"type":"content"}}`, "prediction", "unsupported_parameter"},
		{"text", `{"model":"dsmil-echo"}`, "prompt", "missing_required_parameter"},
		{"text", `{"model":"dsmil-echo","prompt":""}`, "prompt", "invalid_value"},
		{"text", `{"model":"dsmil-echo","prompt":[1,2,3]}`, "prompt", "unsupported_parameter"},
		{"text", `{"model":"dsmil-echo","prompt":["a","b"]}`, "prompt", "unsupported_parameter"},
		{"text", `{"model":"dsmil-echo","prompt":7}`, "prompt", "invalid_type"},
		{"text", `{"model":"dsmil-echo","prompt":"x",` + msgs + `}`, "messages", "unsupported_parameter"},
		{"text", `{"model":"dsmil-echo","prompt":"x","echo":true}`, "echo", "unsupported_parameter"},
		{"text", `{"model":"dsmil-echo","prompt":"x","best_of":3}`, "best_of", "unsupported_parameter"},
		{"text", `{"model":"dsmil-echo","prompt":"x","suffix":"end"}`, "suffix", "unsupported_parameter"},
		{"text", `{"model":"dsmil-echo","prompt":"x","logprobs":6}`, "logprobs", "invalid_value"},
		{"text", `{"model":"dsmil-echo","prompt":"x","logprobs":true}`, "logprobs", "invalid_type"},
		{"text", `{"model":"dsmil-echo","prompt":"x","logprobs":1,"top_logprobs":1}`, "top_logprobs", "unsupported_parameter"},
	} {
		path := map[string]string{"chat": "/v1/chat/completions", "text": "/v1/completions"}[tc.path]
		resp, body := call(t, "POST", base+path, keyT, tc.body)
		e := apiErr(t, resp, body)
		if resp.StatusCode != 400 || e.Type != "invalid_request_error" || str(e.Param) != orNull(tc.param) || str(e.Code) != tc.code {
			t.Errorf("%s %s: %d %s", tc.path, tc.body, resp.StatusCode, body)
		}
		if f := rt.last(); f != nil {
			t.Errorf("%s: the router was called", tc.body)
		}
	}
	// No-op values of the unsupported parameters are accepted, and
	// max_tokens is clamped to the wire's int32.
	for _, extra := range []string{`"logprobs":null`, `"top_logprobs":0`, `"response_format":{"type":"text"}`, `"tools":[ ]`,
		`"tool_choice":"auto"`, `"functions":[]`, `"function_call":"none"`, `"modalities":["text"]`, `"audio":null`,
		`"logit_bias":null`, `"logit_bias":{}`,
		`"n":1`, `"max_tokens":99999999999`, `"stream_options":null`, `"stop":null`, `"stop":"x"`} {
		resp, body := call(t, "POST", base+"/v1/chat/completions", keyT, `{"model":"dsmil-echo",`+msgs+`,`+extra+`}`)
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", extra, resp.StatusCode, body)
		}
		f := rt.last()
		var p l7v1.L7ChatRequest
		proto.Unmarshal(f.Payload, &p)
		if extra == `"max_tokens":99999999999` && p.GetMaxTokens() != maxInt32 {
			t.Errorf("max_tokens not clamped: %d", p.GetMaxTokens())
		}
	}
	for _, extra := range []string{`"logprobs":null`, `"echo":false`, `"best_of":1`, `"suffix":""`} {
		if resp, body := call(t, "POST", base+"/v1/completions", keyT, `{"model":"dsmil-echo","prompt":"x",`+extra+`}`); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", extra, resp.StatusCode, body)
		}
		rt.last()
	}
	// logprobs reach the payload: chat's bool and top_logprobs,
	// completions' count.
	for _, tc := range []struct {
		path, body string
		want       bool
		top        int32
	}{
		{"/v1/chat/completions", `{"model":"dsmil-echo",` + msgs + `,"logprobs":true,"top_logprobs":20}`, true, 20},
		{"/v1/chat/completions", `{"model":"dsmil-echo",` + msgs + `,"logprobs":true}`, true, 0},
		{"/v1/chat/completions", `{"model":"dsmil-echo",` + msgs + `,"logprobs":false,"top_logprobs":0}`, false, 0},
		{"/v1/completions", `{"model":"dsmil-echo","prompt":"x","logprobs":0}`, true, 0},
		{"/v1/completions", `{"model":"dsmil-echo","prompt":"x","logprobs":5}`, true, 5},
	} {
		if resp, body := call(t, "POST", base+tc.path, keyT, tc.body); resp.StatusCode != 200 {
			t.Errorf("%s: %d %s", tc.body, resp.StatusCode, body)
			continue
		}
		var p l7v1.L7ChatRequest
		proto.Unmarshal(rt.last().Payload, &p)
		if p.GetLogprobs() != tc.want || p.GetTopLogprobs() != tc.top {
			t.Errorf("%s: logprobs %v, top_logprobs %d", tc.body, p.GetLogprobs(), p.GetTopLogprobs())
		}
	}
}

// TestLogitBias: logit_bias reaches the payload as token id → bias on both
// endpoints, and every malformed map is a 400 naming logit_bias that never
// reaches the router.
func TestLogitBias(t *testing.T) {
	rt := &capture{}
	_, base := startShim(t, func(c *Config) { c.Router = rt })
	paths := map[string]string{"chat": "/v1/chat/completions", "text": "/v1/completions"}
	bodies := map[string]string{
		"chat": `{"model":"dsmil-echo","messages":[{"role":"user","content":"hi"}],"logit_bias":%s}`,
		"text": `{"model":"dsmil-echo","prompt":"hi","logit_bias":%s}`,
	}
	entries := func(n int) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`"%d":1`, i)
		}
		return "{" + strings.Join(parts, ",") + "}"
	}
	full := make(map[int32]float32, maxLogitBias)
	for i := range maxLogitBias {
		full[int32(i)] = 1
	}

	for _, tc := range []struct {
		bias string
		want map[int32]float32
	}{
		{`{"50256":-100,"7":2.5,"0":0,"2147483647":100}`, map[int32]float32{50256: -100, 7: 2.5, 0: 0, maxInt32: 100}},
		{`{"15": 1e2, "16": -1E+2, "17": -0.125}`, map[int32]float32{15: 100, 16: -100, 17: -0.125}},
		{`{"+5":1,"007":-1}`, map[int32]float32{5: 1, 7: -1}},
		{entries(maxLogitBias), full},
		{`null`, nil},
		{`{}`, nil},
	} {
		for _, ep := range []string{"chat", "text"} {
			resp, body := call(t, "POST", base+paths[ep], keyT, fmt.Sprintf(bodies[ep], tc.bias))
			if resp.StatusCode != 200 {
				t.Errorf("%s %.80s: %d %s", ep, tc.bias, resp.StatusCode, body)
				continue
			}
			var p l7v1.L7ChatRequest
			if err := proto.Unmarshal(rt.last().Payload, &p); err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(p.GetLogitBias(), tc.want) {
				t.Errorf("%s %.80s: logit_bias %v, want %v", ep, tc.bias, p.GetLogitBias(), tc.want)
			}
		}
	}

	for _, tc := range []struct {
		bias, code, msg string
	}{
		{entries(maxLogitBias + 1), "invalid_value", "301 entries; at most 300"},
		{`{"abc":1}`, "invalid_value", `"abc" is not an integer`},
		{`{"1.5":1}`, "invalid_value", `"1.5" is not an integer`},
		{`{"1e3":1}`, "invalid_value", `"1e3" is not an integer`},
		{`{"":1}`, "invalid_value", `"" is not an integer`},
		{`{" 7":1}`, "invalid_value", `" 7" is not an integer`},
		{`{"0x10":1}`, "invalid_value", `"0x10" is not an integer`},
		{`{"-1":1}`, "invalid_value", `"-1" is negative`},
		{`{"-99999999999999999999":1}`, "invalid_value", `"-99999999999999999999" is negative`},
		{`{"2147483648":1}`, "invalid_value", `"2147483648" is above 2147483647, the largest token id`},
		{`{"99999999999999999999":1}`, "invalid_value", `"99999999999999999999" is above 2147483647`},
		{`{"7":100.5}`, "invalid_value", `100.5 is outside [-100, 100]`},
		{`{"7":-101}`, "invalid_value", `-101 is outside [-100, 100]`},
		{`{"7":1e300}`, "invalid_value", `is outside [-100, 100]`},
		{`{"7":"5"}`, "invalid_type", `key "7": expected a number between -100 and 100, got "5"`},
		{`{"7":null}`, "invalid_type", `got null`},
		{`{"7":true}`, "invalid_type", `got true`},
		{`{"7":1e400}`, "invalid_type", `got 1e400`},
		{`{"7":1,"07":2}`, "invalid_value", `keys "07" and "7" are the same token id, 7`},
		{`[1,2]`, "invalid_type", `expected an object`},
		{`"x"`, "invalid_type", `expected an object`},
		{`5`, "invalid_type", `expected an object`},
	} {
		for _, ep := range []string{"chat", "text"} {
			resp, body := call(t, "POST", base+paths[ep], keyT, fmt.Sprintf(bodies[ep], tc.bias))
			e := apiErr(t, resp, body)
			if resp.StatusCode != 400 || e.Type != "invalid_request_error" || str(e.Param) != "logit_bias" || str(e.Code) != tc.code ||
				!strings.Contains(e.Message, tc.msg) {
				t.Errorf("%s %.80s: %d %s", ep, tc.bias, resp.StatusCode, body)
			}
			if f := rt.last(); f != nil {
				t.Errorf("%s %.80s: the router was called", ep, tc.bias)
			}
		}
	}
}

func orNull(s string) string {
	if s == "" {
		return "<null>"
	}
	return s
}

func TestUUID(t *testing.T) {
	now := time.UnixMilli(0x0190a5f37b1c)
	id := newUUIDv7(now)
	s := dbe.FormatUUID(id)
	if !strings.HasPrefix(s, "0190a5f3-7b1c-7") || !strings.ContainsRune("89ab", rune(s[19])) {
		t.Fatalf("%s", s)
	}
	if id == newUUIDv7(now) {
		t.Fatal("not random")
	}
	back, ok := parseUUID(strings.ToUpper(s))
	if !ok || back != id {
		t.Fatalf("round trip %s", s)
	}
	for _, bad := range []string{"", "00000000-0000-0000-0000-000000000000", "0190a5f3-7b1c-7def-8123-456789abcdeg",
		"0190a5f37b1c7def8123456789abcdef", "0190a5f3-7b1c-7def-8123-456789abcdef0", "{0190a5f3-7b1c-7def-8123-456789abcde}"} {
		if _, ok := parseUUID(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}
