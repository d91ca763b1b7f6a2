package config

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"
)

// Defaults of a peer block.
const (
	DefaultPeerHeartbeat        = 200 * time.Millisecond
	DefaultPeerDownAfter        = 750 * time.Millisecond
	DefaultPeerReconnectBackoff = 100 * time.Millisecond
	DefaultPeerReconnectMax     = 5 * time.Second
	DefaultPeerMaxInFlight      = 256
	DefaultPeerDialTimeout      = 2 * time.Second
	// MaxPeerDownAfter bounds down_after: a dead link must not hold
	// requests longer than this.
	MaxPeerDownAfter = time.Minute
)

// Peer is a peer block: a worker node, another dsmil-host serving its
// plugins on its cross-node listener, whose instances this host routes to
// for the profiles the block lists (docs/operations.md, docs/security.md).
//
//	peer "node-b" {
//	  address  = "10.0.0.6:7443"     # the node's security.cross_node_listen
//	  identity = "node-b"            # the name its bundle must carry (default: the label)
//	  roots    = ["keys/root.pub"]   # who must sign its bundle (default: security.roots)
//	  profiles = ["echo", "chat"]    # what this host sends there
//	}
type Peer struct {
	// Name is the block label, unique among peers; it names the node in
	// `plugins list` and in logs.
	Name string
	// Address is the node's cross-node listener, host:port.
	Address string
	// Identity is the name the node's identity bundle must carry (its role
	// must be "host"). Default: Name.
	Identity string
	// Roots are the root public key files one of which must have signed
	// the node's bundle. Default: the security block's roots.
	Roots []string
	// Profiles are the profiles routed to the node: its instances serving
	// any of them join worker selection; others it reports are ignored.
	Profiles []string
	// Heartbeat is how often the link sends HEALTH. Default 200ms.
	Heartbeat time.Duration
	// DownAfter: a link that has received nothing for this long is cut and
	// the node marked down, failing the requests in flight on it.
	// Default 750ms; more than Heartbeat.
	DownAfter time.Duration
	// ReconnectBackoff is the first wait before redialling a node that is
	// down; it doubles up to ReconnectMax. Defaults 100ms and 5s.
	ReconnectBackoff time.Duration
	ReconnectMax     time.Duration
	// DialTimeout bounds a dial with its handshakes. Default 2s.
	DialTimeout time.Duration
	// MaxInFlight caps the requests in flight on the link; the node then
	// counts as fully loaded. Default 256.
	MaxInFlight int
	// DeclRange is where the block is declared.
	DeclRange hcl.Range
}

type rawPeer struct {
	Name             string    `hcl:"name,label"`
	NameRange        hcl.Range `hcl:"name,label_range"`
	Address          string    `hcl:"address"`
	Identity         string    `hcl:"identity,optional"`
	Roots            []string  `hcl:"roots,optional"`
	Profiles         []string  `hcl:"profiles"`
	Heartbeat        string    `hcl:"heartbeat,optional"`
	DownAfter        string    `hcl:"down_after,optional"`
	ReconnectBackoff string    `hcl:"reconnect_backoff,optional"`
	ReconnectMax     string    `hcl:"reconnect_max,optional"`
	DialTimeout      string    `hcl:"dial_timeout,optional"`
	MaxInFlight      int       `hcl:"max_in_flight,optional"`
	Body             hcl.Body  `hcl:",body"`
	DefRange         hcl.Range `hcl:",def_range"`
}

// peers resolves the peer blocks. They need a security block with a
// node_bundle: the link is authenticated both ways.
func (r *resolver) peers(raw *rawRoot) {
	r.cfg.Peers = []*Peer{}
	names := map[string]hcl.Range{}
	addrs := map[string]hcl.Range{}
	for k, rp := range raw.Peers {
		if !nameRE.MatchString(rp.Name) {
			r.errAt(rp.NameRange, &rp.DefRange, "Invalid peer name", fmt.Sprintf("%q is not a valid peer name. %s", rp.Name, nameRule))
		}
		r.unique("peer", "Peer", names, rp.Name, rp.NameRange)
		if k == 0 {
			switch {
			case !r.cfg.Security.Configured:
				r.errAt(rp.DefRange, nil, "Peer without a security block",
					fmt.Sprintf("peer %q needs a security block (identity_key, identity_bundle, roots and node_bundle): links to worker nodes are authenticated both ways (docs/security.md).", rp.Name))
			case raw.Security != nil && attrsOf(raw.Security.Body, raw.Security)["node_bundle"] == nil:
				r.errAt(rp.DefRange, nil, "Missing node_bundle",
					fmt.Sprintf("peer %q needs security.node_bundle: a bundle with role \"node\" for the host's identity key, which the host presents to its peers (dsmil-host keys bundle -role node).", rp.Name))
			}
		}
		p := &Peer{Name: rp.Name, Identity: rp.Name, Roots: r.cfg.Security.Roots, DeclRange: rp.DefRange,
			Heartbeat: DefaultPeerHeartbeat, DownAfter: DefaultPeerDownAfter, ReconnectBackoff: DefaultPeerReconnectBackoff,
			ReconnectMax: DefaultPeerReconnectMax, DialTimeout: DefaultPeerDialTimeout, MaxInFlight: DefaultPeerMaxInFlight}
		at := attrsOf(rp.Body, rp)
		if a := at["address"]; r.ok(a) {
			host, port, err := net.SplitHostPort(rp.Address)
			if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
				r.errAttr(a, "Invalid address", "address must be host:port of the node's cross_node_listen, such as \"10.0.0.6:7443\"; got %q.", rp.Address)
			} else if prev, dup := addrs[rp.Address]; dup {
				r.errAttr(a, "Duplicate peer address", "%s is already the address of the peer declared at %s.", rp.Address, pos(prev))
			} else {
				addrs[rp.Address] = rp.DefRange
				p.Address = rp.Address
			}
		}
		if a := at["identity"]; r.ok(a) {
			if rp.Identity == "" {
				r.errAttr(a, "Empty identity", "identity must be the name in the node's identity bundle.")
			} else {
				p.Identity = rp.Identity
			}
		}
		if a := at["roots"]; r.ok(a) {
			if len(rp.Roots) == 0 {
				r.errAttr(a, "No roots", "roots must name at least one root public key file; leave it out to use the security block's roots.")
			}
			p.Roots = nil
			for _, v := range rp.Roots {
				p.Roots = append(p.Roots, resolvePath(r.cfg.Dir, v))
			}
		}
		if a := at["profiles"]; r.ok(a) {
			if len(rp.Profiles) == 0 {
				r.errAttr(a, "No profiles", "Peer %q must name at least one profile to route to it.", rp.Name)
			}
			seen := map[string]hcl.Range{}
			for i, pr := range rp.Profiles {
				rng := elemRange(a, i)
				if !nameRE.MatchString(pr) {
					r.errAt(rng, nil, "Invalid profile name", fmt.Sprintf("%q is not a valid profile name. %s", pr, nameRule))
					continue
				}
				if prev, dup := seen[pr]; dup {
					r.errAt(rng, nil, "Duplicate profile", fmt.Sprintf("Profile %q is already listed at %s.", pr, pos(prev)))
					continue
				}
				seen[pr] = rng
				p.Profiles = append(p.Profiles, pr)
			}
		}
		r.duration(at["heartbeat"], rp.Heartbeat, MaxPeerDownAfter, &p.Heartbeat)
		r.duration(at["down_after"], rp.DownAfter, MaxPeerDownAfter, &p.DownAfter)
		r.duration(at["reconnect_backoff"], rp.ReconnectBackoff, 0, &p.ReconnectBackoff)
		r.duration(at["reconnect_max"], rp.ReconnectMax, 0, &p.ReconnectMax)
		r.duration(at["dial_timeout"], rp.DialTimeout, MaxPeerDownAfter, &p.DialTimeout)
		if a := at["max_in_flight"]; r.ok(a) {
			r.intRange(a, rp.MaxInFlight, 1, MaxInFlightPerConnection, &p.MaxInFlight)
		}
		for _, c := range []struct {
			name string
			bad  bool
			why  string
		}{
			{"heartbeat", p.Heartbeat <= 0, "heartbeat must be more than 0."},
			{"down_after", p.DownAfter <= p.Heartbeat, fmt.Sprintf("down_after (%s) must be longer than heartbeat (%s), or a healthy link would be cut between two heartbeats.", p.DownAfter, p.Heartbeat)},
			{"reconnect_max", p.ReconnectMax < p.ReconnectBackoff, fmt.Sprintf("reconnect_max (%s) must be at least reconnect_backoff (%s).", p.ReconnectMax, p.ReconnectBackoff)},
		} {
			if !c.bad {
				continue
			}
			if a := at[c.name]; a != nil {
				r.errAttr(a, "Invalid "+c.name, "%s", c.why)
			} else {
				r.errAt(rp.DefRange, nil, "Invalid "+c.name, c.why)
			}
		}
		r.cfg.Peers = append(r.cfg.Peers, p)
	}
}

// PeersForProfile returns the peers routed profile, in file order.
func (c *Config) PeersForProfile(profile string) []*Peer {
	var out []*Peer
	for _, p := range c.Peers {
		if slices.Contains(p.Profiles, profile) {
			out = append(out, p)
		}
	}
	return out
}
