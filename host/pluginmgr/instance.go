package pluginmgr

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/hashicorp/go-hclog"
)

// State is an instance's lifecycle state.
type State string

// States.
const (
	StateStarting   State = "starting"
	StateRunning    State = "running"
	StateUnhealthy  State = "unhealthy"
	StateRestarting State = "restarting"
	StateFailed     State = "failed"
	StateDraining   State = "draining"
	StateStopped    State = "stopped"
)

// Instance is one replica of a plugin: its configuration, its lifecycle
// state and history, the process currently serving it (process.go, started
// by spawn), and the data path to that process (datapath.go). supervise
// (supervise.go) drives it.
type Instance struct {
	plugin  *config.Plugin
	replica int
	log     hclog.Logger
	m       *Manager

	healthy atomic.Bool
	load    atomic.Uint64 // math.Float64bits of the last reported load
	data    dataPath
	delegs  delegations // agent tasks in flight (delegate.go)

	mu       sync.Mutex
	state    State
	lastErr  string
	lastExit string    // why the previous process ended; kept after recovery
	exitAt   time.Time // when
	restarts int
	memUsed  uint64
	proc     *process // nil while no process is running
}

// ID names the replica: "name#replica".
func (i *Instance) ID() string { return fmt.Sprintf("%s#%d", i.plugin.Name, i.replica) }

// DeviceID is the configured device.
func (i *Instance) DeviceID() uint8 { return uint8(i.plugin.DeviceID) }

// Healthy reports whether the instance is running and passed its last
// health check.
func (i *Instance) Healthy() bool { return i.healthy.Load() }

func (i *Instance) setState(s State) {
	i.mu.Lock()
	i.state = s
	i.mu.Unlock()
}

// running returns the current process, or nil.
func (i *Instance) running() *process {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.proc
}

// Snapshot is what `dsmil-host plugins list` shows about an instance.
type Snapshot struct {
	// Node is the worker node the instance runs on (its peer block's
	// name, host/peers); empty for this host's own instances.
	Node       string    `json:"node,omitempty"`
	Name       string    `json:"name"`
	Replica    int       `json:"replica"`
	DeviceID   int       `json:"device_id"`
	Profiles   []string  `json:"profiles"`
	Version    string    `json:"version"`
	PID        int       `json:"pid"`
	State      State     `json:"state"`
	Healthy    bool      `json:"healthy"`
	Restarts   int       `json:"restarts"`
	Load       float64   `json:"load"`
	MemoryUsed uint64    `json:"memory_used_bytes"`
	Started    time.Time `json:"started,omitzero"`
	UptimeSec  int64     `json:"uptime_seconds"`
	InFlight   int       `json:"in_flight"`
	// LastError is the current problem: a failed health check, start or
	// exit; cleared when the instance is healthy again.
	LastError string `json:"last_error,omitempty"`
	// LastExit is why the previous process of this instance ended (crash,
	// failed start, unhealthy), kept after it recovered; LastExitAt is when.
	LastExit   string    `json:"last_exit,omitempty"`
	LastExitAt time.Time `json:"last_exit_at,omitzero"`
	// Accelerator is where the instance computes, as its plugin reports
	// (PluginInfo.Accelerator: "cpu", "cpu-amx", "npu", ...); empty when
	// it reports none or is not running.
	Accelerator string `json:"accelerator,omitempty"`
}

// Snapshot returns the instance's current state.
func (i *Instance) Snapshot() Snapshot {
	load := i.Load()
	inFlight := i.data.inFlight()
	i.mu.Lock()
	defer i.mu.Unlock()
	s := Snapshot{
		Name: i.plugin.Name, Replica: i.replica, DeviceID: i.plugin.DeviceID, Profiles: i.plugin.Profiles,
		State: i.state, Healthy: i.healthy.Load(), Restarts: i.restarts, Load: load, MemoryUsed: i.memUsed,
		InFlight: inFlight, LastError: i.lastErr, LastExit: i.lastExit, LastExitAt: i.exitAt,
	}
	if p := i.proc; p != nil {
		s.PID, s.Started, s.UptimeSec = p.pid, p.started, int64(time.Since(p.started).Seconds())
		s.Version, s.Accelerator = p.info.Version, p.info.Accelerator
		if len(p.info.Profiles) > 0 {
			s.Profiles = p.info.Profiles
		}
	}
	return s
}
