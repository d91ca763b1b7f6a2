package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/host/agentcall"
	"github.com/dsmil/l7/host/claims"
	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/metrics"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/policy"
	"github.com/dsmil/l7/host/ratelimit"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
)

// agentBin is the real dsmil-agent, built once for the agent tests.
var (
	agentOnce sync.Once
	agentBin  string
	agentErr  error
)

func buildAgent(t *testing.T) string {
	t.Helper()
	agentOnce.Do(func() {
		agentBin, agentErr = testutil.Build(filepath.Dir(pluginBin), "dsmil-agent", "github.com/dsmil/l7/plugins/agent")
	})
	if agentErr != nil {
		t.Fatal(agentErr)
	}
	return agentBin
}

const agentAudience = "dsmil-router"

// agentPlane is a host as dsmil-host wires it for agent tasks: the llm-amx
// plugin serving a tiny random-weight model and the agent plugin under one
// plugin manager, whose agent steps go to an agentcall.Server over the
// router; the router verifies claim tokens minted by the host's key and
// decides with the policy engine over the test's tenants.
type agentPlane struct {
	r         *router.Router
	m         *pluginmgr.Manager
	cfg       *config.Config
	claimKey  string // the minter's key file: a claim issuer of the plane
	metrics   *metrics.Metrics
	minter    *identity.Minter
	logs      *testutil.SyncBuffer // plugin manager, plugins, agent steps
	decisions *testutil.SyncBuffer // the decision log: the policy engine's and agentcall.Audit's lines
	artifacts string
}

// The tenants of the agent plane.
const (
	socTenant      = "SOC_TEAM_ALPHA" // SOC_ASSIST, SOC
	devTenant      = "DEV_TEAM"       // SOC_ASSIST, DEV only: no write_report
	analysisTenant = "ANALYST_ONLY"   // ANALYSIS_ONLY: no agent tasks
	agentProfile   = "agent"
)

func startAgentPlane(t *testing.T) *agentPlane {
	t.Helper()
	if testing.Short() {
		t.Skip("spawns the llm-amx and agent plugins")
	}
	if os.Getenv(ortLibEnv) == "" {
		t.Skip(ortLibEnv + " is not set: make test sets it to the `make ort` cache")
	}
	agent := buildAgent(t)
	dir := t.TempDir()
	spec, err := mkmodel.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	spec.DType, spec.MaxPositions = mkmodel.Int4, 16384
	modelDir := filepath.Join(dir, "tiny")
	if _, err := mkmodel.Write(modelDir, spec); err != nil {
		t.Fatal(err)
	}
	ws := filepath.Join(dir, "workspace")
	for p, s := range map[string]string{
		"alerts/alert-1.txt": "ALERT brute force: 41 failed root logins from 203.0.113.7 (hxxp://evil[.]example[.]net/x), CVE-2024-3094\n",
		"logs/auth.log":      "sshd[1]: Failed password for root from 203.0.113.7 port 4711\nsshd[1]: Accepted publickey for ops from 10.0.0.5\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(ws, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ws, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := &agentPlane{logs: &testutil.SyncBuffer{}, decisions: &testutil.SyncBuffer{}, artifacts: filepath.Join(dir, "artifacts")}
	// Task types: "triage" (every tool, the model's choice forced), "report"
	// (write_report only), "slow" (a wall time no step fits in), "tokens"
	// (a token budget one step exhausts), "long" (a tool call, then an
	// answer of up to 8000 tokens: random weights rarely stop early).
	src := fmt.Sprintf(`
plugin "llm-amx" {
  path         = %[1]q
  device_id    = 47
  profiles     = [%[2]q]
  max_restarts = 0
  pass_env     = ["DSMIL_ORT_LIB"]
  model        = %[3]q
  model_name   = %[4]q
  threads      = 1
  # Random weights sample EOS now and then: an answer that ends early
  # would race the cancel tests (TestAgentCancel waits for a step that is
  # still generating). Steps end at their token budget or, when
  # constrained, when the grammar is complete.
  ignore_eos   = true
}
model %[4]q { profile = %[2]q }

plugin "agent" {
  path          = %[5]q
  device_id     = 48
  profiles      = [%[6]q]
  max_restarts  = 0
  workspaces    = { alerts = "%[7]s/alerts", logs = "%[7]s/logs" }
  artifacts_dir = %[8]q
  read_bytes    = 512
  grep_matches  = 5
  tasks = {
    triage = {
      instructions    = "Triage the alert {{.alert}} against the logs in {{.logs}}."
      parameters      = ["alert", "logs"]
      profile         = %[2]q
      tools           = ["list_dir", "read_file", "grep", "extract_iocs", "write_report"]
      tool_choice     = "required"
      max_steps       = 3
      step_max_tokens = 4096
    }
    report = {
      instructions    = "Write a report."
      profile         = %[2]q
      tools           = ["write_report"]
      tool_choice     = "required"
      max_steps       = 2
      step_max_tokens = 4096
    }
    slow = {
      instructions = "Work."
      profile      = %[2]q
      tools        = ["list_dir"]
      tool_choice  = "required"
      max_steps    = 50
      wall_time    = "30ms"
    }
    long = {
      instructions    = "Work."
      profile         = %[2]q
      tools           = ["list_dir"]
      tool_choice     = "required"
      max_steps       = 2
      step_max_tokens = 8000
    }
    tokens = {
      instructions    = "Work."
      profile         = %[2]q
      tools           = ["list_dir"]
      tool_choice     = "required"
      max_steps       = 10
      max_tokens      = 50
      step_max_tokens = 4096
    }
  }
}

tenant %[9]q {
  api_key_sha256 = ["%[12]x"]
  compartments   = ["SOC"]
  roe            = "SOC_ASSIST"
  models         = ["*"]
  rate_limit { max_concurrent = 1 } # a task holds the slot; its steps take none
}
tenant %[10]q {
  api_key_sha256 = ["%[13]x"]
  compartments   = ["DEV"]
  roe            = "SOC_ASSIST"
  models         = ["*"]
}
tenant %[11]q {
  api_key_sha256 = ["%[14]x"]
  compartments   = ["SOC"]
  roe            = "ANALYSIS_ONLY"
  models         = ["*"]
}
`, pluginBin, tinyProfile, modelDir, tinyModelID, agent, agentProfile, ws, p.artifacts,
		socTenant, devTenant, analysisTenant, sha256.Sum256([]byte("k1")), sha256.Sum256([]byte("k2")), sha256.Sum256([]byte("k3")))
	p.start(t, dir, src)
	return p
}

// start parses src (a configuration in dir) and starts the plane on it:
// the plugin manager with an agentcall.Server for agent steps, the router
// with a claim verifier of a fresh issuer key (p.claimKey, p.minter), the
// policy engine, the rate limiter, metrics and the decision log; it
// returns when every plugin is ready.
func (p *agentPlane) start(t *testing.T, dir, src string) {
	t.Helper()
	cfg, diags := config.Parse(filepath.Join(dir, "dsmil.hcl"), []byte(src))
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}

	key, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	p.claimKey = filepath.Join(dir, "claim.key")
	if err := identity.WritePrivateKeyFile(p.claimKey, key); err != nil {
		t.Fatal(err)
	}
	if p.minter, err = identity.NewMinter(identity.MinterConfig{Key: key, Audience: agentAudience}); err != nil {
		t.Fatal(err)
	}
	verifier, err := claims.NewVerifier(claims.VerifierConfig{Issuers: []*identity.PublicKey{key.Public()}, Audience: agentAudience})
	if err != nil {
		t.Fatal(err)
	}
	eng, diags := policy.New(cfg, hclogTo(p.decisions))
	if diags.HasErrors() {
		t.Fatalf("policy: %v", diags)
	}
	steps := &agentcall.Server{Minter: p.minter, Logger: hclogTo(p.logs).Named("agent")}
	m := pluginmgr.New(pluginmgr.Config{Plugins: cfg.Plugins, Files: cfg.Files(), Logger: hclogTo(p.logs), PluginRequests: steps})
	p.metrics = metrics.New(m)
	p.cfg = cfg
	if p.r, err = router.New(router.Config{Registry: m, Claims: verifier, Policy: eng, RequestTimeout: 2 * time.Minute, Limiter: ratelimit.New(cfg),
		Observer: p.metrics, Agents: []router.AgentObserver{p.metrics, &agentcall.Audit{Logger: hclogTo(p.decisions).Named("policy")}}}); err != nil {
		t.Fatal(err)
	}
	steps.Router = p.r
	p.m = m
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		m.Shutdown(sctx)
		cancel()
	})
	wctx, wcancel := context.WithTimeout(ctx, 90*time.Second)
	defer wcancel()
	if err := m.WaitReady(wctx); err != nil {
		t.Fatalf("not ready: %v\n%s", err, p.logs.String())
	}
}

// task sends an L7_AGENT_TASK for tenant (with its tenant block's
// attributes and a claim token) through the router and returns the
// progress frames' steps and the final result, or the router's error.
func (p *agentPlane) task(t *testing.T, tenant string, roe dbe.ROELevel, comp dbe.Compartment, id [16]byte, task *l7v1.L7AgentTask) ([]*l7v1.AgentStep, *l7v1.L7AgentResult, error) {
	t.Helper()
	f := p.taskFrame(t, tenant, roe, comp, id, task)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var progress []*l7v1.AgentStep
	var final *l7v1.L7AgentResult
	err := p.r.Route(ctx, f, func(fr *dbe.Frame) error {
		if fr.Type == dbe.MsgError {
			return nil // Route returns it
		}
		var res l7v1.L7AgentResult
		if fr.Type != dbe.MsgAgentResult || proto.Unmarshal(fr.Payload, &res) != nil {
			t.Errorf("frame %s from the agent", fr.Type)
			return nil
		}
		if final != nil {
			t.Errorf("a frame after the final result")
		}
		if fr.Flags&dbe.FlagEndStream == 0 {
			if res.GetStatus() != l7v1.AgentTaskStatus_AGENT_TASK_STATUS_RUNNING || res.GetStep() == nil {
				t.Errorf("progress frame: status %s, step %v", res.GetStatus(), res.GetStep())
			}
			progress = append(progress, res.GetStep())
			return nil
		}
		final = &res
		return nil
	})
	return progress, final, err
}

// taskFrame is an L7_AGENT_TASK of tenant with the given attributes and a
// claim token minted for it.
func (p *agentPlane) taskFrame(t *testing.T, tenant string, roe dbe.ROELevel, comp dbe.Compartment, id [16]byte, task *l7v1.L7AgentTask) *dbe.Frame {
	t.Helper()
	f := &dbe.Frame{Type: dbe.MsgAgentTask}
	f.SetTenantID(tenant)
	f.SetCompartmentMask(comp)
	f.SetClassification(dbe.Unclas)
	f.SetROELevel(roe)
	f.SetProfile(agentProfile)
	f.SetRequestID(id)
	tok, err := p.minter.Token(tenant, "e2e", []string{roe.String()})
	if err != nil {
		t.Fatal(err)
	}
	f.SetClaimToken(tok)
	f.Payload, _ = proto.Marshal(task)
	return f
}

// checkSteps: one progress frame per step, the same steps in the result.
func checkSteps(t *testing.T, progress []*l7v1.AgentStep, res *l7v1.L7AgentResult) {
	t.Helper()
	if len(progress) != len(res.GetSteps()) || len(progress) == 0 {
		t.Fatalf("%d progress frames, %d steps in the result", len(progress), len(res.GetSteps()))
	}
	for i, s := range progress {
		if !proto.Equal(s, res.GetSteps()[i]) || s.GetIndex() != int32(i+1) {
			t.Errorf("progress step %d %v, result step %v", i+1, s, res.GetSteps()[i])
		}
	}
}

// TestAgentTriage runs triage-style tasks end to end: the agent plugin
// behind the router, its LLM steps through the router to llm-amx's tiny
// random-weight model, whose tool calls are valid because tool_choice
// "required" constrains them. SOC_ASSIST with SOC is offered every tool
// and writes a report artifact; a DEV-only tenant is not offered
// write_report; every step is in the router's decision log under the
// task's request id.
func TestAgentTriage(t *testing.T) {
	p := startAgentPlane(t)
	allTools := []string{"list_dir", "read_file", "grep", "extract_iocs", "write_report"}

	id := [16]byte{0x01, 0x92, 1}
	progress, res, err := p.task(t, socTenant, dbe.SOCAssist, dbe.CompartmentSOC, id, &l7v1.L7AgentTask{
		TaskType: "triage", Parameters: map[string]string{"alert": "alerts/alert-1.txt", "logs": "logs"}})
	if err != nil {
		t.Fatalf("triage: %v\n%s", err, p.logs.String())
	}
	checkSteps(t, progress, res)
	if res.GetStatus() != l7v1.AgentTaskStatus_AGENT_TASK_STATUS_SUCCEEDED || len(res.GetSteps()) != 3 {
		t.Fatalf("triage: status %s (%s), %d steps", res.GetStatus(), res.GetErrorMessage(), len(res.GetSteps()))
	}
	for i, s := range res.GetSteps() {
		if !slices.Equal(s.GetToolsOffered(), allTools) {
			t.Errorf("step %d offered %v", i+1, s.GetToolsOffered())
		}
		wantChoice := "required"
		if i == 2 {
			wantChoice = "none" // the last step answers
		}
		if s.GetToolChoice() != wantChoice || (i < 2) != (len(s.GetCalls()) > 0) {
			t.Errorf("step %d: tool choice %q, %d calls", i+1, s.GetToolChoice(), len(s.GetCalls()))
		}
		for _, c := range s.GetCalls() {
			if !slices.Contains(allTools, c.GetTool()) || (c.GetOutcome() != "ok" && c.GetOutcome() != "error") {
				t.Errorf("step %d: call %v", i+1, c)
			}
		}
	}
	tr := res.GetTranscript()
	if len(tr) < 6 || tr[0].GetRole() != "system" || !strings.Contains(tr[0].GetContent(), "Triage the alert alerts/alert-1.txt against the logs in logs.") ||
		!strings.Contains(tr[1].GetContent(), "- alert: alerts/alert-1.txt") || tr[len(tr)-1].GetRole() != "assistant" {
		t.Errorf("transcript %v", tr)
	}
	if u := res.GetUsage(); u.GetPromptTokens() == 0 || u.GetCompletionTokens() == 0 {
		t.Errorf("usage %v", u)
	}
	// Each LLM step was decided by the policy engine as a chat of the
	// task's tenant under the task's request id, after the task itself.
	rid := dbe.FormatUUID(id)
	var agentLines, chatLines int
	for _, l := range strings.Split(p.decisions.String(), "\n") {
		if !strings.Contains(l, rid) {
			continue
		}
		switch {
		case strings.Contains(l, "operation=agent") && strings.Contains(l, "decision=allow"):
			agentLines++
		case strings.Contains(l, "operation=chat") && strings.Contains(l, "decision=allow") && strings.Contains(l, "profile="+tinyProfile):
			chatLines++
		}
	}
	if agentLines != 1 || chatLines != 3 {
		t.Errorf("decision log: %d agent and %d chat lines for the task, want 1 and 3:\n%s", agentLines, chatLines, p.decisions.String())
	}
	if n := strings.Count(p.logs.String(), "agent step"); n < 3 {
		t.Errorf("%d agent step lines in the host and plugin logs", n)
	}
	// The decision log has a line per tool call and per answering step,
	// with names, sizes, outcomes and times but no contents, and one for
	// the task; the metrics count the same.
	nCalls := 0
	for _, s := range res.GetSteps() {
		nCalls += len(s.GetCalls())
	}
	steps := p.auditLines("agent step", id)
	if len(steps) != nCalls+1 {
		t.Errorf("%d agent step lines in the decision log for %d calls and an answer:\n%s", len(steps), nCalls, p.decisions.String())
	}
	for _, l := range steps {
		for _, k := range []string{"tenant=" + socTenant, "task_type=triage", "tool=", "argument_bytes=", "outcome=", "duration_ms="} {
			if !strings.Contains(l, k) {
				t.Errorf("audit line without %s: %s", k, l)
			}
		}
	}
	if tl := p.auditLines("agent task", id); len(tl) != 1 || !strings.Contains(tl[0], "status=completed") || !strings.Contains(tl[0], "steps=3") {
		t.Errorf("agent task lines %q", tl)
	}
	for _, secret := range []string{"203.0.113.7", "brute force", "Triage the alert", "Failed password"} {
		if strings.Contains(p.decisions.String(), secret) {
			t.Errorf("the decision log holds content %q", secret)
		}
	}
	if v := p.counter(t, "dsmil_l7_agent_tasks_total", "task_type", "triage", "status", "completed"); v != 1 {
		t.Errorf("dsmil_l7_agent_tasks_total{triage,completed} = %v", v)
	}
	var counted float64
	for _, tool := range allTools {
		for _, o := range []string{"ok", "error", "refused"} {
			counted += p.counter(t, "dsmil_l7_agent_steps_total", "tool", tool, "outcome", o)
		}
	}
	if counted != float64(nCalls) || p.counter(t, "dsmil_l7_agent_steps_total", "tool", "none", "outcome", "answered") != 1 {
		t.Errorf("dsmil_l7_agent_steps_total: %v tool calls counted for %d, answered %v", counted, nCalls,
			p.counter(t, "dsmil_l7_agent_steps_total", "tool", "none", "outcome", "answered"))
	}

	// write_report alone, forced: the SOC tenant's task writes the report.
	id2 := [16]byte{0x01, 0x92, 2}
	progress, res, err = p.task(t, socTenant, dbe.SOCAssist, dbe.CompartmentSOC, id2, &l7v1.L7AgentTask{TaskType: "report"})
	if err != nil {
		t.Fatal(err)
	}
	checkSteps(t, progress, res)
	calls := res.GetSteps()[0].GetCalls()
	if res.GetStatus() != l7v1.AgentTaskStatus_AGENT_TASK_STATUS_SUCCEEDED || len(calls) == 0 || calls[0].GetTool() != "write_report" || calls[0].GetOutcome() != "ok" {
		t.Fatalf("report: status %s, step 1 %v", res.GetStatus(), res.GetSteps()[0])
	}
	wantDir := filepath.Join(p.artifacts, socTenant, dbe.FormatUUID(id2))
	if len(res.GetArtifacts()) != len(calls) || filepath.Dir(res.GetArtifacts()[0]) != wantDir {
		t.Fatalf("artifacts %v, want %d under %s", res.GetArtifacts(), len(calls), wantDir)
	}
	if b, err := os.ReadFile(res.GetArtifacts()[0]); err != nil || !strings.HasPrefix(string(b), "# ") {
		t.Errorf("artifact: %q %v", b, err)
	}

	// The DEV-only tenant lacks SOC: write_report is not offered, so the
	// task has no tool and its one step answers.
	progress, res, err = p.task(t, devTenant, dbe.SOCAssist, dbe.CompartmentDEV, [16]byte{0x01, 0x92, 3}, &l7v1.L7AgentTask{TaskType: "report"})
	if err != nil {
		t.Fatal(err)
	}
	checkSteps(t, progress, res)
	if s := res.GetSteps()[0]; res.GetStatus() != l7v1.AgentTaskStatus_AGENT_TASK_STATUS_SUCCEEDED || len(s.GetToolsOffered()) != 0 ||
		s.GetToolChoice() != "none" || len(s.GetCalls()) != 0 || len(res.GetArtifacts()) != 0 {
		t.Errorf("DEV tenant: status %s, step %v, artifacts %v", res.GetStatus(), s, res.GetArtifacts())
	}
}

// TestAgentDenied: the router refuses an agent task of an ANALYSIS_ONLY
// tenant (spec §4.2) before the agent sees it, and a task whose attributes
// are not its tenant's; the agent refuses an unknown task type and wrong
// parameters with INVALID_REQUEST.
func TestAgentDenied(t *testing.T) {
	p := startAgentPlane(t)
	_, _, err := p.task(t, analysisTenant, dbe.AnalysisOnly, dbe.CompartmentSOC, [16]byte{0x02, 1}, &l7v1.L7AgentTask{TaskType: "report"})
	var me *mux.Error
	if !asMuxError(err, &me) || me.Code != dbe.CodePolicyDenied || me.Rule != "builtin.operation" {
		t.Errorf("ANALYSIS_ONLY agent task: %v, want POLICY_DENIED by builtin.operation", err)
	}
	_, _, err = p.task(t, devTenant, dbe.SOCAssist, dbe.CompartmentSOC, [16]byte{0x02, 2}, &l7v1.L7AgentTask{TaskType: "report"})
	if !asMuxError(err, &me) || me.Code != dbe.CodePolicyDenied || me.Rule != "builtin.compartments" {
		t.Errorf("DEV tenant asking for SOC: %v, want POLICY_DENIED by builtin.compartments", err)
	}
	if strings.Contains(p.logs.String(), dbe.FormatUUID([16]byte{0x02, 1})) {
		t.Errorf("the agent saw a denied task:\n%s", p.logs.String())
	}
	// Refused before the agent ran them: their task type is not a label.
	if v := p.counter(t, "dsmil_l7_agent_tasks_total", "task_type", "unknown", "status", "denied"); v != 2 {
		t.Errorf("dsmil_l7_agent_tasks_total{unknown,denied} = %v, want 2", v)
	}
	if tl := p.auditLines("agent task", [16]byte{0x02, 1}); len(tl) != 1 || !strings.Contains(tl[0], "status=denied") || !strings.Contains(tl[0], "code=POLICY_DENIED") {
		t.Errorf("agent task lines %q", tl)
	}
	_, _, err = p.task(t, socTenant, dbe.SOCAssist, dbe.CompartmentSOC, [16]byte{0x02, 3}, &l7v1.L7AgentTask{TaskType: "nope"})
	if !asMuxError(err, &me) || me.Code != dbe.CodeInvalidRequest || me.Param != "task_type" || !strings.Contains(me.Message, `unknown task type "nope"`) {
		t.Errorf("unknown task type: %v", err)
	}
	_, _, err = p.task(t, socTenant, dbe.SOCAssist, dbe.CompartmentSOC, [16]byte{0x02, 4}, &l7v1.L7AgentTask{TaskType: "triage", Parameters: map[string]string{"alert": "a"}})
	if !asMuxError(err, &me) || me.Code != dbe.CodeInvalidRequest || !strings.Contains(me.Message, "needs parameters logs") {
		t.Errorf("missing parameter: %v", err)
	}
}

// TestAgentBudgets: a wall time no step fits in ends the task as timeout,
// a token budget as failed, each with the steps so far.
func TestAgentBudgets(t *testing.T) {
	p := startAgentPlane(t)
	progress, res, err := p.task(t, socTenant, dbe.SOCAssist, dbe.CompartmentSOC, [16]byte{0x03, 1}, &l7v1.L7AgentTask{TaskType: "slow"})
	if err != nil {
		t.Fatal(err)
	}
	if res.GetStatus() != l7v1.AgentTaskStatus_AGENT_TASK_STATUS_TIMED_OUT || res.GetErrorCode() != l7v1.ErrorCode_ERROR_CODE_DEADLINE_EXCEEDED {
		t.Errorf("slow: status %s, code %s, %q", res.GetStatus(), res.GetErrorCode(), res.GetErrorMessage())
	}
	checkSteps(t, progress, res)
	if last := res.GetSteps()[len(res.GetSteps())-1]; last.GetEnded() != "timeout" {
		t.Errorf("slow: last step %v", last)
	}

	// A token budget smaller than one step's prompt: the first step runs
	// (with max_tokens capped at what is left), the second is refused.
	progress, res, err = p.task(t, socTenant, dbe.SOCAssist, dbe.CompartmentSOC, [16]byte{0x03, 2}, &l7v1.L7AgentTask{TaskType: "tokens", TimeoutSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	checkSteps(t, progress, res)
	if res.GetStatus() != l7v1.AgentTaskStatus_AGENT_TASK_STATUS_FAILED || !strings.Contains(res.GetErrorMessage(), "token budget exhausted") || len(res.GetSteps()) != 1 {
		t.Errorf("tokens: status %s, %q, %d steps", res.GetStatus(), res.GetErrorMessage(), len(res.GetSteps()))
	}
}

// counter is the value of the counter name with labels in the plane's
// metrics (0 when it has no such series).
func (p *agentPlane) counter(t *testing.T, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := p.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue series
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// auditLines are the decision log's lines with msg about the task id.
func (p *agentPlane) auditLines(msg string, id [16]byte) []string {
	var out []string
	for _, l := range strings.Split(p.decisions.String(), "\n") {
		if strings.Contains(l, " "+msg+":") && strings.Contains(l, "task_id="+dbe.FormatUUID(id)) {
			out = append(out, l)
		}
	}
	return out
}

func asMuxError(err error, target **mux.Error) bool {
	e, ok := err.(*mux.Error)
	if ok {
		*target = e
	}
	return ok
}

// hclogTo is an Info logger into buf.
func hclogTo(buf *testutil.SyncBuffer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{Output: buf, Level: hclog.Info})
}

// TestAgentShippedConfig starts the agent plugin with the block of the
// shipped dsmil.hcl: its task types (summarize-logs, triage-alert) and
// workspace roots configure, and the plugin reports them.
func TestAgentShippedConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns the agent plugin")
	}
	cfg, diags := config.Load("../../dsmil.hcl")
	if diags.HasErrors() {
		t.Fatalf("dsmil.hcl: %v", diags)
	}
	var agent *config.Plugin
	for _, p := range cfg.Plugins {
		if p.Name == "agent" {
			agent = p
		}
	}
	if agent == nil {
		t.Fatal(`dsmil.hcl has no plugin "agent"`)
	}
	agent.Path = buildAgent(t)
	logs := &testutil.SyncBuffer{}
	m := pluginmgr.New(pluginmgr.Config{Plugins: []*config.Plugin{agent}, Files: cfg.Files(), Dir: cfg.Dir, Logger: hclogTo(logs)})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m.Start(ctx)
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		m.Shutdown(sctx)
	}()
	if err := m.WaitReady(ctx); err != nil {
		t.Fatalf("not ready: %v\n%s", err, logs.String())
	}
	snap := m.Snapshots()[0]
	if snap.State != pluginmgr.StateRunning || snap.DeviceID != 48 || !slices.Equal(snap.Profiles, []string{"agent"}) {
		t.Fatalf("snapshot %+v\n%s", snap, logs.String())
	}
}
