package tools

import (
	"context"
	"fmt"
	"io"

	"github.com/dsmil/l7/sdk/dbe"
)

func init() { register(listDir{}) }

// listDir lists a directory of the workspace, or the roots.
type listDir struct{}

func (listDir) Name() string { return "list_dir" }
func (listDir) Description() string {
	return "List a directory of the read-only workspace: names, kinds and sizes. An empty path lists the workspace roots."
}
func (listDir) Parameters() string {
	return `{"type":"object","properties":{"path":{"type":"string","maxLength":1000,"description":"ROOT/dir, or empty for the roots"}},"required":["path"],"additionalProperties":false}`
}
func (listDir) MinROE() dbe.ROELevel          { return dbe.AnalysisOnly }
func (listDir) Compartments() dbe.Compartment { return 0 }

type dirEntry struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	Size int64  `json:"size,omitempty"`
}

func (listDir) Run(ctx context.Context, env *Env, args []byte) (string, error) {
	var a struct {
		Path string `json:"path"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return "", err
	}
	lim := env.limits()
	r, rel, err := env.Workspace.resolve(a.Path)
	if err != nil {
		return "", err
	}
	out := struct {
		Path      string     `json:"path"`
		Entries   []dirEntry `json:"entries"`
		Truncated bool       `json:"truncated,omitempty"`
	}{Path: a.Path, Entries: []dirEntry{}}
	if r == nil {
		for _, name := range env.Workspace.RootNames() {
			out.Entries = append(out.Entries, dirEntry{Name: name, Kind: "dir"})
		}
		return result(out)
	}
	out.Path = r.display(rel)
	fi, err := r.r.Stat(rel)
	if err != nil {
		return "", pathError(a.Path, err)
	}
	if !fi.IsDir() {
		return "", fmt.Errorf("%w: %q is a %s, not a directory", ErrPath, a.Path, kind(fi.Mode()))
	}
	d, err := r.r.Open(rel)
	if err != nil {
		return "", pathError(a.Path, err)
	}
	defer d.Close()
	// ReadDir(n) returns entries in directory order; sort what we keep so
	// that results are deterministic.
	ents, err := d.ReadDir(lim.DirEntries + 1)
	if err != nil && err != io.EOF {
		return "", pathError(a.Path, err)
	}
	if len(ents) > lim.DirEntries {
		ents, out.Truncated = ents[:lim.DirEntries], true
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return "", err
		}
		de := dirEntry{Name: e.Name(), Kind: kind(e.Type())}
		if e.Type().IsRegular() {
			if info, err := e.Info(); err == nil {
				de.Size = info.Size()
			}
		}
		out.Entries = append(out.Entries, de)
	}
	sortEntries(out.Entries)
	return result(out)
}

func sortEntries(es []dirEntry) {
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && es[j].Name < es[j-1].Name; j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}
