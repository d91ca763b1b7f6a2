package pluginmgr

import (
	"fmt"

	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// Statuses reports every instance as an L7_MODEL_STATUS payload, Plugin
// being the instance id ("NAME#REPLICA"): what a worker node tells the
// router hosts that route to it (routersock.Endpoint.Instances, host/peers).
func (m *Manager) Statuses() []*l7v1.L7ModelStatus {
	out := make([]*l7v1.L7ModelStatus, 0, len(m.instances))
	for _, inst := range m.instances {
		s := inst.Snapshot()
		st := &l7v1.L7ModelStatus{
			Plugin: fmt.Sprintf("%s#%d", s.Name, s.Replica), Version: s.Version, DeviceId: uint32(s.DeviceID),
			Profiles: s.Profiles, Healthy: s.Healthy, Load: s.Load, InFlight: uint32(s.InFlight),
			MemoryUsedBytes: s.MemoryUsed, UptimeSeconds: s.UptimeSec, HealthMessage: string(s.State),
		}
		if s.LastError != "" {
			st.HealthMessage += ": " + s.LastError
		}
		out = append(out, st)
	}
	return out
}
