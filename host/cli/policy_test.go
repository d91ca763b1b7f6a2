package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/host/config/configtest"
)

func TestPolicyTest(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "dsmil.hcl")
	os.WriteFile(cfg, []byte(`include = ["policies/*.hcl"]`+configtest.EchoPlane("bin/dsmil-echo", configtest.Tenant{
		Name: "SOC_TEAM_ALPHA", KeySHA256: strings.Repeat("ab", 32),
		Compartments: []string{"SOC", "CRYPTO"}, Classification: "SECRET", ROE: "SOC_ASSIST",
	})), 0o600)
	os.Mkdir(filepath.Join(dir, "policies"), 0o700)
	pol := filepath.Join(dir, "policies", "p.hcl")
	os.WriteFile(pol, []byte(`
policy "no-crypto-unclas" {
  effect = "deny"
  when   = contains(request.compartments, "CRYPTO") && request.classification == "UNCLAS"
  reason = "no"
}
`), 0o600)

	code, out, errs := run("policy", "test", "-config", cfg, "--tenant", "SOC_TEAM_ALPHA", "--model", "dsmil-echo")
	if code != 0 || !strings.Contains(out, "decision: ALLOW") || !strings.Contains(out, "no-crypto-unclas        no match") {
		t.Fatalf("allow: %d\n%s%s", code, out, errs)
	}
	code, out, _ = run("policy", "test", "-config", cfg, "--tenant", "SOC_TEAM_ALPHA", "--profile", "echo",
		"--compartment", "SOC,CRYPTO", "--classification", "UNCLAS", "--roe", "SOC_ASSIST")
	if code != 1 || !strings.Contains(out, "rule:     no-crypto-unclas") {
		t.Fatalf("custom deny: %d\n%s", code, out)
	}
	code, out, _ = run("policy", "test", "-config", cfg, "--tenant", "SOC_TEAM_ALPHA", "--profile", "echo", "--compartment", "kinetic")
	if code != 1 || !strings.Contains(out, "DENIED: KINETIC compartment not allowed in Layer 7") {
		t.Fatalf("kinetic: %d\n%s", code, out)
	}
	if code, _, errs := run("policy", "test", "-config", cfg, "--tenant", "X", "--profile", "echo", "--roe", "BOGUS"); code != 2 || !strings.Contains(errs, "unknown ROE") {
		t.Fatalf("bad flag: %d %s", code, errs)
	}

	os.WriteFile(pol, []byte("policy \"bad\" {\n  effect = \"deny\"\n  when   = request.tennant == \"A\"\n}\n"), 0o600)
	code, _, errs = run("policy", "test", "-config", cfg, "--tenant", "SOC_TEAM_ALPHA", "--profile", "echo")
	if code != 1 || !strings.Contains(errs, "p.hcl:3:") || !strings.Contains(errs, "Unsupported attribute") {
		t.Fatalf("invalid policy: %d %s", code, errs)
	}
}
