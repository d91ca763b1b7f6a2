package cli

import (
	"context"
	"flag"
	"fmt"
	"io"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/policy"
)

// loadConfig loads path and prints its diagnostics (errors and warnings)
// to stderr. It returns nil when there were errors.
func loadConfig(path string, stderr io.Writer) *config.Config {
	cfg, diags := config.Load(path)
	if len(diags) > 0 {
		_ = config.WriteDiagnostics(stderr, cfg.Files(), diags)
	}
	if diags.HasErrors() {
		return nil
	}
	return cfg
}

func runConfigValidate(_ context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("config validate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "dsmil.hcl", "configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 1 {
		*path = fs.Arg(0)
	} else if fs.NArg() > 1 {
		fmt.Fprintln(stderr, "usage: dsmil-host config validate [-config FILE | FILE]")
		return 2
	}
	cfg := loadConfig(*path, stderr)
	if cfg == nil {
		return 1
	}
	if _, diags := policy.New(cfg, nil); len(diags) > 0 {
		_ = config.WriteDiagnostics(stderr, cfg.Files(), diags)
		if diags.HasErrors() {
			return 1
		}
	}
	fmt.Fprintf(stdout, "%s: valid (%d plugins, %d models, %d tenants, %d policies, %d included files)\n",
		*path, len(cfg.Plugins), len(cfg.Models), len(cfg.Tenants), len(cfg.Policies), len(cfg.Includes))
	return 0
}
