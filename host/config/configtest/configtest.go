// Package configtest renders dsmil.hcl text for tests: the minimal plane
// many of them start from (the echo plugin, its model and a tenant), so
// that each test states only what it varies. It is imported by tests only
// and does not import host/config, so that package's own tests may use it.
package configtest

import (
	"fmt"
	"strconv"
	"strings"
)

// Tenant is a tenant block allowed every model.
type Tenant struct {
	Name           string   // "T" when empty
	KeySHA256      string   // its one api_key_sha256, 64 hex digits
	Compartments   []string // ["SOC"] when nil
	Classification string   // left out (the default) when empty
	ROE            string   // left out (the default) when empty
}

// HCL renders the tenant block.
func (t Tenant) HCL() string {
	name, comps := t.Name, t.Compartments
	if name == "" {
		name = "T"
	}
	if comps == nil {
		comps = []string{"SOC"}
	}
	quoted := make([]string, len(comps))
	for i, c := range comps {
		quoted[i] = strconv.Quote(c)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "tenant %q {\n", name)
	fmt.Fprintf(&b, "  api_key_sha256 = [%q]\n", t.KeySHA256)
	fmt.Fprintf(&b, "  compartments   = [%s]\n", strings.Join(quoted, ", "))
	if t.Classification != "" {
		fmt.Fprintf(&b, "  classification = %q\n", t.Classification)
	}
	if t.ROE != "" {
		fmt.Fprintf(&b, "  roe            = %q\n", t.ROE)
	}
	b.WriteString("  models         = [\"*\"]\n}\n")
	return b.String()
}

// EchoPlane renders a minimal plane: the plugin "echo" (the executable at
// path, device 47, profile "echo"), the model "dsmil-echo" on that profile,
// and the tenants.
func EchoPlane(path string, tenants ...Tenant) string {
	var b strings.Builder
	fmt.Fprintf(&b, `
plugin "echo" {
  path      = %q
  device_id = 47
  profiles  = ["echo"]
}
model "dsmil-echo" { profile = "echo" }
`, path)
	for _, t := range tenants {
		b.WriteString(t.HCL())
	}
	return b.String()
}
