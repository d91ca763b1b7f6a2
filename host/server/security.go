package server

import (
	"fmt"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/routersock"
	"github.com/dsmil/l7/sdk/identity"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/dsmil/l7/sdk/session"
	"github.com/hashicorp/go-hclog"
)

// ClaimAudience is the audience of the claim tokens the router accepts.
const ClaimAudience = "dsmil-router"

// NodeIdleTimeout is how long the cross-node listener keeps a router
// host's connection on which nothing arrives (it heartbeats every
// peer.heartbeat, 200 ms by default).
const NodeIdleTimeout = 10 * time.Second

// nodeIdentity is the identity the host presents to its peers: its key
// with the role-"node" bundle, checked against its roots.
func (s *security) nodeIdentity(cfg config.SecurityConfig, now time.Time) (*identity.Identity, error) {
	if s.ephemeral || cfg.NodeBundle == "" {
		return nil, fmt.Errorf("security: peer blocks need a security block with node_bundle")
	}
	id, err := identity.LoadIdentity(cfg.IdentityKey, cfg.NodeBundle)
	if err != nil {
		return nil, fmt.Errorf("security: node identity: %w", err)
	}
	if err := identity.VerifyBundle(id.Bundle, s.roots, now); err != nil {
		return nil, fmt.Errorf("security: the node bundle %s: %w", cfg.NodeBundle, err)
	}
	if id.Bundle.Role != "node" {
		return nil, fmt.Errorf("security: the node bundle %s has role %q, want \"node\"", cfg.NodeBundle, id.Bundle.Role)
	}
	return id, nil
}

// security is the host's identity and what it trusts.
type security struct {
	id      *identity.Identity
	roots   []*identity.PublicKey // vouch for the host's bundle and for router-socket clients
	issuers []*identity.PublicKey // may mint claim tokens: the host itself, claim_issuers, claim_issuer blocks
	// issuerTenants restricts the claim_issuer blocks' keys to their tenants.
	issuerTenants map[identity.KeyID][]string
	groups        []session.Group
	ephemeral     bool
}

// loadSecurity loads the configured identity, or makes an ephemeral one
// when dsmil.hcl has no security block.
func loadSecurity(cfg config.SecurityConfig, now time.Time) (*security, error) {
	s := &security{groups: []session.Group{session.GroupMLKEM1024X25519}}
	if cfg.Group == "p384" {
		s.groups = []session.Group{session.GroupMLKEM1024P384}
	}
	if !cfg.Configured {
		id, roots, err := pluginmgr.EphemeralIdentity("dsmil-host")
		if err != nil {
			return nil, err
		}
		s.id, s.roots, s.ephemeral = id, roots, true
		s.issuers = []*identity.PublicKey{id.Key.Public()}
		return s, nil
	}
	id, err := identity.LoadIdentity(cfg.IdentityKey, cfg.IdentityBundle)
	if err != nil {
		return nil, fmt.Errorf("security: host identity: %w", err)
	}
	roots, err := identity.LoadPublicKeyFiles(cfg.Roots...)
	if err != nil {
		return nil, fmt.Errorf("security: roots: %w", err)
	}
	if err := identity.VerifyBundle(id.Bundle, roots, now); err != nil {
		return nil, fmt.Errorf("security: the host's bundle %s: %w", cfg.IdentityBundle, err)
	}
	if id.Bundle.Role != "host" {
		return nil, fmt.Errorf("security: the host's bundle %s has role %q, want \"host\"", cfg.IdentityBundle, id.Bundle.Role)
	}
	issuers, err := identity.LoadPublicKeyFiles(cfg.ClaimIssuers...)
	if err != nil {
		return nil, fmt.Errorf("security: claim_issuers: %w", err)
	}
	s.id, s.roots = id, roots
	s.issuers = append([]*identity.PublicKey{id.Key.Public()}, issuers...)
	// claim_issuer blocks: keys that may mint for their tenants only. A key
	// must have one standing: anywhere twice would make it ambiguous.
	seen := map[identity.KeyID]string{id.Key.Public().KeyID(): "the host's own identity"}
	for k, p := range issuers {
		seen[p.KeyID()] = "claim_issuers (" + cfg.ClaimIssuers[k] + ")"
	}
	for _, ci := range cfg.ScopedIssuers {
		at := fmt.Sprintf("%s:%d", ci.DeclRange.Filename, ci.DeclRange.Start.Line)
		keys, err := identity.LoadPublicKeyFiles(ci.Key)
		if err != nil {
			return nil, fmt.Errorf("security: claim_issuer %q (%s): %w", ci.Name, at, err)
		}
		kid := keys[0].KeyID()
		if where, dup := seen[kid]; dup {
			return nil, fmt.Errorf("security: claim_issuer %q (%s): its key %s is already %s", ci.Name, at, kid, where)
		}
		seen[kid] = fmt.Sprintf("claim_issuer %q", ci.Name)
		s.issuers = append(s.issuers, keys[0])
		if s.issuerTenants == nil {
			s.issuerTenants = map[identity.KeyID][]string{}
		}
		s.issuerTenants[kid] = ci.Tenants
	}
	return s, nil
}

// routerHandshaker authenticates local DBE clients on the router socket:
// with a configured identity, every client runs the post-quantum handshake
// with a bundle signed by one of the roots (role "client" or "shim").
// Without one there is no root a client could hold, so the socket runs
// plain frames and file permissions (mode 0660) are its only guard.
func (s *security) routerHandshaker() session.Handshaker {
	if s.ephemeral {
		return nil
	}
	return &session.PQ{Auth: session.Auth{Identity: s.id, Roots: s.roots, PeerRoles: []string{"client", "shim"}}, Groups: s.groups}
}

// crossNodeEndpoint is the router's cross-node listener: DBE over TCP in
// TLS 1.3 restricted to SecP384r1MLKEM1024, each peer proving an ML-DSA-87
// identity (role "node" or "client") signed by one of the roots.
//
// Requests arriving there are routed by r, which sees this host's own
// plugin instances only (never its peers': no request travels two links),
// and a router host (role "node") is told those instances with each HEALTH
// (host/peers) and cut off when it falls silent.
func (s *security) crossNodeEndpoint(r *router.Router, instances func() []*l7v1.L7ModelStatus, log hclog.Logger, addr string, maxFrame, maxInFlight int) (*routersock.Endpoint, error) {
	if s.ephemeral {
		return nil, fmt.Errorf("security: cross_node_listen needs a configured identity and roots")
	}
	cert, err := session.EphemeralCertificate(s.id.Bundle.Name)
	if err != nil {
		return nil, err
	}
	ln, err := session.ListenTLS("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("security: cross-node listener: %w", err)
	}
	ep := &routersock.Endpoint{Router: r, Logger: log, Listener: ln, MaxFrame: maxFrame, MaxInFlight: maxInFlight,
		Instances: instances, NodeIdleTimeout: NodeIdleTimeout, Handshaker: &session.TLS{
			Auth:     session.Auth{Identity: s.id, Roots: s.roots, PeerRoles: []string{"node", "client"}},
			Config:   session.TLSConfig(cert, nil),
			MaxFrame: maxFrame,
		}}
	if err := ep.Listen(); err != nil {
		ln.Close()
		return nil, err
	}
	return ep, nil
}
