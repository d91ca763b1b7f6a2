// Command scriptedllm is a test-only chat plugin standing in for an LLM in
// agent tests whose tool calls must be exact (TestAgentReadImage): the
// first step of a task (a transcript without a tool message) calls the
// tool named by the "call" setting with the "arguments" setting's JSON;
// any later step answers with the last tool message's content, so the
// task's result is what the tool returned.
package main

import (
	"context"
	"sync"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

type workload struct {
	mu             sync.Mutex
	cfg            *sdk.Config
	call, argsJSON string
}

func (w *workload) Info(context.Context) (*sdk.PluginInfo, error) {
	i := &sdk.PluginInfo{Name: "scriptedllm", Version: "0.0.1", APIVersions: []uint32{sdk.APIVersion}, DeviceID: 47,
		Capabilities: []sdk.Capability{sdk.CapChat}, Models: []string{"scripted"},
		Settings: []sdk.SettingSpec{{Name: "call", Type: "string", Required: true}, {Name: "arguments", Type: "string", Required: true}}}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cfg != nil {
		i.Profiles = w.cfg.Profiles
	}
	return i, nil
}

func (w *workload) Configure(_ context.Context, cfg *sdk.Config) error {
	call, _ := cfg.Settings["call"].(string)
	args, _ := cfg.Settings["arguments"].(string)
	if call == "" || args == "" {
		return sdk.InvalidParam("call", "want call and arguments")
	}
	w.mu.Lock()
	w.cfg, w.call, w.argsJSON = cfg, call, args
	w.mu.Unlock()
	return nil
}

func (w *workload) Health(context.Context) error { return nil }

func (w *workload) Chat(_ context.Context, req *sdk.ChatRequest, out sdk.Stream) (*sdk.ChatResult, error) {
	msgs := req.Params.GetMessages()
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].GetRole() == "tool" {
			if err := out.Send(msgs[i].GetContent()); err != nil {
				return nil, err
			}
			return &sdk.ChatResult{Usage: &l7v1.Usage{PromptTokens: 1, CompletionTokens: 1}}, nil
		}
	}
	tc, ok := out.(sdk.ToolCallStream)
	if !ok {
		return nil, sdk.Errorf(dbe.CodeInternal, "the stream takes no tool calls")
	}
	w.mu.Lock()
	call, args := w.call, w.argsJSON
	w.mu.Unlock()
	if err := tc.SendToolCall(&l7v1.ToolCallDelta{Id: "call_1", Type: "function", Name: call, ArgumentsJson: args}); err != nil {
		return nil, err
	}
	return &sdk.ChatResult{FinishReason: l7v1.FinishReason_FINISH_REASON_TOOL_CALLS, Usage: &l7v1.Usage{PromptTokens: 1, CompletionTokens: 1}}, nil
}

func main() { sdk.Serve(&sdk.ServeConfig{Workload: &workload{}}) }
