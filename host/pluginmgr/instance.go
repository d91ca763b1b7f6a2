package pluginmgr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
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

// Instance is one replica of a plugin.
type Instance struct {
	plugin  *config.Plugin
	replica int
	log     hclog.Logger
	m       *Manager

	healthy atomic.Bool
	load    atomic.Uint64 // math.Float64bits of the last reported load

	mu       sync.Mutex
	state    State
	lastErr  string
	lastExit string    // why the previous process ended; kept after recovery
	exitAt   time.Time // when
	restarts int
	pid      int
	started  time.Time
	info     *sdk.PluginInfo
	memUsed  uint64
	client   *plugin.Client
	control  *sdk.ControlClient
	sess     *session.Session
	mc       *mux.Client
}

// ID names the replica: "name#replica".
func (i *Instance) ID() string { return fmt.Sprintf("%s#%d", i.plugin.Name, i.replica) }

// DeviceID is the configured device.
func (i *Instance) DeviceID() uint8 { return uint8(i.plugin.DeviceID) }

// Healthy reports whether the instance is running and passed its last
// health check.
func (i *Instance) Healthy() bool { return i.healthy.Load() }

// Load is the larger of the plugin's reported load and its share of the
// manager's in-flight limit, so fresh traffic spreads before the next
// status poll.
func (i *Instance) Load() float64 {
	l := math.Float64frombits(i.load.Load())
	i.mu.Lock()
	mc := i.mc
	i.mu.Unlock()
	if mc != nil {
		if f := float64(mc.InFlight()) / float64(i.m.cfg.MaxInFlight); f > l {
			l = f
		}
	}
	return l
}

// ErrNotRunning is returned by Call on an instance that is not running.
var ErrNotRunning = errors.New("pluginmgr: instance not running")

// Call forwards a request frame over the instance's data path.
func (i *Instance) Call(ctx context.Context, req *dbe.Frame, onFrame func(*dbe.Frame) error) error {
	i.mu.Lock()
	mc := i.mc
	i.mu.Unlock()
	if mc == nil {
		return &mux.Error{Code: dbe.CodeNoWorkerAvailable, Message: i.ID() + " is not running"}
	}
	if d, ok := req.Timeout(); ok {
		return mc.CallWithin(ctx, d, req, onFrame)
	}
	return mc.Call(ctx, req, onFrame)
}

// Go forwards a request frame over the instance's data path with
// callbacks (router.AsyncWorker).
func (i *Instance) Go(req *dbe.Frame, timeout time.Duration, fn func(*dbe.Frame, error)) (cancel func()) {
	i.mu.Lock()
	mc := i.mc
	i.mu.Unlock()
	if mc == nil {
		fn(nil, &mux.Error{Code: dbe.CodeNoWorkerAvailable, Message: i.ID() + " is not running"})
		return func() {}
	}
	return mc.Go(req, timeout, fn)
}

// ErrStartTimeout reports a process that did not finish starting within its
// plugin block's start_timeout. It is retried like a crash.
var ErrStartTimeout = errors.New("pluginmgr: plugin start timed out")

// startTimeout is the plugin block's start_timeout, or
// config.DefaultPluginStartTimeout for a Plugin built without Load.
func (i *Instance) startTimeout() time.Duration {
	if d := i.plugin.StartTimeout; d > 0 {
		return d
	}
	return config.DefaultPluginStartTimeout
}

// start spawns the process, authenticates the session, reads the plugin's
// info and configures it, all within the plugin's start timeout.
func (i *Instance) start(ctx context.Context) (err error) {
	timeout := i.startTimeout()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// late names the start timeout when it, not the step, ended the start.
	late := func(err error) error {
		if !errors.Is(cctx.Err(), context.DeadlineExceeded) || ctx.Err() != nil {
			return err
		}
		return fmt.Errorf("%w: %s did not finish starting within start_timeout = %s (raise it in plugin %q of dsmil.hcl if it needs longer): %v",
			ErrStartTimeout, i.ID(), timeout, i.plugin.Name, err)
	}
	// A fresh identity for this process, issued by the host: the handshake
	// accepts exactly that key, so another process (or an old incarnation)
	// cannot stand in for it.
	pident, err := identity.Issue(i.m.cfg.Identity.Key, i.plugin.Name, sdk.PluginRole, time.Now(), i.m.cfg.PluginIdentityTTL)
	if err != nil {
		return fmt.Errorf("issue plugin identity: %w", err)
	}
	sessCh := make(chan *session.Session, 1)
	var hs session.Handshaker = &session.PQ{
		Auth: session.Auth{
			Identity:  i.m.cfg.Identity,
			Roots:     []*identity.PublicKey{i.m.cfg.Identity.Key.Public()},
			PeerName:  i.plugin.Name,
			PeerRoles: []string{sdk.PluginRole},
			Authorize: func(b *identity.Bundle) error {
				if !b.PublicKey.Equal(pident.Key.Public()) {
					return errors.New("not the identity issued to this process")
				}
				return nil
			},
		},
		Groups:   i.m.cfg.Groups,
		MaxFrame: i.m.cfg.MaxFrame,
	}
	if wrap := i.m.cfg.WrapConn; wrap != nil {
		hs = wrapHandshaker{hs, func(c net.Conn) net.Conn { return wrap(i.ID(), c) }}
	}
	creds := &session.Credentials{
		Handshaker: hs,
		OnSession: func(s *session.Session) {
			if s.Peer().Name == "" {
				s.Close()
				return
			}
			mc := mux.NewClient(s)
			s.SetHandler(func(f *dbe.Frame, _ error) { mc.Dispatch(f) })
			go func() { <-s.Done(); mc.Close(fmt.Errorf("%w: %s: %v", mux.ErrSessionClosed, i.ID(), s.Err())) }()
			i.mu.Lock()
			if i.sess != nil { // gRPC reconnected: keep one data session
				i.sess.Close()
			}
			i.sess, i.mc = s, mc
			i.mu.Unlock()
			select {
			case sessCh <- s:
			default:
			}
		},
	}
	cmd := exec.Command(i.plugin.Path, i.plugin.Args...)
	cmd.Dir = i.m.cfg.Dir
	bindToHost(cmd)
	cmd.Env = i.environment()
	// The identity travels over an inherited pipe that the plugin empties
	// and closes at once, never through the environment, which stays
	// readable in /proc/<pid>/environ for the process's lifetime.
	releaseHandoff, err := identity.AttachHandoff(cmd, pident, i.m.cfg.Roots)
	if err != nil {
		return err
	}
	defer releaseHandoff()
	cc := &plugin.ClientConfig{
		HandshakeConfig:  sdk.Handshake,
		Plugins:          plugin.PluginSet{sdk.PluginName: &sdk.GRPCPlugin{}},
		Cmd:              cmd,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		GRPCDialOptions:  []grpc.DialOption{grpc.WithTransportCredentials(creds)},
		Logger:           i.log,
		StartTimeout:     timeout, // go-plugin's own; cctx, started first, ends first
		SkipHostEnv:      true,    // cmd.Env is the whole environment (environment)
	}
	if i.plugin.SHA256 != "" {
		sum, err := hex.DecodeString(i.plugin.SHA256)
		if err != nil {
			return fmt.Errorf("%w: bad sha256: %v", ErrChecksum, err)
		}
		cc.SecureConfig = &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	client := plugin.NewClient(cc)
	defer func() {
		if err != nil {
			client.Kill()
		}
	}()
	rpc, err := client.Client()
	releaseHandoff() // started (or failed to): the child has its own end
	if err != nil {
		if errors.Is(err, plugin.ErrChecksumsDoNotMatch) {
			return fmt.Errorf("%w: %s: %v", ErrChecksum, i.plugin.Path, err)
		}
		return late(fmt.Errorf("start %s: %w", i.plugin.Path, err))
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		return fmt.Errorf("dispense: %w", err)
	}
	control, ok := raw.(*sdk.ControlClient)
	if !ok {
		return fmt.Errorf("dispense: unexpected %T", raw)
	}
	info, err := control.Info(cctx)
	if err != nil {
		return late(fmt.Errorf("info: %w", err))
	}
	select {
	case <-sessCh:
	case <-cctx.Done():
		return late(errors.New("no DBE session after info"))
	}
	cfg, err := i.pluginConfig(info)
	if err != nil {
		return err
	}
	if err := control.Configure(cctx, cfg); err != nil {
		return late(fmt.Errorf("configure: %w", err))
	}
	if info, err = control.Info(cctx); err != nil { // profiles/device may change with config
		return late(fmt.Errorf("info: %w", err))
	}
	if err := control.Health(cctx); err != nil {
		return late(fmt.Errorf("first health check: %w", err))
	}
	pid := 0
	if rc := client.ReattachConfig(); rc != nil {
		pid = rc.Pid
	}
	i.mu.Lock()
	i.client, i.control, i.info, i.pid, i.started = client, control, info, pid, time.Now()
	i.lastErr = ""
	i.mu.Unlock()
	i.healthy.Store(true)
	i.setState(StateRunning)
	i.log.Info("plugin started", "pid", pid, "version", info.Version, "profiles", strings.Join(info.Profiles, ","))
	return nil
}

// ErrChecksum reports a plugin binary whose SHA-256 does not match its pin.
// It is never retried.
var ErrChecksum = errors.New("pluginmgr: plugin checksum mismatch")

// ErrSettings reports plugin settings in dsmil.hcl that do not match the
// schema the plugin reports. It is never retried.
var ErrSettings = errors.New("pluginmgr: invalid plugin settings")

// pluginConfig builds the Configure request from dsmil.hcl, decoding the
// plugin-specific settings against the schema the plugin reported.
func (i *Instance) pluginConfig(info *sdk.PluginInfo) (*sdk.Config, error) {
	specs := make([]config.SettingSpec, len(info.Settings))
	for k, s := range info.Settings {
		specs[k] = config.SettingSpec{Name: s.Name, Type: s.Type, Required: s.Required, Description: s.Description}
	}
	settings := map[string]any{}
	if i.plugin.Settings != nil {
		vals, diags := config.DecodePluginSettings(i.plugin.Settings, specs)
		if diags.HasErrors() {
			var b strings.Builder
			_ = config.WriteDiagnostics(&b, i.m.cfg.Files, diags)
			return nil, fmt.Errorf("%w:\n%s", ErrSettings, b.String())
		}
		for k, v := range vals {
			j, err := ctyJSON(v)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrSettings, k, err)
			}
			settings[k] = j
		}
	}
	return &sdk.Config{
		Name:         i.plugin.Name,
		DeviceID:     uint8(i.plugin.DeviceID),
		Profiles:     i.plugin.Profiles,
		MemoryBudget: uint64(i.plugin.MemoryBudget),
		Replica:      i.replica,
		Settings:     settings,
	}, nil
}

func (i *Instance) setState(s State) {
	i.mu.Lock()
	i.state = s
	i.mu.Unlock()
}

// stop ends the process, then closes the session. Graceful (at shutdown)
// uses go-plugin's kill: a shutdown request over the session, then a kill
// after a grace period; otherwise the process is killed at once.
func (i *Instance) stop(graceful bool) {
	i.healthy.Store(false)
	i.mu.Lock()
	client, sess, pid := i.client, i.sess, i.pid
	i.client, i.control, i.sess, i.mc, i.pid = nil, nil, nil, nil, 0
	i.mu.Unlock()
	if !graceful && pid > 0 {
		// A dead, frozen or failing plugin gets no say: kill it outright so
		// that go-plugin's shutdown request cannot wait on it.
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if client != nil {
		client.Kill() // graceful: asks the plugin to stop over the session, then kills
	}
	if sess != nil {
		sess.Close()
	}
}

// watch health-checks a running instance until it dies, fails its checks
// too often, or ctx ends. It returns why it stopped.
func (i *Instance) watch(ctx context.Context) error {
	i.mu.Lock()
	sess, control, client := i.sess, i.control, i.client
	i.mu.Unlock()
	t := time.NewTicker(i.plugin.HealthInterval)
	defer t.Stop()
	fails := 0
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sess.Done():
			return fmt.Errorf("session closed: %v", sess.Err())
		case <-t.C:
		}
		if client.Exited() {
			return errors.New("process exited")
		}
		hctx, cancel := context.WithTimeout(ctx, min(i.plugin.HealthInterval, i.m.cfg.HealthTimeout))
		err := control.Health(hctx)
		var st *l7v1.L7ModelStatus
		if err == nil {
			st, err = control.Status(hctx)
		}
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			fails++
			i.healthy.Store(false)
			i.setState(StateUnhealthy)
			i.mu.Lock()
			i.lastErr = err.Error()
			i.mu.Unlock()
			i.log.Warn("health check failed", "error", err, "consecutive", fails)
			if fails >= i.m.cfg.UnhealthyThreshold {
				return fmt.Errorf("unhealthy %d times: %w", fails, err)
			}
			continue
		}
		fails = 0
		i.load.Store(math.Float64bits(st.GetLoad()))
		mem := st.GetMemoryUsedBytes()
		if mem == 0 {
			mem = rss(i.Snapshot().PID)
		}
		i.mu.Lock()
		i.memUsed = mem
		i.lastErr = ""
		if i.state != StateDraining {
			i.state = StateRunning
			// Set under mu: a draining instance never becomes routable again.
			i.healthy.Store(true)
		}
		i.mu.Unlock()
	}
}

// supervise runs the instance until ctx ends: start, watch, restart with
// exponential backoff, give up after MaxRestarts.
func (i *Instance) supervise(ctx context.Context) {
	backoff := i.plugin.RestartBackoff
	failures := 0 // restarts since the plugin last ran stably for a minute
	for {
		i.setState(StateStarting)
		err := i.start(ctx)
		if err == nil {
			up := time.Now()
			err = i.watch(ctx)
			if time.Since(up) > time.Minute {
				// It had been stable: a crash weeks later starts the
				// count and the backoff over.
				backoff, failures = i.plugin.RestartBackoff, 0
			}
		}
		i.stop(ctx.Err() != nil)
		if ctx.Err() != nil {
			i.setState(StateStopped)
			return
		}
		i.mu.Lock()
		i.lastErr = err.Error()
		i.lastExit, i.exitAt = err.Error(), time.Now()
		i.mu.Unlock()
		if errors.Is(err, ErrChecksum) || errors.Is(err, ErrSettings) || failures >= i.plugin.MaxRestarts {
			i.setState(StateFailed)
			i.log.Error("plugin failed; not restarting", "error", err, "restarts_in_a_row", failures)
			return
		}
		i.setState(StateRestarting)
		i.log.Warn("plugin down; restarting", "error", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			i.setState(StateStopped)
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
		failures++
		i.mu.Lock()
		i.restarts++ // the total, shown by plugins list
		i.mu.Unlock()
	}
}

const maxBackoff = 30 * time.Second

// Snapshot is what `dsmil-host plugins list` shows about an instance.
type Snapshot struct {
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
}

// Snapshot returns the instance's current state.
func (i *Instance) Snapshot() Snapshot {
	load := i.Load()
	i.mu.Lock()
	defer i.mu.Unlock()
	s := Snapshot{
		Name: i.plugin.Name, Replica: i.replica, DeviceID: i.plugin.DeviceID, Profiles: i.plugin.Profiles,
		PID: i.pid, State: i.state, Healthy: i.healthy.Load(), Restarts: i.restarts,
		Load: load, MemoryUsed: i.memUsed, LastError: i.lastErr, LastExit: i.lastExit, LastExitAt: i.exitAt,
	}
	if i.info != nil {
		s.Version = i.info.Version
		if len(i.info.Profiles) > 0 {
			s.Profiles = i.info.Profiles
		}
	}
	if i.pid != 0 {
		s.Started = i.started
		s.UptimeSec = int64(time.Since(i.started).Seconds())
	}
	if i.mc != nil {
		s.InFlight = i.mc.InFlight()
	}
	return s
}

// socketAddr is the plugin's socket address, or "" when not running.
func (i *Instance) socketAddr() string {
	i.mu.Lock()
	client := i.client
	i.mu.Unlock()
	if client == nil {
		return ""
	}
	if rc := client.ReattachConfig(); rc != nil && rc.Addr != nil {
		return rc.Addr.String()
	}
	return ""
}

// wrapHandshaker applies Config.WrapConn to the raw connection before the
// handshake, so the wrapper sees every byte on the plugin socket.
type wrapHandshaker struct {
	session.Handshaker
	wrap func(net.Conn) net.Conn
}

func (w wrapHandshaker) Client(ctx context.Context, c net.Conn) (session.Channel, error) {
	return w.Handshaker.Client(ctx, w.wrap(c))
}

// rss is a process's resident set size from /proc (0 when unknown), used
// when a plugin does not report its memory itself.
func rss(pid int) uint64 {
	if pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return 0
	}
	var size, resident uint64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0
	}
	return resident * uint64(os.Getpagesize())
}

// BaseEnv names the variables of the host's environment that every plugin
// process receives (when set): what any process needs to run, and the SDK's
// log level. A plugin block's pass_env adds names; nothing else of the
// host's environment (tenants' API keys!) reaches a plugin.
var BaseEnv = []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ", "GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG", "GOTRACEBACK", sdk.EnvLogLevel}

// environment is a plugin process's environment as the host sets it: the
// BaseEnv and pass_env variables taken from the host's, the plugin block's
// env, and the host's name. go-plugin appends its own (the handshake cookie
// and PLUGIN_*), AttachHandoff the identity pipe's descriptor number; with
// SkipHostEnv that is all the process gets.
func (i *Instance) environment() []string {
	var env []string
	seen := map[string]bool{}
	for _, names := range [][]string{BaseEnv, i.plugin.PassEnv} {
		for _, k := range names {
			if _, set := i.plugin.Env[k]; set || seen[k] {
				continue // the plugin block's env wins
			}
			seen[k] = true
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
	}
	for k, v := range i.plugin.Env {
		env = append(env, k+"="+v)
	}
	return append(env, sdk.EnvHostName+"="+i.m.cfg.HostName)
}
