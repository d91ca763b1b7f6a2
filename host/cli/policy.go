package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/policy"
	"github.com/dsmil/l7/sdk/dbe"
)

const policyTestUsage = "policy test -tenant T [FLAGS]"

const policyTestLong = "policy test [-config FILE] -tenant T [-profile P | -model M] [-compartment SOC,DEV]\n" +
	"       [-classification C] [-roe R] [-operation chat|completion|agent] [-device-dst N]"

// runPolicyTest loads the config and its policies, decides one request
// described by flags and prints the decision and the trail of rules.
// Unset security attributes default to the tenant's grant, as the HTTP shim
// would send them. Exit status: 0 allowed, 1 denied or the policy failed to
// load, 2 usage.
func runPolicyTest(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "dsmil.hcl", "configuration file")
	tenant := fs.String("tenant", "", "TENANT_ID (required)")
	profile := fs.String("profile", "", "L7_PROFILE (default: the model's profile)")
	model := fs.String("model", "", "model id named in the request")
	comps := fs.String("compartment", "", "compartments, comma-separated: SOC,DEV,LAB,CRYPTO,KINETIC, or NONE (default: the tenant's)")
	class := fs.String("classification", "", "UNCLAS, SECRET, TS, TS_SIM or EXEC (default: the tenant's)")
	roe := fs.String("roe", "", "ANALYSIS_ONLY, SOC_ASSIST or TRAINING (default: the tenant's)")
	op := fs.String("operation", policy.OpChat, "chat, completion or agent")
	dst := fs.Int("device-dst", -1, "DEVICE_ID_DST (-1: none)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 || *tenant == "" {
		fmt.Fprintln(stderr, "usage: dsmil-host "+policyTestLong)
		fs.PrintDefaults()
		return 2
	}

	cfg := loadConfig(*path, stderr)
	if cfg == nil {
		return 1
	}
	eng, diags := policy.New(cfg, nil)
	if len(diags) > 0 {
		_ = config.WriteDiagnostics(stderr, cfg.Files(), diags)
	}
	if diags.HasErrors() {
		return 1
	}

	req := policy.Request{Tenant: *tenant, Profile: *profile, Model: *model, Operation: *op,
		Classification: dbe.Unclas, ROE: dbe.AnalysisOnly, DeviceDst: *dst}
	if t := cfg.TenantByName(*tenant); t != nil {
		req.Compartments = t.CompartmentMask()
		req.Classification = dbe.Classification(t.Classification)
		req.ROE = dbe.ROELevel(t.ROE)
	}
	if req.Profile == "" {
		if m := cfg.ModelByID(*model); m != nil {
			req.Profile = m.Profile
		} else {
			fmt.Fprintln(stderr, "dsmil-host policy test: -profile, or -model naming a configured model, is required")
			return 2
		}
	}
	if *comps != "" {
		req.Compartments = 0
		for _, name := range strings.Split(*comps, ",") {
			name = strings.ToUpper(strings.TrimSpace(name))
			if name == "NONE" || name == "" {
				continue
			}
			c, ok := dbe.CompartmentByName(name)
			if !ok {
				fmt.Fprintf(stderr, "dsmil-host policy test: unknown compartment %q (valid: SOC, DEV, LAB, CRYPTO, KINETIC, NONE)\n", name)
				return 2
			}
			req.Compartments |= c
		}
	}
	if *class != "" {
		c, ok := dbe.ClassificationByName(strings.ToUpper(*class))
		if !ok {
			fmt.Fprintf(stderr, "dsmil-host policy test: unknown classification %q (valid: UNCLAS, SECRET, TS, TS_SIM, EXEC)\n", *class)
			return 2
		}
		req.Classification = c
	}
	if *roe != "" {
		r, ok := dbe.ROELevelByName(strings.ToUpper(*roe))
		if !ok {
			fmt.Fprintf(stderr, "dsmil-host policy test: unknown ROE %q (valid: ANALYSIS_ONLY, SOC_ASSIST, TRAINING)\n", *roe)
			return 2
		}
		req.ROE = r
	}

	d := eng.Evaluate(req)
	if err := policy.WriteDecision(stdout, req, d); err != nil {
		fmt.Fprintln(stderr, "dsmil-host policy test:", err)
		return 1
	}
	if !d.Allow {
		return 1
	}
	return 0
}
