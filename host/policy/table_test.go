package policy_test

import (
	"testing"

	"github.com/dsmil/l7/host/policy"
	"github.com/dsmil/l7/sdk/dbe"
)

// tenantGrant mirrors testdata/golden.hcl, written out independently of the
// engine.
type tenantGrant struct {
	mask    dbe.Compartment
	class   dbe.Classification
	roe     dbe.ROELevel
	profile string // a profile the tenant may use
}

var tableTenants = map[string]*tenantGrant{
	"LOCAL_TOOL_USER": {soc | dev, dbe.Unclas, dbe.AnalysisOnly, "llm-7b-amx"},
	"SOC_TEAM_ALPHA":  {soc | crypto, dbe.Secret, dbe.SOCAssist, "llm-7b-amx"},
	"DEV_TRAINER":     {dev | lab, dbe.TSSim, dbe.Training, "echo"},
	"TS_ANALYST":      {soc | lab | crypto, dbe.TS, dbe.AnalysisOnly, "llm-1b-npu"},
	"UNKNOWN":         nil,
}

// clearance[tenant's][request's]: the classification rule, as a table.
var clearance = map[dbe.Classification]map[dbe.Classification]bool{
	dbe.Unclas: {dbe.Unclas: true},
	dbe.Secret: {dbe.Unclas: true, dbe.Secret: true},
	dbe.TS:     {dbe.Unclas: true, dbe.Secret: true, dbe.TS: true, dbe.TSSim: true},
	dbe.TSSim:  {dbe.Unclas: true, dbe.TSSim: true},
}

// allowedOps[roe]: spec §4.2.
var allowedOps = map[dbe.ROELevel]map[string]bool{
	dbe.AnalysisOnly: {"chat": true, "completion": true},
	dbe.SOCAssist:    {"chat": true, "agent": true},
	dbe.Training:     {"chat": true, "completion": true, "agent": true},
}

// expect is the oracle: the rule that must decide.
func expect(tenant string, mask dbe.Compartment, cl dbe.Classification, roe dbe.ROELevel, op string) string {
	g := tableTenants[tenant]
	switch {
	case mask&kin != 0:
		return policy.RuleKinetic
	case cl == dbe.Exec:
		return policy.RuleExec
	case g == nil:
		return policy.RuleTenant
	case mask&^g.mask != 0:
		return policy.RuleCompartments
	case !clearance[g.class][cl]:
		return policy.RuleClassification
	case roe != g.roe:
		return policy.RuleROE
	case !allowedOps[roe][op]:
		return policy.RuleOperation
	}
	return policy.RuleGrant
}

// TestTable is the tenant × ROE × compartment × classification table of
// issue 6 item 8, with every operation: 5 tenants × 3 ROE × 12 masks × 5
// classifications × 3 operations.
func TestTable(t *testing.T) {
	eng := mustLoad(t, "table.hcl")
	masks := []dbe.Compartment{0, soc, dev, lab, crypto, soc | dev, soc | crypto, dev | lab, soc | lab | crypto, kin, soc | kin, soc | dev | lab | crypto | kin}
	n := 0
	for tenant, g := range tableTenants {
		profile := "llm-7b-amx"
		if g != nil {
			profile = g.profile
		}
		for roe := dbe.AnalysisOnly; roe <= dbe.Training; roe++ {
			for _, mask := range masks {
				for cl := dbe.Unclas; cl <= dbe.Exec; cl++ {
					for _, op := range []string{"chat", "completion", "agent"} {
						n++
						r := req(tenant, profile, "", op, mask, cl, roe)
						d := eng.Evaluate(r)
						want := expect(tenant, mask, cl, roe, op)
						if d.Rule != want || d.Allow != (want == policy.RuleGrant) {
							t.Errorf("%s: got %v %s (%s), want %s", r, d.Allow, d.Rule, d.Reason, want)
						}
					}
				}
			}
		}
	}
	t.Logf("%d cases", n)
}

func TestDominates(t *testing.T) {
	for max := dbe.Unclas; max <= dbe.TSSim; max++ {
		for c := dbe.Unclas; c <= dbe.TSSim; c++ {
			if got := policy.Dominates(max, c); got != clearance[max][c] {
				t.Errorf("Dominates(%s, %s) = %v", max, c, got)
			}
		}
	}
	if policy.Dominates(dbe.Unclas, 0) || policy.Dominates(0, dbe.Unclas) || !policy.Dominates(dbe.Exec, dbe.TSSim) {
		t.Error("edge cases")
	}
}
