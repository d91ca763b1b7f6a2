package tools

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// Workspace is the read-only view the tools have of the file system: named
// roots, each a directory opened as an os.Root, so that no path a tool is
// given — "..", an absolute path, a symlink pointing out — resolves outside
// them. Tool paths are "ROOT/relative/path" (ROOT a root's name) or an
// absolute path inside a root's directory.
type Workspace struct {
	roots []*wsRoot // sorted by name
}

type wsRoot struct {
	name string
	dir  string // absolute, cleaned
	r    *os.Root
}

// OpenWorkspace opens the roots (name → directory; relative directories
// are taken from the working directory). Names are [A-Za-z0-9._-]+ and
// every directory must exist.
func OpenWorkspace(roots map[string]string) (*Workspace, error) {
	w := &Workspace{}
	for name, dir := range roots {
		if !validRootName(name) {
			w.Close()
			return nil, fmt.Errorf("workspace root name %q: want letters, digits, '.', '_' and '-'", name)
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("workspace root %q: %w", name, err)
		}
		r, err := os.OpenRoot(abs)
		if err != nil {
			w.Close()
			return nil, fmt.Errorf("workspace root %q: %w", name, err)
		}
		w.roots = append(w.roots, &wsRoot{name: name, dir: filepath.Clean(abs), r: r})
	}
	sort.Slice(w.roots, func(i, j int) bool { return w.roots[i].name < w.roots[j].name })
	return w, nil
}

func validRootName(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 64 {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == ""
}

// Close closes the roots.
func (w *Workspace) Close() error {
	var errs []error
	for _, r := range w.roots {
		errs = append(errs, r.r.Close())
	}
	return errors.Join(errs...)
}

// RootNames returns the roots' names, sorted.
func (w *Workspace) RootNames() []string {
	out := make([]string, len(w.roots))
	for i, r := range w.roots {
		out[i] = r.name
	}
	return out
}

// resolve maps a tool path to its root and the path relative to it ("."
// for the root itself). The empty path and "/" resolve to no root (the
// list of roots).
func (w *Workspace) resolve(p string) (*wsRoot, string, error) {
	if len(p) > 4096 {
		return nil, "", fmt.Errorf("%w: path longer than 4096 bytes", ErrPath)
	}
	if strings.ContainsRune(p, 0) {
		return nil, "", fmt.Errorf("%w: path contains a NUL byte", ErrPath)
	}
	if p == "" || p == "/" || p == "." {
		return nil, "", nil
	}
	for _, el := range strings.Split(p, "/") {
		if el == ".." {
			return nil, "", fmt.Errorf("%w: %q: '..' is not allowed in workspace paths", ErrPath, p)
		}
	}
	if path.IsAbs(p) {
		c := path.Clean(p)
		for _, r := range w.roots {
			if c == r.dir {
				return r, ".", nil
			}
			if strings.HasPrefix(c, r.dir+"/") {
				return r, strings.TrimPrefix(c, r.dir+"/"), nil
			}
		}
		return nil, "", fmt.Errorf("%w: %q is outside the workspace roots", ErrPath, p)
	}
	name, rest, _ := strings.Cut(path.Clean(p), "/")
	for _, r := range w.roots {
		if r.name == name {
			if rest == "" {
				rest = "."
			}
			return r, rest, nil
		}
	}
	return nil, "", fmt.Errorf("%w: no workspace root is called %q (roots: %s)", ErrPath, name, strings.Join(w.RootNames(), ", "))
}

// display is how results name a file: ROOT/rel.
func (r *wsRoot) display(rel string) string {
	if rel == "." {
		return r.name
	}
	return r.name + "/" + rel
}

// pathError turns what os.Root reports (an escape, a missing file) into
// ErrPath with the tool's path, without the host's directories.
func pathError(p string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %q does not exist", ErrPath, p)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w: %q is not readable", ErrPath, p)
	case strings.Contains(err.Error(), "escapes"):
		return fmt.Errorf("%w: %q resolves outside its workspace root", ErrPath, p)
	}
	return fmt.Errorf("%w: %q: %v", ErrPath, p, errors.Unwrap(err))
}

// kind names a file mode for results and errors.
func kind(m fs.FileMode) string {
	switch {
	case m.IsRegular():
		return "file"
	case m.IsDir():
		return "dir"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "other"
}

// openRegular opens a regular file of the workspace for reading. Symlinks
// are followed only while they stay inside the root; devices, FIFOs and
// sockets are refused before they are opened (and, against a swap, again
// on the opened file, which is opened non-blocking so a FIFO cannot hang
// it).
func (w *Workspace) openRegular(p string) (*os.File, fs.FileInfo, string, error) {
	r, rel, err := w.resolve(p)
	if err != nil {
		return nil, nil, "", err
	}
	if r == nil {
		return nil, nil, "", fmt.Errorf("%w: %q names the workspace, not a file", ErrPath, p)
	}
	fi, err := r.r.Stat(rel)
	if err != nil {
		return nil, nil, "", pathError(p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, nil, "", fmt.Errorf("%w: %q is a %s, not a regular file", ErrPath, p, kind(fi.Mode()))
	}
	f, err := r.r.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, "", pathError(p, err)
	}
	fi2, err := f.Stat()
	if err != nil || !fi2.Mode().IsRegular() || !os.SameFile(fi, fi2) {
		f.Close()
		return nil, nil, "", fmt.Errorf("%w: %q changed while it was opened", ErrPath, p)
	}
	return f, fi2, r.display(rel), nil
}
