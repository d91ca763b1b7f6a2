package config

import (
	"io/fs"
	"net"
	"net/netip"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
)

// Defaults and limits. Every default of the file is filled in from here.
const (
	DefaultShimListen            = "127.0.0.1:8001"
	DefaultShimMaxBodyBytes      = 4 << 20
	DefaultShimRequestTimeout    = 120 * time.Second
	DefaultShimKeepaliveInterval = 15 * time.Second

	DefaultRouterSocket         = "run/router.sock"
	DefaultRouterSocketMode     = fs.FileMode(0o660)
	DefaultRouterRequestTimeout = 60 * time.Second
	DefaultAgentTimeout         = 10 * time.Minute
	DefaultRouterMaxFrameBytes  = 16 << 20
	DefaultRouterLoadThreshold  = 0.9
	// DefaultRouterMaxInFlight is the default max_in_flight_per_connection,
	// MaxInFlightPerConnection its largest value.
	DefaultRouterMaxInFlight = 1024
	MaxInFlightPerConnection = 1 << 20

	DefaultAdminSocket = "run/admin.sock"
	// AdminSocketMode is the fixed permission mode of the admin socket.
	AdminSocketMode = fs.FileMode(0o600)

	DefaultMetricsListen = "127.0.0.1:9108"

	DefaultPluginReplicas       = 1
	DefaultPluginHealthInterval = 5 * time.Second
	DefaultPluginMaxRestarts    = 5
	DefaultPluginRestartBackoff = 250 * time.Millisecond
	DefaultPluginStartTimeout   = 30 * time.Second
	// The plugin manager's own settings, not set in dsmil.hcl: how long one
	// health check may take, how many failed checks in a row restart an
	// instance, and how many requests in flight count as an instance's full
	// load.
	DefaultPluginHealthTimeout      = 2 * time.Second
	DefaultPluginUnhealthyThreshold = 3
	DefaultPluginMaxInFlight        = 64

	DefaultModelOwnedBy = "dsmil"

	DefaultSecurityGroup     = "x25519"
	DefaultClaimTTL          = time.Hour
	DefaultPluginIdentityTTL = 24 * time.Hour
	// MaxClaimTTL and MaxPluginIdentityTTL are the largest claim_ttl and
	// plugin_identity_ttl.
	MaxClaimTTL          = 7 * 24 * time.Hour
	MaxPluginIdentityTTL = 30 * 24 * time.Hour

	DefaultTenantClassification = dbe.Unclas
	DefaultTenantROE            = dbe.AnalysisOnly

	// MaxReplicas is the most processes one plugin may run.
	MaxReplicas = 64
	// MaxRestartBackoff caps a plugin's doubling restart backoff.
	MaxRestartBackoff = 30 * time.Second
	// MaxTenantNameBytes is the longest TENANT_ID.
	MaxTenantNameBytes = 128
	// MaxModelIDBytes is the longest model id.
	MaxModelIDBytes = 256
)

// defaultConfig returns a Config holding every top-level default, with paths
// resolved against dir.
func defaultConfig(dir string) *Config {
	return &Config{
		Dir: dir,
		Shim: ShimConfig{
			Listen:            DefaultShimListen,
			MaxBodyBytes:      DefaultShimMaxBodyBytes,
			AllowedHosts:      defaultAllowedHosts(DefaultShimListen),
			CORSOrigins:       []string{},
			RequestTimeout:    DefaultShimRequestTimeout,
			KeepaliveInterval: DefaultShimKeepaliveInterval,
		},
		Router: RouterConfig{
			Socket:                   resolvePath(dir, DefaultRouterSocket),
			SocketMode:               DefaultRouterSocketMode,
			RequestTimeout:           DefaultRouterRequestTimeout,
			AgentTimeout:             DefaultAgentTimeout,
			MaxFrameBytes:            DefaultRouterMaxFrameBytes,
			LoadThreshold:            DefaultRouterLoadThreshold,
			MaxInFlightPerConnection: DefaultRouterMaxInFlight,
		},
		Admin:   AdminConfig{Socket: resolvePath(dir, DefaultAdminSocket)},
		Metrics: MetricsConfig{Listen: DefaultMetricsListen},
		Security: SecurityConfig{
			Group:             DefaultSecurityGroup,
			ClaimTTL:          DefaultClaimTTL,
			PluginIdentityTTL: DefaultPluginIdentityTTL,
		},
	}
}

// defaultPlugin returns a Plugin holding every plugin default.
func defaultPlugin() *Plugin {
	return &Plugin{
		Replicas:       DefaultPluginReplicas,
		Env:            map[string]string{},
		Args:           []string{},
		HealthInterval: DefaultPluginHealthInterval,
		MaxRestarts:    DefaultPluginMaxRestarts,
		RestartBackoff: DefaultPluginRestartBackoff,
		StartTimeout:   DefaultPluginStartTimeout,
	}
}

// defaultModel returns a Model holding every model default.
func defaultModel() *Model {
	return &Model{OwnedBy: DefaultModelOwnedBy}
}

// defaultTenant returns a Tenant holding every tenant default.
func defaultTenant() *Tenant {
	return &Tenant{
		APIKeySHA256:   []string{},
		Classification: DefaultTenantClassification,
		ROE:            DefaultTenantROE,
	}
}

// defaultAllowedHosts derives the shim's Host-header allowlist from its
// listen address: the address itself, plus the other loopback spellings of
// it when it is loopback or unspecified (all interfaces). listen is assumed
// valid; an invalid one yields nil.
func defaultAllowedHosts(listen string) []string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	loop4 := net.JoinHostPort("127.0.0.1", port)
	loop6 := net.JoinHostPort("::1", port)
	local := net.JoinHostPort("localhost", port)
	if host == "" {
		return []string{loop4, local, loop6}
	}
	if host == "localhost" {
		return []string{local, loop4, loop6}
	}
	out := []string{net.JoinHostPort(host, port)}
	if a, err := netip.ParseAddr(host); err == nil {
		switch {
		case a.IsUnspecified():
			out = append(out, loop4, local, loop6)
		case a.IsLoopback():
			out = append(out, local)
		}
	}
	return dedupe(out)
}

func dedupe(in []string) []string {
	seen := make(map[string]bool, len(in))
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}
