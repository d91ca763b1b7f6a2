// Package testutil holds what tests across the repository share: building
// the project's own binaries (plugins, dsmil-host) for tests that run them
// as real processes, and a buffer that many goroutines may log into. It is
// imported by tests only.
package testutil

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"sync"
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
