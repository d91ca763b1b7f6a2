package sdk

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// AgentRunner is implemented by workloads that run agent tasks
// (L7_AGENT_TASK, issue 12). A workload that is not an AgentRunner answers
// them with ERROR UNKNOWN_MSG_TYPE. A plugin that implements it lists
// CapAgent.
type AgentRunner interface {
	// RunTask runs task to its end and returns the final result, which the
	// SDK sends as the L7_AGENT_RESULT with END_STREAM (a nil Status is
	// reported as SUCCEEDED). Before it, each call of progress.Step sends
	// one progress frame: an L7_AGENT_RESULT without END_STREAM, status
	// RUNNING, carrying the step.
	//
	// ctx ends when the client cancels, when the task's TIMEOUT_MS passes
	// or when the session ends; a task that ran out of time should still
	// return its partial result (status TIMED_OUT) rather than an error,
	// which is why task.Deadline is a little before ctx's. An error (as
	// from Errorf or InvalidParam) is sent as ERROR instead of a result:
	// for requests that are malformed, not for tasks that failed.
	RunTask(ctx context.Context, task *AgentTask, progress AgentProgress) (*l7v1.L7AgentResult, error)
}

// AgentTask is one L7_AGENT_TASK as an AgentRunner sees it: the payload
// and the attributes the router admitted it with, which every request the
// task makes through Router carries unchanged.
type AgentTask struct {
	// RequestID is the task's REQUEST_ID; its LLM steps carry it too.
	RequestID [16]byte

	// TenantID, Compartments, Classification and ROE are the task's
	// security attributes, as the router's policy admitted them.
	TenantID       string
	Compartments   dbe.Compartment
	Classification dbe.Classification
	ROE            dbe.ROELevel

	// Profile is the profile the task was routed on (the agent plugin's).
	Profile string

	// Deadline is when the task should end with what it has: a little
	// before the request's TIMEOUT_MS runs out, so that the final result
	// reaches the client in time. Zero means none.
	Deadline time.Time

	// Params is the payload. RunTask must not modify it.
	Params *l7v1.L7AgentTask

	// Router sends requests through the host's router on the task's
	// behalf.
	Router TaskRouter
}

// TaskRouter sends requests through the router on behalf of one agent task,
// over the plugin's own authenticated session with the host. Each request
// carries the task's REQUEST_ID, tenant, compartments, classification and
// ROE; the host refuses any request that is not bound to an agent task in
// flight on this plugin, or whose attributes differ from the task's
// (docs/security.md, "Agent steps"), and the router then applies its claim,
// policy and quota checks as for any request.
type TaskRouter interface {
	// Chat sends a (non-streamed) chat request to profile and returns the
	// response. A refusal or failure is a *mux.Error with its DBE code.
	Chat(ctx context.Context, profile string, req *l7v1.L7ChatRequest) (*l7v1.L7ChatResponse, error)
}

// AgentProgress sends an agent task's progress frames.
type AgentProgress interface {
	// Step sends one progress frame carrying step. It fails when the
	// request has ended or the session is gone.
	Step(step *l7v1.AgentStep) error
}

// deadlineMargin is how long before its TIMEOUT_MS a task's Deadline is:
// a tenth of the budget, at most agentMaxMargin.
const agentMaxMargin = 2 * time.Second

// serveAgent answers one L7_AGENT_TASK. mc is the session's client, over
// which the task's own requests go; nil when the frame did not come from a
// session (then the task's Router fails every call).
func (s *Server) serveAgent(ctx context.Context, f *dbe.Frame, w *mux.ResponseWriter, mc *mux.Client) {
	cfg := s.ready(w, f, s.agent != nil, "agent tasks")
	if cfg == nil {
		return
	}
	task, err := agentTask(f, cfg)
	if err != nil {
		_ = w.Fail(err)
		return
	}
	if dl, ok := ctx.Deadline(); ok {
		budget := time.Until(dl)
		task.Deadline = dl.Add(-min(budget/10, agentMaxMargin))
	}
	task.Router = &taskRouter{mc: mc, task: task, device: cfg.DeviceID}
	s.inFlight.Add(1)
	res, err := s.agent.RunTask(ctx, task, &agentProgress{w: w})
	s.inFlight.Add(-1)
	if err != nil {
		s.failRequest(ctx, w, "agent task", task.RequestID, err)
		return
	}
	if res == nil {
		_ = w.Fail(Errorf(dbe.CodeInternal, "the workload returned no agent result"))
		return
	}
	if res.Status == l7v1.AgentTaskStatus_AGENT_TASK_STATUS_UNSPECIFIED {
		res.Status = l7v1.AgentTaskStatus_AGENT_TASK_STATUS_SUCCEEDED
	}
	s.countTokens(res.GetUsage().GetCompletionTokens())
	b, err := proto.Marshal(res)
	if err != nil {
		_ = w.Fail(Errorf(dbe.CodeInternal, "marshal L7AgentResult: %w", err))
		return
	}
	_ = w.Send(&dbe.Frame{Type: dbe.MsgAgentResult, Flags: dbe.FlagEndStream, Payload: b})
}

// agentTask checks an L7_AGENT_TASK frame and builds the AgentTask (without
// its Router and Deadline).
func agentTask(f *dbe.Frame, cfg *Config) (*AgentTask, error) {
	if err := dbe.CheckRequired(f); err != nil {
		return nil, Errorf(dbe.CodeInvalidRequest, "%w", err)
	}
	params := new(l7v1.L7AgentTask)
	if err := proto.Unmarshal(f.Payload, params); err != nil {
		return nil, Errorf(dbe.CodeInvalidRequest, "L7AgentTask payload: %w", err)
	}
	if params.GetTimeoutSeconds() < 0 {
		return nil, InvalidParam("timeout_seconds", "timeout_seconds=%d is negative", params.GetTimeoutSeconds())
	}
	t := &AgentTask{Params: params}
	t.RequestID, _ = f.RequestID()
	t.TenantID, _ = f.TenantID()
	t.Compartments, _ = f.CompartmentMask()
	t.Classification, _ = f.Classification()
	t.ROE, _ = f.ROELevel()
	t.Profile, _ = f.Profile()
	if len(cfg.Profiles) > 0 && !containsString(cfg.Profiles, t.Profile) {
		return nil, Errorf(dbe.CodeNotFound, "profile %q is not served by plugin %q", t.Profile, cfg.Name)
	}
	return t, nil
}

func containsString(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// agentProgress sends progress frames on a task's response.
type agentProgress struct {
	w *mux.ResponseWriter
}

func (p *agentProgress) Step(step *l7v1.AgentStep) error {
	if p.w.Ended() {
		return ErrStreamDone
	}
	b, err := proto.Marshal(&l7v1.L7AgentResult{Status: l7v1.AgentTaskStatus_AGENT_TASK_STATUS_RUNNING, Step: step})
	if err != nil {
		return fmt.Errorf("sdk: marshal progress: %w", err)
	}
	return p.w.Send(&dbe.Frame{Type: dbe.MsgAgentResult, Payload: b})
}

// ErrNoSession is returned by a TaskRouter whose task did not arrive over a
// host session (a test calling Server.ServeDBE directly).
var ErrNoSession = errors.New("sdk: the task has no session to the host's router")

// taskRouter is the TaskRouter of one task: requests over the session the
// task arrived on, with the task's attributes.
type taskRouter struct {
	mc     *mux.Client
	task   *AgentTask
	device uint8
}

func (r *taskRouter) Chat(ctx context.Context, profile string, req *l7v1.L7ChatRequest) (*l7v1.L7ChatResponse, error) {
	if r.mc == nil {
		return nil, ErrNoSession
	}
	if !dbe.ValidProfile(profile) {
		return nil, InvalidParam("profile", "%q is not a valid L7 profile", profile)
	}
	if req.GetStream() {
		return nil, InvalidParam("stream", "TaskRouter.Chat sends non-streamed requests")
	}
	payload, err := proto.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("sdk: marshal L7ChatRequest: %w", err)
	}
	t := r.task
	f := &dbe.Frame{Type: dbe.MsgChatReq, Payload: payload}
	f.SetTenantID(t.TenantID)
	f.SetCompartmentMask(t.Compartments)
	f.SetClassification(t.Classification)
	f.SetROELevel(t.ROE)
	f.SetDeviceIDSrc(r.device)
	f.SetProfile(profile)
	f.SetRequestID(t.RequestID)
	f.SetTimestamp(time.Now())
	if dl, ok := ctx.Deadline(); ok {
		d := time.Until(dl)
		if d <= 0 {
			return nil, context.DeadlineExceeded
		}
		f.SetTimeout(d)
	}
	var resp *l7v1.L7ChatResponse
	err = r.mc.Call(ctx, f, func(fr *dbe.Frame) error {
		if fr.Type != dbe.MsgChatResp {
			return fmt.Errorf("sdk: the router answered a chat with %s", fr.Type)
		}
		resp = new(l7v1.L7ChatResponse)
		if err := proto.Unmarshal(fr.Payload, resp); err != nil {
			return fmt.Errorf("sdk: L7ChatResponse from the router: %w", err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if resp == nil {
		return nil, errors.New("sdk: the router ended a chat without a response")
	}
	return resp, nil
}
