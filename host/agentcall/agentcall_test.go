package agentcall

import (
	"testing"

	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
)

// TestCheck: a step must be an L7_CHAT_REQ with its task's tenant, ROE and
// classification and no compartment its task lacks; anything else is
// POLICY_DENIED by builtin.delegation.
func TestCheck(t *testing.T) {
	d := &pluginmgr.Delegation{TenantID: "SOC", Compartments: dbe.CompartmentSOC | dbe.CompartmentDEV, Classification: dbe.Secret, ROE: dbe.SOCAssist}
	step := func(edit func(*dbe.Frame)) *dbe.Frame {
		f := &dbe.Frame{Type: dbe.MsgChatReq}
		f.SetTenantID("SOC")
		f.SetCompartmentMask(dbe.CompartmentSOC)
		f.SetClassification(dbe.Secret)
		f.SetROELevel(dbe.SOCAssist)
		f.SetProfile("llm")
		f.SetRequestID([16]byte{1})
		if edit != nil {
			edit(f)
		}
		return f
	}
	if err := check(d, step(nil)); err != nil {
		t.Fatalf("a step within its task: %v", err)
	}
	for name, edit := range map[string]func(*dbe.Frame){
		"other tenant":         func(f *dbe.Frame) { f.SetTenantID("OTHER") },
		"other ROE":            func(f *dbe.Frame) { f.SetROELevel(dbe.Training) },
		"lower classification": func(f *dbe.Frame) { f.SetClassification(dbe.Unclas) },
		"higher":               func(f *dbe.Frame) { f.SetClassification(dbe.TS) },
		"wider compartments":   func(f *dbe.Frame) { f.SetCompartmentMask(dbe.CompartmentSOC | dbe.CompartmentCRYPTO) },
		"a nested agent task":  func(f *dbe.Frame) { f.Type = dbe.MsgAgentTask },
		"a dry run":            func(f *dbe.Frame) { f.Type = dbe.MsgPolicyCheck },
	} {
		err := check(d, step(edit))
		me, ok := err.(*mux.Error)
		if !ok || me.Code != dbe.CodePolicyDenied || me.Rule != pluginmgr.RuleDelegation {
			t.Errorf("%s: %v, want POLICY_DENIED by %s", name, err, pluginmgr.RuleDelegation)
		}
	}
	f := step(nil)
	f.Del(dbe.TLVProfile)
	if err := check(d, f); mux.CodeOf(err) != dbe.CodeInvalidRequest {
		t.Errorf("no profile: %v, want INVALID_REQUEST", err)
	}
}
