package sdk

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/session"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// The names dsmil-host and its plugins agree on.
const (
	// PluginName is the name of the one plugin in the go-plugin plugin set
	// (the name the host dispenses).
	PluginName = "workload"

	// EnvHostName optionally names the host. When set, the plugin refuses
	// sessions whose authenticated peer has another name. The plugin's own
	// identity arrives over the inherited pipe named by
	// identity.EnvPluginIdentityFD, which Serve reads and closes before
	// anything else.
	EnvHostName = "DSMIL_HOST_NAME"

	// EnvLogLevel sets the default logger's level: trace, debug, info
	// (the default), warn or error.
	EnvLogLevel = "DSMIL_LOG_LEVEL"

	// PluginRole is the role a plugin announces in the session handshake.
	PluginRole = "plugin"
)

// Handshake is the go-plugin handshake of DSMIL L7 plugins. The host passes
// the cookie in the plugin's environment; a plugin started without it
// refuses to run.
var Handshake = plugin.HandshakeConfig{
	ProtocolVersion:  1,
	MagicCookieKey:   "DSMIL_L7_PLUGIN",
	MagicCookieValue: "c3f1a9d27e5b4086b1d4e8f0a67c2b95",
}

// startTimeout bounds the workload's Info at start-up; stopTimeout bounds
// Server.Close at shutdown.
const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// ServeConfig configures Serve.
type ServeConfig struct {
	// Workload is the plugin's workload. Required.
	Workload Workload

	// Logger is the plugin's root logger. Default: JSON lines on stderr
	// (which the host re-emits under the plugin's name) at the level named
	// by DSMIL_LOG_LEVEL, else info.
	Logger hclog.Logger
}

// Serve runs a plugin process; a plugin's main is one call to it:
//
//	func main() { sdk.Serve(&sdk.ServeConfig{Workload: echo.New()}) }
//
// It reads the identity the host issued it from an inherited pipe,
// authenticates the host against the roots handed over with it, serves the
// Control service over go-plugin's gRPC connection and the DBE data path on
// the same session, and when the host shuts it down (or on SIGTERM) stops
// the data path and calls the workload's Close. It does not return: it exits
// the process, with status 1 when the process was not started by dsmil-host
// or the workload could not start.
func Serve(cfg *ServeConfig) {
	os.Exit(serve(cfg, os.Getenv, os.Stderr))
}

func serve(cfg *ServeConfig, getenv func(string) string, stderr io.Writer) int {
	prog := filepath.Base(os.Args[0])
	if cfg == nil || cfg.Workload == nil {
		fmt.Fprintf(stderr, "%s: sdk.Serve: ServeConfig.Workload is nil\n", prog)
		return 1
	}
	id, roots, err := pluginIdentity(getenv)
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", prog, err)
		return 1
	}
	_ = os.Unsetenv(identity.EnvPluginIdentityFD)
	logger := cfg.Logger
	if logger == nil {
		logger = defaultLogger(getenv(EnvLogLevel), stderr)
	}

	srv := NewServer(cfg.Workload, logger)
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	info, err := srv.refreshInfo(ctx)
	if err == nil {
		err = info.Validate()
	}
	cancel()
	if err != nil {
		logger.Error("workload cannot start", "error", err)
		return 1
	}

	// Only the host that spawned this process gets a session: its bundle
	// must be signed by the roots it handed over, with role "host" and,
	// when given, the host's name.
	creds := &session.Credentials{
		Handshaker: &session.PQ{Auth: session.Auth{
			Identity:  id,
			Roots:     roots,
			PeerName:  getenv(EnvHostName),
			PeerRoles: []string{"host"},
		}},
		OnSession: srv.Attach,
	}
	var gs atomic.Pointer[grpc.Server]
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGTERM)
	defer signal.Stop(sigc)
	go func() {
		<-sigc
		logger.Info("SIGTERM: shutting down")
		if g := gs.Load(); g != nil {
			g.Stop() // plugin.Serve returns once the gRPC server has stopped
			return
		}
		os.Exit(0)
	}()

	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: Handshake,
		Plugins:         plugin.PluginSet{PluginName: &GRPCPlugin{Impl: srv}},
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			// Last Creds option wins: every connection is a DBE session.
			g := grpc.NewServer(append(opts, grpc.Creds(creds))...)
			gs.Store(g)
			return g
		},
		Logger: logger,
	})

	ctx, cancel = context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	if err := srv.Close(ctx); err != nil {
		logger.Error("shutdown", "error", err)
	}
	logger.Debug("plugin exiting")
	return 0
}

// pluginIdentity checks that the process was started by dsmil-host and
// returns the identity the host issued it and the roots that vouch for the
// host.
func pluginIdentity(getenv func(string) string) (*identity.Identity, []*identity.PublicKey, error) {
	if getenv(Handshake.MagicCookieKey) != Handshake.MagicCookieValue {
		return nil, nil, fmt.Errorf("%w (%s is not set)", ErrNotPlugin, Handshake.MagicCookieKey)
	}
	id, roots, ok, err := identity.ReadHandoffFD(getenv(identity.EnvPluginIdentityFD))
	if !ok {
		return nil, nil, fmt.Errorf("%w (%s is not set)", ErrNotPlugin, identity.EnvPluginIdentityFD)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrNotPlugin, err)
	}
	return id, roots, nil
}

// defaultLogger logs JSON to w at the named level (default info).
func defaultLogger(level string, w io.Writer) hclog.Logger {
	lvl := hclog.LevelFromString(level)
	if lvl == hclog.NoLevel {
		lvl = hclog.Info
	}
	return hclog.New(&hclog.LoggerOptions{Level: lvl, Output: w, JSONFormat: true})
}
