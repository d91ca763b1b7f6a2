package config

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
)

// FuzzParse feeds arbitrary files to Parse, hermetically (includes never
// reach the filesystem). Parse and WriteDiagnostics must not panic, and a
// config without errors must satisfy the cross-block invariants.
func FuzzParse(f *testing.F) {
	for _, pattern := range []string{"testdata/valid/*.hcl", "testdata/invalid/*.hcl"} {
		files, _ := filepath.Glob(pattern)
		for _, name := range files {
			src, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(src)
		}
	}
	noFile := WithReadFile(func(string) ([]byte, error) { return nil, errors.New("no files while fuzzing") })
	noGlob := WithGlob(func(string) ([]string, error) { return nil, nil })
	settings := []sdk.SettingSpec{{Name: "model_path", Type: "string"}, {Name: "threads", Type: "number"}}

	f.Fuzz(func(t *testing.T, src []byte) {
		cfg, diags := Parse("/fuzz/dsmil.hcl", src, noFile, noGlob, WithGetenv(testGetenv))
		if cfg == nil {
			t.Fatal("nil Config")
		}
		if err := WriteDiagnostics(io.Discard, cfg.Files(), diags); err != nil {
			t.Fatal(err)
		}
		if diags.HasErrors() {
			return
		}
		for _, m := range cfg.Models {
			if len(cfg.PluginsForProfile(m.Profile)) == 0 && len(cfg.PeersForProfile(m.Profile)) == 0 {
				t.Fatalf("model %q: profile %q served by no plugin or peer", m.ID, m.Profile)
			}
		}
		for _, tn := range cfg.Tenants {
			if len(tn.APIKeySHA256) == 0 && tn.APIKeyEnv == "" {
				t.Fatalf("tenant %q has no key source", tn.Name)
			}
			for _, id := range tn.Models {
				if id != AllModels && cfg.ModelByID(id) == nil {
					t.Fatalf("tenant %q: unknown model %q", tn.Name, id)
				}
			}
			_ = tn.MatchKey("k")
		}
		for _, p := range cfg.Plugins {
			if p.DeviceID < 0 || p.DeviceID > dbe.MaxDeviceID || p.Replicas < 1 || p.Replicas > MaxReplicas || len(p.Profiles) == 0 {
				t.Fatalf("plugin %q out of range: %+v", p.Name, p)
			}
			_, d := DecodePluginSettings(p.Settings, settings)
			_ = WriteDiagnostics(io.Discard, cfg.Files(), d)
		}
	})
}
