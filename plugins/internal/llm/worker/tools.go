package worker

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"slices"

	"github.com/dsmil/l7/plugins/internal/llm/toolcall"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// toolUse is how one request uses tools: the definitions the chat template
// renders, and whether the model may call them (then its output goes
// through a toolcall.Parser).
type toolUse struct {
	defs   []any           // the template's tools variable; nil for none
	format toolcall.Format // the template's tool-call syntax
	call   bool            // the model may call tools (tool_choice is not "none")
}

// tools reads a request's tools against the model's chat template.
func (st *state) tools(p *l7v1.L7ChatRequest) (toolUse, error) {
	if len(p.GetTools()) == 0 {
		return toolUse{}, nil
	}
	if p.GetPrompt() != "" {
		return toolUse{}, sdk.InvalidParam("tools", "tools need a conversation (messages), not a raw prompt")
	}
	u := toolUse{format: st.toolFormat, call: p.GetToolChoice().GetMode() != l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_NONE}
	if u.format == toolcall.None {
		return u, sdk.InvalidParam("tools", "the chat template of model %q cannot render tools; send the request without tools", st.set.ModelName)
	}
	for i, t := range p.GetTools() {
		fn := map[string]any{"name": t.GetFunction().GetName()}
		if d := t.GetFunction().GetDescription(); d != "" {
			fn["description"] = d
		}
		if s := t.GetFunction().GetParametersJson(); s != "" {
			var params any
			if err := json.Unmarshal([]byte(s), &params); err != nil {
				return u, sdk.InvalidParam("tools", "tools[%d].function.parameters: %v", i, err)
			}
			fn["parameters"] = params
		}
		u.defs = append(u.defs, map[string]any{"type": "function", "function": fn})
	}
	return u, nil
}

// callID is a fresh OpenAI-style tool call id.
func callID() string {
	const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return "call_" + string(b)
}

// toolEmitter passes generated text through a toolcall.Parser: content to
// the stream's text, calls as tool-call deltas.
type toolEmitter struct {
	out    sdk.ToolCallStream
	parser *toolcall.Parser
	forced bool // the grammar allows nothing but calls (tool_choice required or a named function)
}

func newToolEmitter(out sdk.Stream, f toolcall.Format, forced bool) (*toolEmitter, error) {
	tc, ok := out.(sdk.ToolCallStream)
	if !ok {
		return nil, sdk.Errorf(dbe.CodeInternal, "the SDK's stream cannot carry tool calls")
	}
	return &toolEmitter{out: tc, parser: toolcall.NewParser(f, callID), forced: forced}, nil
}

func (e *toolEmitter) emit(text string) error { return e.send(e.parser.Push(text)) }

func (e *toolEmitter) send(ds []toolcall.Delta) error {
	for _, d := range ds {
		var err error
		if d.Call {
			err = e.out.SendToolCall(&l7v1.ToolCallDelta{Index: int32(d.Index), Id: d.ID, Name: d.Name, ArgumentsJson: d.Arguments})
		} else {
			err = e.out.Send(d.Content)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// close flushes the parser and says how the reply ends: tool calls, or the
// engine's own finish. An unfinished call at a length finish is dropped (the
// finish says why); a malformed one is the model's failure.
func (e *toolEmitter) close(finish l7v1.FinishReason) (l7v1.FinishReason, error) {
	ds, calls, err := e.parser.Close()
	if e.forced && finish == l7v1.FinishReason_FINISH_REASON_LENGTH {
		// Cut off inside a call the grammar forced: what the parser still
		// held is the start of that call (an unfinished opener), not content.
		ds = slices.DeleteFunc(ds, func(d toolcall.Delta) bool { return !d.Call })
	}
	if serr := e.send(ds); serr != nil {
		return finish, serr
	}
	switch {
	case errors.Is(err, toolcall.ErrMalformed) && finish == l7v1.FinishReason_FINISH_REASON_LENGTH:
		return finish, nil
	case err != nil:
		return finish, sdk.Errorf(dbe.CodeWorkerFailed, "the model wrote a malformed tool call: %v", err)
	case len(calls) > 0:
		return l7v1.FinishReason_FINISH_REASON_TOOL_CALLS, nil
	}
	return finish, nil
}
