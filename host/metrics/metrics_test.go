package metrics

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

type snaps []pluginmgr.Snapshot

func (s snaps) Snapshots() []pluginmgr.Snapshot { return s }

func TestMetricsEndpoint(t *testing.T) {
	m := New(snaps{
		{Name: "llm-amx", Replica: 0, DeviceID: 47, Healthy: true, Restarts: 2, MemoryUsed: 1000, Accelerator: "cpu-amx"},
		{Name: "llm-amx", Replica: 1, DeviceID: 47, Healthy: false, MemoryUsed: 500},
		{Name: "llm-npu", Replica: 0, DeviceID: 44, Healthy: true, MemoryUsed: 700, Accelerator: "cpu"},
	})
	m.Started()
	m.Finished("llm-7b-amx", 47, dbe.CodeUnspecified, 30*time.Millisecond, 12, 100)
	m.Started()
	m.Finished("llm-7b-amx", 0, dbe.CodePolicyDenied, time.Millisecond, 0, 0)
	m.Started() // still in flight
	srv, err := m.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve()
	defer srv.Close()
	resp, err := http.Get("http://" + srv.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	body := string(b)
	for _, want := range []string{
		`dsmil_l7_requests_total{device_id="47",profile="llm-7b-amx",status="ok"} 1`,
		`dsmil_l7_requests_total{device_id="0",profile="llm-7b-amx",status="policy_denied"} 1`,
		`dsmil_l7_latency_seconds_bucket{device_id="47",profile="llm-7b-amx",le="0.05"} 1`,
		`dsmil_l7_latency_seconds_bucket{device_id="47",profile="llm-7b-amx",le="0.025"} 0`,
		`dsmil_l7_tokens_generated_total{device_id="47"} 100`,
		`dsmil_l7_prompt_tokens_total{device_id="47"} 12`,
		`dsmil_l7_memory_used_bytes{device_id="47"} 1500`,
		`dsmil_l7_plugin_up{accelerator="cpu-amx",device_id="47",plugin="llm-amx",replica="0"} 1`,
		`dsmil_l7_plugin_up{accelerator="",device_id="47",plugin="llm-amx",replica="1"} 0`,
		`dsmil_l7_plugin_up{accelerator="cpu",device_id="44",plugin="llm-npu",replica="0"} 1`,
		`dsmil_l7_memory_used_bytes{device_id="44"} 700`,
		`dsmil_l7_plugin_restarts_total{plugin="llm-amx",replica="0"} 2`,
		`dsmil_l7_in_flight 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("missing %s", want)
		}
	}
	if r, _ := http.Post("http://"+srv.Addr()+"/metrics", "text/plain", nil); r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics: %d", r.StatusCode)
	}
}

// TestDashboardMetricsExist: every dsmil_l7_* metric the shipped Grafana
// dashboard queries is one this package exports.
func TestDashboardMetricsExist(t *testing.T) {
	b, err := os.ReadFile("../../deploy/grafana/dsmil-l7.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Targets []struct{ Expr string } `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	m := New(snaps{{Name: "x", DeviceID: 1}})
	m.Finished("p", 1, dbe.CodeUnspecified, time.Millisecond, 1, 1)
	task := &router.AgentTask{TaskType: "t"}
	m.AgentStep(task, &l7v1.AgentStep{Calls: []*l7v1.AgentToolCall{{Tool: "grep", Outcome: "ok"}}})
	m.AgentFinished(task, &l7v1.L7AgentResult{}, dbe.CodeUnspecified)
	families, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range families {
		have[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			have[f.GetName()+"_bucket"] = true
		}
	}
	re := regexp.MustCompile(`dsmil_l7_[a-z_]+`)
	n := 0
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, name := range re.FindAllString(tg.Expr, -1) {
				n++
				if !have[name] {
					t.Errorf("dashboard queries %s, which the host does not export", name)
				}
			}
		}
	}
	if n < 8 {
		t.Fatalf("only %d metric references found", n)
	}
}

// TestAgentLabels: a task refused before the agent ran it is counted under
// task_type "unknown" (its name is the client's), statuses follow the
// result or the error, and the tool label is bounded (odd names and names
// past the first 64 are "other").
func TestAgentLabels(t *testing.T) {
	m := New(nil)
	task := &router.AgentTask{TaskType: "made-up-by-the-client"}
	m.AgentFinished(task, nil, dbe.CodePolicyDenied)
	m.AgentFinished(&router.AgentTask{TaskType: "triage-alert"}, &l7v1.L7AgentResult{Status: l7v1.AgentTaskStatus_AGENT_TASK_STATUS_CANCELLED}, dbe.CodeUnspecified)
	m.AgentStep(task, &l7v1.AgentStep{Ended: "answered"})
	m.AgentStep(task, &l7v1.AgentStep{Calls: []*l7v1.AgentToolCall{{Tool: "rm -rf /", Outcome: "refused"}}})
	for i := range 70 {
		m.AgentStep(task, &l7v1.AgentStep{Calls: []*l7v1.AgentToolCall{{Tool: "t" + strconv.Itoa(i), Outcome: "refused"}}})
	}
	var b strings.Builder
	mfs, err := m.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			b.WriteString(mf.GetName())
			for _, l := range mt.GetLabel() {
				b.WriteString(" " + l.GetName() + "=" + l.GetValue())
			}
			b.WriteString(" " + strconv.FormatFloat(mt.GetCounter().GetValue(), 'g', -1, 64) + "\n")
		}
	}
	got := b.String()
	for _, want := range []string{
		"dsmil_l7_agent_tasks_total status=denied task_type=unknown 1\n",
		"dsmil_l7_agent_tasks_total status=cancelled task_type=triage-alert 1\n",
		"dsmil_l7_agent_steps_total outcome=answered tool=none 1\n",
		"dsmil_l7_agent_steps_total outcome=refused tool=t63 1\n",
		"dsmil_l7_agent_steps_total outcome=refused tool=other 7\n", // "rm -rf /" and t64..t69
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "made-up") || strings.Contains(got, "tool=t64") {
		t.Errorf("unbounded label values:\n%s", got)
	}
}
