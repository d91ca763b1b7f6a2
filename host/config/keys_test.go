package config

import (
	"strings"
	"testing"
)

func TestHashKey(t *testing.T) {
	// SHA-256("abc"), FIPS 180-2 appendix B.1.
	const want = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
	if got := HashKey("abc"); got != want {
		t.Errorf("HashKey(abc) = %s, want %s", got, want)
	}
}

func TestMatchKey(t *testing.T) {
	src := `
tenant "T" {
  api_key_sha256 = ["` + HashKey("right-1") + `", "` + strings.ToUpper(HashKey("right-2")) + `"]
  api_key_env    = "DSMIL_OPENAI_API_KEY"
  compartments   = ["SOC"]
  models         = ["*"]
}
tenant "NO_ENV" {
  api_key_env  = "UNSET_VARIABLE"
  compartments = ["SOC"]
  models       = ["*"]
}
`
	cfg, diags := Parse("/etc/dsmil/dsmil.hcl", []byte(src), WithGetenv(testGetenv))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	tn, noEnv := cfg.TenantByName("T"), cfg.TenantByName("NO_ENV")
	tests := []struct {
		name   string
		tenant *Tenant
		key    string
		want   bool
	}{
		{"first digest", tn, "right-1", true},
		{"uppercase digest", tn, "right-2", true},
		{"env key", tn, testEnv["DSMIL_OPENAI_API_KEY"], true},
		{"wrong key", tn, "wrong", false},
		{"prefix of key", tn, "right-", false},
		{"empty key", tn, "", false},
		{"unset env matches nothing", noEnv, "", false},
		{"unset env, some key", noEnv, "right-1", false},
		{"nil tenant", nil, "right-1", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.tenant.MatchKey(tt.key); got != tt.want {
				t.Errorf("MatchKey(%q) = %v, want %v", tt.key, got, tt.want)
			}
		})
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].Detail, "UNSET_VARIABLE") {
		t.Errorf("want one warning about UNSET_VARIABLE, got %v", cfg.Warnings)
	}
	// The env key's plaintext is not kept anywhere in the tenant.
	if strings.Contains(dumpConfig(t, cfg), testEnv["DSMIL_OPENAI_API_KEY"]) {
		t.Error("plaintext env key found in the config dump")
	}
	if tn.EnvKeySHA256 != HashKey(testEnv["DSMIL_OPENAI_API_KEY"]) {
		t.Errorf("EnvKeySHA256 = %s", tn.EnvKeySHA256)
	}
}

// TestMatchKeyEmptyEnv: a variable set to the empty string is "unset"; the
// empty key must never authenticate.
func TestMatchKeyEmptyEnv(t *testing.T) {
	src := `tenant "T" {
  api_key_env  = "EMPTY"
  compartments = ["SOC"]
  models       = ["*"]
}`
	cfg, diags := Parse("dsmil.hcl", []byte(src), WithGetenv(func(string) string { return "" }))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if cfg.Tenants[0].MatchKey("") || cfg.Tenants[0].EnvKeySHA256 != "" {
		t.Error("empty env key accepted")
	}
}
