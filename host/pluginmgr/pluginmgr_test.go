package pluginmgr

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/identity"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
)

// echoBin is the real echo plugin, built once for these tests.
var echoBin string

func TestMain(m *testing.M) {
	testutil.RunWithBinary(m, &echoBin, "dsmil-echo", "github.com/dsmil/l7/plugins/echo")
}

// settingsBody parses plugin-specific settings the way dsmil.hcl holds them.
func echoPlugin(t *testing.T, name string, replicas int, settings string) *config.Plugin {
	t.Helper()
	src := fmt.Sprintf(`
plugin %q {
  path            = %q
  device_id       = 47
  profiles        = [%q]
  replicas        = %d
  health_interval = "100ms"
  restart_backoff = "50ms"
  max_restarts    = 3
  %s
}
model "m" { profile = %q }
tenant "T" {
  api_key_sha256 = ["%s"]
  compartments   = ["SOC"]
  models         = ["*"]
}
`, name, echoBin, name, replicas, settings, name, strings.Repeat("ab", 32))
	cfg, diags := config.Parse(filepath.Join(t.TempDir(), "dsmil.hcl"), []byte(src))
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	return cfg.Plugins[0]
}

func startManager(t *testing.T, logs *testutil.SyncBuffer, plugins ...*config.Plugin) *Manager {
	t.Helper()
	logger := hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug})
	m := New(Config{Plugins: plugins, Logger: logger, HealthTimeout: 300 * time.Millisecond, UnhealthyThreshold: 2})
	ctx, cancel := context.WithCancel(context.Background())
	m.Start(ctx)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer scancel()
		m.Shutdown(sctx)
		cancel()
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := m.WaitReady(wctx); err != nil {
		t.Fatalf("not ready: %v\n%s", err, logs)
	}
	return m
}

func chat(profile, text string, stream bool) *dbe.Frame {
	f := &dbe.Frame{Type: dbe.MsgChatReq}
	f.SetTenantID("T")
	f.SetCompartmentMask(dbe.CompartmentSOC)
	f.SetClassification(dbe.Unclas)
	f.SetROELevel(dbe.AnalysisOnly)
	f.SetProfile(profile)
	f.SetRequestID([16]byte{9, 9, 9})
	f.Payload, _ = proto.Marshal(&l7v1.L7ChatRequest{Model: "m", Stream: stream,
		Messages: []*l7v1.Message{{Role: "user", Content: text}}})
	return f
}

func TestStartRouteAndList(t *testing.T) {
	var logs testutil.SyncBuffer
	m := startManager(t, &logs, echoPlugin(t, "echo", 2, ""))
	snaps := m.Snapshots()
	if len(snaps) != 2 {
		t.Fatalf("%d instances", len(snaps))
	}
	for _, s := range snaps {
		if s.State != StateRunning || !s.Healthy || s.PID == 0 || s.Version == "" || s.Restarts != 0 {
			t.Fatalf("snapshot %+v", s)
		}
	}
	if snaps[0].PID == snaps[1].PID {
		t.Fatal("replicas share a process")
	}
	r, err := router.New(router.Config{Registry: m})
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	err = r.Route(context.Background(), chat("echo", "hello plane", true), func(f *dbe.Frame) error {
		var c l7v1.L7ChatChunk
		if f.Type == dbe.MsgChatChunk && proto.Unmarshal(f.Payload, &c) == nil {
			text.WriteString(c.GetDelta())
		}
		return nil
	})
	if err != nil || text.String() != "echo: hello plane" {
		t.Fatalf("%v %q", err, text.String())
	}
	// The plugin's own log lines are re-emitted under its name.
	testutil.WaitFor(t, 5*time.Second, "plugin logs", func() bool { return strings.Contains(logs.String(), "plugin.echo#0") })
}

// TestKillMidRequest: kill -9 a plugin during a request: the caller gets an
// error within 1 s, the plugin is back within 5 s, the restart is counted.
func TestKillMidRequest(t *testing.T) {
	var logs testutil.SyncBuffer
	m := startManager(t, &logs, echoPlugin(t, "slow", 1, `delay = "200ms"`))
	r, _ := router.New(router.Config{Registry: m})
	pid := m.Snapshots()[0].PID
	errc := make(chan error, 1)
	var killedAt time.Time
	go func() {
		errc <- r.Route(context.Background(), chat("slow", "one two three four five six", true), func(f *dbe.Frame) error {
			if killedAt.IsZero() {
				killedAt = time.Now()
				syscall.Kill(pid, syscall.SIGKILL)
			}
			return nil
		})
	}()
	select {
	case err := <-errc:
		if mux.CodeOf(err) != dbe.CodeWorkerFailed {
			t.Fatalf("err %v, want WORKER_FAILED", err)
		}
		if d := time.Since(killedAt); d > time.Second {
			t.Fatalf("error came %v after the kill", d)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("request hangs after its plugin was killed")
	}
	testutil.WaitFor(t, 5*time.Second, "restart", func() bool {
		s := m.Snapshots()[0]
		return s.State == StateRunning && s.Healthy && s.PID != pid && s.PID != 0
	})
	if s := m.Snapshots()[0]; s.Restarts != 1 {
		t.Fatalf("restarts %d", s.Restarts)
	}
	if err := r.Route(context.Background(), chat("slow", "back", false), func(*dbe.Frame) error { return nil }); err != nil {
		t.Fatalf("after restart: %v", err)
	}
}

// TestFrozenPluginRestarted: a plugin that stops answering health checks
// (SIGSTOP) is restarted.
func TestFrozenPluginRestarted(t *testing.T) {
	var logs testutil.SyncBuffer
	m := startManager(t, &logs, echoPlugin(t, "echo", 1, ""))
	pid := m.Snapshots()[0].PID
	syscall.Kill(pid, syscall.SIGSTOP)
	defer syscall.Kill(pid, syscall.SIGKILL)
	testutil.WaitFor(t, 10*time.Second, "restart of a frozen plugin", func() bool {
		s := m.Snapshots()[0]
		return s.State == StateRunning && s.PID != pid && s.PID != 0
	})
	if !strings.Contains(logs.String(), "health check failed") {
		t.Fatal("no health-check failure logged")
	}
}

// TestGivesUp: a plugin that never starts is retried MaxRestarts times with
// backoff, then marked failed.
func TestGivesUp(t *testing.T) {
	var logs testutil.SyncBuffer
	p := echoPlugin(t, "broken", 1, "")
	p.Path = "/bin/false"
	m := startManager(t, &logs, p)
	s := m.Snapshots()[0]
	if s.State != StateFailed || s.Restarts != 3 || s.LastError == "" || s.Healthy {
		t.Fatalf("snapshot %+v", s)
	}
	r, _ := router.New(router.Config{Registry: m})
	err := r.Route(context.Background(), chat("broken", "x", false), func(*dbe.Frame) error { return nil })
	if mux.CodeOf(err) != dbe.CodeNoWorkerAvailable {
		t.Fatalf("err %v", err)
	}
}

func TestChecksumPin(t *testing.T) {
	b, err := os.ReadFile(echoBin)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	var logs testutil.SyncBuffer
	good := echoPlugin(t, "good", 1, "")
	good.SHA256 = hex.EncodeToString(sum[:])
	bad := echoPlugin(t, "bad", 1, "")
	bad.SHA256 = strings.Repeat("00", 32)
	m := startManager(t, &logs, good, bad)
	snaps := m.Snapshots()
	if snaps[0].State != StateRunning {
		t.Fatalf("pinned with the right sum: %+v", snaps[0])
	}
	if snaps[1].State != StateFailed || snaps[1].Restarts != 0 || !strings.Contains(snaps[1].LastError, "checksum") {
		t.Fatalf("pinned with a wrong sum: %+v", snaps[1])
	}
}

func TestBadSettings(t *testing.T) {
	var logs testutil.SyncBuffer
	m := startManager(t, &logs, echoPlugin(t, "echo", 1, `colour = "blue"`))
	s := m.Snapshots()[0]
	if s.State != StateFailed || !strings.Contains(s.LastError, "colour") || !strings.Contains(s.LastError, "dsmil.hcl:") {
		t.Fatalf("snapshot %+v", s)
	}
}

// TestDrain: Shutdown lets a request in flight finish.
func TestDrain(t *testing.T) {
	var logs testutil.SyncBuffer
	p := echoPlugin(t, "slow", 1, `delay = "100ms"`)
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs})
	m := New(Config{Plugins: []*config.Plugin{p}, Logger: logger})
	m.Start(context.Background())
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := m.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	r, _ := router.New(router.Config{Registry: m})
	errc := make(chan error, 1)
	started := make(chan struct{})
	var once sync.Once
	go func() {
		errc <- r.Route(context.Background(), chat("slow", "a b c d e", true), func(*dbe.Frame) error {
			once.Do(func() { close(started) })
			return nil
		})
	}()
	<-started
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if err := <-errc; err != nil {
		t.Fatalf("in-flight request during drain: %v", err)
	}
	if s := m.Snapshots()[0]; s.State != StateStopped || s.PID != 0 {
		t.Fatalf("after shutdown: %+v", s)
	}
}

// TestPluginEnvironment reads the environment of the real plugin process
// from /proc: with canaries in the host's environment (a stray secret and
// every tenant's api_key_env), the plugin gets exactly BaseEnv (what of it
// the host has), its pass_env and env, the host's name, go-plugin's
// handshake variables and the identity pipe's descriptor number, and no
// key material.
func TestPluginEnvironment(t *testing.T) {
	canaries := map[string]string{
		"SECRET_CANARY":         "leak123",
		"DSMIL_OPENAI_API_KEY":  "canary-openai-key",
		"SOC_TEAM_KEY":          "canary-soc-key",
		"AWS_SECRET_ACCESS_KEY": "canary-aws",
	}
	for k, v := range canaries {
		t.Setenv(k, v)
	}
	t.Setenv("GOGC", "150")               // in BaseEnv, but the env block wins
	t.Setenv("DSMIL_ORT_LIB", "/opt/ort") // passed by pass_env
	t.Setenv("OMP_NUM_THREADS", "3")      // neither: not passed
	src := fmt.Sprintf(`
plugin "envcheck" {
  path      = %q
  device_id = 47
  profiles  = ["envcheck"]
  env       = { FOO = "bar", GOGC = "77" }
  pass_env  = ["DSMIL_ORT_LIB", "UNSET_IN_HOST"]
}
tenant "LOCAL" {
  api_key_env  = "DSMIL_OPENAI_API_KEY"
  compartments = ["SOC"]
  models       = ["*"]
}
tenant "SOC" {
  api_key_env  = "SOC_TEAM_KEY"
  compartments = ["SOC"]
  models       = ["*"]
}
`, echoBin)
	cfg, diags := config.Parse(filepath.Join(t.TempDir(), "dsmil.hcl"), []byte(src), config.WithGetenv(os.Getenv))
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	var logs testutil.SyncBuffer
	m := startManager(t, &logs, cfg.Plugins[0])
	pid := m.Snapshots()[0].PID
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		got[k] = v
	}
	want := map[string]string{
		"FOO": "bar", "GOGC": "77", "DSMIL_ORT_LIB": "/opt/ort",
		"DSMIL_HOST_NAME": "dsmil-host", sdk.Handshake.MagicCookieKey: sdk.Handshake.MagicCookieValue,
		identity.EnvPluginIdentityFD: "3",
	}
	for _, k := range BaseEnv {
		if v, ok := os.LookupEnv(k); ok && want[k] == "" {
			want[k] = v
		}
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("plugin environment: %s=%q, want %q", k, got[k], v)
		}
	}
	for k, v := range got {
		if _, ok := want[k]; ok || strings.HasPrefix(k, "PLUGIN_") { // go-plugin's own
			continue
		}
		t.Errorf("plugin environment has %s=%q, which the host did not give it", k, v)
	}
	for k, v := range canaries {
		if strings.Contains(string(raw), v) {
			t.Errorf("the host's %s reached the plugin", k)
		}
	}
	if strings.Contains(string(raw), "PRIVATE KEY") || strings.Contains(string(raw), "DSMIL_PLUGIN_IDENTITY=") {
		t.Error("key material in the plugin's environment")
	}
}

// TestStartTimeout: each plugin block's start_timeout bounds its own start.
// A plugin that is still configuring (echo's configure_delay, as a model
// load) or has not even finished its go-plugin handshake when its timeout
// passes fails with an error naming start_timeout, while a plugin with a
// longer start_timeout in the same manager starts.
func TestStartTimeout(t *testing.T) {
	var logs testutil.SyncBuffer
	// 2s: time to spawn and shake hands even on a loaded machine, so that
	// the timeout hits during Configure.
	loading := echoPlugin(t, "loading", 1, `
  start_timeout   = "2s"
  configure_delay = "1h"`)
	loading.MaxRestarts = 0
	mute := filepath.Join(t.TempDir(), "mute-plugin")
	if err := os.WriteFile(mute, []byte("#!/bin/sh\nexec sleep 60\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	handshake := echoPlugin(t, "handshake", 1, `start_timeout = "300ms"`)
	handshake.Path, handshake.MaxRestarts = mute, 0
	patient := echoPlugin(t, "patient", 1, `
  start_timeout   = "20s"
  configure_delay = "500ms"`)
	if loading.StartTimeout != 2*time.Second || handshake.StartTimeout != 300*time.Millisecond || patient.StartTimeout != 20*time.Second {
		t.Fatalf("start_timeout not parsed: %v %v %v", loading.StartTimeout, handshake.StartTimeout, patient.StartTimeout)
	}
	if d := (&Instance{plugin: &config.Plugin{}}).startTimeout(); d != config.DefaultPluginStartTimeout {
		t.Fatalf("a Plugin without StartTimeout gets %v", d)
	}
	start := time.Now()
	m := startManager(t, &logs, loading, handshake, patient)
	if d := time.Since(start); d > 15*time.Second {
		t.Fatalf("took %v to settle: the short start timeouts were not applied", d)
	}
	snaps := m.Snapshots()
	for k, want := range []string{"start_timeout = 2s", "start_timeout = 300ms"} {
		s := snaps[k]
		t.Logf("%s: %s", s.Name, s.LastError)
		if s.State != StateFailed || s.Healthy || !strings.Contains(s.LastError, s.Name+"#0 did not finish starting within "+want) {
			t.Errorf("%s: %+v", s.Name, s)
		}
	}
	if !strings.Contains(snaps[0].LastError, "configure") {
		t.Errorf("loading: the error does not say it timed out configuring: %s", snaps[0].LastError)
	}
	if s := snaps[2]; s.State != StateRunning || !s.Healthy {
		t.Errorf("patient: %+v\n%s", s, logs.String())
	}
}
