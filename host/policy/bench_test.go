package policy_test

import (
	"context"
	"testing"

	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// BenchmarkDecide measures the router hook on the hot path: frame to
// decision, with a null logger (the decision line at Debug is filtered).
func BenchmarkDecide(b *testing.B) {
	cases := []struct {
		name     string
		includes []string
		f        *dbe.Frame
	}{
		{"builtin-only/allow", nil, frame(dbe.MsgChatReq, "SOC_TEAM_ALPHA", "llm-7b-amx", soc|crypto, dbe.Secret, dbe.SOCAssist, chat("llm-7b"))},
		{"default/allow", []string{"../../../policies/default.hcl"}, frame(dbe.MsgChatReq, "SOC_TEAM_ALPHA", "llm-7b-amx", soc|crypto, dbe.Secret, dbe.SOCAssist, chat("llm-7b"))},
		{"default/allow-unmemoised", []string{"../../../policies/default.hcl"}, frame(dbe.MsgChatReq, "SOC_TEAM_ALPHA", "llm-7b-amx", soc|crypto, dbe.Secret, dbe.SOCAssist, chat("not-a-configured-model"))},
		{"default/deny-custom", []string{"../../../policies/default.hcl"}, frame(dbe.MsgChatReq, "SOC_TEAM_ALPHA", "llm-7b-amx", soc|crypto, dbe.Unclas, dbe.SOCAssist, chat("llm-7b"))},
		{"default/deny-kinetic", []string{"../../../policies/default.hcl"}, frame(dbe.MsgChatReq, "SOC_TEAM_ALPHA", "llm-7b-amx", soc|kin, dbe.Secret, dbe.SOCAssist, chat("llm-7b"))},
		{"strict/allow", []string{"../../../policies/examples/strict.hcl"}, frame(dbe.MsgAgentTask, "SOC_TEAM_ALPHA", "agent", soc, dbe.Secret, dbe.SOCAssist, &l7v1.L7AgentTask{TaskType: "triage"})},
	}
	for _, c := range cases {
		eng := mustLoad(b, c.includes...)
		ctx := context.Background()
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = eng.Decide(ctx, c.f)
			}
		})
		b.Run(c.name+"/parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_ = eng.Decide(ctx, c.f)
				}
			})
		})
	}
}
