package config

import (
	"fmt"

	"github.com/dsmil/l7/sdk"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
)

// settingTypes maps sdk.SettingSpec.Type spellings to cty types.
var settingTypes = map[string]cty.Type{
	"string":       cty.String,
	"number":       cty.Number,
	"bool":         cty.Bool,
	"list(string)": cty.List(cty.String),
	"map(string)":  cty.Map(cty.String),
	// any: structured settings (objects, lists of objects), passed on as
	// their JSON form for the plugin to check.
	"any": cty.DynamicPseudoType,
}

// DecodePluginSettings decodes a plugin's settings (Plugin.Settings) against
// the schema the plugin reports (sdk.PluginInfo.Settings), whose names must
// differ from the standard plugin attributes (path, device_id, ...), which
// Plugin.Settings never contains. Each present setting is converted to its
// declared type; absent optional settings are left out of the map. An
// attribute or block not in the schema, a missing required setting, a value
// of the wrong type or an expression that needs variables or functions is
// an error pointing into the file. A nil body counts as empty.
func DecodePluginSettings(body hcl.Body, schema []sdk.SettingSpec) (map[string]cty.Value, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	if body == nil {
		body = hcl.EmptyBody()
	}
	bs := &hcl.BodySchema{}
	types := map[string]cty.Type{}
	for _, s := range schema {
		ty, ok := settingTypes[s.Type]
		switch {
		case s.Name == "":
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid plugin settings schema",
				Detail: "The plugin reported a setting without a name."})
			continue
		case !ok:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid plugin settings schema",
				Detail: fmt.Sprintf("The plugin reported setting %q with type %q; valid types are %s.", s.Name, s.Type,
					quoteList([]string{"string", "number", "bool", "list(string)", "map(string)", "any"}))})
			continue
		case types[s.Name] != cty.NilType:
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: "Invalid plugin settings schema",
				Detail: fmt.Sprintf("The plugin reported setting %q twice.", s.Name)})
			continue
		}
		types[s.Name] = ty
		bs.Attributes = append(bs.Attributes, hcl.AttributeSchema{Name: s.Name, Required: s.Required})
	}
	if diags.HasErrors() {
		return nil, diags
	}

	content, d := body.Content(bs)
	diags = append(diags, d...)
	out := map[string]cty.Value{}
	if content == nil {
		return out, diags
	}
	for _, s := range schema {
		a := content.Attributes[s.Name]
		if a == nil {
			continue
		}
		v, d := a.Expr.Value(nil)
		diags = append(diags, d...)
		if d.HasErrors() {
			continue
		}
		if v.IsNull() {
			if s.Required {
				diags = append(diags, errDiag(a.Expr.Range(), &a.Range, "Missing required setting",
					fmt.Sprintf("Setting %q is required and must not be null.", s.Name)))
			}
			continue
		}
		cv, err := convert.Convert(v, types[s.Name])
		if err != nil {
			diags = append(diags, errDiag(a.Expr.Range(), &a.Range, "Incorrect setting type",
				fmt.Sprintf("Setting %q must be %s: %s.", s.Name, s.Type, err)))
			continue
		}
		if !cv.IsWhollyKnown() {
			diags = append(diags, errDiag(a.Expr.Range(), &a.Range, "Invalid setting value",
				fmt.Sprintf("Setting %q must be a known value.", s.Name)))
			continue
		}
		if hasNullElement(cv) {
			diags = append(diags, errDiag(a.Expr.Range(), &a.Range, "Invalid setting value",
				fmt.Sprintf("Setting %q must not contain null elements.", s.Name)))
			continue
		}
		out[s.Name] = cv
	}
	return out, diags
}

// hasNullElement reports whether a list or map value holds a null element.
func hasNullElement(v cty.Value) bool {
	if ty := v.Type(); !ty.IsListType() && !ty.IsMapType() {
		return false
	}
	for it := v.ElementIterator(); it.Next(); {
		if _, e := it.Element(); e.IsNull() {
			return true
		}
	}
	return false
}
