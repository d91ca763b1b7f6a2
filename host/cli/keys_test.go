package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestKeys: keys gen writes NAME.key with mode 0600 and NAME.pub, refuses
// to overwrite; keys bundle refuses a root key that group or others can
// read; keys show verifies the bundle against the right root only.
func TestKeysGenBundleShow(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"root", "shim", "other"} {
		if code, out, errs := run("keys", "gen", "-out", dir, "-name", name); code != 0 || !strings.Contains(out, "key id:") {
			t.Fatalf("keys gen %s: %d %q %q", name, code, out, errs)
		}
	}
	for file, mode := range map[string]os.FileMode{"root.key": 0o600, "root.pub": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, file))
		if err != nil || fi.Mode().Perm() != mode {
			t.Fatalf("%s: %v %v", file, fi.Mode(), err)
		}
	}
	if code, _, errs := run("keys", "gen", "-out", dir, "-name", "root"); code != 1 || !strings.Contains(errs, "-force") {
		t.Fatalf("overwrite: %d %q", code, errs)
	}
	if code, _, _ := run("keys", "gen", "-out", dir, "-name", "../x"); code != 2 {
		t.Fatalf("path in name: %d", code)
	}

	p := func(f string) string { return filepath.Join(dir, f) }
	bundle := []string{"keys", "bundle", "-root", p("root.key"), "-name", "shim", "-role", "shim", "-pub", p("shim.pub"), "-expiry", "720h", "-out", p("shim.bundle")}
	if err := os.Chmod(p("root.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := run(bundle...); code != 1 || !strings.Contains(errs, "chmod 600") {
		t.Fatalf("world-readable root key: %d %q", code, errs)
	}
	if err := os.Chmod(p("root.key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out, errs := run(bundle...); code != 0 || !strings.Contains(out, `"shim" role "shim"`) {
		t.Fatalf("keys bundle: %d %q %q", code, out, errs)
	}
	if code, out, errs := run("keys", "show", "-roots", p("root.pub"), p("shim.bundle"), p("shim.pub"), p("shim.key")); code != 0 ||
		!strings.Contains(out, "verified:   yes") || !strings.Contains(out, "private key, key id") {
		t.Fatalf("keys show: %d %q %q", code, out, errs)
	}
	if code, out, errs := run("keys", "show", "-roots", p("other.pub"), p("shim.bundle")); code != 1 || !strings.Contains(out, "verified:   NO") || !strings.Contains(errs, "not a trusted key") {
		t.Fatalf("keys show, wrong root: %d %q %q", code, out, errs)
	}
}
