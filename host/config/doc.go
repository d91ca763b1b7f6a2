// Package config loads, defaults, validates and reports dsmil.hcl, the one
// configuration file of dsmil-host.
//
// The file is HCL native syntax. [Load] reads it (plus every file its
// top-level include globs name, merged with hcl.MergeBodies semantics),
// decodes it with gohcl, fills defaults in one place (defaults.go), resolves
// relative paths (plugin binaries, sockets) against the directory of the
// root file (include globs against the directory of the file that names
// them), and cross-checks the result: plugin, model and tenant names are
// unique, every model's profile is served by a plugin, every model a tenant
// names exists, enums are spelled right, numbers are in range, listen
// addresses are loopback unless explicitly allowed. A tenant's
// classification, roe and compartments are DBE's names and become the
// sdk/dbe types the frames carry; config has no enums of its own.
//
// Problems come back as hcl.Diagnostics, each pointing at the offending
// attribute, so [WriteDiagnostics] can print them with file:line:col and a
// source snippet:
//
//	cfg, diags := config.Load("/etc/dsmil/dsmil.hcl")
//	if len(diags) > 0 {
//		_ = config.WriteDiagnostics(os.Stderr, cfg.Files(), diags)
//	}
//	if diags.HasErrors() {
//		return fmt.Errorf("loading config: %w", diags)
//	}
//
// Two parts of the file are deliberately left undecoded: the plugin-specific
// settings inside a plugin block (kept as an hcl.Body in [Plugin].Settings and
// decoded later with [DecodePluginSettings] against the schema the plugin
// reports), and policy blocks (kept as [Policy] for the policy engine).
//
// API keys are never stored in plaintext: the config holds SHA-256 digests,
// and a key named through api_key_env is read once at load time and only its
// digest is kept. [Tenant.MatchKey] compares in constant time.
package config
