package metrics

import (
	"strings"
	"sync"

	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics observes agent tasks too.
var _ router.AgentObserver = (*Metrics)(nil)

// agentMetrics are the agent tasks' counters.
type agentMetrics struct {
	tasks *prometheus.CounterVec
	steps *prometheus.CounterVec

	mu    sync.Mutex
	tools map[string]bool // tool label values seen, at most maxToolLabels
}

// maxToolLabels bounds the tool label's values: the model names the tools
// it calls, so a label per name would let it grow the series without end.
const maxToolLabels = 64

func newAgentMetrics() *agentMetrics {
	return &agentMetrics{
		tasks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dsmil_l7_agent_tasks_total",
			Help: "Agent tasks ended, by task type (unknown for a task refused before the agent ran it) and status (completed, failed, timeout, denied, cancelled).",
		}, []string{"task_type", "status"}),
		steps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "dsmil_l7_agent_steps_total",
			Help: "Agent task steps: each tool call by tool and outcome (ok, error, refused), and each LLM step without a tool call as tool=none by how it ended (answered, failed, timeout, denied, cancelled).",
		}, []string{"tool", "outcome"}),
		tools: map[string]bool{},
	}
}

// AgentStep implements router.AgentObserver.
func (m *Metrics) AgentStep(_ *router.AgentTask, step *l7v1.AgentStep) {
	a := m.agent
	if len(step.GetCalls()) == 0 {
		a.steps.WithLabelValues("none", label(step.GetEnded(), "unknown")).Inc()
		return
	}
	for _, c := range step.GetCalls() {
		a.steps.WithLabelValues(a.toolLabel(c.GetTool()), label(c.GetOutcome(), "unknown")).Inc()
	}
}

// AgentFinished implements router.AgentObserver.
func (m *Metrics) AgentFinished(task *router.AgentTask, res *l7v1.L7AgentResult, code dbe.Code) {
	taskType, status := "unknown", router.AgentStatus(res, code)
	if res != nil {
		taskType = label(task.TaskType, "unknown") // the agent ran it: a configured task type
	}
	m.agent.tasks.WithLabelValues(taskType, status).Inc()
}

// toolLabel is name as a label value: a short plain name, among the first
// maxToolLabels seen; "other" otherwise.
func (a *agentMetrics) toolLabel(name string) string {
	if name == "" || len(name) > 64 || strings.IndexFunc(name, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-' || r == '.')
	}) >= 0 {
		return "other"
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.tools[name] {
		if len(a.tools) >= maxToolLabels {
			return "other"
		}
		a.tools[name] = true
	}
	return name
}

func label(s, dflt string) string {
	if s == "" {
		return dflt
	}
	return s
}
