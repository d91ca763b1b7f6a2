package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/host/agentcall"
	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"google.golang.org/protobuf/proto"
)

var (
	strayOnce sync.Once
	strayBin  string
	strayErr  error
)

// strayOutcome is what the strayagent plugin's stray step got back.
type strayOutcome struct {
	Code, Rule, Message string
}

// TestAgentStraySteps: a real plugin process (testdata/strayagent, a
// scripted agent workload behind the real plugin manager, agentcall and
// router) sends LLM steps bound to no agent task in flight on it — with
// the request id of a task that has ended, once while another task of its
// runs and once while none does. The host refuses both with POLICY_DENIED,
// rule builtin.delegation, before the router sees them.
func TestAgentStraySteps(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns a plugin")
	}
	strayOnce.Do(func() {
		strayBin, strayErr = testutil.Build(filepath.Dir(pluginBin), "strayagent", "github.com/dsmil/l7/internal/e2e/testdata/strayagent")
	})
	if strayErr != nil {
		t.Fatal(strayErr)
	}
	dir := t.TempDir()
	trigger := filepath.Join(dir, "trigger")
	cfg, diags := config.Parse(filepath.Join(dir, "dsmil.hcl"), []byte(fmt.Sprintf(`
plugin "strayagent" {
  path         = %q
  device_id    = 48
  profiles     = [%q]
  max_restarts = 0
  trigger      = %q
}
`, strayBin, agentProfile, trigger)))
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	logs := &testutil.SyncBuffer{}
	steps := &agentcall.Server{Logger: hclogTo(logs).Named("agent")}
	m := pluginmgr.New(pluginmgr.Config{Plugins: cfg.Plugins, Files: cfg.Files(), Logger: hclogTo(logs), PluginRequests: steps})
	r, err := router.New(router.Config{Registry: m})
	if err != nil {
		t.Fatal(err)
	}
	steps.Router = r
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
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

	run := func(id byte, taskType string) *l7v1.L7AgentResult {
		t.Helper()
		f := &dbe.Frame{Type: dbe.MsgAgentTask}
		f.SetTenantID(socTenant)
		f.SetCompartmentMask(dbe.CompartmentSOC)
		f.SetClassification(dbe.Unclas)
		f.SetROELevel(dbe.SOCAssist)
		f.SetProfile(agentProfile)
		f.SetRequestID([16]byte{0x05, id})
		f.Payload, _ = proto.Marshal(&l7v1.L7AgentTask{TaskType: taskType})
		var res l7v1.L7AgentResult
		if err := r.Route(ctx, f, func(fr *dbe.Frame) error { return proto.Unmarshal(fr.Payload, &res) }); err != nil {
			t.Fatalf("%s: %v\n%s", taskType, err, logs.String())
		}
		return &res
	}
	check := func(what string, o strayOutcome) {
		t.Helper()
		if o.Code != dbe.CodePolicyDenied.String() || o.Rule != pluginmgr.RuleDelegation || !strings.Contains(o.Message, "agent task in flight") {
			t.Errorf("%s: the stray step got %+v, want POLICY_DENIED by %s", what, o, pluginmgr.RuleDelegation)
		}
	}

	if res := run(1, "stash"); res.GetResult() != "stashed" {
		t.Fatalf("stash: %v", res)
	}
	// A step bound to the ended task, sent while another task runs.
	var o strayOutcome
	if res := run(2, "replay"); json.Unmarshal([]byte(res.GetResult()), &o) != nil {
		t.Fatalf("replay: %v", res)
	}
	check("while another task runs", o)

	// A step sent while no task is in flight.
	if err := os.WriteFile(trigger, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var b []byte
	testutil.WaitFor(t, 20*time.Second, "the stray step's outcome", func() bool {
		b, err = os.ReadFile(trigger + ".out")
		return err == nil
	})
	o = strayOutcome{}
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatalf("outcome %q: %v", b, err)
	}
	check("with no task in flight", o)

	if n := strings.Count(logs.String(), "plugin request refused: no agent task in flight"); n != 2 {
		t.Errorf("%d refusal lines in the host log, want 2:\n%s", n, logs.String())
	}
	if r.Stats().Served != 2 || r.Stats().Failed != 0 {
		t.Errorf("router stats %+v: the stray steps reached the router", r.Stats())
	}
}
