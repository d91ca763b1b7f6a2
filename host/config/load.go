package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// Option adjusts how Load and Parse reach the outside world; tests and
// fuzzing use it to stay hermetic.
type Option func(*options)

type options struct {
	getenv   func(string) string
	readFile func(string) ([]byte, error)
	glob     func(string) ([]string, error)
}

// WithGetenv sets the function that resolves tenants' api_key_env
// variables. Default os.Getenv; nil keeps the default.
func WithGetenv(getenv func(string) string) Option {
	return func(o *options) {
		if getenv != nil {
			o.getenv = getenv
		}
	}
}

// WithReadFile sets the function that reads the root file (Load only) and
// included files. Default os.ReadFile; nil keeps the default.
func WithReadFile(readFile func(string) ([]byte, error)) Option {
	return func(o *options) {
		if readFile != nil {
			o.readFile = readFile
		}
	}
}

// WithGlob sets the function that expands include patterns containing glob
// metacharacters. Default filepath.Glob; nil keeps the default.
func WithGlob(glob func(string) ([]string, error)) Option {
	return func(o *options) {
		if glob != nil {
			o.glob = glob
		}
	}
}

func newOptions(opts []Option) *options {
	o := &options{getenv: os.Getenv, readFile: os.ReadFile, glob: filepath.Glob}
	for _, opt := range opts {
		opt(o)
	}
	return o
}

// Load reads the config file at path and every file its include globs name,
// fills defaults and validates the result. Diagnostics name files the way
// path names them (a relative path stays relative).
//
// The returned Config is never nil; see Config for what it holds when the
// diagnostics contain errors. Warnings are returned among the diagnostics
// and also kept in Config.Warnings.
func Load(path string, opts ...Option) (*Config, hcl.Diagnostics) {
	o := newOptions(opts)
	src, err := o.readFile(path)
	if err != nil {
		return &Config{Dir: absDir(path), files: map[string]*hcl.File{}}, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Failed to read configuration file",
			Detail:   fmt.Sprintf("Cannot read %s: %s.", path, readErrText(err)),
		}}
	}
	return parse(path, src, o)
}

// Parse is Load for a file already in memory: src is the content of
// filename, which is used for diagnostics and as the base of relative
// paths and include globs (read through the filesystem, or WithReadFile).
func Parse(filename string, src []byte, opts ...Option) (*Config, hcl.Diagnostics) {
	return parse(filename, src, newOptions(opts))
}

// readErrText drops the path an *fs.PathError repeats.
func readErrText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

func absDir(filename string) string {
	dir, err := filepath.Abs(filepath.Dir(filename))
	if err != nil {
		return filepath.Dir(filename)
	}
	return dir
}

// includeSchema pulls the include attribute out of each file before the
// files are merged, so that every file may have its own.
var includeSchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{{Name: "include"}}}

// loader reads the root file and, depth first, the files it includes.
type loader struct {
	opts     *options
	parser   *hclparse.Parser
	seen     map[string]bool // absolute paths already read
	bodies   []hcl.Body      // each file's body minus include, in merge order
	order    map[string]int  // file name → merge position, to sort diagnostics
	includes []string
}

func (l *loader) loadFile(name string, src []byte) hcl.Diagnostics {
	file, diags := l.parser.ParseHCL(src, name)
	l.order[name] = len(l.order)
	if file == nil || file.Body == nil {
		return diags
	}
	diags = append(diags, checkNumbers(file.Body)...)
	content, rest, d := file.Body.PartialContent(includeSchema)
	diags = append(diags, d...)
	l.bodies = append(l.bodies, rest)
	if a := content.Attributes["include"]; a != nil {
		diags = append(diags, l.include(name, a)...)
	}
	return diags
}

func (l *loader) include(from string, a *hcl.Attribute) hcl.Diagnostics {
	var patterns []string
	diags := gohcl.DecodeExpression(a.Expr, nil, &patterns)
	if diags.HasErrors() {
		return diags
	}
	dir := filepath.Dir(from)
	for i, pat := range patterns {
		rng := elemRange(a, i)
		if pat == "" {
			diags = append(diags, errDiag(rng, nil, "Invalid include pattern", "An include pattern must not be empty."))
			continue
		}
		if !filepath.IsAbs(pat) {
			pat = filepath.Join(dir, pat)
		}
		// A plain path must exist; a glob may match nothing (an empty
		// policies/ directory is fine).
		matches := []string{pat}
		if strings.ContainsAny(pat, `*?[\`) {
			var err error
			if matches, err = l.opts.glob(pat); err != nil {
				diags = append(diags, errDiag(rng, nil, "Invalid include pattern", fmt.Sprintf("Pattern %q is malformed: %s.", patterns[i], err)))
				continue
			}
			sort.Strings(matches)
		}
		for _, m := range matches {
			key := m
			if abs, err := filepath.Abs(m); err == nil {
				key = abs
			}
			if l.seen[key] {
				continue
			}
			l.seen[key] = true
			src, err := l.opts.readFile(m)
			if err != nil {
				diags = append(diags, errDiag(rng, nil, "Failed to read included file", fmt.Sprintf("Cannot read %s: %s.", m, readErrText(err))))
				continue
			}
			l.includes = append(l.includes, m)
			diags = append(diags, l.loadFile(m, src)...)
		}
	}
	return diags
}

func parse(filename string, src []byte, o *options) (*Config, hcl.Diagnostics) {
	l := &loader{
		opts:   o,
		parser: hclparse.NewParser(),
		seen:   map[string]bool{},
		order:  map[string]int{},
	}
	if abs, err := filepath.Abs(filename); err == nil {
		l.seen[abs] = true
	}
	dir := absDir(filename)
	diags := l.loadFile(filename, src)

	cfg := defaultConfig(dir)
	cfg.files = l.parser.Files()
	cfg.Includes = l.includes
	if cfg.Includes == nil {
		cfg.Includes = []string{}
	}
	if diags.HasErrors() {
		// Syntax errors and unreadable includes: decoding half-parsed
		// files would only add noise.
		return cfg, sortDiags(diags, l.order)
	}

	var raw rawRoot
	decodeDiags := gohcl.DecodeBody(hcl.MergeBodies(l.bodies), nil, &raw)
	r := &resolver{cfg: cfg, getenv: o.getenv, decodeDiags: decodeDiags}
	r.resolve(&raw)
	diags = append(diags, decodeDiags...)
	diags = append(diags, r.diags...)
	diags = sortDiags(diags, l.order)
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			cfg.Warnings = append(cfg.Warnings, d)
		}
	}
	return cfg, diags
}

// maxNumberExp bounds the binary exponent of number literals (about
// 1e±308, the float64 range).
const maxNumberExp = 1024

// checkNumbers rejects number literals of absurd magnitude, such as
// 1e9999999. Converting such a number to a string (which decoding a string
// attribute or evaluating a template does) prints every digit and takes
// minutes.
func checkNumbers(body hcl.Body) hcl.Diagnostics {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return nil
	}
	return hclsyntax.VisitAll(sb, func(n hclsyntax.Node) hcl.Diagnostics {
		lit, ok := n.(*hclsyntax.LiteralValueExpr)
		if !ok || lit.Val.Type() != cty.Number || !lit.Val.IsKnown() || lit.Val.IsNull() {
			return nil
		}
		if exp := lit.Val.AsBigFloat().MantExp(nil); exp > maxNumberExp || exp < -maxNumberExp {
			return hcl.Diagnostics{errDiag(lit.SrcRange, nil, "Number out of range",
				"This number is too large or too small for a configuration file; keep numbers between 1e-300 and 1e300 in magnitude.")}
		}
		return nil
	})
}

// sortDiags orders diagnostics by file (merge order) and position, so
// output is stable despite map iteration inside hcl and gohcl. Diagnostics
// without a subject come first.
func sortDiags(diags hcl.Diagnostics, order map[string]int) hcl.Diagnostics {
	key := func(d *hcl.Diagnostic) (int, int) {
		if d.Subject == nil {
			return -1, 0
		}
		f, ok := order[d.Subject.Filename]
		if !ok {
			f = len(order)
		}
		return f, d.Subject.Start.Byte
	}
	sort.SliceStable(diags, func(i, j int) bool {
		fi, bi := key(diags[i])
		fj, bj := key(diags[j])
		if fi != fj {
			return fi < fj
		}
		return bi < bj
	})
	return diags
}

// The raw* structs are what gohcl decodes; the resolver turns them into
// the typed Config. Each keeps its body so that attribute ranges can be
// found for diagnostics.

type rawRoot struct {
	Include  []string     `hcl:"include,optional"` // always consumed per file; listed for "Did you mean"
	Shim     *rawShim     `hcl:"shim,block"`
	Router   *rawRouter   `hcl:"router,block"`
	Admin    *rawAdmin    `hcl:"admin,block"`
	Metrics  *rawMetrics  `hcl:"metrics,block"`
	Security *rawSecurity `hcl:"security,block"`
	Plugins  []*rawPlugin `hcl:"plugin,block"`
	Models   []*rawModel  `hcl:"model,block"`
	Tenants  []*rawTenant `hcl:"tenant,block"`
	Policies []*rawPolicy `hcl:"policy,block"`
	Peers    []*rawPeer   `hcl:"peer,block"`
}

type rawShim struct {
	Listen            string   `hcl:"listen,optional"`
	AllowNonLoopback  bool     `hcl:"allow_non_loopback,optional"`
	MaxBodyBytes      string   `hcl:"max_body_bytes,optional"`
	AllowedHosts      []string `hcl:"allowed_hosts,optional"`
	CORSOrigins       []string `hcl:"cors_origins,optional"`
	RequestTimeout    string   `hcl:"request_timeout,optional"`
	KeepaliveInterval string   `hcl:"keepalive_interval,optional"`
	Body              hcl.Body `hcl:",body"`
}

type rawRouter struct {
	Socket         string   `hcl:"socket,optional"`
	SocketMode     string   `hcl:"socket_mode,optional"`
	RequestTimeout string   `hcl:"request_timeout,optional"`
	AgentTimeout   string   `hcl:"agent_timeout,optional"`
	MaxFrameBytes  string   `hcl:"max_frame_bytes,optional"`
	LoadThreshold  float64  `hcl:"load_threshold,optional"`
	MaxInFlight    int      `hcl:"max_in_flight_per_connection,optional"`
	Body           hcl.Body `hcl:",body"`
}

type rawAdmin struct {
	Socket string   `hcl:"socket,optional"`
	Body   hcl.Body `hcl:",body"`
}

type rawMetrics struct {
	Listen           string   `hcl:"listen,optional"`
	AllowNonLoopback bool     `hcl:"allow_non_loopback,optional"`
	Body             hcl.Body `hcl:",body"`
}

type rawSecurity struct {
	IdentityKey       string            `hcl:"identity_key,optional"`
	IdentityBundle    string            `hcl:"identity_bundle,optional"`
	Roots             []string          `hcl:"roots,optional"`
	ClaimIssuers      []string          `hcl:"claim_issuers,optional"`
	Group             string            `hcl:"group,optional"`
	ClaimTTL          string            `hcl:"claim_ttl,optional"`
	PluginIdentityTTL string            `hcl:"plugin_identity_ttl,optional"`
	CrossNodeListen   string            `hcl:"cross_node_listen,optional"`
	NodeBundle        string            `hcl:"node_bundle,optional"`
	ScopedIssuers     []*rawClaimIssuer `hcl:"claim_issuer,block"`
	DefRange          hcl.Range         `hcl:",def_range"`
	Body              hcl.Body          `hcl:",body"`
}

type rawClaimIssuer struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	Key       string    `hcl:"key"`
	Tenants   []string  `hcl:"tenants"`
	Body      hcl.Body  `hcl:",body"`
	DefRange  hcl.Range `hcl:",def_range"`
}

type rawPlugin struct {
	Name           string            `hcl:"name,label"`
	NameRange      hcl.Range         `hcl:"name,label_range"`
	Path           string            `hcl:"path"`
	SHA256         string            `hcl:"sha256,optional"`
	DeviceID       int               `hcl:"device_id"`
	Profiles       []string          `hcl:"profiles"`
	Replicas       int               `hcl:"replicas,optional"`
	MemoryBudget   string            `hcl:"memory_budget,optional"`
	Env            map[string]string `hcl:"env,optional"`
	PassEnv        []string          `hcl:"pass_env,optional"`
	Args           []string          `hcl:"args,optional"`
	HealthInterval string            `hcl:"health_interval,optional"`
	MaxRestarts    int               `hcl:"max_restarts,optional"`
	RestartBackoff string            `hcl:"restart_backoff,optional"`
	StartTimeout   string            `hcl:"start_timeout,optional"`
	Settings       hcl.Body          `hcl:",remain"`
	Body           hcl.Body          `hcl:",body"`
	DefRange       hcl.Range         `hcl:",def_range"`
}

type rawModel struct {
	ID          string    `hcl:"id,label"`
	IDRange     hcl.Range `hcl:"id,label_range"`
	Profile     string    `hcl:"profile"`
	OwnedBy     string    `hcl:"owned_by,optional"`
	Description string    `hcl:"description,optional"`
	Vision      string    `hcl:"vision,optional"`
	Body        hcl.Body  `hcl:",body"`
	DefRange    hcl.Range `hcl:",def_range"`
}

type rawTenant struct {
	Name           string        `hcl:"name,label"`
	NameRange      hcl.Range     `hcl:"name,label_range"`
	APIKeySHA256   []string      `hcl:"api_key_sha256,optional"`
	APIKeyEnv      string        `hcl:"api_key_env,optional"`
	Compartments   []string      `hcl:"compartments"`
	Classification string        `hcl:"classification,optional"`
	ROE            string        `hcl:"roe,optional"`
	Models         []string      `hcl:"models"`
	ClientID       string        `hcl:"client_id,optional"`
	RateLimit      *rawRateLimit `hcl:"rate_limit,block"`
	Body           hcl.Body      `hcl:",body"`
	DefRange       hcl.Range     `hcl:",def_range"`
}

type rawRateLimit struct {
	RequestsPerMinute int      `hcl:"requests_per_minute,optional"`
	TokensPerMinute   int      `hcl:"tokens_per_minute,optional"`
	MaxConcurrent     int      `hcl:"max_concurrent,optional"`
	Body              hcl.Body `hcl:",body"`
}

type rawPolicy struct {
	Name      string    `hcl:"name,label"`
	NameRange hcl.Range `hcl:"name,label_range"`
	Body      hcl.Body  `hcl:",remain"`
	DefRange  hcl.Range `hcl:",def_range"`
}
