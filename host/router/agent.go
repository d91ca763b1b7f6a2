package router

import (
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

// AgentTask names an agent task (L7_AGENT_TASK) the router routes, for an
// AgentObserver.
type AgentTask struct {
	RequestID [16]byte
	TenantID  string
	// TaskType is the task type the client asked for: not checked by the
	// router (the agent checks it), so not to be trusted as a metric label
	// before the agent answered with a result.
	TaskType string
}

// AgentObserver sees the agent tasks the router routes (metrics, audit):
// each step as its progress frame passes, and each task's end. Both are
// called on a worker session's read loop and must not block.
type AgentObserver interface {
	// AgentStep is called for each progress frame's step, also after the
	// client went away.
	AgentStep(task *AgentTask, step *l7v1.AgentStep)
	// AgentFinished is called once per task the router admitted or
	// refused: res is its final L7_AGENT_RESULT, nil when it ended with an
	// error, whose code is code (UNSPECIFIED with a result).
	AgentFinished(task *AgentTask, res *l7v1.L7AgentResult, code dbe.Code)
}

// agentTask reads what an AgentObserver is told about req.
func agentTask(req *dbe.Frame) *AgentTask {
	t := &AgentTask{}
	t.RequestID, _ = req.RequestID()
	t.TenantID, _ = req.TenantID()
	var p l7v1.L7AgentTask
	if proto.Unmarshal(req.Payload, &p) == nil {
		t.TaskType = p.GetTaskType()
	}
	return t
}

// observeStep passes a progress frame's step to the agent observers.
func (fl *flight) observeStep(f *dbe.Frame) {
	var res l7v1.L7AgentResult
	if f.Type != dbe.MsgAgentResult || proto.Unmarshal(f.Payload, &res) != nil || res.GetStep() == nil {
		return
	}
	for _, o := range fl.r.cfg.Agents {
		o.AgentStep(fl.agent, res.GetStep())
	}
}

// observeEnd tells the agent observers how the task ended.
func (fl *flight) observeEnd(err error) {
	res, _ := fl.final.(*l7v1.L7AgentResult)
	if err != nil {
		res = nil
	}
	for _, o := range fl.r.cfg.Agents {
		o.AgentFinished(fl.agent, res, mux.CodeOf(err))
	}
}

// AgentStatus is an agent task's status as the issue and the logs spell
// it: its result's, or what the error it ended with means.
func AgentStatus(res *l7v1.L7AgentResult, code dbe.Code) string {
	if res != nil {
		switch res.GetStatus() {
		case l7v1.AgentTaskStatus_AGENT_TASK_STATUS_SUCCEEDED:
			return "completed"
		case l7v1.AgentTaskStatus_AGENT_TASK_STATUS_TIMED_OUT:
			return "timeout"
		case l7v1.AgentTaskStatus_AGENT_TASK_STATUS_DENIED:
			return "denied"
		case l7v1.AgentTaskStatus_AGENT_TASK_STATUS_CANCELLED:
			return "cancelled"
		}
		return "failed"
	}
	switch code {
	case dbe.CodePolicyDenied, dbe.CodeClaimTokenInvalid, dbe.CodeUnauthenticated:
		return "denied"
	case dbe.CodeCancelled:
		return "cancelled"
	case dbe.CodeDeadlineExceeded:
		return "timeout"
	}
	return "failed"
}
