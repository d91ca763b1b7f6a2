// Package tools holds the agent plugin's tools: Go code behind one small
// interface, one file per tool, registered by name. Every tool is offline
// (none reaches the network) and declares the lowest ROE and the
// compartments it needs; Offered filters a task's tools by them and Call
// refuses a tool the task may not use, whatever the model asked for.
package tools

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/dsmil/l7/sdk/dbe"
)

// Tool is one tool the model may call.
type Tool interface {
	// Name is the function name the model calls, [a-z_]+.
	Name() string
	// Description tells the model what the tool does.
	Description() string
	// Parameters is the JSON Schema of the arguments object.
	Parameters() string
	// MinROE is the lowest ROE level of a task that may use the tool, in
	// the order ANALYSIS_ONLY < SOC_ASSIST < TRAINING.
	MinROE() dbe.ROELevel
	// Compartments are the compartments a task must hold, all of them, to
	// use the tool (0: none).
	Compartments() dbe.Compartment
	// Run runs the tool with its arguments (JSON text, checked by Run) and
	// returns the result handed back to the model. An error is the tool's
	// failure (bad arguments, a path outside the workspace, ...) and is
	// handed back to the model too.
	Run(ctx context.Context, env *Env, args []byte) (string, error)
}

// Env is what a tool runs against: one task's view of the plugin.
type Env struct {
	// Workspace is the read-only workspace.
	Workspace *Workspace
	// Artifacts is the task's artifacts directory; nil when none is
	// configured (write tools then fail).
	Artifacts *Artifacts
	// Limits bound what tools read and return.
	Limits Limits
	// OCR transcribes an image (its encoded bytes and MIME type) by a
	// request through the router on the task's behalf; nil when the task
	// type names no OCR profile (read_image then fails).
	OCR func(ctx context.Context, image []byte, mimeType string) (string, error)
}

// Limits bound the tools' work; zero fields take the defaults.
type Limits struct {
	// ReadBytes caps what read_file returns and what extract_iocs reads
	// (default 64 KiB).
	ReadBytes int
	// GrepMatches caps grep's matches (default 100).
	GrepMatches int
	// GrepFiles caps the files grep opens (default 1000).
	GrepFiles int
	// GrepFileBytes caps what grep scans of one file (default 4 MiB).
	GrepFileBytes int64
	// DirEntries caps list_dir's entries (default 500).
	DirEntries int
	// ReportBytes caps a report's size (default 256 KiB).
	ReportBytes int
	// Reports caps the reports of one task (default 8).
	Reports int
	// ImageBytes caps the image file read_image sends (default 8 MiB).
	ImageBytes int64
}

// limits returns the environment's limits with the defaults filled in.
func (e *Env) limits() Limits { return e.Limits.withDefaults() }

// withDefaults fills the zero fields.
func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.ReadBytes, 64<<10)
	def(&l.GrepMatches, 100)
	def(&l.GrepFiles, 1000)
	def(&l.DirEntries, 500)
	def(&l.ReportBytes, 256<<10)
	def(&l.Reports, 8)
	if l.GrepFileBytes <= 0 {
		l.GrepFileBytes = 4 << 20
	}
	if l.ImageBytes <= 0 {
		l.ImageBytes = 8 << 20
	}
	return l
}

var registry = map[string]Tool{}

// register adds t to the registry; each tool's file calls it from init.
func register(t Tool) {
	if _, dup := registry[t.Name()]; dup {
		panic("tools: " + t.Name() + " registered twice")
	}
	registry[t.Name()] = t
}

// Lookup returns the tool called name.
func Lookup(name string) (Tool, bool) {
	t, ok := registry[name]
	return t, ok
}

// Names returns every tool's name, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Allowed reports why a task with roe and compartments may not use t, or
// nil when it may.
func Allowed(t Tool, roe dbe.ROELevel, compartments dbe.Compartment) error {
	if roe < t.MinROE() {
		return fmt.Errorf("%w: %s needs ROE %s or above, the task has %s", ErrRefused, t.Name(), t.MinROE(), roe)
	}
	if need := t.Compartments(); compartments&need != need {
		return fmt.Errorf("%w: %s needs compartments %s, the task has %s", ErrRefused, t.Name(), need, compartments)
	}
	return nil
}

// Offered returns the tools of names (a task type's) that a task with roe
// and compartments may use, in the order of names; unknown names are
// skipped (configurations are checked at load).
func Offered(names []string, roe dbe.ROELevel, compartments dbe.Compartment) []Tool {
	var out []Tool
	for _, n := range names {
		if t, ok := registry[n]; ok && Allowed(t, roe, compartments) == nil {
			out = append(out, t)
		}
	}
	return out
}

// Errors tools return, wrapped with the detail.
var (
	// ErrRefused: the task may not use the tool (not offered, ROE,
	// compartments).
	ErrRefused = errors.New("refused")
	// ErrArgs: the arguments do not fit the tool's schema.
	ErrArgs = errors.New("bad arguments")
	// ErrPath: the path is outside the workspace or names something that
	// is not there or not allowed (a device, a FIFO, a symlink out).
	ErrPath = errors.New("path not allowed")
	// ErrLimit: a size or count limit was reached.
	ErrLimit = errors.New("limit reached")
)

// Call runs the tool named name for a task with roe and compartments,
// refusing it (ErrRefused) when the tool is unknown, not among offered or
// not allowed to the task.
func Call(ctx context.Context, env *Env, offered []string, roe dbe.ROELevel, compartments dbe.Compartment, name string, args []byte) (string, error) {
	t, ok := registry[name]
	if !ok {
		return "", fmt.Errorf("%w: no tool is called %q", ErrRefused, name)
	}
	if !slices.Contains(offered, name) {
		return "", fmt.Errorf("%w: %s is not offered to this task", ErrRefused, name)
	}
	if err := Allowed(t, roe, compartments); err != nil {
		return "", err
	}
	return t.Run(ctx, env, args)
}

// decodeArgs decodes a tool's arguments into v, refusing unknown fields
// and trailing data. Empty arguments are an empty object.
func decodeArgs(args []byte, v any) error {
	if len(bytes.TrimSpace(args)) == 0 {
		args = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(args))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: %v", ErrArgs, err)
	}
	if dec.More() {
		return fmt.Errorf("%w: data after the arguments object", ErrArgs)
	}
	return nil
}

// result marshals a tool's result object.
func result(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("encoding the result: %w", err)
	}
	return string(b), nil
}

// argsErr is an ErrArgs with a detail.
func argsErr(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrArgs, fmt.Sprintf(format, args...))
}
