package shim

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// DefaultAgentProfile is the profile of POST /v1/dsmil/agent/tasks when the
// body names none: the shipped agent plugin's.
const DefaultAgentProfile = "agent"

// agentTaskRequest is the body of POST /v1/dsmil/agent/tasks.
type agentTaskRequest struct {
	TaskType       *string           `json:"task_type"`
	Parameters     map[string]string `json:"parameters"`
	TimeoutSeconds *int64            `json:"timeout_seconds"`
	Profile        *string           `json:"profile"`
	Stream         *bool             `json:"stream"`
}

// agentTask serves POST /v1/dsmil/agent/tasks: an L7_AGENT_TASK of the
// tenant, through the router like a chat (claims, policy, quotas), answered
// with the task's result as JSON, or with "stream": true as server-sent
// events, one per step, then the result (docs/clients.md).
func (s *Server) agentTask(w http.ResponseWriter, r *http.Request, rq *request) {
	body, e := s.readBody(w, r)
	if e != nil {
		writeError(w, e)
		return
	}
	var req agentTaskRequest
	if e := decodeJSON(body, &req); e != nil {
		writeError(w, e)
		return
	}
	if req.TaskType == nil || *req.TaskType == "" {
		writeError(w, invalidRequest("task_type", "missing_required_parameter", "you must provide a task_type parameter"))
		return
	}
	profile := DefaultAgentProfile
	if req.Profile != nil {
		if !dbe.ValidProfile(*req.Profile) {
			writeError(w, invalidRequest("profile", "invalid_value", "Invalid 'profile': %s is not an L7 profile name.", quoteClip(*req.Profile)))
			return
		}
		profile = *req.Profile
	}
	budget := s.cfg.AgentTimeout
	task := &l7v1.L7AgentTask{TaskType: *req.TaskType, Parameters: req.Parameters}
	if req.TimeoutSeconds != nil {
		ts := *req.TimeoutSeconds
		if ts < 1 || time.Duration(ts)*time.Second > s.cfg.AgentTimeout {
			writeError(w, invalidRequest("timeout_seconds", "invalid_value",
				"Invalid 'timeout_seconds': %d; it must be between 1 and %d (router.agent_timeout).", ts, int64(s.cfg.AgentTimeout/time.Second)))
			return
		}
		task.TimeoutSeconds = int32(ts)
		budget = time.Duration(ts) * time.Second
	}
	f, err := s.requestFrame(dbe.MsgAgentTask, task, &config.Model{Profile: profile}, rq.tenant, rq.id, rq.start)
	if err != nil {
		s.fail(w, rq, &mux.Error{Code: dbe.CodeInternal, Message: err.Error()})
		return
	}
	f.SetTimeout(budget) // the task's own budget, not shim.request_timeout
	ctx, cancel := context.WithTimeout(r.Context(), budget)
	defer cancel()
	rp := s.forward(ctx, f)
	defer rp.cancel() // a client that went away cancels the task

	stream := req.Stream != nil && *req.Stream
	out := &sseWriter{w: w, rc: http.NewResponseController(w)}
	keepalive := time.NewTimer(s.cfg.Shim.KeepaliveInterval)
	defer keepalive.Stop()
	var tick <-chan time.Time
	if stream {
		tick = keepalive.C
	}
	for {
		evs, ticked, gone := rp.wait(tick)
		switch {
		case gone:
			s.streamError(out, rq, asDBEError(ctx.Err()))
			return
		case ticked:
			if !out.comment("keep-alive") {
				return
			}
			keepalive.Reset(s.cfg.Shim.KeepaliveInterval)
			continue
		}
		for _, ev := range evs {
			if ev.err == nil && ev.agent == nil {
				ev.err = &mux.Error{Code: dbe.CodeWorkerFailed, Message: "the worker answered an agent task with something else than L7_AGENT_RESULT"}
			}
			switch {
			case ev.err != nil:
				s.streamError(out, rq, ev.err)
				return
			case !ev.end:
				if stream && !out.data(agentStepJSON(rq, ev.agent.GetStep())) {
					return
				}
			case stream:
				out.data(agentResultJSON(rq, *req.TaskType, ev.agent))
				out.done()
				return
			default:
				writeJSON(w, http.StatusOK, agentResultJSON(rq, *req.TaskType, ev.agent))
				return
			}
		}
		if stream {
			keepalive.Reset(s.cfg.Shim.KeepaliveInterval)
		}
	}
}

// protoJSON renders m with its proto field names, as docs/clients.md shows.
func protoJSON(m proto.Message) json.RawMessage {
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		panic("shim: marshal " + err.Error()) // a bug
	}
	return b
}

// agentStepJSON is one progress event of a streamed task.
func agentStepJSON(rq *request, step *l7v1.AgentStep) map[string]any {
	return map[string]any{"object": "dsmil.agent.step", "id": "agenttask-" + rq.idStr, "step": protoJSON(step)}
}

// agentResultJSON is the task's result.
func agentResultJSON(rq *request, taskType string, res *l7v1.L7AgentResult) map[string]any {
	steps := make([]json.RawMessage, 0, len(res.GetSteps()))
	for _, st := range res.GetSteps() {
		steps = append(steps, protoJSON(st))
	}
	transcript := make([]json.RawMessage, 0, len(res.GetTranscript()))
	for _, m := range res.GetTranscript() {
		transcript = append(transcript, protoJSON(m))
	}
	v := map[string]any{
		"object":     "dsmil.agent.task",
		"id":         "agenttask-" + rq.idStr,
		"created":    rq.start.Unix(),
		"task_type":  taskType,
		"status":     router.AgentStatus(res, dbe.CodeUnspecified),
		"result":     res.GetResult(),
		"artifacts":  append([]string{}, res.GetArtifacts()...),
		"steps":      steps,
		"transcript": transcript,
		"usage": map[string]int64{"prompt_tokens": int64(res.GetUsage().GetPromptTokens()),
			"completion_tokens": int64(res.GetUsage().GetCompletionTokens()), "total_tokens": int64(res.GetUsage().GetTotalTokens())},
	}
	if res.GetErrorMessage() != "" {
		v["error"] = map[string]string{"code": dbe.Code(res.GetErrorCode()).String(), "message": res.GetErrorMessage()}
	}
	return v
}
