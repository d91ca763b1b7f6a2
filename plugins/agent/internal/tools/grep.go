package tools

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"

	"github.com/dsmil/l7/sdk/dbe"
)

func init() { register(grepTool{}) }

// grepTool searches the workspace's files for a regular expression.
type grepTool struct{}

func (grepTool) Name() string { return "grep" }
func (grepTool) Description() string {
	return "Search a file, or every file under a directory, of the read-only workspace for a regular expression (RE2 syntax); returns matching lines with their file and line number."
}
func (grepTool) Parameters() string {
	return `{"type":"object","properties":{"pattern":{"type":"string","maxLength":1000},"path":{"type":"string","maxLength":1000},"ignore_case":{"type":"boolean"}},"required":["pattern","path"],"additionalProperties":false}`
}
func (grepTool) MinROE() dbe.ROELevel          { return dbe.AnalysisOnly }
func (grepTool) Compartments() dbe.Compartment { return 0 }

// grepLineBytes caps the text of one match returned.
const grepLineBytes = 512

type grepMatch struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Text string `json:"text"`
}

func (grepTool) Run(ctx context.Context, env *Env, args []byte) (string, error) {
	var a struct {
		Pattern    string `json:"pattern"`
		Path       string `json:"path"`
		IgnoreCase bool   `json:"ignore_case"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return "", err
	}
	switch {
	case a.Pattern == "":
		return "", argsErr("the pattern is empty")
	case len(a.Pattern) > 1000:
		return "", argsErr("the pattern is longer than 1000 bytes")
	}
	expr := a.Pattern
	if a.IgnoreCase {
		expr = "(?i)" + expr
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return "", argsErr("pattern: %v", err)
	}
	lim := env.limits()
	g := &grepRun{ctx: ctx, env: env, re: re, lim: lim, out: grepResult{Matches: []grepMatch{}}}

	r, rel, err := env.Workspace.resolve(a.Path)
	if err != nil {
		return "", err
	}
	if r == nil {
		return "", fmt.Errorf("%w: grep needs a file or directory under a root, not the workspace", ErrPath)
	}
	fi, err := r.r.Stat(rel)
	if err != nil {
		return "", pathError(a.Path, err)
	}
	if !fi.IsDir() {
		if err := g.file(a.Path); err != nil && !errors.Is(err, errGrepFull) {
			return "", err
		}
		return result(g.out)
	}
	// A directory: walk it without following symlinked directories (no
	// loops); symlinked files are opened like any file, so one that points
	// out of the root is skipped.
	err = fs.WalkDir(r.r.FS(), rel, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			g.out.Skipped++
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			return nil
		}
		if err := g.file(r.display(path.Clean(p))); err != nil {
			if errors.Is(err, errGrepFull) || ctx.Err() != nil {
				return err
			}
			g.out.Skipped++ // a FIFO, a device, a symlink out: not searched
		}
		return nil
	})
	if err != nil && !errors.Is(err, errGrepFull) {
		return "", err
	}
	return result(g.out)
}

type grepResult struct {
	Matches   []grepMatch `json:"matches"`
	Files     int         `json:"files_searched"`
	Skipped   int         `json:"skipped,omitempty"`
	Truncated bool        `json:"truncated,omitempty"`
}

type grepRun struct {
	ctx context.Context
	env *Env
	re  *regexp.Regexp
	lim Limits
	out grepResult
}

// errGrepFull stops the search at a limit.
var errGrepFull = errors.New("grep: limit reached")

// file searches one workspace file.
func (g *grepRun) file(p string) error {
	if err := g.ctx.Err(); err != nil {
		return err
	}
	if g.out.Files >= g.lim.GrepFiles {
		g.out.Truncated = true
		return errGrepFull
	}
	f, _, name, err := g.env.Workspace.openRegular(p)
	if err != nil {
		return err
	}
	defer f.Close()
	g.out.Files++
	sc := bufio.NewScanner(io.LimitReader(f, g.lim.GrepFileBytes))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if line%1024 == 0 {
			if err := g.ctx.Err(); err != nil {
				return err
			}
		}
		b := sc.Bytes()
		if !g.re.Match(b) {
			continue
		}
		if len(g.out.Matches) >= g.lim.GrepMatches {
			g.out.Truncated = true
			return errGrepFull
		}
		if len(b) > grepLineBytes {
			b = b[:grepLineBytes]
		}
		g.out.Matches = append(g.out.Matches, grepMatch{File: name, Line: line, Text: toValidUTF8(b)})
	}
	if err := sc.Err(); err != nil {
		// A line over 1 MiB: the rest of the file is not searched.
		g.out.Truncated = true
	}
	return nil
}
