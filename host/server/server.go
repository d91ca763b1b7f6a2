package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dsmil/l7/host/admin"
	"github.com/dsmil/l7/host/agentcall"
	"github.com/dsmil/l7/host/claims"
	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/metrics"
	"github.com/dsmil/l7/host/peers"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/policy"
	"github.com/dsmil/l7/host/ratelimit"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/routersock"
	"github.com/dsmil/l7/host/shim"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/hashicorp/go-hclog"
)

// Options tune a Host beyond dsmil.hcl.
type Options struct {
	// ConfigPath is reported by the admin API.
	ConfigPath string
	// Version is reported by the admin API.
	Version string
	// DrainTimeout bounds the wait for in-flight requests at shutdown.
	// Default 30 s.
	DrainTimeout time.Duration
}

// Host is a running dsmil-host.
type Host struct {
	cfg      *config.Config
	opts     Options
	log      hclog.Logger
	started  time.Time
	Manager  *pluginmgr.Manager
	Router   *router.Router
	endpoint *routersock.Endpoint
	// crossNode is the optional cross-node TLS endpoint.
	crossNode *routersock.Endpoint
	// Peers are the worker nodes' links (peer blocks); nil without any.
	Peers   *peers.Set
	admin   *admin.Server
	shim    *shim.Server
	shimLn  net.Listener
	limiter *ratelimit.Limiter
	// Metrics are the host's Prometheus metrics.
	Metrics    *metrics.Metrics
	metricsSrv *metrics.Server
	wg         sync.WaitGroup
}

// Start brings the host up: sockets first (so a second host fails fast),
// then the plugins.
func Start(ctx context.Context, cfg *config.Config, log hclog.Logger, opts Options) (*Host, error) {
	if opts.DrainTimeout <= 0 {
		opts.DrainTimeout = 30 * time.Second
	}
	h := &Host{cfg: cfg, opts: opts, log: log, started: time.Now()}
	for _, p := range []string{cfg.Router.Socket, cfg.Admin.Socket} {
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			return nil, fmt.Errorf("server: %w", err)
		}
	}
	sec, err := loadSecurity(cfg.Security, time.Now())
	if err != nil {
		return nil, err
	}
	if sec.ephemeral {
		log.Warn("no security block in the configuration: running on an ephemeral host identity; " +
			"plugin sessions are authenticated and sealed, but the router socket accepts plain frames from any " +
			"local process its file mode (0660) lets in, and only the shim can mint claim tokens (docs/security.md)")
	}
	minter, err := identity.NewMinter(identity.MinterConfig{Key: sec.id.Key, Audience: ClaimAudience, TTL: cfg.Security.ClaimTTL})
	if err != nil {
		return nil, err
	}
	// Agent plugins' LLM steps come back on their data path, bound to the
	// task in flight, and go through the router with a claim minted by the
	// host's key for the task's tenant (docs/security.md §5.8).
	agentSteps := &agentcall.Server{Minter: minter, Logger: log.Named("agent")}
	h.Manager = pluginmgr.New(pluginmgr.Config{
		Plugins: cfg.Plugins, Files: cfg.Files(), Logger: log, Dir: cfg.Dir,
		MaxFrame: int(cfg.Router.MaxFrameBytes),
		Identity: sec.id, Roots: sec.roots, Groups: sec.groups,
		PluginIdentityTTL: cfg.Security.PluginIdentityTTL,
		PluginRequests:    agentSteps,
	})
	verifier, err := claims.NewVerifier(claims.VerifierConfig{Issuers: sec.issuers, IssuerTenants: sec.issuerTenants, Audience: ClaimAudience})
	if err != nil {
		return nil, err
	}
	eng, diags := policy.New(cfg, log.Named("policy"))
	if diags.HasErrors() {
		var b strings.Builder
		_ = config.WriteDiagnostics(&b, cfg.Files(), diags)
		return nil, fmt.Errorf("server: invalid policy:\n%s", b.String())
	}
	h.limiter = ratelimit.New(cfg)
	h.Metrics = metrics.New(h.Manager)
	var registry router.Registry = h.Manager
	if len(cfg.Peers) > 0 {
		nodeID, err := sec.nodeIdentity(cfg.Security, time.Now())
		if err != nil {
			return nil, err
		}
		if h.Peers, err = peers.New(h.Manager, peers.Config{Peers: cfg.Peers, Identity: nodeID, MaxFrame: int(cfg.Router.MaxFrameBytes),
			LoadRoots: func(files []string) ([]*identity.PublicKey, error) { return identity.LoadPublicKeyFiles(files...) },
			Logger:    log,
			// Agent tasks delegated to the nodes carry a task-bound claim;
			// their steps the nodes send back are served as local agents'
			// (docs/security.md §5.8).
			Steps: agentSteps}); err != nil {
			return nil, err
		}
		registry = h.Peers
	}
	routerCfg := router.Config{
		Registry:       registry,
		RequestTimeout: cfg.Router.RequestTimeout,
		AgentTimeout:   cfg.Router.AgentTimeout,
		LoadThreshold:  cfg.Router.LoadThreshold,
		Claims:         verifier,
		Policy:         eng,
		Limiter:        h.limiter,
		Observer:       h.Metrics,
		// The agent tasks' steps: counters, and lines in the decision log.
		Agents: []router.AgentObserver{h.Metrics, &agentcall.Audit{Logger: log.Named("policy")}},
		Logger: log.Named("router"),
	}
	r, err := router.New(routerCfg)
	if err != nil {
		return nil, err
	}
	h.Router = r
	agentSteps.Router = r
	if cfg.Security.CrossNodeListen != "" {
		// Requests from other nodes go to this host's own instances only.
		local := r
		if h.Peers != nil {
			lc := routerCfg
			lc.Registry = h.Manager
			if local, err = router.New(lc); err != nil {
				return nil, err
			}
		}
		if h.crossNode, err = sec.crossNodeEndpoint(local, h.Manager.Statuses, log.Named("router"), cfg.Security.CrossNodeListen, int(cfg.Router.MaxFrameBytes), cfg.Router.MaxInFlightPerConnection); err != nil {
			return nil, err
		}
		// The steps of agent tasks a router host delegated here with a
		// task-bound claim, for profiles this host does not route, go
		// back to that router host (docs/security.md §5.8).
		agentSteps.Upstream = func(id [16]byte) agentcall.Upstream {
			if up := h.crossNode.Upstream(id); up != nil {
				return up
			}
			return nil
		}
		agentSteps.Serves = servesHealthy(registry)
		log.Info("cross-node DBE listener (TLS 1.3, SecP384r1MLKEM1024, ML-DSA-87 identities)", "listen", cfg.Security.CrossNodeListen)
	}
	h.admin = &admin.Server{Path: cfg.Admin.Socket, Source: h}
	if err := h.admin.Listen(); err != nil {
		return nil, err
	}
	h.endpoint = &routersock.Endpoint{Router: r, Logger: log.Named("router"), Path: cfg.Router.Socket, Mode: cfg.Router.SocketMode,
		MaxFrame: int(cfg.Router.MaxFrameBytes), MaxInFlight: cfg.Router.MaxInFlightPerConnection, Handshaker: sec.routerHandshaker()}
	if err := h.endpoint.Listen(); err != nil {
		h.admin.Close()
		return nil, err
	}
	h.shim, err = shim.New(shim.Config{Shim: cfg.Shim, Tenants: cfg.Tenants, Models: cfg.Models, AgentTimeout: cfg.Router.AgentTimeout,
		Router: r, Ready: h.ready, Logger: log.Named("shim"), Accelerator: h.accelerator,
		RateLimitHeaders: func(tenant string, hd http.Header) { h.limiter.State(tenant).SetHeaders(hd) },
		// One claim token per tenant session, reused until it nears expiry.
		ClaimSource: func(t *config.Tenant) []byte {
			client := t.ClientID
			if client == "" {
				client = "openai-shim"
			}
			tok, err := minter.Token(t.Name, client, []string{t.ROE.String()})
			if err != nil {
				log.Error("minting a claim token", "tenant", t.Name, "error", err)
				return nil
			}
			return tok
		}})
	if err == nil && cfg.Metrics.Listen != "" {
		h.metricsSrv, err = h.Metrics.Listen(cfg.Metrics.Listen)
	}
	if err == nil {
		h.shimLn, err = h.shim.Listen()
	}
	if err != nil {
		if h.metricsSrv != nil {
			h.metricsSrv.Close()
		}
		h.endpoint.Close()
		h.admin.Close()
		return nil, err
	}
	h.wg.Add(2)
	go func() {
		defer h.wg.Done()
		if err := h.admin.Serve(); err != nil {
			log.Error("admin socket", "error", err)
		}
	}()
	go func() {
		defer h.wg.Done()
		if err := h.endpoint.Serve(context.Background()); err != nil {
			log.Error("router socket", "error", err)
		}
	}()
	h.Manager.Start(ctx)
	if h.Peers != nil {
		h.Peers.Start(context.Background())
	}
	if h.crossNode != nil {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			if err := h.crossNode.Serve(context.Background()); err != nil {
				log.Error("cross-node listener", "error", err)
			}
		}()
	}
	if h.metricsSrv != nil {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			if err := h.metricsSrv.Serve(); err != nil {
				log.Error("metrics listener", "error", err)
			}
		}()
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		if err := h.shim.Serve(h.shimLn); err != nil {
			log.Error("OpenAI shim", "error", err)
		}
	}()
	log.Info("dsmil-host started", "shim", cfg.Shim.Listen, "router", cfg.Router.Socket, "admin", cfg.Admin.Socket, "plugins", len(h.Manager.Instances()))
	return h, nil
}

// Shutdown stops accepting work — the OpenAI shim first, letting its
// requests finish — drains in-flight requests (up to the drain timeout),
// stops the plugins and closes the sockets.
func (h *Host) Shutdown() error {
	h.log.Info("shutting down: draining in-flight requests", "timeout", h.opts.DrainTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), h.opts.DrainTimeout)
	defer cancel()
	h.endpoint.StopAccepting() // no new router-socket clients during the drain
	if h.crossNode != nil {
		h.crossNode.StopAccepting()
	}
	err := h.shim.Shutdown(ctx)
	err = errors.Join(err, h.Manager.Shutdown(ctx))
	if h.Peers != nil {
		h.Peers.Close() // after the drain: requests still on the links are cut
	}
	err = errors.Join(err, h.endpoint.Close(), h.admin.Close())
	if h.crossNode != nil {
		err = errors.Join(err, h.crossNode.Close())
	}
	if h.metricsSrv != nil {
		err = errors.Join(err, h.metricsSrv.Close())
	}
	h.wg.Wait()
	h.log.Info("dsmil-host stopped")
	return err
}

// ready reports whether every configured profile has a healthy worker: the
// shim's /readyz.
func (h *Host) ready() (bool, string) {
	for _, p := range h.cfg.Plugins {
		for _, prof := range p.Profiles {
			ws, _ := h.Manager.Workers(prof)
			healthy := false
			for _, w := range ws {
				healthy = healthy || w.Healthy()
			}
			if !healthy {
				return false, fmt.Sprintf("no healthy worker serves profile %q", prof)
			}
		}
	}
	return true, ""
}

// accelerator says where the instances serving profile compute, as they
// report it (the shim's /v1/models): the healthy instances' accelerators,
// joined by "," when they differ; "" when none has reported one.
func (h *Host) accelerator(profile string) string {
	var out []string
	for _, s := range h.Snapshots() {
		if s.Healthy && s.Accelerator != "" && slices.Contains(s.Profiles, profile) && !slices.Contains(out, s.Accelerator) {
			out = append(out, s.Accelerator)
		}
	}
	return strings.Join(out, ",")
}

// Snapshots implements admin.Source: this host's instances, then its
// worker nodes' (Node set).
func (h *Host) Snapshots() []pluginmgr.Snapshot {
	snaps := h.Manager.Snapshots()
	if h.Peers != nil {
		snaps = append(snaps, h.Peers.Snapshots()...)
	}
	return snaps
}

// Status implements admin.Source.
func (h *Host) Status() admin.Status {
	st := admin.Status{
		Version: h.opts.Version, PID: os.Getpid(), Started: h.started, Config: h.opts.ConfigPath,
		Router: h.Router.Stats(),
		Listen: admin.Listeners{Router: h.cfg.Router.Socket, Admin: h.cfg.Admin.Socket},
	}
	for _, s := range h.Manager.Snapshots() {
		st.Plugins++
		if s.Healthy {
			st.Healthy++
		}
	}
	return st
}

// servesHealthy reports whether reg has a healthy instance for a profile.
// A step of a delegated agent task for a profile whose local instances are
// all down (restarting, or failing their health checks) goes back to the
// router host that delegated the task, which may route it to another node,
// instead of failing here.
func servesHealthy(reg router.Registry) func(profile string) bool {
	return func(profile string) bool {
		ws, _ := reg.Workers(profile)
		for _, w := range ws {
			if w.Healthy() {
				return true
			}
		}
		return false
	}
}
