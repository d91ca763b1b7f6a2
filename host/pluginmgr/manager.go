package pluginmgr

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/session"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
)

// Config configures a Manager.
type Config struct {
	// Plugins to run, from dsmil.hcl. Each runs Replicas instances.
	Plugins []*config.Plugin
	// Dir is the plugins' working directory: dsmil.hcl's directory, so that
	// relative paths in plugin settings mean what they mean in the rest of
	// the file. Empty: the host's working directory.
	Dir string
	// Files are the parsed config files, for printing settings diagnostics.
	Files map[string]*hcl.File
	// Logger is the root logger; each instance logs (and re-emits its
	// plugin's logs) under "plugin.NAME#REPLICA". Default: no logging.
	Logger hclog.Logger
	// HostName is the host's name in the session handshake. Default
	// "dsmil-host".
	HostName string
	// HealthTimeout bounds one health check. Default config.DefaultPluginHealthTimeout.
	HealthTimeout time.Duration
	// UnhealthyThreshold is how many failed checks in a row get an instance
	// restarted. Default config.DefaultPluginUnhealthyThreshold.
	UnhealthyThreshold int
	// MaxInFlight is the number of requests in flight that counts as full
	// load for an instance. Default config.DefaultPluginMaxInFlight.
	MaxInFlight int
	// MaxFrame is the DBE frame limit on plugin sessions. Default 16 MiB.
	MaxFrame int
	// Identity is the host's identity: it authenticates the host to every
	// plugin and issues each plugin process its own identity at spawn.
	// Nil: an ephemeral root and host identity are made in New.
	Identity *identity.Identity
	// Roots are the root keys that vouch for Identity's bundle; plugins are
	// given them to check the host. Required with Identity.
	Roots []*identity.PublicKey
	// Groups are the key-exchange groups to offer (the first is used).
	// Default: ML-KEM-1024 + X25519.
	Groups []session.Group
	// PluginIdentityTTL is the lifetime of a plugin's identity. Default
	// config.DefaultPluginIdentityTTL.
	PluginIdentityTTL time.Duration
	// PluginRequests serves the requests plugins send on their data path
	// on behalf of an agent task in flight on them (delegate.go). Nil:
	// such requests are dropped.
	PluginRequests PluginRequests
	// WrapConn, when set, wraps each raw connection to a plugin socket
	// before the handshake, for capturing or measuring the bytes on it.
	WrapConn func(id string, c net.Conn) net.Conn
}

// Manager runs every configured plugin instance.
type Manager struct {
	cfg       Config
	instances []*Instance
	byProfile map[string][]router.Worker

	mu      sync.Mutex
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	started bool
}

var _ router.Registry = (*Manager)(nil)
var _ router.AsyncWorker = (*Instance)(nil)

// New prepares a Manager; Start spawns the plugins.
func New(cfg Config) *Manager {
	if cfg.Identity == nil {
		id, roots, err := EphemeralIdentity(cfg.HostName)
		if err != nil {
			panic(fmt.Sprintf("pluginmgr: ephemeral identity: %v", err)) // crypto/rand failed
		}
		cfg.Identity, cfg.Roots = id, roots
	}
	if cfg.HostName == "" {
		cfg.HostName = cfg.Identity.Bundle.Name
	}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if cfg.HealthTimeout <= 0 {
		cfg.HealthTimeout = config.DefaultPluginHealthTimeout
	}
	if cfg.UnhealthyThreshold <= 0 {
		cfg.UnhealthyThreshold = config.DefaultPluginUnhealthyThreshold
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = config.DefaultPluginMaxInFlight
	}
	if cfg.PluginIdentityTTL <= 0 {
		cfg.PluginIdentityTTL = config.DefaultPluginIdentityTTL
	}
	m := &Manager{cfg: cfg, byProfile: map[string][]router.Worker{}}
	for _, p := range cfg.Plugins {
		for r := range max(p.Replicas, 1) {
			inst := &Instance{plugin: p, replica: r, m: m, state: StateStopped}
			inst.log = cfg.Logger.Named("plugin." + inst.ID())
			m.instances = append(m.instances, inst)
			for _, prof := range p.Profiles {
				m.byProfile[prof] = append(m.byProfile[prof], inst)
			}
		}
	}
	return m
}

// Workers implements router.Registry.
func (m *Manager) Workers(profile string) ([]router.Worker, bool) {
	ws, ok := m.byProfile[profile]
	return ws, ok
}

// Instances returns every instance in config order.
func (m *Manager) Instances() []*Instance { return m.instances }

// Start spawns every instance in the background; each keeps restarting on
// its own. It returns at once; use WaitReady to wait for the first start.
func (m *Manager) Start(ctx context.Context) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.started {
		return
	}
	m.started = true
	ctx, m.cancel = context.WithCancel(ctx)
	for _, inst := range m.instances {
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			inst.supervise(ctx)
		}()
	}
}

// WaitReady waits until every instance is running or failed, or ctx ends.
func (m *Manager) WaitReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		settled := true
		for _, inst := range m.instances {
			s := inst.Snapshot().State
			if s != StateRunning && s != StateFailed {
				settled = false
			}
		}
		if settled {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Snapshots returns the state of every instance.
func (m *Manager) Snapshots() []Snapshot {
	out := make([]Snapshot, len(m.instances))
	for k, inst := range m.instances {
		out[k] = inst.Snapshot()
	}
	return out
}

// Shutdown stops routing new work to the instances, waits for in-flight
// requests to finish until ctx ends, then stops every process.
func (m *Manager) Shutdown(ctx context.Context) error {
	for _, inst := range m.instances {
		inst.mu.Lock()
		inst.healthy.Store(false)
		if inst.state == StateRunning || inst.state == StateUnhealthy {
			inst.state = StateDraining
		}
		inst.mu.Unlock()
	}
	var drainErr error
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
drain:
	for {
		busy := 0
		for _, inst := range m.instances {
			busy += inst.data.inFlight()
		}
		if busy == 0 {
			break
		}
		select {
		case <-ctx.Done():
			drainErr = errors.Join(errors.New("pluginmgr: drain cut short with requests in flight"), ctx.Err())
			break drain
		case <-t.C:
		}
	}
	m.mu.Lock()
	if m.cancel != nil {
		m.cancel()
	}
	m.mu.Unlock()
	m.wg.Wait()
	return drainErr
}

// EphemeralIdentity makes a throwaway operator root and a host identity
// signed by it, for a host run without a configured identity: plugin
// sessions are still mutually authenticated and sealed, with keys that live
// only as long as the process.
func EphemeralIdentity(name string) (*identity.Identity, []*identity.PublicKey, error) {
	if name == "" {
		name = "dsmil-host"
	}
	root, err := identity.GenerateKey()
	if err != nil {
		return nil, nil, err
	}
	id, err := identity.Issue(root, name, "host", time.Now(), 10*365*24*time.Hour)
	if err != nil {
		return nil, nil, err
	}
	return id, []*identity.PublicKey{root.Public()}, nil
}
