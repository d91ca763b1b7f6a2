package policy

import (
	"fmt"
	"strings"
	"sync"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// effect is what a matching custom rule decides.
type effect uint8

const (
	effectDeny effect = iota + 1
	effectAllow
)

func (e effect) String() string {
	if e == effectAllow {
		return "allow"
	}
	return "deny"
}

// rule is one compiled custom rule.
type rule struct {
	name        string
	description string
	effect      effect
	priority    int
	when        hcl.Expression
	reason      string
	order       int       // load order, breaks priority ties
	rng         hcl.Range // the block, for listings
}

// MaxPriority bounds the absolute value of a rule's priority.
const MaxPriority = 1_000_000

// policySchema is every attribute a policy block may hold.
var policySchema = &hcl.BodySchema{Attributes: []hcl.AttributeSchema{
	{Name: "description"},
	{Name: "enabled"},
	{Name: "effect"},
	{Name: "priority"},
	{Name: "when"},
	{Name: "reason"},
	{Name: "dev_profiles"},
}}

// requestType is the type of the `request` variable in `when` expressions.
var requestType = cty.Object(map[string]cty.Type{
	"tenant":         cty.String,
	"profile":        cty.String,
	"model":          cty.String,
	"operation":      cty.String,
	"compartments":   cty.List(cty.String),
	"classification": cty.String,
	"roe":            cty.String,
	"device_dst":     cty.Number,
	"dev_profile":    cty.Bool,
})

// tenantType is the type of the `tenant` variable: the requesting tenant's
// configured grant.
var tenantType = cty.Object(map[string]cty.Type{
	"name":           cty.String,
	"compartments":   cty.List(cty.String),
	"classification": cty.String,
	"roe":            cty.String,
	"models":         cty.List(cty.String),
	"client_id":      cty.String,
})

// functions are the functions `when` expressions may call.
var functions = map[string]function.Function{
	"contains":    stdlib.ContainsFunc,
	"startswith":  stringPredicate("prefix", strings.HasPrefix),
	"endswith":    stringPredicate("suffix", strings.HasSuffix),
	"strcontains": stringPredicate("substr", strings.Contains),
	"lower":       stdlib.LowerFunc,
	"upper":       stdlib.UpperFunc,
	"length":      stdlib.LengthFunc,
	"strlen":      stdlib.StrlenFunc,
}

func stringPredicate(second string, fn func(s, x string) bool) function.Function {
	return function.New(&function.Spec{
		Params: []function.Parameter{{Name: "string", Type: cty.String}, {Name: second, Type: cty.String}},
		Type:   function.StaticReturnType(cty.Bool),
		Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
			return cty.BoolVal(fn(args[0].AsString(), args[1].AsString())), nil
		},
	})
}

// typeCheckCtx evaluates `when` at load time with unknown values of the
// right types, so misspelt attributes, unknown functions and type errors
// are reported with file:line before any request arrives.
var typeCheckCtx = &hcl.EvalContext{
	Variables: map[string]cty.Value{
		"request": cty.UnknownVal(requestType),
		"tenant":  cty.UnknownVal(tenantType),
	},
	Functions: functions,
}

// compiled is what one policy block contributes.
type compiled struct {
	rule        *rule    // nil for a dev_profiles declaration or a disabled rule
	devProfiles []string // profiles declared as development profiles
}

// compile decodes and checks one policy block. served lists the profiles
// some plugin serves, for a warning about dev_profiles nobody serves.
func compile(p *config.Policy, order int, served map[string]bool) (compiled, hcl.Diagnostics) {
	var out compiled
	var diags hcl.Diagnostics
	if strings.HasPrefix(p.Name, builtinPrefix) {
		diags = append(diags, errDiag(p.DeclRange, "Reserved policy name",
			fmt.Sprintf("Policy names starting with %q are reserved for the built-in rules.", builtinPrefix)))
	}
	body := p.Body
	if body == nil {
		body = hcl.EmptyBody()
	}
	content, d := body.Content(policySchema)
	diags = append(diags, d...)
	if content == nil {
		return out, diags
	}
	at := content.Attributes

	var description, reason, eff string
	enabled := true
	priority := 0
	decoded := map[string]bool{}
	for _, f := range []struct {
		name string
		dst  any
	}{{"description", &description}, {"enabled", &enabled}, {"effect", &eff}, {"priority", &priority}, {"reason", &reason}} {
		if a := at[f.name]; a != nil {
			d := gohcl.DecodeExpression(a.Expr, nil, f.dst)
			diags = append(diags, d...)
			decoded[f.name] = !d.HasErrors()
		}
	}
	if a := at["priority"]; a != nil && decoded["priority"] && (priority > MaxPriority || priority < -MaxPriority) {
		diags = append(diags, errDiag(a.Expr.Range(), "Priority out of range",
			fmt.Sprintf("A priority must be between %d and %d.", -MaxPriority, MaxPriority)))
	}

	if a := at["dev_profiles"]; a != nil {
		if at["effect"] != nil || at["when"] != nil {
			diags = append(diags, errDiag(a.NameRange, "Mixed policy block",
				fmt.Sprintf("Policy %q declares dev_profiles and is also a rule (effect, when). Put the declaration and the rule in separate policy blocks.", p.Name)))
		}
		var profiles []string
		d := gohcl.DecodeExpression(a.Expr, nil, &profiles)
		diags = append(diags, d...)
		if !d.HasErrors() {
			for i, pr := range profiles {
				rng := elemRange(a, i)
				switch {
				case !dbe.ValidProfile(pr):
					diags = append(diags, errDiag(rng, "Invalid profile name",
						fmt.Sprintf("%q is not a valid L7 profile name ([a-z0-9][a-z0-9._-]*, at most %d bytes).", pr, dbe.MaxProfileLen)))
				case !served[pr]:
					diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Profile not served",
						Detail: fmt.Sprintf("No plugin serves profile %q; declaring it a development profile has no effect until one does.", pr), Subject: rng.Ptr()})
				}
			}
			if enabled {
				out.devProfiles = profiles
			}
		}
		return out, diags
	}

	whenAttr, effAttr := at["when"], at["effect"]
	switch {
	case whenAttr == nil && effAttr == nil:
		diags = append(diags, errDiag(p.DeclRange, "Empty policy",
			fmt.Sprintf("Policy %q is neither a rule (effect and when) nor a dev_profiles declaration.", p.Name)))
		return out, diags
	case effAttr == nil:
		diags = append(diags, errDiag(whenAttr.NameRange, "Missing effect",
			fmt.Sprintf("Policy %q has a when condition but no effect; set effect = \"deny\" or \"allow\".", p.Name)))
	case whenAttr == nil:
		diags = append(diags, errDiag(effAttr.NameRange, "Missing condition",
			fmt.Sprintf("Policy %q has an effect but no when condition; use when = true to match every request.", p.Name)))
	}
	r := &rule{name: p.Name, description: description, priority: priority, reason: reason, order: order, rng: p.DeclRange}
	if effAttr != nil {
		switch eff {
		case "deny":
			r.effect = effectDeny
		case "allow":
			r.effect = effectAllow
		default:
			if decoded["effect"] {
				diags = append(diags, errDiag(effAttr.Expr.Range(), "Invalid effect",
					fmt.Sprintf("effect must be \"deny\" or \"allow\", not %q.", eff)))
			}
		}
	}
	if whenAttr != nil {
		r.when = whenAttr.Expr
		v, d := whenAttr.Expr.Value(typeCheckCtx)
		diags = append(diags, d...)
		if !d.HasErrors() && v.Type() != cty.Bool && v.Type() != cty.DynamicPseudoType {
			diags = append(diags, errDiag(whenAttr.Expr.Range(), "Invalid condition",
				fmt.Sprintf("when must be a bool expression; this one is %s.", v.Type().FriendlyName())))
		}
	}
	if r.reason == "" {
		if r.effect == effectAllow {
			r.reason = fmt.Sprintf("allowed by policy %q", p.Name)
		} else {
			r.reason = fmt.Sprintf("DENIED by policy %q", p.Name)
		}
	}
	if enabled && !diags.HasErrors() {
		out.rule = r
	}
	return out, diags
}

// matches evaluates the rule's condition. Any problem (an error, a null or
// non-bool result) is returned as an error: the caller denies.
func (r *rule) matches(ctx *hcl.EvalContext) (bool, error) {
	v, diags := r.when.Value(ctx)
	if diags.HasErrors() {
		return false, diags
	}
	switch {
	case v.IsNull():
		return false, fmt.Errorf("condition is null")
	case !v.IsKnown():
		return false, fmt.Errorf("condition is unknown")
	case v.Type() != cty.Bool:
		return false, fmt.Errorf("condition is %s, not bool", v.Type().FriendlyName())
	}
	return v.True(), nil
}

func errDiag(rng hcl.Range, summary, detail string) *hcl.Diagnostic {
	return &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: rng.Ptr()}
}

// elemRange is the range of element i of a literal list attribute, or the
// whole value's range.
func elemRange(a *hcl.Attribute, i int) hcl.Range {
	if exprs, diags := hcl.ExprList(a.Expr); !diags.HasErrors() && i < len(exprs) {
		return exprs[i].Range()
	}
	return a.Expr.Range()
}

// Values of the `request` object that only depend on small enums are built
// once.
var (
	strVals = sync.OnceValue(func() map[string]cty.Value {
		m := map[string]cty.Value{"": cty.StringVal("")}
		for _, s := range []string{OpChat, OpCompletion, OpAgent} {
			m[s] = cty.StringVal(s)
		}
		for c := dbe.Unclas; c <= dbe.Exec; c++ {
			m[c.String()] = cty.StringVal(c.String())
		}
		for r := dbe.AnalysisOnly; r <= dbe.Training; r++ {
			m[r.String()] = cty.StringVal(r.String())
		}
		return m
	})
	maskVals = sync.OnceValue(func() [256]cty.Value {
		var out [256]cty.Value
		for i := range out {
			out[i] = compartmentList(dbe.Compartment(i))
		}
		return out
	})
	deviceVals = sync.OnceValue(func() [dbe.MaxDeviceID + 2]cty.Value {
		var out [dbe.MaxDeviceID + 2]cty.Value
		for i := range out {
			out[i] = cty.NumberIntVal(int64(i - 1))
		}
		return out
	})
)

// strVal returns s as a cty string, from the cache when it is an enum name.
func strVal(s string) cty.Value {
	if v, ok := strVals()[s]; ok {
		return v
	}
	return cty.StringVal(s)
}

// compartmentNames lists the named compartments of mask, in bit order.
func compartmentNames(mask dbe.Compartment) []string {
	var out []string
	for _, c := range dbe.Compartments() {
		if mask&c != 0 {
			out = append(out, c.String())
		}
	}
	return out
}

func compartmentList(mask dbe.Compartment) cty.Value {
	return stringList(compartmentNames(mask))
}

func stringList(ss []string) cty.Value {
	if len(ss) == 0 {
		return cty.ListValEmpty(cty.String)
	}
	vals := make([]cty.Value, len(ss))
	for i, s := range ss {
		vals[i] = cty.StringVal(s)
	}
	return cty.ListVal(vals)
}

func deviceVal(d int) cty.Value {
	if d >= -1 && d <= dbe.MaxDeviceID {
		return deviceVals()[d+1]
	}
	return cty.NumberIntVal(int64(d))
}
