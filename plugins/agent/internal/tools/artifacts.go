package tools

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/dsmil/l7/sdk/dbe"
)

// Artifacts is one task's artifacts directory, DIR/TENANT/TASK-ID, created
// on first write: write tools put files there and nowhere else, never over
// an existing file, and List returns them for L7AgentResult.artifacts.
type Artifacts struct {
	dir string

	mu    sync.Mutex
	files []string
}

// NewArtifacts returns the artifacts directory of task taskID of tenant
// under base (an absolute or working-directory-relative path). The tenant
// name becomes a directory name as it is when it is [A-Za-z0-9._-]+, and
// otherwise "t-" and a digest of it, so no tenant name can point elsewhere.
func NewArtifacts(base, tenant string, taskID [16]byte) (*Artifacts, error) {
	abs, err := filepath.Abs(base)
	if err != nil {
		return nil, fmt.Errorf("artifacts directory: %w", err)
	}
	return &Artifacts{dir: filepath.Join(abs, tenantDir(tenant), dbe.FormatUUID(taskID))}, nil
}

func tenantDir(tenant string) string {
	if validRootName(tenant) && len(tenant) <= 64 {
		return tenant
	}
	sum := sha256.Sum256([]byte(tenant))
	return "t-" + hex.EncodeToString(sum[:8])
}

// Dir is the task's artifacts directory.
func (a *Artifacts) Dir() string { return a.dir }

// List returns the paths of the files written so far.
func (a *Artifacts) List() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.files...)
}

// create writes a new file called name (a plain file name) with data,
// refusing to replace one, beyond max files.
func (a *Artifacts) create(name string, data []byte, max int) (string, error) {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") {
		return "", fmt.Errorf("%w: %q is not a plain file name", ErrArgs, name)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.files) >= max {
		return "", fmt.Errorf("%w: a task writes at most %d artifacts", ErrLimit, max)
	}
	if err := os.MkdirAll(a.dir, 0o750); err != nil {
		return "", fmt.Errorf("artifacts directory: %w", err)
	}
	p := filepath.Join(a.dir, name)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscallNoFollow, 0o640)
	if err != nil {
		if errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("%w: artifact %q already exists", ErrArgs, name)
		}
		return "", fmt.Errorf("artifact %q: %w", name, err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(p)
		return "", fmt.Errorf("artifact %q: %w", name, err)
	}
	a.files = append(a.files, p)
	return p, nil
}
