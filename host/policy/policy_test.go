package policy_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/policy"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"google.golang.org/protobuf/proto"
)

var update = flag.Bool("update", false, "rewrite the *.golden files under testdata/")

// loadLogged is load with include, failing the test on errors, and a
// buffer the engine logs into at level.
func loadLogged(t testing.TB, level hclog.Level, include string) (*policy.Engine, *bytes.Buffer) {
	t.Helper()
	var logBuf bytes.Buffer
	_, eng, diags := load(t, hclog.New(&hclog.LoggerOptions{Output: &logBuf, Level: level}), include)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return eng, &logBuf
}

// load parses testdata/golden.hcl plus the policy files named (paths
// relative to testdata/) and compiles the engine.
func load(t testing.TB, log hclog.Logger, includes ...string) (*config.Config, *policy.Engine, hcl.Diagnostics) {
	t.Helper()
	src, err := os.ReadFile("testdata/golden.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if len(includes) > 0 {
		src = append([]byte(fmt.Sprintf("include = [%q]\n", strings.Join(includes, `", "`))), src...)
	}
	cfg, diags := config.Parse("testdata/golden.hcl", src, config.WithGetenv(func(string) string { return "" }))
	if diags.HasErrors() {
		return cfg, nil, diags // syntax errors are the config loader's
	}
	eng, pdiags := policy.New(cfg, log)
	return cfg, eng, pdiags
}

func mustLoad(t testing.TB, includes ...string) *policy.Engine {
	t.Helper()
	cfg, eng, diags := load(t, nil, includes...)
	if diags.HasErrors() {
		var b bytes.Buffer
		_ = config.WriteDiagnostics(&b, cfg.Files(), diags)
		t.Fatalf("policy: %s", b.String())
	}
	return eng
}

// frame builds a request frame; payload is marshalled.
func frame(typ dbe.MsgType, tenant, profile string, c dbe.Compartment, cl dbe.Classification, roe dbe.ROELevel, payload proto.Message) *dbe.Frame {
	f := &dbe.Frame{Type: typ}
	f.SetTenantID(tenant)
	f.SetCompartmentMask(c)
	f.SetClassification(cl)
	f.SetROELevel(roe)
	f.SetProfile(profile)
	f.SetRequestID([16]byte{0x01, 0x98, 15: 0x2a})
	if payload != nil {
		f.Payload, _ = proto.Marshal(payload)
	}
	return f
}

func chat(model string) *l7v1.L7ChatRequest {
	return &l7v1.L7ChatRequest{Model: model, Messages: []*l7v1.Message{{Role: "user", Content: "TOP-SECRET-PROMPT-TEXT"}}, MaxTokens: 64}
}

func TestDecideFrames(t *testing.T) {
	eng, logBuf := loadLogged(t, hclog.Debug, "../../../policies/default.hcl")
	const (
		soc    = dbe.CompartmentSOC
		crypto = dbe.CompartmentCRYPTO
	)
	cases := []struct {
		name    string
		f       *dbe.Frame
		code    dbe.Code // 0: allowed
		rule    string
		message string
	}{
		{"chat allowed", frame(dbe.MsgChatReq, "SOC_TEAM_ALPHA", "llm-7b-amx", soc, dbe.Secret, dbe.SOCAssist, chat("llm-7b")), 0, "", ""},
		{"agent allowed", frame(dbe.MsgAgentTask, "SOC_TEAM_ALPHA", "agent", soc, dbe.Secret, dbe.SOCAssist, &l7v1.L7AgentTask{TaskType: "summarize"}), 0, "", ""},
		{"kinetic", frame(dbe.MsgChatReq, "SOC_TEAM_ALPHA", "llm-7b-amx", soc|dbe.CompartmentKINETIC, dbe.Secret, dbe.SOCAssist, chat("")),
			dbe.CodePolicyDenied, policy.RuleKinetic, "DENIED: KINETIC compartment not allowed in Layer 7"},
		{"exec", frame(dbe.MsgChatReq, "SOC_TEAM_ALPHA", "llm-7b-amx", soc, dbe.Exec, dbe.SOCAssist, chat("")),
			dbe.CodePolicyDenied, policy.RuleExec, "DENIED: EXEC classification requires Layer 9 authorization"},
		{"kinetic before unknown tenant", frame(dbe.MsgChatReq, "NOBODY", "llm-7b-amx", dbe.CompartmentKINETIC, dbe.Exec, dbe.SOCAssist, nil),
			dbe.CodePolicyDenied, policy.RuleKinetic, "DENIED: KINETIC compartment not allowed in Layer 7"},
		{"unknown tenant", frame(dbe.MsgChatReq, "NOBODY", "llm-7b-amx", soc, dbe.Unclas, dbe.AnalysisOnly, nil),
			dbe.CodePolicyDenied, policy.RuleTenant, `DENIED: tenant "NOBODY" is not configured`},
		{"completion under SOC_ASSIST", frame(dbe.MsgChatReq, "SOC_TEAM_ALPHA", "llm-7b-amx", soc, dbe.Secret, dbe.SOCAssist, &l7v1.L7ChatRequest{Prompt: "x"}),
			dbe.CodePolicyDenied, policy.RuleOperation, "DENIED: ROE SOC_ASSIST does not allow completions"},
		{"custom deny", frame(dbe.MsgChatReq, "SOC_TEAM_ALPHA", "llm-7b-amx", soc|crypto, dbe.Unclas, dbe.SOCAssist, chat("")),
			dbe.CodePolicyDenied, "crypto-requires-secret", "DENIED: CRYPTO compartment requests must be classified SECRET or above"},
		{"model on the wrong profile", frame(dbe.MsgChatReq, "TS_ANALYST", "llm-7b-amx", soc, dbe.TS, dbe.AnalysisOnly, chat("llm-1b")),
			dbe.CodePolicyDenied, policy.RuleModel, `DENIED: model "llm-1b" is served by profile "llm-1b-npu", not "llm-7b-amx"`},
		{"malformed payload", frame(dbe.MsgChatReq, "SOC_TEAM_ALPHA", "llm-7b-amx", soc, dbe.Secret, dbe.SOCAssist, nil),
			dbe.CodeInvalidRequest, "", ""},
	}
	cases[len(cases)-1].f.Payload = []byte{0x0a, 0x05, 'a'} // field 1, length 5, 1 byte
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := eng.Decide(context.Background(), c.f)
			if c.code == 0 {
				if err != nil {
					t.Fatalf("denied: %v", err)
				}
				return
			}
			var me *mux.Error
			if !errors.As(err, &me) || me.Code != c.code {
				t.Fatalf("got %v, want code %s", err, c.code)
			}
			if me.Rule != c.rule || (c.message != "" && me.Message != c.message) {
				t.Fatalf("got rule %q message %q, want %q %q", me.Rule, me.Message, c.rule, c.message)
			}
		})
	}
	logs := logBuf.String()
	if n := strings.Count(logs, "policy decision"); n != len(cases) {
		t.Errorf("%d decision lines for %d requests:\n%s", n, len(cases), logs)
	}
	if strings.Contains(logs, "TOP-SECRET-PROMPT-TEXT") {
		t.Error("prompt text in the decision log")
	}
	if !strings.Contains(logs, "request_id=0198") || !strings.Contains(logs, "rule=crypto-requires-secret") {
		t.Errorf("decision log lacks fields:\n%s", logs)
	}
}

// TestTrainingLogging: every decision is one Info line; TRAINING lines also
// carry the security attributes and the trail, ordinary ones do not.
func TestTrainingLogging(t *testing.T) {
	eng, logBuf := loadLogged(t, hclog.Info, "table.hcl")
	ok := frame(dbe.MsgChatReq, "LOCAL_TOOL_USER", "echo", soc, dbe.Unclas, dbe.AnalysisOnly, chat(""))
	if err := eng.Decide(context.Background(), ok); err != nil || strings.Count(logBuf.String(), "\n") != 1 ||
		!strings.Contains(logBuf.String(), "decision=allow") || strings.Contains(logBuf.String(), "trail=") {
		t.Fatalf("%v, logged %q", err, logBuf.String())
	}
	logBuf.Reset()
	tr := frame(dbe.MsgChatReq, "DEV_TRAINER", "echo", dev, dbe.TSSim, dbe.Training, chat("dsmil-echo"))
	if err := eng.Decide(context.Background(), tr); err != nil {
		t.Fatal(err)
	}
	line := logBuf.String()
	for _, want := range []string{"[INFO]", "decision=allow", "roe=TRAINING", "classification=TS_SIM", "model=dsmil-echo", "trail=\"builtin.kinetic=pass", "builtin.grant=allow"} {
		if !strings.Contains(line, want) {
			t.Errorf("no %s in %s", want, line)
		}
	}
}

// TestConcurrentDecide runs the engine from several goroutines (for -race)
// and checks the memoised verdicts agree with fresh evaluations.
func TestConcurrentDecide(t *testing.T) {
	eng := mustLoad(t, "../../../policies/default.hcl")
	fresh := mustLoad(t, "../../../policies/default.hcl")
	done := make(chan struct{})
	for w := 0; w < 4; w++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 50; i++ {
				for _, c := range goldenCases {
					if got, want := eng.Evaluate(c.req), fresh.Evaluate(c.req); got.Rule != want.Rule || got.Allow != want.Allow {
						t.Errorf("%s: %s vs %s", c.name, got.Rule, want.Rule)
						return
					}
				}
			}
		}()
	}
	for w := 0; w < 4; w++ {
		<-done
	}
}

func TestRequestFromFrame(t *testing.T) {
	f := frame(dbe.MsgChatReq, "T", "p", dbe.CompartmentSOC, dbe.Secret, dbe.SOCAssist, &l7v1.L7ChatRequest{Model: "m", Prompt: "legacy"})
	f.SetDeviceIDDst(43)
	r, err := policy.RequestFromFrame(f)
	if err != nil || r.Operation != policy.OpCompletion || r.Model != "m" || r.DeviceDst != 43 || r.Tenant != "T" || r.Profile != "p" {
		t.Fatalf("%+v %v", r, err)
	}
	pc := frame(dbe.MsgPolicyCheck, "T", "p", 0, dbe.Unclas, dbe.AnalysisOnly, &l7v1.L7PolicyCheck{Operation: "agent", Model: "x"})
	if r, err := policy.RequestFromFrame(pc); err != nil || r.Operation != policy.OpAgent || r.Model != "x" || r.DeviceDst != -1 {
		t.Fatalf("policy check: %+v %v", r, err)
	}
	pc.Payload, _ = proto.Marshal(&l7v1.L7PolicyCheck{Model: "x"})
	if r, err := policy.RequestFromFrame(pc); err != nil || r.Operation != policy.OpChat {
		t.Fatalf("policy check without an operation: %+v %v", r, err)
	}
	f.Del(dbe.TLVROELevel)
	if _, err := policy.RequestFromFrame(f); !errors.Is(err, policy.ErrBadRequest) {
		t.Fatalf("missing ROE: %v", err)
	}
}

// TestCheck: the dry run (router.PolicyChecker) returns the decision with
// its trail as an L7_POLICY_RESULT payload, denials included, and keeps it
// out of the decision log.
func TestCheck(t *testing.T) {
	eng, logBuf := loadLogged(t, hclog.Info, "../../../policies/default.hcl")
	for _, c := range []struct {
		f     *dbe.Frame
		allow bool
		rule  string
	}{
		{frame(dbe.MsgPolicyCheck, "SOC_TEAM_ALPHA", "llm-7b-amx", soc, dbe.Secret, dbe.SOCAssist, &l7v1.L7PolicyCheck{Operation: "chat", Model: "llm-7b"}), true, policy.RuleGrant},
		{frame(dbe.MsgPolicyCheck, "SOC_TEAM_ALPHA", "llm-7b-amx", soc|crypto, dbe.Unclas, dbe.SOCAssist, nil), false, "crypto-requires-secret"},
		{frame(dbe.MsgPolicyCheck, "NOBODY", "llm-7b-amx", kin, dbe.Exec, dbe.SOCAssist, nil), false, policy.RuleKinetic},
	} {
		res, err := eng.Check(context.Background(), c.f)
		if err != nil {
			t.Fatal(err)
		}
		r, _ := policy.RequestFromFrame(c.f)
		d := eng.Evaluate(r)
		if res.Allow != c.allow || res.Rule != c.rule || !proto.Equal(res, d.Result()) || len(res.Trail) == 0 {
			t.Fatalf("got %v, want allow=%v rule %s (Evaluate: %v)", res, c.allow, c.rule, d.Result())
		}
	}
	bad := frame(dbe.MsgPolicyCheck, "SOC_TEAM_ALPHA", "llm-7b-amx", soc, dbe.Secret, dbe.SOCAssist, nil)
	bad.Payload = []byte{0x32, 0x05, 'c'}
	var me *mux.Error
	if _, err := eng.Check(context.Background(), bad); !errors.As(err, &me) || me.Code != dbe.CodeInvalidRequest {
		t.Fatalf("undecodable payload: %v", err)
	}
	if logBuf.Len() != 0 {
		t.Fatalf("a dry run in the decision log:\n%s", logBuf.String())
	}
}

// TestFailClosed: a rule whose condition fails at run time denies, names
// itself, and is logged.
func TestFailClosed(t *testing.T) {
	eng, logBuf := loadLogged(t, hclog.Info, "runtime_error.hcl")
	f := frame(dbe.MsgChatReq, "LOCAL_TOOL_USER", "echo", 0, dbe.Unclas, dbe.AnalysisOnly, chat(""))
	err := eng.Decide(context.Background(), f)
	var me *mux.Error
	if !errors.As(err, &me) || me.Code != dbe.CodePolicyDenied || me.Rule != "first-compartment" {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(logBuf.String(), "rule=first-compartment") || !strings.Contains(logBuf.String(), "[ERROR]") {
		t.Fatalf("log:\n%s", logBuf.String())
	}
	// With a compartment the same rule evaluates and allows.
	f.SetCompartmentMask(dbe.CompartmentSOC)
	if err := eng.Decide(context.Background(), f); err != nil {
		t.Fatal(err)
	}
}

// TestInvalidPolicies: every file under testdata/invalid is refused, with
// diagnostics pointing at file:line (golden).
func TestInvalidPolicies(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.hcl")
	if len(files) == 0 {
		t.Fatal("no invalid policies")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, eng, diags := load(t, nil, "invalid/"+filepath.Base(f))
			if !diags.HasErrors() || eng != nil {
				t.Fatalf("accepted: %v", diags)
			}
			var b bytes.Buffer
			_ = config.WriteDiagnostics(&b, cfg.Files(), diags)
			if !strings.Contains(b.String(), f+":") {
				t.Errorf("no %s:line in\n%s", f, b.String())
			}
			checkGolden(t, strings.TrimSuffix(f, ".hcl")+".golden", b.String())
		})
	}
}

// TestGolden decides a fixed set of requests under each shipped policy
// file (and under the built-in rules alone) and compares decisions and
// trails with testdata/*.golden.
func TestGolden(t *testing.T) {
	files, _ := filepath.Glob("../../policies/*.hcl")
	examples, _ := filepath.Glob("../../policies/examples/*.hcl")
	files = append(append([]string{""}, files...), examples...)
	for _, f := range files {
		name := "builtin"
		var includes []string
		if f != "" {
			rel, _ := filepath.Rel("../../policies", f)
			name = strings.ReplaceAll(strings.TrimSuffix(rel, ".hcl"), string(filepath.Separator), "-")
			includes = []string{filepath.Join("..", f)}
		}
		t.Run(name, func(t *testing.T) {
			eng := mustLoad(t, includes...)
			var b bytes.Buffer
			fmt.Fprintf(&b, "# policy: %s\n# dev profiles: %v\n", f, eng.DevProfiles())
			for _, r := range eng.Rules() {
				fmt.Fprintf(&b, "# rule %s: %s, priority %d\n", r.Name, r.Effect, r.Priority)
			}
			for _, c := range goldenCases {
				fmt.Fprintf(&b, "\n== %s\n", c.name)
				_ = policy.WriteDecision(&b, c.req, eng.Evaluate(c.req))
			}
			checkGolden(t, "testdata/"+name+".golden", b.String())
		})
	}
}

func req(tenant, profile, model, op string, c dbe.Compartment, cl dbe.Classification, roe dbe.ROELevel) policy.Request {
	return policy.Request{Tenant: tenant, Profile: profile, Model: model, Operation: op,
		Compartments: c, Classification: cl, ROE: roe, DeviceDst: -1}
}

const (
	soc    = dbe.CompartmentSOC
	dev    = dbe.CompartmentDEV
	lab    = dbe.CompartmentLAB
	crypto = dbe.CompartmentCRYPTO
	kin    = dbe.CompartmentKINETIC
)

var goldenCases = []struct {
	name string
	req  policy.Request
}{
	{"local tool chats with echo", req("LOCAL_TOOL_USER", "echo", "dsmil-echo", "chat", soc|dev, dbe.Unclas, dbe.AnalysisOnly)},
	{"local tool completion", req("LOCAL_TOOL_USER", "llm-7b-amx", "llm-7b", "completion", soc, dbe.Unclas, dbe.AnalysisOnly)},
	{"local tool agent task (ANALYSIS_ONLY)", req("LOCAL_TOOL_USER", "agent", "", "agent", soc, dbe.Unclas, dbe.AnalysisOnly)},
	{"KINETIC", req("SOC_TEAM_ALPHA", "llm-7b-amx", "", "chat", soc|kin, dbe.Secret, dbe.SOCAssist)},
	{"EXEC", req("SOC_TEAM_ALPHA", "llm-7b-amx", "", "chat", soc, dbe.Exec, dbe.SOCAssist)},
	{"unknown tenant", req("MALLORY", "llm-7b-amx", "", "chat", soc, dbe.Unclas, dbe.AnalysisOnly)},
	{"alpha CRYPTO at UNCLAS", req("SOC_TEAM_ALPHA", "llm-7b-amx", "llm-7b", "chat", soc|crypto, dbe.Unclas, dbe.SOCAssist)},
	{"alpha CRYPTO at SECRET", req("SOC_TEAM_ALPHA", "llm-7b-amx", "llm-7b", "chat", soc|crypto, dbe.Secret, dbe.SOCAssist)},
	{"alpha agent task in SOC", req("SOC_TEAM_ALPHA", "agent", "agent", "agent", soc, dbe.Secret, dbe.SOCAssist)},
	{"alpha agent task outside SOC", req("SOC_TEAM_ALPHA", "agent", "agent", "agent", crypto, dbe.Secret, dbe.SOCAssist)},
	{"alpha completion (SOC_ASSIST)", req("SOC_TEAM_ALPHA", "llm-7b-amx", "llm-7b", "completion", soc, dbe.Secret, dbe.SOCAssist)},
	{"alpha profile not granted", req("SOC_TEAM_ALPHA", "llm-1b-npu", "", "chat", soc, dbe.Secret, dbe.SOCAssist)},
	{"alpha model not granted", req("SOC_TEAM_ALPHA", "llm-7b-amx", "llm-7b-long", "chat", soc, dbe.Secret, dbe.SOCAssist)},
	{"alpha ROE escalation to TRAINING", req("SOC_TEAM_ALPHA", "llm-7b-amx", "", "chat", soc, dbe.Secret, dbe.Training)},
	{"alpha LAB compartment", req("SOC_TEAM_ALPHA", "llm-7b-amx", "", "chat", soc|lab, dbe.Secret, dbe.SOCAssist)},
	{"alpha TS", req("SOC_TEAM_ALPHA", "llm-7b-amx", "", "chat", soc, dbe.TS, dbe.SOCAssist)},
	{"night shift CRYPTO", req("SOC_NIGHT_SHIFT", "llm-7b-amx", "llm-7b", "chat", soc|crypto, dbe.Secret, dbe.SOCAssist)},
	{"trainer on echo", req("DEV_TRAINER", "echo", "dsmil-echo", "completion", dev, dbe.TSSim, dbe.Training)},
	{"trainer on a production profile", req("DEV_TRAINER", "llm-7b-amx", "", "chat", dev, dbe.TSSim, dbe.Training)},
	{"trainer asks for SECRET", req("DEV_TRAINER", "echo", "", "chat", dev, dbe.Secret, dbe.Training)},
	{"analyst TS_SIM", req("TS_ANALYST", "llm-1b-npu", "llm-1b", "chat", lab, dbe.TSSim, dbe.AnalysisOnly)},
	{"analyst model on the wrong profile", req("TS_ANALYST", "llm-7b-amx", "llm-1b", "chat", soc, dbe.TS, dbe.AnalysisOnly)},
	{"no compartment at all", req("TS_ANALYST", "llm-7b-amx", "", "chat", 0, dbe.Unclas, dbe.AnalysisOnly)},
	{"unknown operation", req("TS_ANALYST", "llm-7b-amx", "", "transcriptions", soc, dbe.Unclas, dbe.AnalysisOnly)},
	{"local tool embeddings (ANALYSIS_ONLY)", req("LOCAL_TOOL_USER", "echo", "dsmil-echo", "embeddings", soc, dbe.Unclas, dbe.AnalysisOnly)},
	{"alpha embeddings (SOC_ASSIST)", req("SOC_TEAM_ALPHA", "llm-7b-amx", "llm-7b", "embeddings", soc, dbe.Secret, dbe.SOCAssist)},
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	testutil.Golden(t, path, got, *update)
}
