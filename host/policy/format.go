package policy

import (
	"fmt"
	"io"
	"strings"
)

// String renders the request's attributes as key=value pairs (never any
// payload text beyond the model id).
func (r Request) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "tenant=%s profile=%s", r.Tenant, r.Profile)
	if r.Model != "" {
		fmt.Fprintf(&b, " model=%s", r.Model)
	}
	fmt.Fprintf(&b, " operation=%s compartments=%s classification=%s roe=%s",
		r.Operation, r.Compartments, r.Classification, r.ROE)
	if r.DeviceDst >= 0 {
		fmt.Fprintf(&b, " device_dst=%d", r.DeviceDst)
	}
	return b.String()
}

// WriteDecision prints a decision and its trail for people, as
// `dsmil-host policy test` does:
//
//	request:  tenant=T profile=P operation=chat compartments=SOC classification=UNCLAS roe=ANALYSIS_ONLY
//	decision: DENY
//	rule:     builtin.roe
//	reason:   DENIED: ...
//	trail:
//	  builtin.kinetic         pass
//	  ...
func WriteDecision(w io.Writer, r Request, d Decision) error {
	verdict := "ALLOW"
	if !d.Allow {
		verdict = "DENY"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "request:  %s\ndecision: %s\nrule:     %s\nreason:   %s\ntrail:\n", r, verdict, d.Rule, d.Reason)
	width := 0
	for _, s := range d.Trail {
		width = max(width, len(s.Rule))
	}
	for _, s := range d.Trail {
		fmt.Fprintf(&b, "  %-*s  %s", width, s.Rule, s.Outcome)
		if s.Detail != "" {
			fmt.Fprintf(&b, ": %s", strings.ReplaceAll(s.Detail, "\n", " "))
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}
