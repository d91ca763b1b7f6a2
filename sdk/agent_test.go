package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/sdktest"
	"google.golang.org/protobuf/proto"
)

// agent is an AgentRunner that asks the router for one chat per step and
// reports each as a progress frame.
type agent struct {
	basic
	steps int
}

func (a *agent) Info(ctx context.Context) (*sdk.PluginInfo, error) {
	i, _ := a.basic.Info(ctx)
	i.Name, i.Capabilities = "agent", []sdk.Capability{sdk.CapAgent}
	return i, nil
}

func (a *agent) RunTask(ctx context.Context, task *sdk.AgentTask, progress sdk.AgentProgress) (*l7v1.L7AgentResult, error) {
	res := &l7v1.L7AgentResult{}
	for i := range a.steps {
		resp, err := task.Router.Chat(ctx, "llm", &l7v1.L7ChatRequest{
			Messages: []*l7v1.Message{{Role: "user", Content: fmt.Sprintf("step %d of %s", i+1, task.Params.GetTaskType())}}})
		if err != nil {
			return nil, fmt.Errorf("step %d: %w", i+1, err)
		}
		res.Result += resp.GetChoices()[0].GetMessage().GetContent() + ";"
		if err := progress.Step(&l7v1.AgentStep{Index: int32(i + 1)}); err != nil {
			return nil, err
		}
	}
	return res, nil
}

var _ sdk.AgentRunner = (*agent)(nil)

// agentFrame is an L7_AGENT_TASK with the attributes of a SOC_ASSIST task.
func agentFrame(taskType string) (*dbe.Frame, [16]byte) {
	f, id := sdktest.ChatFrame("agent", &l7v1.L7ChatRequest{})
	f.Type = dbe.MsgAgentTask
	f.SetROELevel(dbe.SOCAssist)
	f.SetClassification(dbe.Secret)
	f.SetTimeout(10 * time.Second)
	f.Payload, _ = proto.Marshal(&l7v1.L7AgentTask{TaskType: taskType})
	return f, id
}

// TestAgentTaskRouterCalls runs an agent task over a real session: the
// plugin's chat requests come back to the host end on the same session,
// carrying the task's request id and attributes, and each step is a
// progress frame before the final result.
func TestAgentTaskRouterCalls(t *testing.T) {
	c := sdktest.Connect(t, &agent{steps: 2})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Control.Configure(ctx, &sdk.Config{Name: "agent", DeviceID: 48}); err != nil {
		t.Fatal(err)
	}
	task, id := agentFrame("triage")

	// The host end answers the plugin's requests, checking what they carry.
	seen := make(chan error, 4)
	host := mux.NewServer(c.Session, mux.HandlerFunc(func(ctx context.Context, f *dbe.Frame, w *mux.ResponseWriter) {
		rid, _ := f.RequestID()
		tenant, _ := f.TenantID()
		roe, _ := f.ROELevel()
		class, _ := f.Classification()
		src, _ := f.DeviceIDSrc()
		prof, _ := f.Profile()
		var req l7v1.L7ChatRequest
		_ = proto.Unmarshal(f.Payload, &req)
		if f.Type != dbe.MsgChatReq || rid != id || tenant != "SDKTEST" || roe != dbe.SOCAssist || class != dbe.Secret || src != 48 || prof != "llm" {
			seen <- fmt.Errorf("plugin request %s: request id %x (task %x), tenant %q, roe %s, class %s, src %d, profile %q",
				f.Type, rid, id, tenant, roe, class, src, prof)
		}
		if _, ok := f.Timeout(); !ok {
			seen <- errors.New("plugin request without TIMEOUT_MS")
		}
		b, _ := proto.Marshal(&l7v1.L7ChatResponse{Choices: []*l7v1.Choice{{Message: &l7v1.Message{
			Role: "assistant", Content: "ok:" + req.GetMessages()[0].GetContent()}}}})
		_ = w.Send(&dbe.Frame{Type: dbe.MsgChatResp, Flags: dbe.FlagEndStream, Payload: b})
	}))
	c.Session.SetHandler(func(f *dbe.Frame, malformed error) {
		switch f.Type {
		case dbe.MsgChatReq, dbe.MsgCancel:
			host.Dispatch(f, malformed)
		default:
			c.Client.Dispatch(f)
		}
	})

	frames, err := sdktest.Call(ctx, c.Client, task)
	if err != nil {
		t.Fatal(err)
	}
	close(seen)
	for err := range seen {
		t.Error(err)
	}
	if len(frames) != 3 {
		t.Fatalf("%d frames, want 2 progress frames and the result", len(frames))
	}
	for i, f := range frames {
		var r l7v1.L7AgentResult
		if f.Type != dbe.MsgAgentResult || proto.Unmarshal(f.Payload, &r) != nil {
			t.Fatalf("frame %d: %s", i, f.Type)
		}
		last := i == len(frames)-1
		if (f.Flags&dbe.FlagEndStream != 0) != last {
			t.Errorf("frame %d: END_STREAM %v", i, !last)
		}
		switch {
		case !last && (r.GetStatus() != l7v1.AgentTaskStatus_AGENT_TASK_STATUS_RUNNING || r.GetStep().GetIndex() != int32(i+1)):
			t.Errorf("progress frame %d: status %s, step %v", i, r.GetStatus(), r.GetStep())
		case last && (r.GetStatus() != l7v1.AgentTaskStatus_AGENT_TASK_STATUS_SUCCEEDED || r.GetResult() != "ok:step 1 of triage;ok:step 2 of triage;"):
			t.Errorf("result: status %s, result %q", r.GetStatus(), r.GetResult())
		}
	}
}

// TestAgentTaskRefused: a workload that is not an AgentRunner answers
// UNKNOWN_MSG_TYPE; an AgentRunner refuses a malformed payload with
// INVALID_REQUEST.
func TestAgentTaskRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, ctl := sdktest.Pair(t, &basic{})
	if err := ctl.Configure(ctx, &sdk.Config{Name: "basic"}); err != nil {
		t.Fatal(err)
	}
	f, _ := agentFrame("x")
	if _, err := sdktest.Call(ctx, cl, f); mux.CodeOf(err) != dbe.CodeUnknownMsgType {
		t.Errorf("basic workload: %v, want UNKNOWN_MSG_TYPE", err)
	}

	cl, ctl = sdktest.Pair(t, &agent{steps: 1})
	if err := ctl.Configure(ctx, &sdk.Config{Name: "agent"}); err != nil {
		t.Fatal(err)
	}
	f, _ = agentFrame("x")
	f.Payload = []byte{0xff}
	if _, err := sdktest.Call(ctx, cl, f); mux.CodeOf(err) != dbe.CodeInvalidRequest {
		t.Errorf("malformed payload: %v, want INVALID_REQUEST", err)
	}

}
