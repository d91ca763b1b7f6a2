package tools

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dsmil/l7/sdk/dbe"
)

// workspace builds a workspace root "logs" in a temp dir:
//
//	logs/app.log, logs/sub/auth.log, logs/in-link -> app.log (inside),
//	logs/out-link -> ../secret.txt (outside), logs/fifo (a FIFO),
//	secret.txt next to the root,
//
// and returns the env and the root's directory.
func workspace(t *testing.T) (*Env, string) {
	t.Helper()
	base := t.TempDir()
	root := filepath.Join(base, "logs")
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "app.log"), "start\nconnect from 10.0.0.5 ok\nlogin failed for root from 203.0.113.7\nstop\n")
	write(filepath.Join(root, "sub", "auth.log"), "sshd: Failed password for root from 203.0.113.7\n")
	write(filepath.Join(base, "secret.txt"), "TOP SECRET 198.51.100.1\n")
	if err := os.Symlink("app.log", filepath.Join(root, "in-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../secret.txt", filepath.Join(root, "out-link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(base, filepath.Join(root, "sub", "dir-out")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws, err := OpenWorkspace(map[string]string{"logs": root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ws.Close() })
	return &Env{Workspace: ws}, root
}

// run calls tool name as a TRAINING task with every compartment may.
func run(t *testing.T, env *Env, name, args string) (map[string]any, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := Call(ctx, env, Names(), dbe.Training, dbe.CompartmentSOC|dbe.CompartmentDEV, name, []byte(args))
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("%s result %q: %v", name, out, err)
	}
	return m, nil
}

func TestReadFileConfinement(t *testing.T) {
	env, root := workspace(t)
	m, err := run(t, env, "read_file", `{"path":"logs/app.log"}`)
	if err != nil || !strings.Contains(m["content"].(string), "203.0.113.7") || m["path"] != "logs/app.log" {
		t.Fatalf("read logs/app.log: %v %v", m, err)
	}
	// An absolute path inside the root and a symlink inside it are fine.
	if m, err := run(t, env, "read_file", `{"path":"`+filepath.Join(root, "sub", "auth.log")+`"}`); err != nil || m["path"] != "logs/sub/auth.log" {
		t.Fatalf("absolute path inside the root: %v %v", m, err)
	}
	if m, err := run(t, env, "read_file", `{"path":"logs/in-link"}`); err != nil || !strings.HasPrefix(m["content"].(string), "start") {
		t.Fatalf("symlink inside the root: %v %v", m, err)
	}
	for _, tc := range []struct{ args, want string }{
		{`{"path":"logs/../secret.txt"}`, "'..' is not allowed"},
		{`{"path":"logs/sub/../../secret.txt"}`, "'..' is not allowed"},
		{`{"path":"` + filepath.Join(filepath.Dir(root), "secret.txt") + `"}`, "outside the workspace roots"},
		{`{"path":"/etc/passwd"}`, "outside the workspace roots"},
		{`{"path":"logs/out-link"}`, "resolves outside its workspace root"},
		{`{"path":"logs/sub/dir-out/secret.txt"}`, "resolves outside its workspace root"},
		{`{"path":"logs/fifo"}`, "is a fifo, not a regular file"},
		{`{"path":"logs/sub"}`, "is a dir, not a regular file"},
		{`{"path":"logs/nope.log"}`, "does not exist"},
		{`{"path":"other/app.log"}`, `no workspace root is called "other"`},
		{`{"path":"logs/a\u0000b"}`, "NUL"},
		{`{"path":""}`, "names the workspace"},
	} {
		_, err := run(t, env, "read_file", tc.args)
		if !errors.Is(err, ErrPath) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("read_file %s: %v, want ErrPath %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), filepath.Dir(root)) && !strings.Contains(tc.args, filepath.Dir(root)) {
			t.Errorf("read_file %s: the error shows the host's directories: %v", tc.args, err)
		}
	}
	if _, err := run(t, env, "read_file", `{"path":"logs/app.log","extra":1}`); !errors.Is(err, ErrArgs) {
		t.Errorf("unknown argument: %v, want ErrArgs", err)
	}
}

func TestReadFileCap(t *testing.T) {
	env, _ := workspace(t)
	env.Limits.ReadBytes = 10
	m, err := run(t, env, "read_file", `{"path":"logs/app.log","offset":6}`)
	if err != nil || m["content"] != "connect fr" || m["truncated"] != true || m["size"].(float64) < 60 {
		t.Fatalf("capped read: %v %v", m, err)
	}
}

// TestDeviceRefused: a device node inside the root (mknod needs root: skip
// otherwise) is refused before it is opened.
func TestDeviceRefused(t *testing.T) {
	env, root := workspace(t)
	if err := syscall.Mknod(filepath.Join(root, "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Skipf("mknod: %v", err)
	}
	if _, err := run(t, env, "read_file", `{"path":"logs/null"}`); !errors.Is(err, ErrPath) || !strings.Contains(err.Error(), "device") {
		t.Fatalf("device: %v", err)
	}
}

func TestGrep(t *testing.T) {
	env, _ := workspace(t)
	// The directory walk skips the FIFO (without hanging on it), the
	// symlink out and the symlinked directory, and finds both logs.
	m, err := run(t, env, "grep", `{"pattern":"203\\.0\\.113\\.7","path":"logs"}`)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(m["matches"])
	if string(b) != `[{"file":"logs/app.log","line":3,"text":"login failed for root from 203.0.113.7"},{"file":"logs/in-link","line":3,"text":"login failed for root from 203.0.113.7"},{"file":"logs/sub/auth.log","line":1,"text":"sshd: Failed password for root from 203.0.113.7"}]` {
		t.Errorf("matches %s", b)
	}
	if strings.Contains(string(b), "198.51.100.1") || m["skipped"].(float64) < 2 {
		t.Errorf("grep read outside the root or skipped nothing: %v", m)
	}
	env.Limits.GrepMatches = 1
	m, err = run(t, env, "grep", `{"pattern":"FAILED","path":"logs","ignore_case":true}`)
	if err != nil || len(m["matches"].([]any)) != 1 || m["truncated"] != true {
		t.Errorf("match cap: %v %v", m, err)
	}
	for _, tc := range []struct {
		args string
		want error
	}{
		{`{"pattern":"(","path":"logs"}`, ErrArgs},
		{`{"pattern":"","path":"logs"}`, ErrArgs},
		{`{"pattern":"x","path":"logs/../.."}`, ErrPath},
		{`{"pattern":"x","path":"/"}`, ErrPath},
		{`{"pattern":"x","path":"logs/fifo"}`, ErrPath},
	} {
		if _, err := run(t, env, "grep", tc.args); !errors.Is(err, tc.want) {
			t.Errorf("grep %s: %v, want %v", tc.args, err, tc.want)
		}
	}
}

func TestListDir(t *testing.T) {
	env, _ := workspace(t)
	m, err := run(t, env, "list_dir", `{"path":""}`)
	if b, _ := json.Marshal(m["entries"]); err != nil || string(b) != `[{"kind":"dir","name":"logs"}]` {
		t.Fatalf("roots: %s %v", b, err)
	}
	m, err = run(t, env, "list_dir", `{"path":"logs"}`)
	b, _ := json.Marshal(m["entries"])
	if err != nil || !strings.Contains(string(b), `{"kind":"fifo","name":"fifo"}`) || !strings.Contains(string(b), `{"kind":"symlink","name":"out-link"}`) ||
		!strings.Contains(string(b), `{"kind":"file","name":"app.log","size":`) {
		t.Fatalf("logs: %s %v", b, err)
	}
	if _, err := run(t, env, "list_dir", `{"path":"logs/sub/dir-out"}`); !errors.Is(err, ErrPath) {
		t.Errorf("symlinked directory out: %v", err)
	}
	env.Limits.DirEntries = 2
	if m, err := run(t, env, "list_dir", `{"path":"logs"}`); err != nil || len(m["entries"].([]any)) != 2 || m["truncated"] != true {
		t.Errorf("entry cap: %v %v", m, err)
	}
}

func TestExtractIOCsTool(t *testing.T) {
	env, _ := workspace(t)
	m, err := run(t, env, "extract_iocs", `{"path":"logs/app.log"}`)
	if b, _ := json.Marshal(m["ipv4"]); err != nil || string(b) != `["10.0.0.5","203.0.113.7"]` || m["source"] != "logs/app.log" {
		t.Fatalf("from a file: %v %v", m, err)
	}
	m, err = run(t, env, "extract_iocs", `{"text":"see CVE-2021-44228"}`)
	if b, _ := json.Marshal(m["cves"]); err != nil || string(b) != `["CVE-2021-44228"]` {
		t.Fatalf("from text: %v %v", m, err)
	}
	for _, args := range []string{`{}`, `{"text":"a","path":"logs/app.log"}`} {
		if _, err := run(t, env, "extract_iocs", args); !errors.Is(err, ErrArgs) {
			t.Errorf("%s: %v, want ErrArgs", args, err)
		}
	}
	if _, err := run(t, env, "extract_iocs", `{"path":"logs/out-link"}`); !errors.Is(err, ErrPath) {
		t.Errorf("symlink out: %v", err)
	}
}

func TestWriteReport(t *testing.T) {
	env, _ := workspace(t)
	base := t.TempDir()
	id := [16]byte{1, 2, 3}
	var err error
	if env.Artifacts, err = NewArtifacts(base, "SOC_TEAM_ALPHA", id); err != nil {
		t.Fatal(err)
	}
	m, err := run(t, env, "write_report", `{"title":"Triage: 203.0.113.7","body":"Brute force from **203.0.113.7**."}`)
	if err != nil {
		t.Fatal(err)
	}
	p := m["artifact"].(string)
	if filepath.Dir(p) != filepath.Join(base, "SOC_TEAM_ALPHA", dbe.FormatUUID(id)) || filepath.Base(p) != "report-1-triage-203-0-113-7.md" {
		t.Errorf("artifact path %s", p)
	}
	if b, _ := os.ReadFile(p); string(b) != "# Triage: 203.0.113.7\n\nBrute force from **203.0.113.7**.\n" {
		t.Errorf("report %q", b)
	}
	if got := env.Artifacts.List(); !slices.Equal(got, []string{p}) {
		t.Errorf("List %v", got)
	}
	// A tenant name cannot point elsewhere.
	a, _ := NewArtifacts(base, "../../etc", id)
	if !strings.HasPrefix(a.Dir(), filepath.Join(base, "t-")) {
		t.Errorf("tenant ../../etc: %s", a.Dir())
	}
	env.Limits.Reports = 1
	if _, err := run(t, env, "write_report", `{"title":"again","body":"x"}`); !errors.Is(err, ErrLimit) {
		t.Errorf("second report over the cap: %v", err)
	}
	env.Limits = Limits{ReportBytes: 10}
	if _, err := run(t, env, "write_report", `{"title":"big","body":"0123456789"}`); !errors.Is(err, ErrLimit) {
		t.Errorf("report over the size cap: %v", err)
	}
}

// TestROEAndCompartments: write_report is not offered to ANALYSIS_ONLY nor
// without SOC, and Call refuses it then even when named; tools outside the
// offered list are refused too.
func TestROEAndCompartments(t *testing.T) {
	env, _ := workspace(t)
	env.Artifacts, _ = NewArtifacts(t.TempDir(), "T", [16]byte{9})
	all := Names()
	names := func(ts []Tool) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.Name())
		}
		return out
	}
	for _, tc := range []struct {
		roe  dbe.ROELevel
		comp dbe.Compartment
		want bool
	}{
		{dbe.AnalysisOnly, dbe.CompartmentSOC, false},
		{dbe.SOCAssist, dbe.CompartmentDEV, false},
		{dbe.SOCAssist, dbe.CompartmentSOC | dbe.CompartmentDEV, true},
		{dbe.Training, dbe.CompartmentSOC, true},
	} {
		offered := names(Offered(all, tc.roe, tc.comp))
		if slices.Contains(offered, "write_report") != tc.want || !slices.Contains(offered, "read_file") {
			t.Errorf("%s %s: offered %v", tc.roe, tc.comp, offered)
		}
		_, err := Call(context.Background(), env, all, tc.roe, tc.comp, "write_report", []byte(`{"title":"t","body":"b"}`))
		if (err == nil) != tc.want || (!tc.want && !errors.Is(err, ErrRefused)) {
			t.Errorf("%s %s: write_report: %v", tc.roe, tc.comp, err)
		}
	}
	if _, err := Call(context.Background(), env, []string{"grep"}, dbe.Training, dbe.CompartmentSOC, "read_file", []byte(`{"path":"logs/app.log"}`)); !errors.Is(err, ErrRefused) {
		t.Errorf("a tool the task does not offer: %v", err)
	}
	if _, err := Call(context.Background(), env, all, dbe.Training, dbe.CompartmentSOC, "rm_rf", nil); !errors.Is(err, ErrRefused) {
		t.Errorf("an unknown tool: %v", err)
	}
}
