package config

import (
	"io/fs"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
	"github.com/hashicorp/hcl/v2"
)

// Config is a loaded, defaulted and validated dsmil.hcl.
//
// Load and Parse always return a non-nil *Config so that its Files can be
// used to print diagnostics; when the diagnostics contain errors the rest of
// the Config is incomplete and must not be used.
type Config struct {
	// Dir is the absolute directory of the root config file. Relative paths
	// in the file are resolved against it.
	Dir string

	// Includes lists the files pulled in through include globs, in the order
	// they were merged, as they were named when read (root file excluded).
	Includes []string

	// Shim configures the OpenAI-compatible HTTP shim.
	Shim ShimConfig

	// Router configures the DBE router and its local Unix socket.
	Router RouterConfig

	// Admin configures the administrative Unix socket.
	Admin AdminConfig

	// Metrics configures the Prometheus metrics listener.
	Metrics MetricsConfig

	// Security configures identities, the channel handshake and claim
	// tokens. Security.Configured is false when dsmil.hcl has no security
	// block: the host then runs on an ephemeral identity (docs/security.md).
	Security SecurityConfig

	// Plugins are the model plugins to spawn, in file order.
	Plugins []*Plugin

	// Models map OpenAI model ids to DBE profiles, in file order.
	Models []*Model

	// Tenants are the callers allowed in, in file order.
	Tenants []*Tenant

	// Policies are the policy blocks, undecoded, for the policy engine.
	Policies []*Policy

	// Peers are the worker nodes this host routes to (peer blocks), in
	// file order (peers.go).
	Peers []*Peer

	// Warnings holds the warning diagnostics found while loading (such as
	// a non-loopback listen address that was explicitly allowed). They are
	// also part of the diagnostics Load returns; this copy lets later
	// commands (for example a "config check") report them again.
	Warnings hcl.Diagnostics

	// files holds every parsed file by name, for diagnostic printing.
	files map[string]*hcl.File
}

// ShimConfig is the shim block: the OpenAI-compatible HTTP server.
type ShimConfig struct {
	// Listen is the TCP address to serve on (host:port).
	// Default "127.0.0.1:8001".
	Listen string

	// AllowNonLoopback permits a Listen address that is not loopback.
	// Default false; when true and used, a warning is recorded.
	AllowNonLoopback bool

	// MaxBodyBytes caps the size of a request body. Default 4 MiB.
	MaxBodyBytes int64

	// AllowedHosts is the Host-header allowlist (exact host:port values).
	// Default: derived from Listen (for 127.0.0.1:8001 it is
	// ["127.0.0.1:8001", "localhost:8001"]).
	AllowedHosts []string

	// CORSOrigins are the browser origins (scheme://host[:port]) allowed
	// cross-origin access. Default none.
	CORSOrigins []string

	// RequestTimeout bounds a whole request, streaming included.
	// Default 120s.
	RequestTimeout time.Duration

	// KeepaliveInterval is how often an SSE stream sends a keep-alive
	// comment while waiting for tokens. Default 15s.
	KeepaliveInterval time.Duration
}

// RouterConfig is the router block: DBE frame routing between clients and
// plugins.
type RouterConfig struct {
	// Socket is the absolute path of the Unix socket on which local DBE
	// clients connect. Default "run/router.sock" under Config.Dir.
	Socket string

	// SocketMode is the permission mode of Socket. Default 0660.
	SocketMode fs.FileMode

	// RequestTimeout bounds one routed request. Default 60s.
	RequestTimeout time.Duration

	// AgentTimeout bounds an agent task (L7_AGENT_TASK) in place of
	// RequestTimeout: a task's budget is its TIMEOUT_MS (the shim and the
	// CLI send its timeout_seconds), at most this, and this when it gives
	// none; its LLM steps stay bounded by RequestTimeout and by the task's
	// deadline. Default 10m.
	AgentTimeout time.Duration

	// MaxFrameBytes caps the size of one DBE frame. Default 16 MiB.
	MaxFrameBytes int64

	// LoadThreshold is the worker load (0 < x <= 1) above which the router
	// falls back to another worker serving the same profile. Default 0.9.
	LoadThreshold float64

	// MaxInFlightPerConnection caps the requests one client connection on
	// the router socket may have in flight; more are answered OVERLOADED
	// at once, so that one client cannot take every worker slot. Default
	// 1024.
	MaxInFlightPerConnection int
}

// AdminConfig is the admin block: the administrative Unix socket.
type AdminConfig struct {
	// Socket is the absolute path of the admin Unix socket. Default
	// "run/admin.sock" under Config.Dir. It is always created with mode
	// AdminSocketMode (0600).
	Socket string
}

// MetricsConfig is the metrics block: the Prometheus listener.
type MetricsConfig struct {
	// Listen is the TCP address serving /metrics. Default "127.0.0.1:9108".
	Listen string

	// AllowNonLoopback permits a Listen address that is not loopback.
	// Default false; when true and used, a warning is recorded.
	AllowNonLoopback bool
}

// ClaimIssuer is a claim_issuer block of the security block: a key that
// may mint claim tokens for the listed tenants only.
type ClaimIssuer struct {
	// Name labels the block (for logs and errors).
	Name string
	// Key is the issuer's public key file (dsmil-host keys gen writes it).
	Key string
	// Tenants are the tenants it may mint for; each must be a tenant block.
	Tenants []string
	// DeclRange is where the block is declared.
	DeclRange hcl.Range
}

// SecurityConfig is the security block.
type SecurityConfig struct {
	// Configured is true when dsmil.hcl has a security block.
	Configured bool
	// IdentityKey is the host's ML-DSA-87 private key file (mode 0600).
	IdentityKey string
	// IdentityBundle is the host's identity bundle, signed by a root, with
	// role "host".
	IdentityBundle string
	// Roots are the operator root public keys trusted to sign identity
	// bundles: the host's own, and those of local DBE clients on the router
	// socket.
	Roots []string
	// ClaimIssuers are public keys, besides the host's own, trusted to mint
	// L7_CLAIM_TOKENs for any tenant (for local DBE clients on the router
	// socket).
	ClaimIssuers []string
	// ScopedIssuers are claim_issuer blocks: public keys trusted to mint
	// L7_CLAIM_TOKENs only for the tenants each block lists.
	ScopedIssuers []*ClaimIssuer
	// Group is the handshake's classical half: "x25519" (default) or
	// "p384" (CNSA-style deployments).
	Group string
	// ClaimTTL is how long a minted claim token lives. Default 1h.
	ClaimTTL time.Duration
	// PluginIdentityTTL is how long the identity the host issues to a
	// plugin at spawn lives. Default 24h.
	PluginIdentityTTL time.Duration
	// CrossNodeListen, when set, is a TCP address (host:port) where the
	// router also accepts DBE from other nodes, over TLS 1.3 restricted to
	// SecP384r1MLKEM1024 with ML-DSA-87 identities bound to the session
	// (docs/dbe.md §12.9). Off (empty) by default.
	CrossNodeListen string
	// NodeBundle is the bundle, with role "node", for the host's identity
	// key that the host presents when it dials its peers' cross-node
	// listeners. Required with peer blocks.
	NodeBundle string
}

// Plugin is a plugin block: one out-of-process model plugin binary.
type Plugin struct {
	// Name is the block label, unique among plugins.
	Name string

	// Path is the absolute path of the plugin binary.
	Path string

	// SHA256 is the lowercase hex SHA-256 the binary must have; empty means
	// the binary is not pinned.
	SHA256 string

	// DeviceID is the DSMIL device the plugin drives (0-103).
	DeviceID int

	// Profiles are the DBE profiles the plugin serves (at least one, unique).
	Profiles []string

	// Replicas is how many processes to run (1-64). Default 1.
	Replicas int

	// MemoryBudget is the memory the plugin may use, in bytes; 0 means no
	// budget was set.
	MemoryBudget int64

	// Env is extra environment for the plugin process.
	Env map[string]string

	// PassEnv names variables of the host's environment that the plugin
	// process receives as they are (when set), beyond the few every plugin
	// gets (pluginmgr.BaseEnv). Nothing else of the host's environment
	// reaches a plugin; a tenant's api_key_env may not be named here.
	PassEnv []string

	// Args are extra command-line arguments for the plugin process.
	Args []string

	// HealthInterval is the period between health checks. Default 5s.
	HealthInterval time.Duration

	// MaxRestarts is how many times a crashed process is restarted before
	// the plugin is marked failed; 0 means never restart. Default 5.
	MaxRestarts int

	// RestartBackoff is the initial delay before a restart; it doubles on
	// each consecutive restart, capped at MaxRestartBackoff. Default 250ms.
	RestartBackoff time.Duration

	// StartTimeout bounds the whole start of one process: spawning it, the
	// go-plugin and session handshakes, its info, its configuration (where
	// a model plugin loads its model) and the first health check. A start
	// that takes longer fails and counts as a crash (restarted like one).
	// Default 30s (DefaultPluginStartTimeout).
	StartTimeout time.Duration

	// Settings holds every other attribute of the block: plugin-specific
	// settings, decoded with DecodePluginSettings against the schema the
	// plugin reports.
	Settings hcl.Body

	// DeclRange is where the block is declared, for diagnostics.
	DeclRange hcl.Range
}

// Model is a model block: an OpenAI model id and the profile serving it.
type Model struct {
	// ID is the block label: the OpenAI model id, unique among models.
	ID string

	// Profile is the DBE profile that serves the model; some plugin serves it.
	Profile string

	// OwnedBy is reported as owned_by in /v1/models. Default "dsmil".
	OwnedBy string

	// Description is free text for listings.
	Description string

	// Vision names the model that reads this model's images (an image
	// companion, such as the multimodal plugin's dsmil-ocr-ppocrv4): the
	// shim has every image of a request transcribed by it first and hands
	// this model the transcriptions as text. "" means images go to this
	// model's plugin as they are.
	Vision string

	// DeclRange is where the block is declared, for diagnostics.
	DeclRange hcl.Range
}

// Tenant is a tenant block: one caller identity and what it may do.
type Tenant struct {
	// Name is the block label, the DBE TENANT_ID: 1-128 bytes of UTF-8
	// without control characters, unique among tenants.
	Name string

	// APIKeySHA256 are the lowercase hex SHA-256 digests of accepted API
	// keys.
	APIKeySHA256 []string

	// APIKeyEnv names an environment variable whose value is also accepted
	// as an API key; empty means none.
	APIKeyEnv string

	// EnvKeySHA256 is the lowercase hex SHA-256 of the key found in
	// APIKeyEnv when the config was loaded; empty if APIKeyEnv is empty or
	// the variable was unset. The plaintext is never kept.
	EnvKeySHA256 string

	// Compartments are the compartments the tenant may use (at least one).
	Compartments []dbe.Compartment

	// Classification is the tenant's classification. Default UNCLAS.
	Classification dbe.Classification

	// ROE is the tenant's rules-of-engagement level. Default ANALYSIS_ONLY.
	ROE dbe.ROELevel

	// Models are the model ids the tenant may use; "*" means all.
	Models []string

	// ClientID is an optional client identifier passed along in claims.
	ClientID string

	// RateLimit limits the tenant; zero fields mean unlimited.
	RateLimit RateLimit

	// DeclRange is where the block is declared, for diagnostics.
	DeclRange hcl.Range
}

// RateLimit is a tenant's rate_limit block. Zero means unlimited.
type RateLimit struct {
	// RequestsPerMinute caps requests per minute.
	RequestsPerMinute int

	// TokensPerMinute caps generated plus prompt tokens per minute.
	TokensPerMinute int

	// MaxConcurrent caps requests in flight at once.
	MaxConcurrent int
}

// Policy is an undecoded policy block, for the policy engine.
type Policy struct {
	// Name is the block label, unique among policies.
	Name string

	// Body is the block's body, not decoded by this package.
	Body hcl.Body

	// DeclRange is where the block is declared, for diagnostics.
	DeclRange hcl.Range
}

// Files returns every parsed file by the name it was read under, for
// WriteDiagnostics.
func (c *Config) Files() map[string]*hcl.File {
	if c == nil {
		return nil
	}
	return c.files
}

// ModelByID returns the model with the given id, or nil.
func (c *Config) ModelByID(id string) *Model {
	for _, m := range c.Models {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// TenantByName returns the tenant with the given name (TENANT_ID), or nil.
func (c *Config) TenantByName(name string) *Tenant {
	for _, t := range c.Tenants {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// PluginByName returns the plugin with the given name, or nil.
func (c *Config) PluginByName(name string) *Plugin {
	for _, p := range c.Plugins {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// PluginsForProfile returns the plugins serving profile, in file order.
func (c *Config) PluginsForProfile(profile string) []*Plugin {
	var out []*Plugin
	for _, p := range c.Plugins {
		for _, pr := range p.Profiles {
			if pr == profile {
				out = append(out, p)
				break
			}
		}
	}
	return out
}

// TenantByKey returns the tenant that accepts key, or nil. It checks every
// tenant's every digest, so its timing does not reveal which tenant matched.
// Validation guarantees a key digest belongs to at most one tenant.
func (c *Config) TenantByKey(key string) *Tenant {
	var found *Tenant
	for _, t := range c.Tenants {
		if t.MatchKey(key) && found == nil {
			found = t
		}
	}
	return found
}

// CompartmentMask returns the tenant's compartments as the DBE
// COMPARTMENT_MASK bitmask.
func (t *Tenant) CompartmentMask() dbe.Compartment {
	var m dbe.Compartment
	for _, c := range t.Compartments {
		m |= c
	}
	return m
}

// AllowsModel reports whether the tenant may use the model id.
func (t *Tenant) AllowsModel(id string) bool {
	for _, m := range t.Models {
		if m == AllModels || m == id {
			return true
		}
	}
	return false
}

// AllModels in Tenant.Models means every model.
const AllModels = "*"
