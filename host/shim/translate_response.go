package shim

import (
	"encoding/hex"
	"encoding/json"
	"math"

	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// Responses, in OpenAI's shapes.

type usageJSON struct {
	PromptTokens        uint32               `json:"prompt_tokens"`
	CompletionTokens    uint32               `json:"completion_tokens"`
	TotalTokens         uint32               `json:"total_tokens"`
	PromptTokensDetails *promptTokensDetails `json:"prompt_tokens_details,omitempty"`
}

// promptTokensDetails is OpenAI's usage.prompt_tokens_details: the prompt
// tokens the worker's prefix cache served.
type promptTokensDetails struct {
	CachedTokens uint32 `json:"cached_tokens"`
}

// toUsage is a request's usage in OpenAI's shape; prompt_tokens_details
// only when the worker reported cached tokens (a worker without a prefix
// cache says nothing, rather than a made-up 0).
func toUsage(u *l7v1.Usage) usageJSON {
	out := usageJSON{PromptTokens: u.GetPromptTokens(), CompletionTokens: u.GetCompletionTokens(), TotalTokens: u.GetTotalTokens()}
	if out.TotalTokens == 0 {
		out.TotalTokens = out.PromptTokens + out.CompletionTokens
	}
	if u != nil && u.CachedTokens != nil {
		out.PromptTokensDetails = &promptTokensDetails{CachedTokens: u.GetCachedTokens()}
	}
	return out
}

// metadata is dsmil_metadata: where and how fast the request ran.
type metadata struct {
	DeviceID  uint32  `json:"device_id"`
	LatencyMS float64 `json:"latency_ms"`
	L7Profile string  `json:"l7_profile"`
}

func toMetadata(device uint32, latencyMS float32, profile, fallback string) *metadata {
	if profile == "" {
		profile = fallback
	}
	return &metadata{DeviceID: device, LatencyMS: math.Round(float64(latencyMS)*1000) / 1000, L7Profile: profile}
}

type completion struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"`
	Created int64           `json:"created"`
	Model   string          `json:"model"`
	Choices []choiceJSON    `json:"choices"`
	Usage   json.RawMessage `json:"usage,omitempty"`
	Meta    *metadata       `json:"dsmil_metadata,omitempty"`
}

// choiceJSON is a choice of any of the four shapes: chat message, chat
// delta, completion text (whole or streamed).
type choiceJSON struct {
	Index        int32        `json:"index"`
	Message      *messageJSON `json:"message,omitempty"`
	Delta        *deltaJSON   `json:"delta,omitempty"`
	Text         *string      `json:"text,omitempty"`
	Logprobs     any          `json:"logprobs"` // chatLogprobs, textLogprobs, or nil: null
	FinishReason *string      `json:"finish_reason"`
}

type messageJSON struct {
	Role      string         `json:"role"`
	Content   *string        `json:"content"` // null when the message is only tool calls
	Refusal   *string        `json:"refusal"` // always null
	ToolCalls []toolCallJSON `json:"tool_calls,omitempty"`
}

// toolCallJSON is a tool call of a message, or a piece of one in a delta
// (index set, and the rest only on the call's first piece).
type toolCallJSON struct {
	Index    *int32        `json:"index,omitempty"`
	ID       string        `json:"id,omitempty"`
	Type     string        `json:"type,omitempty"`
	Function *functionJSON `json:"function,omitempty"`
}

type functionJSON struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// toMessage is a generated chat message in OpenAI's shape.
func toMessage(m *l7v1.Message) *messageJSON {
	out := &messageJSON{Role: "assistant"}
	if c := m.GetContent(); c != "" || len(m.GetToolCalls()) == 0 {
		out.Content = &c
	}
	for _, tc := range m.GetToolCalls() {
		typ := tc.GetType()
		if typ == "" {
			typ = "function"
		}
		out.ToolCalls = append(out.ToolCalls, toolCallJSON{ID: tc.GetId(), Type: typ,
			Function: &functionJSON{Name: tc.GetName(), Arguments: tc.GetArgumentsJson()}})
	}
	return out
}

type deltaJSON struct {
	Role      string         `json:"role,omitempty"`
	Content   *string        `json:"content,omitempty"`
	ToolCalls []toolCallJSON `json:"tool_calls,omitempty"`
}

// toolCallDeltas are a chunk's tool-call pieces in OpenAI's shape: index
// always, id, type and name on a call's first piece, arguments text.
func toolCallDeltas(ds []*l7v1.ToolCallDelta) []toolCallJSON {
	out := make([]toolCallJSON, len(ds))
	for i, d := range ds {
		idx := d.GetIndex()
		out[i] = toolCallJSON{Index: &idx, ID: d.GetId(), Type: d.GetType(),
			Function: &functionJSON{Name: d.GetName(), Arguments: d.GetArgumentsJson()}}
		if out[i].ID != "" && out[i].Type == "" {
			out[i].Type = "function"
		}
	}
	return out
}

// Objects and id prefixes of the two APIs.
var objects = [...]struct{ whole, chunk, idPrefix string }{
	chatEndpoint: {"chat.completion", "chat.completion.chunk", "chatcmpl-"},
	textEndpoint: {"text_completion", "text_completion", "cmpl-"},
}

// responseID is the OpenAI id of a request: derived from its REQUEST_ID so
// logs, x-request-id and the response tie together.
func responseID(ep endpoint, reqID [16]byte) string {
	return objects[ep].idPrefix + hex.EncodeToString(reqID[:])
}

// finishReason maps a DBE finish reason to OpenAI's.
func finishReason(f l7v1.FinishReason) string {
	switch f {
	case l7v1.FinishReason_FINISH_REASON_LENGTH:
		return "length"
	case l7v1.FinishReason_FINISH_REASON_TOOL_CALLS:
		return "tool_calls"
	case l7v1.FinishReason_FINISH_REASON_CONTENT_FILTER:
		return "content_filter"
	}
	return "stop"
}

// wholeResponse turns an L7ChatResponse into a chat.completion or
// text_completion.
func wholeResponse(call *chatCall, reqID [16]byte, created int64, resp *l7v1.L7ChatResponse) *completion {
	out := &completion{
		ID: responseID(call.endpoint, reqID), Object: objects[call.endpoint].whole, Created: created,
		Model:   call.model.ID,
		Choices: make([]choiceJSON, 0, len(resp.GetChoices())),
		Meta:    toMetadata(resp.GetDeviceId(), resp.GetLatencyMs(), resp.GetL7Profile(), call.model.Profile),
	}
	for _, c := range resp.GetChoices() {
		fr := finishReason(c.GetFinishReason())
		offset := 0
		ch := choiceJSON{Index: c.GetIndex(), FinishReason: &fr, Logprobs: toLogprobs(call, c.GetLogprobs(), &offset)}
		if call.endpoint == chatEndpoint {
			ch.Message = toMessage(c.GetMessage())
		} else {
			text := c.GetText()
			ch.Text = &text
		}
		out.Choices = append(out.Choices, ch)
	}
	out.Usage, _ = json.Marshal(toUsage(resp.GetUsage()))
	return out
}
