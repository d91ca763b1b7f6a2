package pluginmgr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/session"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// process is one running plugin process, started and configured by spawn:
// its go-plugin client, the control service over it, and what it reported.
type process struct {
	client  *plugin.Client
	control *sdk.ControlClient
	info    *sdk.PluginInfo
	pid     int
	started time.Time
}

// ErrStartTimeout reports a process that did not finish starting within its
// plugin block's start_timeout. It is retried like a crash.
var ErrStartTimeout = errors.New("pluginmgr: plugin start timed out")

// lateSlack is how close to its start_timeout a failed start step counts
// as ended by the timeout.
const lateSlack = 50 * time.Millisecond

// ErrChecksum reports a plugin binary whose SHA-256 does not match its pin.
// It is never retried.
var ErrChecksum = errors.New("pluginmgr: plugin checksum mismatch")

// startTimeout is the plugin block's start_timeout, or
// config.DefaultPluginStartTimeout for a Plugin built without Load.
func (i *Instance) startTimeout() time.Duration {
	if d := i.plugin.StartTimeout; d > 0 {
		return d
	}
	return config.DefaultPluginStartTimeout
}

// spawn starts a process for the instance, authenticates its session
// (which attaches the data path), reads the plugin's info, configures it
// and checks its health, all within the plugin's start timeout.
func (i *Instance) spawn(ctx context.Context) (_ *process, err error) {
	timeout := i.startTimeout()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// late names the start timeout when it, not the step, ended the start.
	// A step may fail a moment before cctx reports its deadline (the
	// plugin's side of a gRPC call carries the same deadline and can expire
	// first), so a failure within lateSlack of the deadline counts too.
	deadline, _ := cctx.Deadline()
	late := func(err error) error {
		if ctx.Err() != nil || (cctx.Err() == nil && time.Until(deadline) > lateSlack) {
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
		return nil, fmt.Errorf("issue plugin identity: %w", err)
	}
	sessCh := make(chan struct{}, 1)
	creds := &session.Credentials{
		Handshaker: i.handshaker(pident),
		OnSession: func(s *session.Session) {
			if s.Peer().Name == "" {
				s.Close()
				return
			}
			i.data.attach(i, s)
			select {
			case sessCh <- struct{}{}:
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
		return nil, err
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
			return nil, fmt.Errorf("%w: bad sha256: %v", ErrChecksum, err)
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
			return nil, fmt.Errorf("%w: %s: %v", ErrChecksum, i.plugin.Path, err)
		}
		return nil, late(fmt.Errorf("start %s: %w", i.plugin.Path, err))
	}
	raw, err := rpc.Dispense(sdk.PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispense: %w", err)
	}
	control, ok := raw.(*sdk.ControlClient)
	if !ok {
		return nil, fmt.Errorf("dispense: unexpected %T", raw)
	}
	info, err := control.Info(cctx)
	if err != nil {
		return nil, late(fmt.Errorf("info: %w", err))
	}
	select {
	case <-sessCh:
	case <-cctx.Done():
		return nil, late(errors.New("no DBE session after info"))
	}
	cfg, err := i.pluginConfig(info)
	if err != nil {
		return nil, err
	}
	if err := control.Configure(cctx, cfg); err != nil {
		return nil, late(fmt.Errorf("configure: %w", err))
	}
	if info, err = control.Info(cctx); err != nil { // profiles/device may change with config
		return nil, late(fmt.Errorf("info: %w", err))
	}
	if err := control.Health(cctx); err != nil {
		return nil, late(fmt.Errorf("first health check: %w", err))
	}
	p := &process{client: client, control: control, info: info, started: time.Now()}
	if rc := client.ReattachConfig(); rc != nil {
		p.pid = rc.Pid
	}
	i.log.Info("plugin started", "pid", p.pid, "version", info.Version, "profiles", strings.Join(info.Profiles, ","))
	return p, nil
}

// handshaker is the host's side of the DSMIL-PQ1 handshake with the process
// that was issued pident, wrapped by Config.WrapConn when set.
func (i *Instance) handshaker(pident *identity.Identity) session.Handshaker {
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
	return hs
}

// kill ends the process. Graceful (at shutdown) uses go-plugin's kill: a
// shutdown request over the session, then a kill after a grace period;
// otherwise the process is killed at once: a dead, frozen or failing plugin
// gets no say, so that go-plugin's shutdown request cannot wait on it.
func (p *process) kill(graceful bool) {
	if !graceful && p.pid > 0 {
		_ = syscall.Kill(p.pid, syscall.SIGKILL)
	}
	p.client.Kill()
}

// socketAddr is the process's socket address, or "".
func (p *process) socketAddr() string {
	if rc := p.client.ReattachConfig(); rc != nil && rc.Addr != nil {
		return rc.Addr.String()
	}
	return ""
}

// rss is the process's resident set size from /proc (0 when unknown), used
// when a plugin does not report its memory itself.
func (p *process) rss() uint64 {
	if p.pid <= 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", p.pid))
	if err != nil {
		return 0
	}
	var size, resident uint64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0
	}
	return resident * uint64(os.Getpagesize())
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
