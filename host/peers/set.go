// Package peers lets a router host route to plugin instances on worker
// nodes: other dsmil-hosts, named by the peer blocks of dsmil.hcl, that
// serve their plugins on their cross-node listener (host/routersock, TLS
// 1.3 with SecP384r1MLKEM1024, ML-DSA-87 identities).
//
// Each peer has a Link: dialled with the host's role-"node" identity, the
// node's bundle checked against the peer's roots and name; a HEALTH every
// heartbeat, which the node answers with one L7_MODEL_STATUS per instance
// (on correlation id 0) before its router's status; and a watchdog that
// cuts the link when nothing has arrived for down_after, failing every
// request in flight on it at once (the router answers WORKER_FAILED; no
// request is retried), marking the node's instances down, and redialling
// with exponential backoff. The node's instances serving a profile the
// peer block lists are Remotes: router.RemoteWorkers that take part in
// worker selection (least-loaded, healthy) beside the local instances,
// through Set, the router's Registry.
//
// The worker node re-verifies each request's claim token and applies its
// own policy and quotas (docs/security.md §5.9).
package peers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/session"
	"github.com/hashicorp/go-hclog"
)

// Config configures a Set.
type Config struct {
	// Peers are the peer blocks.
	Peers []*config.Peer
	// Identity is what the host presents to its peers: its key with the
	// role-"node" bundle (security.node_bundle). Required with Peers.
	Identity *identity.Identity
	// Roots are the keys loaded for each peer's Roots, by file name.
	LoadRoots func(files []string) ([]*identity.PublicKey, error)
	// MaxFrame is the frame limit on the links; 0: the DBE default.
	MaxFrame int
	// Logger: default none.
	Logger hclog.Logger
	// Steps serves the steps of agent tasks this host delegates to its
	// worker nodes that the nodes send back over the link, once their
	// task-bound claims check out (taskclaim.go); dsmil-host sets its
	// host/agentcall server. Nil: an agent task is forwarded without a
	// claim and a node's requests are refused.
	Steps pluginmgr.PluginRequests
}

// Set is the router's Registry over the local instances and every peer's.
type Set struct {
	local  router.Registry
	links  []*Link
	routed map[string]bool // profiles some peer block lists

	mu   sync.Mutex
	snap atomic.Pointer[map[string][]router.Worker] // routed profiles only

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

var _ router.Registry = (*Set)(nil)
var _ router.RemoteWorker = (*Remote)(nil)
var _ router.AsyncWorker = (*Remote)(nil)

// New prepares the links; Start dials them.
func New(local router.Registry, cfg Config) (*Set, error) {
	s := &Set{local: local, routed: map[string]bool{}}
	if cfg.Logger == nil {
		cfg.Logger = hclog.NewNullLogger()
	}
	if len(cfg.Peers) > 0 {
		if cfg.Identity == nil {
			return nil, errors.New("peers: peer blocks need the host's node identity (security.node_bundle)")
		}
		if cfg.Identity.Bundle.Role != "node" {
			return nil, fmt.Errorf("peers: the node bundle has role %q, want \"node\"", cfg.Identity.Bundle.Role)
		}
	}
	for _, p := range cfg.Peers {
		roots, err := cfg.LoadRoots(p.Roots)
		if err != nil {
			return nil, fmt.Errorf("peers: peer %q (%s:%d): roots: %w", p.Name, p.DeclRange.Filename, p.DeclRange.Start.Line, err)
		}
		cert, err := session.EphemeralCertificate(cfg.Identity.Bundle.Name)
		if err != nil {
			return nil, err
		}
		l := &Link{cfg: p, log: cfg.Logger.Named("peer." + p.Name), changed: s.rebuild, steps: cfg.Steps, key: cfg.Identity.Key,
			hs: &session.TLS{
				Auth:     session.Auth{Identity: cfg.Identity, Roots: roots, PeerName: p.Identity, PeerRoles: []string{"host"}},
				Config:   session.TLSConfig(cert, nil),
				Timeout:  p.DialTimeout,
				MaxFrame: cfg.MaxFrame,
			}}
		s.links = append(s.links, l)
		for _, pr := range p.Profiles {
			s.routed[pr] = true
		}
	}
	s.rebuild()
	return s, nil
}

// Start dials every peer and keeps each link up until Close.
func (s *Set) Start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	for _, l := range s.links {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			l.run(ctx)
		}()
	}
}

// Close cuts every link (their requests in flight fail) and waits.
func (s *Set) Close() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
}

// Links returns the links in config order.
func (s *Set) Links() []*Link { return s.links }

// Workers implements router.Registry: the local instances serving profile,
// then the worker nodes' (healthy or not; the router picks).
func (s *Set) Workers(profile string) ([]router.Worker, bool) {
	if !s.routed[profile] {
		return s.local.Workers(profile)
	}
	return (*s.snap.Load())[profile], true
}

// rebuild recomputes the worker lists of the routed profiles: called when
// a node's instances or its link change, never per request.
func (s *Set) rebuild() {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := make(map[string][]router.Worker, len(s.routed))
	for prof := range s.routed {
		ws, _ := s.local.Workers(prof)
		m[prof] = slices.Clip(append([]router.Worker(nil), ws...))
	}
	for _, l := range s.links {
		for _, r := range l.instances() {
			st := r.st.Load()
			for _, prof := range st.GetProfiles() {
				if slices.Contains(l.cfg.Profiles, prof) {
					m[prof] = append(m[prof], r)
				}
			}
		}
	}
	s.snap.Store(&m)
}

// Snapshots lists the worker nodes' instances for `plugins list` (Node
// set), and a row for each node that has reported none (never reached).
func (s *Set) Snapshots() []pluginmgr.Snapshot {
	var out []pluginmgr.Snapshot
	for _, l := range s.links {
		st := l.State()
		rs := l.instances()
		if len(rs) == 0 {
			out = append(out, pluginmgr.Snapshot{Node: l.cfg.Name, State: "down", Profiles: l.cfg.Profiles, LastError: st.LastErr})
			continue
		}
		for _, r := range rs {
			ms := r.st.Load()
			name, rep := r.inst, 0
			if i := strings.LastIndexByte(name, '#'); i >= 0 {
				fmt.Sscan(name[i+1:], &rep)
				name = name[:i]
			}
			state, _, _ := strings.Cut(ms.GetHealthMessage(), ":")
			snap := pluginmgr.Snapshot{
				Node: l.cfg.Name, Name: name, Replica: rep, DeviceID: int(ms.GetDeviceId()), Profiles: ms.GetProfiles(),
				Version: ms.GetVersion(), State: pluginmgr.State(state), Healthy: r.Healthy(), Load: r.Load(),
				MemoryUsed: ms.GetMemoryUsedBytes(), UptimeSec: ms.GetUptimeSeconds(), InFlight: int(ms.GetInFlight()),
			}
			if _, detail, ok := strings.Cut(ms.GetHealthMessage(), ": "); ok {
				snap.LastError = detail
			}
			if !st.Up {
				snap.State, snap.LastError = "down", st.LastErr
			}
			out = append(out, snap)
		}
	}
	return out
}
