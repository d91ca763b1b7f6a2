package policy

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// builtinPrefix starts every built-in rule name; custom rules may not use it.
const builtinPrefix = "builtin."

// Built-in rule names, in evaluation order (RuleGrant last).
const (
	RuleKinetic        = "builtin.kinetic"        // KINETIC compartment: always denied
	RuleExec           = "builtin.exec"           // EXEC classification: always denied
	RuleTenant         = "builtin.tenant"         // the tenant must be configured
	RuleCompartments   = "builtin.compartments"   // requested ⊆ tenant's compartments
	RuleClassification = "builtin.classification" // tenant's classification dominates
	RuleROE            = "builtin.roe"            // ROE_LEVEL equals the tenant's
	RuleOperation      = "builtin.operation"      // the ROE allows the operation
	RuleProfile        = "builtin.profile"        // the profile is in the tenant's allow-list
	RuleTraining       = "builtin.training"       // TRAINING: development profiles only
	RuleModel          = "builtin.model"          // a named model is the tenant's and the profile's
	RuleGrant          = "builtin.grant"          // implicit allow: within the tenant's grant
)

// Outcomes recorded in a trail.
const (
	OutcomePass    = "pass"     // a built-in check passed
	OutcomeDeny    = "deny"     // the rule denied
	OutcomeAllow   = "allow"    // the rule allowed
	OutcomeNoMatch = "no match" // a custom rule's condition was false
	OutcomeError   = "error"    // a custom rule failed to evaluate (denied)
)

// Step is one rule evaluated for a decision.
type Step struct {
	// Rule is the rule's name.
	Rule string
	// Outcome is one of the Outcome constants.
	Outcome string
	// Detail explains an OutcomeError.
	Detail string
}

// Decision is the engine's verdict on one request.
type Decision struct {
	// Allow is true when the request may be served.
	Allow bool
	// Rule names the deciding rule.
	Rule string
	// Reason explains the decision; it is safe to show the client.
	Reason string
	// Trail lists the rules evaluated, in order (only when asked for).
	Trail []Step
}

// Err returns nil for an allow, else the POLICY_DENIED *mux.Error.
func (d *Decision) Err() error {
	if d.Allow {
		return nil
	}
	return &mux.Error{Code: dbe.CodePolicyDenied, Rule: d.Rule, Message: d.Reason}
}

// TrailString renders the trail as "rule=outcome rule=outcome ...".
func (d *Decision) TrailString() string {
	var b strings.Builder
	for i, s := range d.Trail {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s.Rule)
		b.WriteByte('=')
		b.WriteString(strings.ReplaceAll(s.Outcome, " ", "-"))
	}
	return b.String()
}

// Result returns the decision as an L7_POLICY_RESULT payload.
func (d *Decision) Result() *l7v1.L7PolicyResult {
	res := &l7v1.L7PolicyResult{Allow: d.Allow, Rule: d.Rule, Reason: d.Reason}
	for _, s := range d.Trail {
		res.Trail = append(res.Trail, s.Rule+": "+s.Outcome)
	}
	return res
}

// RuleInfo describes a loaded custom rule.
type RuleInfo struct {
	// Name is the policy block's label.
	Name string
	// Description is the block's description, if any.
	Description string
	// Effect is "allow" or "deny".
	Effect string
	// Priority orders the rules, highest first.
	Priority int
	// DeclRange is where the block is declared.
	DeclRange hcl.Range
}

// Engine is the compiled policy. It is immutable and safe for concurrent
// use.
type Engine struct {
	log         hclog.Logger
	tenants     map[string]*grant
	models      map[string]string // model id → profile
	devProfiles map[string]bool
	served      map[string]bool // profiles some plugin serves
	rules       []*rule         // custom rules in evaluation order
	strs        map[string]cty.Value
	names       map[string]string // interned tenant, profile, model and operation names
	memo        memo
}

// Engine implements router.Policy and router.PolicyChecker (the dry run of
// L7_POLICY_CHECK).
var (
	_ router.Policy        = (*Engine)(nil)
	_ router.PolicyChecker = (*Engine)(nil)
)

// grant is one tenant's configured entitlements.
type grant struct {
	name        string
	mask        dbe.Compartment
	class       dbe.Classification
	roe         dbe.ROELevel
	allModels   bool            // models = ["*"]: every model, every profile
	models      map[string]bool // model ids
	profiles    map[string]bool // profiles of those models
	allowReason string
	nameVal     cty.Value // tenant name, for request.tenant
	val         cty.Value // the `tenant` object
}

// New compiles cfg's tenants, models and policy blocks. A nil logger
// discards the decision log. The diagnostics point into the policy files;
// print them with config.WriteDiagnostics(w, cfg.Files(), diags). When they
// contain errors the Engine is nil.
func New(cfg *config.Config, logger hclog.Logger) (*Engine, hcl.Diagnostics) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	e := &Engine{
		log:         logger,
		tenants:     map[string]*grant{},
		models:      map[string]string{},
		devProfiles: map[string]bool{},
		strs:        map[string]cty.Value{},
		names:       map[string]string{OpChat: OpChat, OpCompletion: OpCompletion, OpAgent: OpAgent, OpEmbed: OpEmbed},
	}
	served := map[string]bool{}
	e.served = served
	for _, p := range cfg.Plugins {
		for _, pr := range p.Profiles {
			served[pr] = true
			e.strs[pr] = cty.StringVal(pr)
			e.names[pr] = pr
		}
	}
	for _, m := range cfg.Models {
		e.models[m.ID] = m.Profile
		e.strs[m.ID] = cty.StringVal(m.ID)
		e.names[m.ID] = m.ID
	}
	for _, t := range cfg.Tenants {
		e.tenants[t.Name] = e.newGrant(t)
		e.names[t.Name] = t.Name
	}

	var diags hcl.Diagnostics
	for i, p := range cfg.Policies {
		c, d := compile(p, i, served)
		diags = append(diags, d...)
		if c.rule != nil {
			e.rules = append(e.rules, c.rule)
		}
		for _, pr := range c.devProfiles {
			e.devProfiles[pr] = true
		}
	}
	if diags.HasErrors() {
		return nil, diags
	}
	sort.SliceStable(e.rules, func(i, j int) bool {
		a, b := e.rules[i], e.rules[j]
		if a.priority != b.priority {
			return a.priority > b.priority
		}
		if a.effect != b.effect {
			return a.effect == effectDeny
		}
		return a.order < b.order
	})
	return e, diags
}

func (e *Engine) newGrant(t *config.Tenant) *grant {
	g := &grant{
		name:        t.Name,
		mask:        t.CompartmentMask(),
		class:       t.Classification,
		roe:         t.ROE,
		models:      map[string]bool{},
		profiles:    map[string]bool{},
		allowReason: fmt.Sprintf("allowed: within tenant %q's grant", t.Name),
		nameVal:     cty.StringVal(t.Name),
	}
	for _, id := range t.Models {
		if id == config.AllModels {
			g.allModels = true
			continue
		}
		g.models[id] = true
		if pr, ok := e.models[id]; ok {
			g.profiles[pr] = true
		}
	}
	g.val = cty.ObjectVal(map[string]cty.Value{
		"name":           g.nameVal,
		"compartments":   compartmentList(g.mask),
		"classification": cty.StringVal(g.class.String()),
		"roe":            cty.StringVal(g.roe.String()),
		"models":         stringList(t.Models),
		"client_id":      cty.StringVal(t.ClientID),
	})
	return g
}

// DevProfiles returns the profiles declared as development profiles,
// sorted.
func (e *Engine) DevProfiles() []string {
	out := make([]string, 0, len(e.devProfiles))
	for p := range e.devProfiles {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// Rules returns the enabled custom rules in evaluation order.
func (e *Engine) Rules() []RuleInfo {
	out := make([]RuleInfo, len(e.rules))
	for i, r := range e.rules {
		out[i] = RuleInfo{Name: r.name, Description: r.description, Effect: r.effect.String(), Priority: r.priority, DeclRange: r.rng}
	}
	return out
}

// Decide implements router.Policy: nil to allow, a *mux.Error with code
// POLICY_DENIED (Rule and Message set) to deny, or one with code
// INVALID_REQUEST for a frame that cannot be judged. It logs one decision
// line.
func (e *Engine) Decide(_ context.Context, f *dbe.Frame) error {
	r, err := requestFromFrame(f, e.intern)
	if err != nil {
		tenant, _ := f.TenantID()
		e.log.Info("policy decision", "tenant", tenant, "decision", "deny", "rule", "builtin.request", "error", err)
		return &mux.Error{Code: dbe.CodeInvalidRequest, Message: err.Error()}
	}
	verbose := r.ROE == dbe.Training
	d := e.eval(&r, verbose || e.log.IsTrace())
	e.logDecision(&r, &d, verbose)
	return d.Err()
}

// Check implements router.PolicyChecker, the dry run the router answers an
// L7_POLICY_CHECK with: it decides the request f describes (see
// RequestFromFrame) with the full trail and returns the L7_POLICY_RESULT
// payload; a deny is a result, not an error. A frame that cannot be judged
// is a *mux.Error with code INVALID_REQUEST. A dry run serves nothing, so
// it is not in the decision log: it logs one "policy check" line at Debug
// (a failing custom rule is still logged at Error).
func (e *Engine) Check(_ context.Context, f *dbe.Frame) (*l7v1.L7PolicyResult, error) {
	r, err := requestFromFrame(f, e.intern)
	if err != nil {
		return nil, &mux.Error{Code: dbe.CodeInvalidRequest, Message: err.Error()}
	}
	d := e.eval(&r, true)
	if e.log.IsDebug() {
		e.log.Debug("policy check", "tenant", r.Tenant, "profile", r.Profile, "operation", r.Operation,
			"allow", d.Allow, "rule", d.Rule, "request_id", dbe.FormatUUID(r.ID))
	}
	return d.Result(), nil
}

// Evaluate decides r and returns the decision with its full trail. It does
// not log the decision (a failing custom rule is still logged).
func (e *Engine) Evaluate(r Request) Decision {
	return e.eval(&r, true)
}

// logDecision writes the one decision line every request gets, at Info;
// TRAINING lines (and every line at Trace) carry the request's security
// attributes and the trail. It never logs prompt text.
func (e *Engine) logDecision(r *Request, d *Decision, verbose bool) {
	if !e.log.IsInfo() {
		return
	}
	decision := "allow"
	if !d.Allow {
		decision = "deny"
	}
	args := make([]any, 0, 24)
	args = append(args, "tenant", r.Tenant, "profile", r.Profile, "operation", r.Operation,
		"decision", decision, "rule", d.Rule, "request_id", dbe.FormatUUID(r.ID))
	if !d.Allow {
		args = append(args, "reason", d.Reason)
	}
	if verbose || e.log.IsTrace() {
		args = append(args, "model", r.Model, "compartments", r.Compartments.String(),
			"classification", r.Classification.String(), "roe", r.ROE.String(),
			"device_dst", r.DeviceDst, "trail", d.TrailString())
	}
	e.log.Info("policy decision", args...)
}

// eval runs the built-in checks, then the custom rules, then the implicit
// allow. record asks for the trail.
func (e *Engine) eval(r *Request, record bool) Decision {
	var d Decision
	if record {
		d.Trail = make([]Step, 0, len(builtins)+len(e.rules)+1)
	}
	g := e.tenants[r.Tenant]
	for i, name := range builtins {
		if reason := e.builtin(i, r, g); reason != "" {
			if record {
				d.Trail = append(d.Trail, Step{Rule: name, Outcome: OutcomeDeny})
			}
			d.Rule, d.Reason = name, reason
			return d
		}
		if record {
			d.Trail = append(d.Trail, Step{Rule: name, Outcome: OutcomePass})
		}
	}
	if len(e.rules) > 0 {
		v := e.custom(r, g)
		if record {
			for _, ru := range e.rules[:v.passed(len(e.rules))] {
				d.Trail = append(d.Trail, Step{Rule: ru.name, Outcome: OutcomeNoMatch})
			}
		}
		if v.idx >= 0 {
			ru := e.rules[v.idx]
			if v.err != "" {
				e.log.Error("policy rule failed to evaluate; denying", "rule", ru.name,
					"tenant", r.Tenant, "request_id", dbe.FormatUUID(r.ID), "error", v.err)
				if record {
					d.Trail = append(d.Trail, Step{Rule: ru.name, Outcome: OutcomeError, Detail: v.err})
				}
				d.Rule, d.Reason = ru.name, fmt.Sprintf("DENIED: policy %q failed to evaluate", ru.name)
				return d
			}
			if record {
				d.Trail = append(d.Trail, Step{Rule: ru.name, Outcome: ru.effect.String()})
			}
			d.Allow, d.Rule, d.Reason = ru.effect == effectAllow, ru.name, ru.reason
			return d
		}
	}
	if record {
		d.Trail = append(d.Trail, Step{Rule: RuleGrant, Outcome: OutcomeAllow})
	}
	d.Allow, d.Rule, d.Reason = true, RuleGrant, g.allowReason
	return d
}

// verdict is the outcome of the custom rules for one request.
type verdict struct {
	idx int    // index in Engine.rules of the deciding rule; -1: none matched
	err string // why rules[idx] failed to evaluate ("" if it did not)
}

// passed is how many rules did not match before the deciding one.
func (v verdict) passed(n int) int {
	if v.idx < 0 {
		return n
	}
	return v.idx
}

// custom runs the custom rules on r, or finds their verdict in the memo.
// Rules are pure functions of the request's attributes and the tenant (no
// clock, no randomness), so a verdict may be reused for every request with
// the same attributes. A request naming a model no model block declares, or
// a profile no plugin serves, is not memoised: those strings are the
// client's and unbounded.
func (e *Engine) custom(r *Request, g *grant) verdict {
	_, knownModel := e.models[r.Model]
	if !knownModel && r.Model != "" || !e.served[r.Profile] {
		return e.runRules(r, g)
	}
	k := memoKey{g: g, profile: r.Profile, model: r.Model, op: r.Operation,
		mask: r.Compartments, class: r.Classification, roe: r.ROE, dst: int16(r.DeviceDst)}
	if v, ok := e.memo.get(k); ok {
		return v
	}
	v := e.runRules(r, g)
	e.memo.put(k, v)
	return v
}

// runRules evaluates the custom rules in order until one matches or fails.
func (e *Engine) runRules(r *Request, g *grant) verdict {
	ctx := e.evalContext(r, g)
	for i, ru := range e.rules {
		match, err := ru.matches(ctx)
		if err != nil {
			return verdict{idx: i, err: strings.ReplaceAll(err.Error(), "\n", " ")}
		}
		if match {
			return verdict{idx: i}
		}
	}
	return verdict{idx: -1}
}

// intern returns b as a string, without allocating when it is a configured
// name.
func (e *Engine) intern(b []byte) string {
	if s, ok := e.names[string(b)]; ok {
		return s
	}
	return string(b)
}

// evalContext builds the variables of `when` expressions for r; g is not
// nil (builtin.tenant passed).
func (e *Engine) evalContext(r *Request, g *grant) *hcl.EvalContext {
	req := cty.ObjectVal(map[string]cty.Value{
		"tenant":         g.nameVal,
		"profile":        e.str(r.Profile),
		"model":          e.str(r.Model),
		"operation":      strVal(r.Operation),
		"compartments":   maskVals()[r.Compartments],
		"classification": strVal(r.Classification.String()),
		"roe":            strVal(r.ROE.String()),
		"device_dst":     deviceVal(r.DeviceDst),
		"dev_profile":    cty.BoolVal(e.devProfiles[r.Profile]),
	})
	return &hcl.EvalContext{
		Variables: map[string]cty.Value{"request": req, "tenant": g.val},
		Functions: functions,
	}
}

// str returns s as a cty string, cached for configured profiles and models.
func (e *Engine) str(s string) cty.Value {
	if v, ok := e.strs[s]; ok {
		return v
	}
	return strVal(s)
}

// Operation bits, for the ROE table.
const (
	opChat uint8 = 1 << iota
	opCompletion
	opAgent
	opEmbed
)

func opBit(op string) uint8 {
	switch op {
	case OpChat:
		return opChat
	case OpCompletion:
		return opCompletion
	case OpAgent:
		return opAgent
	case OpEmbed:
		return opEmbed
	}
	return 0
}

// roeOps is what each ROE level allows (spec §4.2): ANALYSIS_ONLY chat and
// completions; SOC_ASSIST chat and agent tasks; TRAINING everything, but
// only on development profiles (builtin.training). Embeddings, which
// generate nothing and only read their input, are allowed at every level.
var roeOps = [...]uint8{
	dbe.AnalysisOnly: opChat | opCompletion | opEmbed,
	dbe.SOCAssist:    opChat | opAgent | opEmbed,
	dbe.Training:     opChat | opCompletion | opAgent | opEmbed,
}

var opNames = map[string]string{OpChat: "chat", OpCompletion: "completions", OpAgent: "agent tasks", OpEmbed: "embeddings"}

// Dominates reports whether a tenant cleared to max may handle a request
// classified c. UNCLAS < SECRET < TS < EXEC is a chain; TS_SIM (simulated
// TS material) is its own level: a TS or EXEC tenant dominates it, and a
// TS_SIM tenant dominates only TS_SIM and UNCLAS (simulation tenants never
// see real classified material).
func Dominates(max, c dbe.Classification) bool {
	rank := func(x dbe.Classification) int {
		switch x {
		case dbe.Unclas:
			return 1
		case dbe.Secret:
			return 2
		case dbe.TS:
			return 3
		case dbe.Exec:
			return 4
		}
		return 0
	}
	switch {
	case c == dbe.TSSim:
		return max == dbe.TSSim || max == dbe.TS || max == dbe.Exec
	case max == dbe.TSSim:
		return c == dbe.Unclas
	}
	rc, rm := rank(c), rank(max)
	return rc > 0 && rm > 0 && rc <= rm
}

// builtins are the non-overridable checks, in evaluation order.
var builtins = [...]string{RuleKinetic, RuleExec, RuleTenant, RuleCompartments, RuleClassification,
	RuleROE, RuleOperation, RuleProfile, RuleTraining, RuleModel}

// builtin runs built-in check i on r: "" to pass, else the reason for
// denying. g is nil only for an unknown tenant, which RuleTenant denies
// before any check that needs it.
func (e *Engine) builtin(i int, r *Request, g *grant) string {
	switch builtins[i] {
	case RuleKinetic:
		if r.Compartments&dbe.CompartmentKINETIC != 0 {
			return "DENIED: KINETIC compartment not allowed in Layer 7"
		}
	case RuleExec:
		if r.Classification == dbe.Exec {
			return "DENIED: EXEC classification requires Layer 9 authorization"
		}
	case RuleTenant:
		if g == nil {
			return fmt.Sprintf("DENIED: tenant %q is not configured", r.Tenant)
		}
	case RuleCompartments:
		if extra := r.Compartments &^ g.mask; extra != 0 {
			return fmt.Sprintf("DENIED: compartment %s not granted to tenant %q", extra, g.name)
		}
	case RuleClassification:
		if !Dominates(g.class, r.Classification) {
			return fmt.Sprintf("DENIED: classification %s exceeds tenant %q's %s", r.Classification, g.name, g.class)
		}
	case RuleROE:
		if r.ROE != g.roe {
			return fmt.Sprintf("DENIED: ROE_LEVEL %s does not match tenant %q's %s", r.ROE, g.name, g.roe)
		}
	case RuleOperation:
		bit := opBit(r.Operation)
		if bit == 0 {
			return fmt.Sprintf("DENIED: unknown operation %q", r.Operation)
		}
		if int(r.ROE) >= len(roeOps) || roeOps[r.ROE]&bit == 0 {
			return fmt.Sprintf("DENIED: ROE %s does not allow %s", r.ROE, opNames[r.Operation])
		}
	case RuleProfile:
		if !g.allModels && !g.profiles[r.Profile] {
			return fmt.Sprintf("DENIED: profile %q is not granted to tenant %q", r.Profile, g.name)
		}
	case RuleTraining:
		if r.ROE == dbe.Training && !e.devProfiles[r.Profile] {
			return fmt.Sprintf("DENIED: ROE TRAINING allows development profiles only; %q is not one", r.Profile)
		}
	case RuleModel:
		if r.Model == "" {
			return ""
		}
		profile, known := e.models[r.Model]
		switch {
		case !known:
			return "" // informational only: routing is by profile
		case !g.allModels && !g.models[r.Model]:
			return fmt.Sprintf("DENIED: model %q is not granted to tenant %q", r.Model, g.name)
		case profile != r.Profile:
			return fmt.Sprintf("DENIED: model %q is served by profile %q, not %q", r.Model, profile, r.Profile)
		}
	}
	return ""
}
