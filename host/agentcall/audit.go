package agentcall

import (
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/hashicorp/go-hclog"
)

// Audit writes the agent tasks' lines of the decision log (docs/policy.md
// §7): one `agent step` line per tool call, and per LLM step that called
// no tool, as its progress frame passes the router; one `agent task` line
// when the task ends. Names, sizes, outcomes and times only: never
// arguments, file contents, prompt or answer text.
type Audit struct {
	// Logger is the decision log (dsmil-host: the policy engine's).
	Logger hclog.Logger
}

var _ router.AgentObserver = (*Audit)(nil)

// AgentStep implements router.AgentObserver.
func (a *Audit) AgentStep(t *router.AgentTask, s *l7v1.AgentStep) {
	id := dbe.FormatUUID(t.RequestID)
	if len(s.GetCalls()) == 0 {
		a.Logger.Info("agent step", "task_id", id, "tenant", t.TenantID, "task_type", t.TaskType, "step", s.GetIndex(),
			"tool", "none", "argument_bytes", 0, "outcome", s.GetEnded(), "duration_ms", int64(s.GetLlmMs()),
			"llm_ms", int64(s.GetLlmMs()), "prompt_tokens", s.GetPromptTokens(), "completion_tokens", s.GetCompletionTokens())
		return
	}
	for _, c := range s.GetCalls() {
		a.Logger.Info("agent step", "task_id", id, "tenant", t.TenantID, "task_type", t.TaskType, "step", s.GetIndex(),
			"tool", c.GetTool(), "argument_bytes", c.GetArgumentBytes(), "outcome", c.GetOutcome(), "duration_ms", int64(c.GetToolMs()),
			"llm_ms", int64(s.GetLlmMs()), "result_bytes", c.GetResultBytes())
	}
}

// AgentFinished implements router.AgentObserver.
func (a *Audit) AgentFinished(t *router.AgentTask, res *l7v1.L7AgentResult, code dbe.Code) {
	args := []any{"task_id", dbe.FormatUUID(t.RequestID), "tenant", t.TenantID, "task_type", t.TaskType,
		"status", router.AgentStatus(res, code), "steps", len(res.GetSteps()), "artifacts", len(res.GetArtifacts()),
		"tokens", res.GetUsage().GetTotalTokens()}
	if res == nil {
		args = append(args, "code", code.String())
	}
	a.Logger.Info("agent task", args...)
}
