// Command strayagent is a test-only agent plugin (TestAgentStraySteps): a
// scripted workload that runs as a real plugin behind the real router and
// sends LLM steps the host must refuse, because they are bound to no agent
// task in flight on it.
//
// Task type "stash" keeps the task's TaskRouter and ends. Task type
// "replay" sends a step with the stashed router (so bound to the ended
// "stash" task's request id) while it runs itself, and answers with the
// outcome. The "trigger" setting names a file: once it exists, the plugin
// sends a step with the stashed router while no task is in flight and
// writes the outcome to the file + ".out".
package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"sync"
	"time"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

type workload struct {
	mu      sync.Mutex
	cfg     *sdk.Config
	stashed sdk.TaskRouter
}

func (w *workload) Info(context.Context) (*sdk.PluginInfo, error) {
	i := &sdk.PluginInfo{Name: "strayagent", Version: "0.0.1", APIVersions: []uint32{sdk.APIVersion}, DeviceID: 48,
		Capabilities: []sdk.Capability{sdk.CapAgent},
		Settings:     []sdk.SettingSpec{{Name: "trigger", Type: "string", Required: true}}}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cfg != nil {
		i.Profiles = w.cfg.Profiles
	}
	return i, nil
}

func (w *workload) Configure(_ context.Context, cfg *sdk.Config) error {
	trigger, _ := cfg.Settings["trigger"].(string)
	if trigger == "" {
		return sdk.InvalidParam("trigger", "want a file name")
	}
	w.mu.Lock()
	w.cfg = cfg
	w.mu.Unlock()
	go w.watch(trigger)
	return nil
}

func (w *workload) Health(context.Context) error { return nil }

// outcome is what a stray step got back.
type outcome struct {
	Code    string `json:"code"`
	Rule    string `json:"rule"`
	Message string `json:"message"`
}

// stray sends a step with the stashed router.
func (w *workload) stray(ctx context.Context) outcome {
	w.mu.Lock()
	r := w.stashed
	w.mu.Unlock()
	if r == nil {
		return outcome{Code: "NO_STASH"}
	}
	_, err := r.Chat(ctx, "llm-tiny", &l7v1.L7ChatRequest{Messages: []*l7v1.Message{{Role: "user", Content: "hi"}}, MaxTokens: 4})
	var me *mux.Error
	switch {
	case err == nil:
		return outcome{Code: "OK"}
	case errors.As(err, &me):
		return outcome{Code: me.Code.String(), Rule: me.Rule, Message: me.Message}
	}
	return outcome{Code: dbe.CodeInternal.String(), Message: err.Error()}
}

// watch sends a stray step once the trigger file exists.
func (w *workload) watch(trigger string) {
	for {
		if _, err := os.Stat(trigger); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, _ := json.Marshal(w.stray(ctx))
	_ = os.WriteFile(trigger+".out.tmp", b, 0o644)
	_ = os.Rename(trigger+".out.tmp", trigger+".out")
}

func (w *workload) RunTask(ctx context.Context, task *sdk.AgentTask, _ sdk.AgentProgress) (*l7v1.L7AgentResult, error) {
	switch task.Params.GetTaskType() {
	case "stash":
		w.mu.Lock()
		w.stashed = task.Router
		w.mu.Unlock()
		return &l7v1.L7AgentResult{Result: "stashed"}, nil
	case "replay":
		b, _ := json.Marshal(w.stray(ctx))
		return &l7v1.L7AgentResult{Result: string(b)}, nil
	}
	return nil, sdk.InvalidParam("task_type", "unknown task type %q", task.Params.GetTaskType())
}

func main() { sdk.Serve(&sdk.ServeConfig{Workload: &workload{}}) }
