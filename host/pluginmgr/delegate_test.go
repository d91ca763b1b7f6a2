package pluginmgr

import (
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/sdk/dbe"
)

// TestDelegationClaim: the task-bound claim a router host sends with an
// agent task (TLVTaskDelegation) is kept in the task's delegation and
// taken off the frame before the frame goes to the plugin.
func TestDelegationClaim(t *testing.T) {
	i := &Instance{plugin: &config.Plugin{Name: "agent", DeviceID: 48}}
	task := &dbe.Frame{Type: dbe.MsgAgentTask}
	task.SetTenantID("T")
	task.SetRequestID([16]byte{7})
	task.Set(TLVTaskDelegation, []byte("the claim"))
	task.SetProfile("agent")
	var ds delegations
	end, err := ds.begin(i, task, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer end()
	d := ds.lookup([16]byte{7})
	if d == nil || string(d.Claim) != "the claim" || d.TenantID != "T" || d.Worker != "agent#0" {
		t.Fatalf("delegation %+v", d)
	}
	if _, ok := task.Get(TLVTaskDelegation); ok {
		t.Error("the claim is still on the frame the plugin gets")
	}
	if p, _ := task.Profile(); p != "agent" {
		t.Errorf("the other TLVs changed: profile %q", p)
	}
}
