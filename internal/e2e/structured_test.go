package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/shim"
	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/hashicorp/go-hclog"
)

// nodeDir holds the npm clients the shim's tests drive (package.json and
// its committed lockfile; `npm ci` there installs them).
const nodeDir = "../../host/shim/testdata/openai-node"

// TestStructuredClients runs real clients — the openai npm client and
// LangChain — against the shim in front of the router and the llm-amx
// plugin serving a random-weight model: structured outputs, forced and
// streamed tool calls, a tool round trip, bindTools and
// withStructuredOutput (structured.mjs). Node and the clients are required
// in CI and skipped elsewhere when missing.
func TestStructuredClients(t *testing.T) {
	required := os.Getenv("CI") != "" || os.Getenv("DSMIL_REQUIRE_NODE") != ""
	missing := func(format string, args ...any) {
		t.Helper()
		if required {
			t.Fatalf(format, args...)
		}
		t.Skipf(format, args...)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("node is not installed: %v", err)
	}
	for _, pkg := range []string{"openai", "@langchain/openai"} {
		if _, err := os.Stat(filepath.Join(nodeDir, "node_modules", pkg, "package.json")); err != nil {
			missing("%s is not installed: run `npm ci` in host/shim/testdata/openai-node (make deps does): %v", pkg, err)
		}
	}
	if os.Getenv(ortLibEnv) == "" {
		t.Skip(ortLibEnv + " is not set: make test sets it to the `make ort` cache")
	}
	dir := t.TempDir()
	spec, err := mkmodel.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	spec.DType, spec.MaxPositions = mkmodel.Int4, 4096
	if _, err := mkmodel.Write(filepath.Join(dir, "tiny"), spec); err != nil {
		t.Fatal(err)
	}
	const modelID = "dsmil-demo-random-tiny-int4"
	cfg, diags := config.Parse(filepath.Join(dir, "dsmil.hcl"), []byte(fmt.Sprintf(`
plugin "llm-amx" {
  path          = %q
  device_id     = 47
  profiles      = ["llm-tiny"]
  max_restarts  = 0
  pass_env      = ["DSMIL_ORT_LIB"]
  model         = %q
  model_name    = %q
  threads       = 1
  kv_budget     = "8MiB"
}
model %q { profile = "llm-tiny" }
tenant "T" {
  api_key_sha256 = ["%x"]
  compartments   = ["SOC"]
  models         = ["*"]
}
`, pluginBin, filepath.Join(dir, "tiny"), modelID, modelID, sha256.Sum256([]byte(testAPIKey)))))
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	var logs testutil.SyncBuffer
	m := pluginmgr.New(pluginmgr.Config{Plugins: cfg.Plugins, Files: cfg.Files(),
		Logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	m.Start(ctx)
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		m.Shutdown(sctx)
	}()
	if err := m.WaitReady(ctx); err != nil || m.Snapshots()[0].State != pluginmgr.StateRunning {
		t.Fatalf("not ready: %v %+v\n%s", err, m.Snapshots(), logs.String())
	}
	r, err := router.New(router.Config{Registry: m})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	shimCfg := cfg.Shim
	shimCfg.AllowedHosts = []string{srv.Listener.Addr().String()}
	sh, err := shim.New(shim.Config{Shim: shimCfg, Tenants: cfg.Tenants, Models: cfg.Models, Router: r})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = sh
	srv.Start()
	defer srv.Close()

	cmd := exec.CommandContext(ctx, node, "--test-reporter=spec", "structured.mjs")
	cmd.Dir = nodeDir
	cmd.Env = append(os.Environ(), "OPENAI_BASE_URL="+srv.URL+"/v1", "OPENAI_API_KEY="+testAPIKey, "DSMIL_MODEL="+modelID, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node structured.mjs: %v\n%s\nplugin log:\n%s", err, out, logs.String())
	}
	t.Logf("node structured.mjs:\n%s", out)
}
