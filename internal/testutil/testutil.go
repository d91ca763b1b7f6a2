// Package testutil holds what tests across the repository share: building
// the project's own binaries (plugins, dsmil-host) for tests that run them
// as real processes, and a buffer that many goroutines may log into. It is
// imported by tests only.
package testutil

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// Build compiles the Go package pkg (an import path of this module) into
// dir/name and returns the binary's path. The error carries the compiler's
// output.
func Build(dir, name, pkg string) (string, error) {
	bin := filepath.Join(dir, name)
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %v\n%s", pkg, err, out)
	}
	return bin, nil
}

// Binary is a Go package a TestMain builds for its tests: Pkg (an import
// path of this module) built as Name, its path stored in *Path.
type Binary struct {
	Path      *string
	Name, Pkg string
}

// RunWithBinary is a TestMain whose tests share one binary: it builds the
// Go package pkg as name into a new temporary directory, sets *bin to its
// path, runs the tests, calls each of after, removes the directory and
// exits with the tests' status. A failed build prints the compiler's
// output and exits with status 1.
func RunWithBinary(m *testing.M, bin *string, name, pkg string, after ...func()) {
	RunWithBinaries(m, []Binary{{bin, name, pkg}}, after...)
}

// RunWithBinaries is RunWithBinary for several binaries.
func RunWithBinaries(m *testing.M, bins []Binary, after ...func()) {
	dir, err := os.MkdirTemp("", bins[0].Name+"-test")
	if err != nil {
		panic(err)
	}
	for _, b := range bins {
		if *b.Path, err = Build(dir, b.Name, b.Pkg); err != nil {
			os.RemoveAll(dir)
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	for _, f := range after {
		f()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// WaitFor polls cond every 5 ms until it holds, and fails the test when d
// passes first, saying it was waiting for what.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers: a log output
// shared by a plugin manager, a plugin's re-emitted lines and a test.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns everything written so far.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Node returns the node binary for a test that drives npm clients
// installed in dir (`npm ci` there installs them), after checking that
// each of pkgs is installed. Missing node or packages skip the test, except
// in CI (CI or DSMIL_REQUIRE_NODE set), where they fail it.
func Node(t testing.TB, dir string, pkgs ...string) string {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" || os.Getenv("DSMIL_REQUIRE_NODE") != "" {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed: %v", err)
	}
	for _, pkg := range pkgs {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg, "package.json")); err != nil {
			missing("the npm package %s is not installed: run `npm ci` in %s (make deps does): %v", pkg, dir, err)
		}
	}
	return node
}

// Golden compares got with the file at path, or writes got there when
// update is set (a test package's -update flag). A missing or different
// file fails the test with a hint to run go test -update.
func Golden(t testing.TB, path, got string, update bool) {
	t.Helper()
	if update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test -update to accept):\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}
