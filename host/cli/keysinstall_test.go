package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/sdk/identity"
)

// TestKeysInstall copies a directory laid out as Kubernetes writes a
// Secret volume (files behind ..data links, group-readable as with
// fsGroup) and checks the host then accepts the private key, which it
// refuses from the source.
func TestKeysInstall(t *testing.T) {
	dir := t.TempDir()
	secret, keys := filepath.Join(dir, "secret"), filepath.Join(dir, "keys")
	ts := filepath.Join(secret, "..2026_12_03_04_00_00.1")
	if err := os.MkdirAll(ts, 0o755); err != nil {
		t.Fatal(err)
	}
	k, err := identity.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "node.key"), identity.MarshalPrivateKey(k), 0o440); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ts, "node.pub"), identity.MarshalPublicKey(k.Public()), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Base(ts), filepath.Join(secret, "..data")); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"node.key", "node.pub"} {
		if err := os.Symlink(filepath.Join("..data", f), filepath.Join(secret, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := identity.LoadPrivateKeyFile(filepath.Join(secret, "node.key")); err == nil {
		t.Fatal("the group-readable source key was accepted: the test proves nothing")
	}
	for run := range 2 { // the second run replaces the read-only copies
		var out, errb bytes.Buffer
		if code := Run(context.Background(), []string{"keys", "install", "-from", secret, "-to", keys}, &out, &errb); code != 0 {
			t.Fatalf("run %d: exit %d: %s", run, code, errb.String())
		}
		if !strings.Contains(out.String(), "installed 2 files") {
			t.Errorf("run %d: output %q", run, out.String())
		}
	}
	ents, _ := os.ReadDir(keys)
	if len(ents) != 2 {
		t.Fatalf("%d files in %s, want node.key and node.pub (no ..data)", len(ents), keys)
	}
	for _, e := range ents {
		st, err := os.Lstat(filepath.Join(keys, e.Name()))
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o400 {
			t.Errorf("%s: %v, want a regular file with mode 0400", e.Name(), st.Mode())
		}
	}
	got, err := identity.LoadPrivateKeyFile(filepath.Join(keys, "node.key"))
	if err != nil {
		t.Fatalf("the installed key is refused: %v", err)
	}
	if got.Public().KeyID() != k.Public().KeyID() {
		t.Error("the installed key is not the source's")
	}

	// an empty source is an error: a pod without its identity must not start
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	var errb bytes.Buffer
	if code := Run(context.Background(), []string{"keys", "install", "-from", empty, "-to", keys}, &bytes.Buffer{}, &errb); code != 1 {
		t.Errorf("empty source: exit %d (%s), want 1", code, errb.String())
	}
}
