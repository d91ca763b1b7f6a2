package shim

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// TestStructuredRequest: response_format, tools, tool_choice and
// parallel_tool_calls reach the plugin as the payload's fields, schemas
// compacted and untouched otherwise.
func TestStructuredRequest(t *testing.T) {
	rt := &capture{}
	_, base := startShim(t, func(c *Config) { c.Router = rt })
	msgs := `"messages":[{"role":"user","content":"x"}]`
	for _, tc := range []struct{ extra, want string }{
		{`"response_format":{"type":"json_object"}`, `{"responseFormat":{"type":"json_object"}}`},
		{`"response_format":{"type":"json_schema","json_schema":{"name":"w","strict":true,"schema":{"type": "object", "properties": {"a": {"type": "integer"}}}}}`,
			`{"responseFormat":{"type":"json_schema","schemaJson":"{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}","name":"w","strict":true}}`},
		{`"response_format":{"type":"text"}`, `{}`},
		{`"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather.","parameters":{"type":"object"},"strict":true}},{"type":"function","function":{"name":"noop"}}],"tool_choice":"required","parallel_tool_calls":false`,
			`{"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather.","parametersJson":"{\"type\":\"object\"}","strict":true}},` +
				`{"type":"function","function":{"name":"noop"}}],"toolChoice":{"mode":"TOOL_CHOICE_MODE_REQUIRED"},"parallelToolCalls":false}`},
		{`"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"f"}}`,
			`{"tools":[{"type":"function","function":{"name":"f"}}],"toolChoice":{"mode":"TOOL_CHOICE_MODE_FUNCTION","functionName":"f"}}`},
		{`"tools":[{"type":"function","function":{"name":"f"}}],"response_format":{"type":"json_object"},"tool_choice":"none"`,
			`{"responseFormat":{"type":"json_object"},"tools":[{"type":"function","function":{"name":"f"}}],"toolChoice":{"mode":"TOOL_CHOICE_MODE_NONE"}}`},
	} {
		resp, body := call(t, "POST", base+"/v1/chat/completions", keyT, `{"model":"dsmil-echo",`+msgs+`,`+tc.extra+`}`)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", tc.extra, resp.StatusCode, body)
		}
		var p l7v1.L7ChatRequest
		if err := proto.Unmarshal(rt.last().Payload, &p); err != nil {
			t.Fatal(err)
		}
		got := &l7v1.L7ChatRequest{ResponseFormat: p.ResponseFormat, Tools: p.Tools, ToolChoice: p.ToolChoice, ParallelToolCalls: p.ParallelToolCalls}
		if j, _ := protojson.Marshal(got); compactJSON(t, string(j)) != tc.want {
			t.Errorf("%s:\n got %s\nwant %s", tc.extra, compactJSON(t, string(j)), tc.want)
		}
	}
}

// TestToolCallResponse: a plugin's tool calls become message.tool_calls
// with content null and finish_reason "tool_calls".
func TestToolCallResponse(t *testing.T) {
	_, base := startShim(t, func(c *Config) {
		c.Router = fakeRouter(func(req *dbe.Frame, out func(*dbe.Frame)) {
			b, _ := proto.Marshal(&l7v1.L7ChatResponse{Choices: []*l7v1.Choice{{
				FinishReason: l7v1.FinishReason_FINISH_REASON_TOOL_CALLS,
				Message: &l7v1.Message{Role: "assistant", ToolCalls: []*l7v1.ToolCall{
					{Id: "call_1", Type: "function", Name: "get_weather", ArgumentsJson: `{"city":"Paris"}`}}},
			}}})
			out(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: b})
		})
	})
	resp, body := call(t, "POST", base+"/v1/chat/completions", keyT,
		`{"model":"dsmil-echo","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"get_weather"}}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	var c struct {
		Choices []struct {
			Message      map[string]json.RawMessage `json:"message"`
			FinishReason string                     `json:"finish_reason"`
		} `json:"choices"`
	}
	if err := json.Unmarshal(body, &c); err != nil || len(c.Choices) != 1 {
		t.Fatalf("%s: %v", body, err)
	}
	m := c.Choices[0].Message
	want := `[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]`
	if string(m["content"]) != "null" || compactJSON(t, string(m["tool_calls"])) != want || c.Choices[0].FinishReason != "tool_calls" {
		t.Fatalf("response %s", body)
	}
}

// TestToolCallStream: streamed tool-call pieces become OpenAI deltas —
// role on the first chunk, index on every piece, id, type and name on a
// call's first piece only, arguments pieces after — and the last chunk
// says "tool_calls".
func TestToolCallStream(t *testing.T) {
	_, base := startShim(t, func(c *Config) {
		c.Router = fakeRouter(func(req *dbe.Frame, out func(*dbe.Frame)) {
			for i, ch := range []*l7v1.L7ChatChunk{
				{Role: "assistant", ToolCalls: []*l7v1.ToolCallDelta{{Index: 0, Id: "call_1", Type: "function", Name: "get_weather"}}},
				{ToolCalls: []*l7v1.ToolCallDelta{{Index: 0, ArgumentsJson: `{"city": `}}},
				{ToolCalls: []*l7v1.ToolCallDelta{{Index: 0, ArgumentsJson: `"Paris"}`}}},
				{FinishReason: l7v1.FinishReason_FINISH_REASON_TOOL_CALLS, Usage: &l7v1.Usage{PromptTokens: 3, CompletionTokens: 5}},
			} {
				b, _ := proto.Marshal(ch)
				f := &dbe.Frame{Type: dbe.MsgChatChunk, Payload: b}
				if i == 3 {
					f.Flags = dbe.FlagEndStream
				}
				out(f)
			}
		})
	})
	resp, body := call(t, "POST", base+"/v1/chat/completions", keyT,
		`{"model":"dsmil-echo","stream":true,"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"get_weather"}}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	data, _ := sseEvents(t, body)
	var deltas []string
	for _, d := range data {
		if d == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta        json.RawMessage `json:"delta"`
				FinishReason *string         `json:"finish_reason"`
			} `json:"choices"`
		}
		if err := json.Unmarshal([]byte(d), &c); err != nil || len(c.Choices) != 1 {
			t.Fatalf("%s: %v", d, err)
		}
		var b bytes.Buffer
		if err := json.Compact(&b, c.Choices[0].Delta); err != nil {
			t.Fatal(err)
		}
		deltas = append(deltas, b.String())
		if f := c.Choices[0].FinishReason; f != nil && *f != "tool_calls" {
			t.Fatalf("finish %s", *f)
		}
	}
	want := []string{
		`{"role":"assistant","tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]}`,
		`{"tool_calls":[{"index":0,"function":{"arguments":"{\"city\": "}}]}`,
		`{"tool_calls":[{"index":0,"function":{"arguments":"\"Paris\"}"}}]}`,
		`{}`,
	}
	if strings.Join(deltas, "\n") != strings.Join(want, "\n") {
		t.Fatalf("deltas\n%s\nwant\n%s", strings.Join(deltas, "\n"), strings.Join(want, "\n"))
	}
}
