package shim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"

	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// Structured outputs and tool calling: the shim checks the shapes OpenAI
// defines and passes the schemas on as JSON text; the plugin compiles them
// (and answers a 400 naming the keyword and its JSON pointer when it
// cannot) or refuses the request when it cannot constrain its output.

// maxTools is OpenAI's limit on tools per request.
const maxTools = 128

// functionName is OpenAI's rule for function and schema names.
var functionName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,64}$`)

// checkName checks a function or schema name against OpenAI's rule.
func checkName(name *string, param, what string) *apiError {
	if name != nil && functionName.MatchString(*name) {
		return nil
	}
	n := "<missing>"
	if name != nil {
		n = *name
	}
	return invalidRequest(param, "invalid_value", "Invalid %s name %s: 1 to 64 letters, digits, underscores or dashes.", what, quoteClip(n))
}

// decodeResponseFormat reads response_format: {"type": "text"},
// {"type": "json_object"} or {"type": "json_schema", "json_schema":
// {"name", "schema", "strict", "description"}}. Text is nil.
func decodeResponseFormat(raw json.RawMessage) (*l7v1.ResponseFormat, *apiError) {
	if isNull(raw) {
		return nil, nil
	}
	var rf struct {
		Type       *string `json:"type"`
		JSONSchema *struct {
			Name        *string         `json:"name"`
			Description string          `json:"description"`
			Schema      json.RawMessage `json:"schema"`
			Strict      *bool           `json:"strict"`
		} `json:"json_schema"`
	}
	if e := unmarshalField(raw, &rf, "response_format"); e != nil {
		return nil, e
	}
	if rf.Type == nil {
		return nil, invalidRequest("response_format.type", "missing_required_parameter", "response_format needs a type: text, json_object or json_schema")
	}
	switch *rf.Type {
	case "text":
		return nil, nil
	case "json_object":
		return &l7v1.ResponseFormat{Type: "json_object"}, nil
	case "json_schema":
	default:
		return nil, invalidRequest("response_format.type", "invalid_value",
			"Invalid response_format type %s: want text, json_object or json_schema.", quoteClip(*rf.Type))
	}
	js := rf.JSONSchema
	if js == nil {
		return nil, invalidRequest("response_format.json_schema", "missing_required_parameter", "response_format of type json_schema needs json_schema")
	}
	if e := checkName(js.Name, "response_format.json_schema.name", "json_schema"); e != nil {
		return nil, e
	}
	schema, e := schemaObject(js.Schema, "response_format.json_schema.schema", true)
	if e != nil {
		return nil, e
	}
	out := &l7v1.ResponseFormat{Type: "json_schema", Name: *js.Name, SchemaJson: schema}
	if js.Strict != nil {
		out.Strict = *js.Strict
	}
	return out, nil
}

// schemaObject checks that raw is a JSON object (a JSON Schema; the plugin
// checks its keywords) and returns it compacted. A missing schema is ""
// unless required.
func schemaObject(raw json.RawMessage, param string, required bool) (string, *apiError) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		if required {
			return "", invalidRequest(param, "missing_required_parameter", "%s is required: a JSON Schema object", param)
		}
		return "", nil
	}
	if raw[0] != '{' {
		return "", invalidRequest(param, "invalid_type", "%s must be a JSON Schema object", param)
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return "", invalidRequest(param, "invalid_value", "%s is not valid JSON: %v", param, err)
	}
	return b.String(), nil
}

// decodeTools reads tools: an array of {"type": "function", "function":
// {"name", "description", "parameters", "strict"}} with unique names.
func decodeTools(raw json.RawMessage) ([]*l7v1.Tool, *apiError) {
	if isNull(raw) {
		return nil, nil
	}
	var tools []struct {
		Type     *string `json:"type"`
		Function *struct {
			Name        *string         `json:"name"`
			Description string          `json:"description"`
			Parameters  json.RawMessage `json:"parameters"`
			Strict      *bool           `json:"strict"`
		} `json:"function"`
	}
	if e := unmarshalField(raw, &tools, "tools"); e != nil {
		return nil, e
	}
	if len(tools) > maxTools {
		return nil, invalidRequest("tools", "array_above_max_length", "Invalid 'tools': %d tools; at most %d are allowed.", len(tools), maxTools)
	}
	seen := map[string]int{}
	out := make([]*l7v1.Tool, 0, len(tools))
	for i, t := range tools {
		at := fmt.Sprintf("tools[%d]", i)
		if t.Type == nil || *t.Type != "function" {
			return nil, invalidRequest(at+".type", "invalid_value", "%s.type must be \"function\"", at)
		}
		f := t.Function
		if f == nil {
			return nil, invalidRequest(at+".function", "missing_required_parameter", "%s.function is required", at)
		}
		if e := checkName(f.Name, at+".function.name", "function"); e != nil {
			return nil, e
		}
		if j, dup := seen[*f.Name]; dup {
			return nil, invalidRequest(at+".function.name", "invalid_value", "Function %s is already defined by tools[%d].", quoteClip(*f.Name), j)
		}
		seen[*f.Name] = i
		params, e := schemaObject(f.Parameters, at+".function.parameters", false)
		if e != nil {
			return nil, e
		}
		fd := &l7v1.FunctionDef{Name: *f.Name, Description: f.Description, ParametersJson: params}
		if f.Strict != nil {
			fd.Strict = *f.Strict
		}
		out = append(out, &l7v1.Tool{Type: "function", Function: fd})
	}
	return out, nil
}

// decodeToolChoice reads tool_choice: "none", "auto", "required" or
// {"type": "function", "function": {"name"}} naming one of tools.
func decodeToolChoice(raw json.RawMessage, tools []*l7v1.Tool) (*l7v1.ToolChoice, *apiError) {
	raw = bytes.TrimSpace(raw)
	if isNull(raw) {
		return nil, nil
	}
	var mode l7v1.ToolChoiceMode
	var name string
	if raw[0] == '"' {
		var s string
		if e := unmarshalField(raw, &s, "tool_choice"); e != nil {
			return nil, e
		}
		switch s {
		case "none":
			mode = l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_NONE
		case "auto":
			mode = l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_AUTO
		case "required":
			mode = l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED
		default:
			return nil, invalidRequest("tool_choice", "invalid_value",
				"Invalid tool_choice %s: want none, auto, required or {\"type\": \"function\", \"function\": {\"name\": ...}}.", quoteClip(s))
		}
	} else {
		var tc struct {
			Type     string `json:"type"`
			Function struct {
				Name string `json:"name"`
			} `json:"function"`
		}
		if e := unmarshalField(raw, &tc, "tool_choice"); e != nil {
			return nil, e
		}
		if tc.Type != "function" {
			return nil, invalidRequest("tool_choice.type", "invalid_value", "tool_choice.type must be \"function\"")
		}
		mode, name = l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_FUNCTION, tc.Function.Name
		found := false
		for _, t := range tools {
			found = found || t.GetFunction().GetName() == name
		}
		if !found {
			return nil, invalidRequest("tool_choice.function.name", "invalid_value",
				"tool_choice names function %s, which is not in tools.", quoteClip(name))
		}
	}
	if len(tools) == 0 && mode != l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_NONE && mode != l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_AUTO {
		return nil, invalidRequest("tool_choice", "invalid_value", "tool_choice %s needs tools.", quoteClip(string(raw)))
	}
	return &l7v1.ToolChoice{Mode: mode, FunctionName: name}, nil
}

// structured decodes response_format, tools, tool_choice and
// parallel_tool_calls into p, and refuses the legacy functions and
// function_call.
func structured(req *openaiRequest, ep endpoint, p *l7v1.L7ChatRequest) *apiError {
	if !isNull(req.Functions) && !rawIs(req.Functions, "[]") {
		return unsupported("functions", "functions is deprecated and not supported; send the same definitions as tools: [{\"type\": \"function\", \"function\": {...}}]")
	}
	if !isNull(req.FunctionCall) && !rawIs(req.FunctionCall, `"none"`, `"auto"`) {
		return unsupported("function_call", "function_call is deprecated and not supported; use tool_choice")
	}
	var e *apiError
	if p.ResponseFormat, e = decodeResponseFormat(req.ResponseFormat); e != nil {
		return e
	}
	if p.Tools, e = decodeTools(req.Tools); e != nil {
		return e
	}
	if p.ToolChoice, e = decodeToolChoice(req.ToolChoice, p.Tools); e != nil {
		return e
	}
	if req.ParallelToolCalls != nil {
		p.ParallelToolCalls = req.ParallelToolCalls
	}
	if ep == textEndpoint && len(p.Tools) > 0 {
		return unsupported("tools", "tools belong to /v1/chat/completions")
	}
	if len(p.Tools) > 0 && p.ResponseFormat != nil && p.GetToolChoice().GetMode() != l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_NONE {
		return unsupported("response_format", "response_format together with tools is not supported; send one or the other (or tool_choice \"none\")")
	}
	return nil
}

// checkToolMessages checks the tool-calling turns of a conversation: an
// assistant message's tool_calls and a tool message's tool_call_id.
func checkToolMessages(msgs []*l7v1.Message) *apiError {
	for i, m := range msgs {
		at := fmt.Sprintf("messages[%d]", i)
		switch m.GetRole() {
		case "assistant":
			for j, tc := range m.GetToolCalls() {
				tat := fmt.Sprintf("%s.tool_calls[%d]", at, j)
				switch {
				case tc.GetType() != "function":
					return invalidRequest(tat+".type", "invalid_value", "%s.type must be \"function\"", tat)
				case tc.GetId() == "":
					return invalidRequest(tat+".id", "missing_required_parameter", "%s.id is required", tat)
				case tc.GetName() == "":
					return invalidRequest(tat+".function.name", "missing_required_parameter", "%s.function.name is required", tat)
				case !json.Valid([]byte(tc.GetArgumentsJson())):
					return invalidRequest(tat+".function.arguments", "invalid_value", "%s.function.arguments must be a JSON text", tat)
				}
			}
			if len(m.GetToolCalls()) == 0 && m.GetContent() == "" && len(m.GetParts()) == 0 {
				return invalidRequest(at+".content", "missing_required_parameter", "%s needs content or tool_calls", at)
			}
		case "tool":
			if m.GetToolCallId() == "" {
				return invalidRequest(at+".tool_call_id", "missing_required_parameter", "%s.tool_call_id is required for role tool", at)
			}
		default:
			if len(m.GetToolCalls()) > 0 {
				return invalidRequest(at+".tool_calls", "invalid_value", "only assistant messages have tool_calls")
			}
		}
	}
	return nil
}
