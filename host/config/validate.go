package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/hashicorp/hcl/v2"
)

// resolver turns the decoded raw structs into the typed Config, over the
// defaults already in cfg, and validates as it goes. Every problem becomes
// a diagnostic pointing at the offending attribute or label.
type resolver struct {
	cfg         *Config
	getenv      func(string) string
	decodeDiags hcl.Diagnostics // from gohcl; attributes they point into are skipped
	diags       hcl.Diagnostics

	modelProfile  map[*Model]*hcl.Attribute        // for the "profile served" check
	modelVision   map[*Model]*hcl.Attribute        // for the image companion check
	tenantModels  map[*Tenant]*hcl.Attribute       // for the "model exists" check
	issuerTenants map[*ClaimIssuer]*hcl.Attribute  // for the "tenant exists" check
	passEnv       map[*Plugin]map[string]hcl.Range // for the "no tenant's key" check
	keyOwners     map[string]keyOwner              // key digest → first tenant using it
}

type keyOwner struct {
	tenant string
	rng    hcl.Range
}

func (r *resolver) resolve(raw *rawRoot) {
	r.modelProfile = map[*Model]*hcl.Attribute{}
	r.modelVision = map[*Model]*hcl.Attribute{}
	r.tenantModels = map[*Tenant]*hcl.Attribute{}
	r.issuerTenants = map[*ClaimIssuer]*hcl.Attribute{}
	r.passEnv = map[*Plugin]map[string]hcl.Range{}
	r.keyOwners = map[string]keyOwner{}

	r.shim(raw.Shim)
	r.router(raw.Router)
	r.admin(raw.Admin)
	r.metrics(raw.Metrics)
	r.security(raw.Security)

	r.cfg.Plugins = []*Plugin{}
	names := map[string]hcl.Range{}
	for _, rp := range raw.Plugins {
		r.unique("plugin", "Plugin", names, rp.Name, rp.NameRange)
		r.cfg.Plugins = append(r.cfg.Plugins, r.plugin(rp))
	}
	r.cfg.Models = []*Model{}
	names = map[string]hcl.Range{}
	for _, rm := range raw.Models {
		r.unique("model", "Model", names, rm.ID, rm.IDRange)
		r.cfg.Models = append(r.cfg.Models, r.model(rm))
	}
	r.cfg.Tenants = []*Tenant{}
	names = map[string]hcl.Range{}
	for _, rt := range raw.Tenants {
		r.unique("tenant", "Tenant", names, rt.Name, rt.NameRange)
		r.cfg.Tenants = append(r.cfg.Tenants, r.tenant(rt))
	}
	r.cfg.Policies = []*Policy{}
	names = map[string]hcl.Range{}
	for _, rp := range raw.Policies {
		if rp.Name == "" {
			r.errAt(rp.NameRange, &rp.DefRange, "Invalid policy name", "A policy name must not be empty.")
		}
		r.unique("policy", "Policy", names, rp.Name, rp.NameRange)
		r.cfg.Policies = append(r.cfg.Policies, &Policy{Name: rp.Name, Body: rp.Body, DeclRange: rp.DefRange})
	}
	r.peers(raw)

	r.crossCheck()
}

// crossCheck verifies references between blocks.
func (r *resolver) crossCheck() {
	served := map[string]bool{}
	var profiles []string
	for _, p := range r.cfg.Plugins {
		for _, pr := range p.Profiles {
			if !served[pr] {
				served[pr] = true
				profiles = append(profiles, pr)
			}
		}
	}
	for _, p := range r.cfg.Peers { // served by a worker node
		for _, pr := range p.Profiles {
			if !served[pr] {
				served[pr] = true
				profiles = append(profiles, pr)
			}
		}
	}
	sort.Strings(profiles)
	for _, m := range r.cfg.Models {
		a := r.modelProfile[m]
		if a == nil || served[m.Profile] {
			continue
		}
		r.errAttr(a, "Unknown profile", "No plugin serves profile %q, so model %q could never be answered. Profiles served: %s.%s",
			m.Profile, m.ID, quoteList(profiles), didYouMean(m.Profile, profiles))
	}

	var ids []string
	known := map[string]bool{}
	for _, m := range r.cfg.Models {
		ids = append(ids, m.ID)
		known[m.ID] = true
	}
	byID := map[string]*Model{}
	for _, m := range r.cfg.Models {
		byID[m.ID] = m
	}
	for _, m := range r.cfg.Models {
		a := r.modelVision[m]
		if a == nil {
			continue
		}
		switch v := byID[m.Vision]; {
		case v == nil:
			r.errAttr(a, "Unknown model", "Model %q names %q as its vision companion, but no model block declares it. Declared models: %s.%s",
				m.ID, m.Vision, quoteList(ids), didYouMean(m.Vision, ids))
		case v == m:
			r.errAttr(a, "Invalid vision companion", "Model %q cannot be its own vision companion; leave vision out for a model that reads images itself.", m.ID)
		case v.Vision != "":
			r.errAttr(a, "Invalid vision companion", "Model %q's vision companion %q has a companion of its own (%q); a companion must read images itself.",
				m.ID, v.ID, v.Vision)
		}
	}
	var tenants []string
	knownTenant := map[string]bool{}
	for _, t := range r.cfg.Tenants {
		tenants = append(tenants, t.Name)
		knownTenant[t.Name] = true
	}
	for _, ci := range r.cfg.Security.ScopedIssuers {
		a := r.issuerTenants[ci]
		if a == nil {
			continue
		}
		for i, name := range ci.Tenants {
			if !knownTenant[name] {
				r.errAt(elemRange(a, i), nil, "Unknown tenant",
					fmt.Sprintf("claim_issuer %q names tenant %q, but no tenant block declares it. Declared tenants: %s.%s",
						ci.Name, name, quoteList(tenants), didYouMean(name, tenants)))
			}
		}
	}
	keyVars := map[string]string{}
	for _, t := range r.cfg.Tenants {
		if t.APIKeyEnv != "" {
			keyVars[t.APIKeyEnv] = t.Name
		}
	}
	for _, p := range r.cfg.Plugins {
		for _, k := range p.PassEnv {
			if tenant, ok := keyVars[k]; ok {
				r.errAt(r.passEnv[p][k], nil, "Secret in a plugin's environment",
					fmt.Sprintf("%s holds tenant %q's API key (its api_key_env); plugin %q must not receive it.", k, tenant, p.Name))
			}
		}
	}
	for _, t := range r.cfg.Tenants {
		a := r.tenantModels[t]
		if a == nil {
			continue
		}
		for i, id := range t.Models {
			if id == AllModels || known[id] {
				continue
			}
			r.errAt(elemRange(a, i), nil, "Unknown model",
				fmt.Sprintf("Tenant %q names model %q, but no model block declares it. Declared models: %s.%s",
					t.Name, id, quoteList(ids), didYouMean(id, ids)))
		}
	}
}

// unique reports a name already seen in this kind of block.
func (r *resolver) unique(kind, title string, seen map[string]hcl.Range, name string, rng hcl.Range) {
	if prev, dup := seen[name]; dup {
		r.errAt(rng, nil, "Duplicate "+kind+" name",
			fmt.Sprintf("%s %q was already declared at %s. %s names must be unique.", title, name, pos(prev), title))
		return
	}
	seen[name] = rng
}

func (r *resolver) shim(raw *rawShim) {
	s := &r.cfg.Shim
	if raw == nil {
		return
	}
	at := attrsOf(raw.Body, raw)
	if r.ok(at["allow_non_loopback"]) {
		s.AllowNonLoopback = raw.AllowNonLoopback
	}
	listenSet := r.listen("shim", at["listen"], raw.Listen, s.AllowNonLoopback, &s.Listen)
	r.size(at["max_body_bytes"], raw.MaxBodyBytes, &s.MaxBodyBytes)

	if a := at["allowed_hosts"]; r.ok(a) {
		if len(raw.AllowedHosts) == 0 {
			r.errAttr(a, "Empty allowed_hosts", "With no allowed Host header every request would be refused. Omit allowed_hosts to derive it from listen.")
		}
		for i, h := range raw.AllowedHosts {
			if h == "" || strings.ContainsFunc(h, func(c rune) bool { return unicode.IsSpace(c) || unicode.IsControl(c) || strings.ContainsRune("/@,", c) }) {
				r.errAt(elemRange(a, i), nil, "Invalid allowed host",
					fmt.Sprintf("%q is not a Host header value; want host or host:port, such as \"localhost:8001\".", h))
			}
		}
		s.AllowedHosts = raw.AllowedHosts
	} else if listenSet {
		s.AllowedHosts = defaultAllowedHosts(s.Listen)
	}

	if a := at["cors_origins"]; r.ok(a) {
		for i, o := range raw.CORSOrigins {
			rng := elemRange(a, i)
			if o == "*" {
				r.warnAt(rng, nil, "Wildcard CORS origin", "Any web page may call the shim from a browser. List the origins that need access instead.")
				continue
			}
			if reason := originProblem(o); reason != "" {
				r.errAt(rng, nil, "Invalid CORS origin", fmt.Sprintf("%q is not an origin: %s.", o, reason))
			}
		}
		s.CORSOrigins = raw.CORSOrigins
	}
	r.duration(at["request_timeout"], raw.RequestTimeout, 0, &s.RequestTimeout)
	r.duration(at["keepalive_interval"], raw.KeepaliveInterval, 0, &s.KeepaliveInterval)
}

// originProblem explains why o is not a scheme://host[:port] origin, or
// returns "".
func originProblem(o string) string {
	u, err := url.Parse(o)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		return `want scheme://host[:port], such as "http://localhost:3000"`
	case u.Scheme != "http" && u.Scheme != "https":
		return "the scheme must be http or https"
	case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || strings.HasSuffix(o, "/"):
		return "an origin has no user, path, query or fragment"
	}
	return ""
}

func (r *resolver) router(raw *rawRouter) {
	s := &r.cfg.Router
	if raw == nil {
		return
	}
	at := attrsOf(raw.Body, raw)
	r.socket(at["socket"], raw.Socket, &s.Socket)
	if a := at["socket_mode"]; r.ok(a) {
		if m, reason := parseMode(raw.SocketMode); reason != "" {
			r.errAttr(a, "Invalid socket mode", "%q is not a valid mode: %s.", raw.SocketMode, reason)
		} else {
			s.SocketMode = m
		}
	}
	r.duration(at["request_timeout"], raw.RequestTimeout, 0, &s.RequestTimeout)
	r.duration(at["agent_timeout"], raw.AgentTimeout, 0, &s.AgentTimeout)
	r.size(at["max_frame_bytes"], raw.MaxFrameBytes, &s.MaxFrameBytes)
	if a := at["load_threshold"]; r.ok(a) {
		if v := raw.LoadThreshold; !(v > 0 && v <= 1) {
			r.errAttr(a, "Out-of-range load_threshold", "load_threshold is a fraction of a worker's capacity: greater than 0 and at most 1; got %g.", v)
		} else {
			s.LoadThreshold = v
		}
	}
	r.intRange(at["max_in_flight_per_connection"], raw.MaxInFlight, 1, MaxInFlightPerConnection, &s.MaxInFlightPerConnection)
}

func (r *resolver) admin(raw *rawAdmin) {
	if raw == nil {
		return
	}
	r.socket(attrsOf(raw.Body, raw)["socket"], raw.Socket, &r.cfg.Admin.Socket)
}

func (r *resolver) metrics(raw *rawMetrics) {
	s := &r.cfg.Metrics
	if raw == nil {
		return
	}
	at := attrsOf(raw.Body, raw)
	if r.ok(at["allow_non_loopback"]) {
		s.AllowNonLoopback = raw.AllowNonLoopback
	}
	r.listen("metrics", at["listen"], raw.Listen, s.AllowNonLoopback, &s.Listen)
}

func (r *resolver) security(raw *rawSecurity) {
	s := &r.cfg.Security
	if raw == nil {
		return
	}
	s.Configured = true
	at := attrsOf(raw.Body, raw)
	s.IdentityKey = r.filePath(at["identity_key"], raw.IdentityKey)
	s.IdentityBundle = r.filePath(at["identity_bundle"], raw.IdentityBundle)
	if a := at["identity_key"]; a == nil {
		r.errAt(raw.DefRange, nil, "Missing identity_key", "A security block needs identity_key, identity_bundle and roots (see docs/security.md: dsmil-host keys gen, keys bundle).")
	} else if at["identity_bundle"] == nil {
		r.errAttr(a, "Missing identity_bundle", "identity_key needs an identity_bundle beside it (dsmil-host keys bundle).")
	}
	if a := at["roots"]; r.ok(a) {
		if len(raw.Roots) == 0 {
			r.errAttr(a, "No roots", "roots must name at least one operator root public key file.")
		}
		for _, v := range raw.Roots {
			s.Roots = append(s.Roots, resolvePath(r.cfg.Dir, v))
		}
	} else if at["identity_key"] != nil {
		r.errAttr(at["identity_key"], "Missing roots", "A security block needs roots: the operator root public key(s) that sign identity bundles.")
	}
	if a := at["claim_issuers"]; r.ok(a) {
		for _, v := range raw.ClaimIssuers {
			s.ClaimIssuers = append(s.ClaimIssuers, resolvePath(r.cfg.Dir, v))
		}
	}
	names := map[string]hcl.Range{}
	for _, rb := range raw.ScopedIssuers {
		r.unique("claim_issuer", "Claim issuer", names, rb.Name, rb.NameRange)
		ci := &ClaimIssuer{Name: rb.Name, DeclRange: rb.DefRange}
		bat := attrsOf(rb.Body, rb)
		ci.Key = r.filePath(bat["key"], rb.Key)
		if a := bat["tenants"]; r.ok(a) {
			if len(rb.Tenants) == 0 {
				r.errAttr(a, "No tenants", "claim_issuer %q must name the tenants it may mint claim tokens for; for a key trusted for every tenant use claim_issuers.", rb.Name)
			}
			ci.Tenants = rb.Tenants
			r.issuerTenants[ci] = a
		}
		s.ScopedIssuers = append(s.ScopedIssuers, ci)
	}
	if a := at["group"]; r.ok(a) {
		switch raw.Group {
		case "x25519", "p384":
			s.Group = raw.Group
		default:
			r.errAttr(a, "Unknown group", "group must be \"x25519\" or \"p384\"; got %q.", raw.Group)
		}
	}
	if a := at["cross_node_listen"]; r.ok(a) {
		if _, port, err := net.SplitHostPort(raw.CrossNodeListen); err != nil || port == "" {
			r.errAttr(a, "Invalid address", "cross_node_listen must be host:port, such as \"10.0.0.5:7443\"; got %q.", raw.CrossNodeListen)
		} else {
			s.CrossNodeListen = raw.CrossNodeListen
		}
	}
	s.NodeBundle = r.filePath(at["node_bundle"], raw.NodeBundle)
	r.duration(at["claim_ttl"], raw.ClaimTTL, MaxClaimTTL, &s.ClaimTTL)
	r.duration(at["plugin_identity_ttl"], raw.PluginIdentityTTL, MaxPluginIdentityTTL, &s.PluginIdentityTTL)
}

func (r *resolver) plugin(raw *rawPlugin) *Plugin {
	p := defaultPlugin()
	p.Name, p.Settings, p.DeclRange = raw.Name, raw.Settings, raw.DefRange
	if !nameRE.MatchString(raw.Name) {
		r.errAt(raw.NameRange, &raw.DefRange, "Invalid plugin name", fmt.Sprintf("%q is not a valid plugin name. %s", raw.Name, nameRule))
	}
	at := attrsOf(raw.Body, raw)

	if a := at["path"]; r.ok(a) {
		if raw.Path == "" {
			r.errAttr(a, "Empty plugin path", "path must name the plugin binary.")
		} else {
			p.Path = resolvePath(r.cfg.Dir, raw.Path)
		}
	}
	if a := at["sha256"]; r.ok(a) {
		if !isSHA256Hex(raw.SHA256) {
			r.errAttr(a, "Invalid checksum", "sha256 must be 64 hexadecimal digits (the SHA-256 of the plugin binary, as printed by sha256sum); got %d characters%s.",
				len(raw.SHA256), nonHexNote(raw.SHA256))
		} else {
			p.SHA256 = strings.ToLower(raw.SHA256)
		}
	}
	if a := at["device_id"]; r.ok(a) {
		r.intRange(a, raw.DeviceID, 0, dbe.MaxDeviceID, &p.DeviceID)
	}
	if a := at["profiles"]; r.ok(a) {
		if len(raw.Profiles) == 0 {
			r.errAttr(a, "No profiles", "Plugin %q must serve at least one profile.", raw.Name)
		}
		seen := map[string]hcl.Range{}
		for i, pr := range raw.Profiles {
			rng := elemRange(a, i)
			if !nameRE.MatchString(pr) {
				r.errAt(rng, nil, "Invalid profile name", fmt.Sprintf("%q is not a valid profile name. %s", pr, nameRule))
			}
			if prev, dup := seen[pr]; dup {
				r.errAt(rng, nil, "Duplicate profile", fmt.Sprintf("Profile %q is already listed at %s.", pr, pos(prev)))
				continue
			}
			seen[pr] = rng
			p.Profiles = append(p.Profiles, pr)
		}
	}
	if p.Profiles == nil {
		p.Profiles = []string{}
	}
	if a := at["replicas"]; r.ok(a) {
		r.intRange(a, raw.Replicas, 1, MaxReplicas, &p.Replicas)
	}
	r.size(at["memory_budget"], raw.MemoryBudget, &p.MemoryBudget)
	if a := at["env"]; r.ok(a) {
		keys := make([]string, 0, len(raw.Env))
		for k := range raw.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if reason := envNameProblem(k); reason != "" {
				r.errAttr(a, "Invalid environment variable", "%q cannot be an environment variable name: %s.", k, reason)
			} else if reservedPluginEnv(k) {
				r.errAttr(a, "Reserved environment variable", "%s is set by dsmil-host itself for every plugin process.", k)
			} else if strings.ContainsRune(raw.Env[k], 0) {
				r.errAttr(a, "Invalid environment variable", "The value of %s contains a NUL byte.", k)
			} else {
				p.Env[k] = raw.Env[k]
			}
		}
	}
	if a := at["pass_env"]; r.ok(a) {
		seen := map[string]hcl.Range{}
		for i, k := range raw.PassEnv {
			rng := elemRange(a, i)
			switch reason := envNameProblem(k); {
			case reason != "":
				r.errAt(rng, nil, "Invalid environment variable", fmt.Sprintf("%q cannot be an environment variable name: %s.", k, reason))
			case reservedPluginEnv(k):
				r.errAt(rng, nil, "Reserved environment variable", fmt.Sprintf("%s is set by dsmil-host itself for every plugin process.", k))
			case seen[k] != hcl.Range{}:
				r.errAt(rng, nil, "Duplicate environment variable", fmt.Sprintf("%s is already listed at %s.", k, pos(seen[k])))
			default:
				seen[k] = rng
				p.PassEnv = append(p.PassEnv, k)
			}
		}
		r.passEnv[p] = seen
	}
	if a := at["args"]; r.ok(a) {
		for i, arg := range raw.Args {
			if strings.ContainsRune(arg, 0) {
				r.errAt(elemRange(a, i), nil, "Invalid argument", "A command-line argument cannot contain a NUL byte.")
			}
		}
		p.Args = append(p.Args, raw.Args...)
	}
	r.duration(at["health_interval"], raw.HealthInterval, 0, &p.HealthInterval)
	if a := at["max_restarts"]; r.ok(a) {
		if raw.MaxRestarts < 0 {
			r.errAttr(a, "Out-of-range max_restarts", "max_restarts must be 0 (never restart) or more; got %d.", raw.MaxRestarts)
		} else {
			p.MaxRestarts = raw.MaxRestarts
		}
	}
	r.duration(at["restart_backoff"], raw.RestartBackoff, MaxRestartBackoff, &p.RestartBackoff)
	r.duration(at["start_timeout"], raw.StartTimeout, 0, &p.StartTimeout)
	return p
}

const nameRule = "Names are 1 to 64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit."

// nonHexNote adds ", including non-hex characters" when s has any.
func nonHexNote(s string) string {
	if strings.Trim(s, "0123456789abcdefABCDEF") != "" {
		return ", including non-hexadecimal characters"
	}
	return ""
}

func (r *resolver) model(raw *rawModel) *Model {
	m := defaultModel()
	m.ID, m.DeclRange = raw.ID, raw.DefRange
	if raw.ID == "" || len(raw.ID) > MaxModelIDBytes || !modelIDRE.MatchString(raw.ID) {
		r.errAt(raw.IDRange, &raw.DefRange, "Invalid model id",
			fmt.Sprintf("%q is not a valid model id. Model ids are 1 to %d characters of letters, digits, '/', ':', '.', '_' and '-'.", raw.ID, MaxModelIDBytes))
	}
	at := attrsOf(raw.Body, raw)
	if a := at["profile"]; r.ok(a) {
		m.Profile = raw.Profile
		r.modelProfile[m] = a
	}
	if r.ok(at["owned_by"]) {
		m.OwnedBy = raw.OwnedBy
	}
	if r.ok(at["description"]) {
		m.Description = raw.Description
	}
	if a := at["vision"]; r.ok(a) {
		m.Vision = raw.Vision
		r.modelVision[m] = a
	}
	return m
}

func (r *resolver) tenant(raw *rawTenant) *Tenant {
	t := defaultTenant()
	t.Name, t.DeclRange = raw.Name, raw.DefRange
	if reason := tenantNameProblem(raw.Name); reason != "" {
		r.errAt(raw.NameRange, &raw.DefRange, "Invalid tenant name",
			fmt.Sprintf("A tenant name (TENANT_ID) is 1 to %d bytes of UTF-8 without control characters; %s.", MaxTenantNameBytes, reason))
	}
	at := attrsOf(raw.Body, raw)

	keysBroken := false
	if a := at["api_key_sha256"]; r.ok(a) {
		for i, d := range raw.APIKeySHA256 {
			rng := elemRange(a, i)
			if !isSHA256Hex(d) {
				keysBroken = true
				r.errAt(rng, nil, "Invalid API key digest",
					fmt.Sprintf("api_key_sha256 holds SHA-256 digests of API keys: 64 hexadecimal digits; this one has %d characters%s. If it is a key itself, replace it with the output of: printf %%s \"$KEY\" | sha256sum", len(d), nonHexNote(d)))
				continue
			}
			d = strings.ToLower(d)
			r.claimKey(t.Name, d, rng, nil)
			t.APIKeySHA256 = append(t.APIKeySHA256, d)
		}
	} else if at["api_key_sha256"] != nil {
		keysBroken = true
	}
	if a := at["api_key_env"]; r.ok(a) {
		if reason := envNameProblem(raw.APIKeyEnv); reason != "" {
			keysBroken = true
			r.errAttr(a, "Invalid environment variable", "%q cannot be an environment variable name: %s.", raw.APIKeyEnv, reason)
		} else {
			t.APIKeyEnv = raw.APIKeyEnv
			if key := r.getenv(raw.APIKeyEnv); key != "" {
				t.EnvKeySHA256 = HashKey(key)
				r.claimKey(t.Name, t.EnvKeySHA256, a.Expr.Range(), &a.Range)
			} else {
				r.warnAttr(a, "API key variable not set", "Environment variable %s is unset or empty, so tenant %q accepts no key from it.", raw.APIKeyEnv, raw.Name)
			}
		}
	} else if at["api_key_env"] != nil {
		keysBroken = true
	}
	if !keysBroken && len(t.APIKeySHA256) == 0 && t.APIKeyEnv == "" {
		r.errAt(raw.NameRange, &raw.DefRange, "Tenant has no API key",
			fmt.Sprintf("Tenant %q accepts no API key. Set api_key_sha256 (SHA-256 hex digests of the keys), api_key_env (an environment variable holding a key), or both.", raw.Name))
	}

	if a := at["compartments"]; r.ok(a) {
		if len(raw.Compartments) == 0 {
			r.errAttr(a, "No compartments", "Tenant %q must have at least one compartment: %s.", raw.Name, quoteList(compartmentNames))
		}
		have := map[dbe.Compartment]bool{}
		for i, s := range raw.Compartments {
			rng := elemRange(a, i)
			c, ok := dbe.CompartmentByName(s)
			switch {
			case !ok:
				r.errAt(rng, nil, "Invalid compartment",
					fmt.Sprintf("%q is not a compartment; valid values are %s.%s", s, quoteList(compartmentNames), didYouMean(s, compartmentNames)))
				continue
			case c == dbe.CompartmentKINETIC:
				r.warnAt(rng, nil, "KINETIC compartment is always denied",
					"The policy engine denies every KINETIC request at Layer 7, so listing it grants nothing.")
			}
			if !have[c] {
				have[c] = true
				t.Compartments = append(t.Compartments, c)
			}
		}
	}
	if t.Compartments == nil {
		t.Compartments = []dbe.Compartment{}
	}
	if a := at["classification"]; r.ok(a) {
		c, ok := dbe.ClassificationByName(raw.Classification)
		switch {
		case !ok:
			r.errAttr(a, "Invalid classification", "%q is not a classification; valid values are %s.%s",
				raw.Classification, quoteList(classificationNames), didYouMean(raw.Classification, classificationNames))
		case c == dbe.Exec:
			r.warnAttr(a, "EXEC classification is always denied", "The policy engine denies EXEC requests at Layer 7; they require Layer 9 authorization.")
			fallthrough
		default:
			t.Classification = c
		}
	}
	if a := at["roe"]; r.ok(a) {
		if v, ok := dbe.ROELevelByName(raw.ROE); !ok {
			r.errAttr(a, "Invalid ROE level", "%q is not an ROE level; valid values are %s.%s", raw.ROE, quoteList(roeNames), didYouMean(raw.ROE, roeNames))
		} else {
			t.ROE = v
		}
	}
	if a := at["models"]; r.ok(a) {
		if len(raw.Models) == 0 {
			r.errAttr(a, "No models", "Tenant %q may use no model. List model ids, or [\"*\"] for all.", raw.Name)
		}
		t.Models = raw.Models
		r.tenantModels[t] = a
	}
	if t.Models == nil {
		t.Models = []string{}
	}
	if r.ok(at["client_id"]) {
		t.ClientID = raw.ClientID
	}
	if rl := raw.RateLimit; rl != nil {
		rat := attrsOf(rl.Body, rl)
		r.intRange(rat["requests_per_minute"], rl.RequestsPerMinute, 0, -1, &t.RateLimit.RequestsPerMinute)
		r.intRange(rat["tokens_per_minute"], rl.TokensPerMinute, 0, -1, &t.RateLimit.TokensPerMinute)
		r.intRange(rat["max_concurrent"], rl.MaxConcurrent, 0, -1, &t.RateLimit.MaxConcurrent)
	}
	return t
}

// claimKey records that tenant accepts the key with digest d, reporting a
// digest another tenant already accepts: a key must identify one tenant.
func (r *resolver) claimKey(tenant, d string, rng hcl.Range, ctx *hcl.Range) {
	prev, taken := r.keyOwners[d]
	switch {
	case !taken:
		r.keyOwners[d] = keyOwner{tenant: tenant, rng: rng}
	case prev.tenant != tenant:
		r.errAt(rng, ctx, "API key shared by two tenants",
			fmt.Sprintf("Tenant %q already accepts this key (%s); a key must identify exactly one tenant.", prev.tenant, pos(prev.rng)))
	}
}

// ok reports whether a is present and gohcl decoded it without error, so
// its raw value is meaningful.
func (r *resolver) ok(a *hcl.Attribute) bool {
	if a == nil {
		return false
	}
	for _, d := range r.decodeDiags {
		if d.Severity == hcl.DiagError && d.Subject != nil && within(a.Range, *d.Subject) {
			return false
		}
	}
	return true
}

// listen validates a listen address attribute and stores it; it reports
// whether it stored one.
func (r *resolver) listen(block string, a *hcl.Attribute, v string, allow bool, dst *string) bool {
	if !r.ok(a) {
		return false
	}
	loopback, reason := parseListen(v)
	switch {
	case reason != "":
		r.errAttr(a, "Invalid listen address", "%q is not a valid listen address: %s.", v, reason)
		return false
	case !loopback && !allow:
		r.errAttr(a, "Non-loopback listen address",
			"The %s block's listen address %q is reachable from other machines. DSMIL L7 listens on loopback only unless allow_non_loopback = true is set in the %s block.", block, v, block)
		return false
	case !loopback:
		r.warnAttr(a, "Non-loopback listen address",
			"The %s block's listen address %q is reachable from other machines (allowed by allow_non_loopback). Make sure a firewall and API keys protect it.", block, v)
	}
	*dst = v
	return true
}

// socket validates a Unix socket path attribute and stores it resolved.
func (r *resolver) socket(a *hcl.Attribute, v string, dst *string) {
	if !r.ok(a) {
		return
	}
	if v == "" || strings.ContainsRune(v, 0) {
		r.errAttr(a, "Invalid socket path", "socket must be a file path, such as \"run/router.sock\".")
		return
	}
	*dst = resolvePath(r.cfg.Dir, v)
}

// size validates a positive size attribute and stores it in bytes.
func (r *resolver) size(a *hcl.Attribute, v string, dst *int64) {
	if !r.ok(a) {
		return
	}
	n, err := sdk.ParseSize(v)
	var reason string
	if se := (*sdk.SizeError)(nil); errors.As(err, &se) {
		reason = se.Reason
	} else if n <= 0 {
		reason = "must be greater than zero"
	}
	if reason != "" {
		r.errAttr(a, "Invalid size", "%s = %q is not a valid size: %s.", a.Name, v, reason)
		return
	}
	*dst = n
}

// duration validates a positive duration attribute, at most max when max
// is not 0, and stores it.
func (r *resolver) duration(a *hcl.Attribute, v string, max time.Duration, dst *time.Duration) {
	if !r.ok(a) {
		return
	}
	d, reason := parseDuration(v)
	if reason == "" && max > 0 && d > max {
		reason = fmt.Sprintf("must be at most %s", max)
	}
	if reason != "" {
		r.errAttr(a, "Invalid duration", "%s = %q is not a valid duration: %s.", a.Name, v, reason)
		return
	}
	*dst = d
}

// filePath validates a file path attribute and returns it resolved against
// the configuration's directory, or "" when absent or invalid.
func (r *resolver) filePath(a *hcl.Attribute, v string) string {
	if !r.ok(a) {
		return ""
	}
	if v == "" || strings.ContainsRune(v, 0) {
		r.errAttr(a, "Invalid path", "%s must be a file path.", a.Name)
		return ""
	}
	return resolvePath(r.cfg.Dir, v)
}

// intRange validates lo <= v <= hi (no upper bound when hi < lo) and stores
// v.
func (r *resolver) intRange(a *hcl.Attribute, v, lo, hi int, dst *int) {
	if !r.ok(a) {
		return
	}
	switch {
	case hi < lo && v < lo:
		r.errAttr(a, "Out-of-range "+a.Name, "%s must be %d or more; got %d.", a.Name, lo, v)
	case hi >= lo && (v < lo || v > hi):
		r.errAttr(a, "Out-of-range "+a.Name, "%s must be from %d to %d; got %d.", a.Name, lo, hi, v)
	default:
		*dst = v
	}
}

func (r *resolver) errAttr(a *hcl.Attribute, summary, format string, args ...any) {
	r.diags = append(r.diags, errDiag(a.Expr.Range(), &a.Range, summary, fmt.Sprintf(format, args...)))
}

func (r *resolver) warnAttr(a *hcl.Attribute, summary, format string, args ...any) {
	r.diags = append(r.diags, warnDiag(a.Expr.Range(), &a.Range, summary, fmt.Sprintf(format, args...)))
}

func (r *resolver) errAt(rng hcl.Range, ctx *hcl.Range, summary, detail string) {
	r.diags = append(r.diags, errDiag(rng, ctx, summary, detail))
}

func (r *resolver) warnAt(rng hcl.Range, ctx *hcl.Range, summary, detail string) {
	r.diags = append(r.diags, warnDiag(rng, ctx, summary, detail))
}

// pos renders a range's start as file:line:col.
func pos(rng hcl.Range) string {
	return fmt.Sprintf("%s:%d:%d", rng.Filename, rng.Start.Line, rng.Start.Column)
}
