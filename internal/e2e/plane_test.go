package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http/httptest"
	"os"
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

// The tiny model's names in the tests' dsmil.hcl.
const (
	tinyModelID = "dsmil-demo-random-tiny-int4"
	tinyProfile = "llm-tiny"
)

// plane is the host side of a test: dsmil.hcl with one llm-amx plugin
// serving a fresh tiny model, its plugin manager and a router over it.
type plane struct {
	cfg      *config.Config
	m        *pluginmgr.Manager
	r        *router.Router
	logs     *testutil.SyncBuffer
	modelDir string
}

// startPlane writes the tiny model (int4, maxPositions long), starts the
// llm-amx plugin with the extra plugin-block lines and waits until it runs.
func startPlane(t *testing.T, maxPositions int, extra string) *plane {
	t.Helper()
	if os.Getenv(ortLibEnv) == "" {
		t.Skip(ortLibEnv + " is not set: make test sets it to the `make ort` cache")
	}
	dir := t.TempDir()
	spec, err := mkmodel.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	spec.DType, spec.MaxPositions = mkmodel.Int4, maxPositions
	modelDir := filepath.Join(dir, "tiny")
	if _, err := mkmodel.Write(modelDir, spec); err != nil {
		t.Fatal(err)
	}
	p := startHCL(t, dir, fmt.Sprintf(`
plugin "llm-amx" {
  path         = %q
  device_id    = 47
  profiles     = [%q]
  max_restarts = 0
  pass_env     = ["DSMIL_ORT_LIB"]
  model        = %q
  model_name   = %q
  threads      = 1
  %s
}
model %q { profile = %q }
tenant "T" {
  api_key_sha256 = ["%x"]
  compartments   = ["SOC"]
  models         = ["*"]
}
tenant "U" {
  api_key_sha256 = ["%x"]
  compartments   = ["SOC"]
  models         = ["*"]
}
`, pluginBin, tinyProfile, modelDir, tinyModelID, extra, tinyModelID, tinyProfile,
		sha256.Sum256([]byte(testAPIKey)), sha256.Sum256([]byte(otherAPIKey))))
	p.modelDir = modelDir
	return p
}

// startHCL starts the plugins of the dsmil.hcl text hcl (written in dir)
// under a plugin manager, waits until the first runs and puts a router over
// them.
func startHCL(t *testing.T, dir, hcl string) *plane {
	t.Helper()
	p := &plane{logs: &testutil.SyncBuffer{}}
	cfg, diags := config.Parse(filepath.Join(dir, "dsmil.hcl"), []byte(hcl))
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	p.cfg = cfg
	p.m = pluginmgr.New(pluginmgr.Config{Plugins: cfg.Plugins, Files: cfg.Files(),
		Logger: hclog.New(&hclog.LoggerOptions{Output: p.logs, Level: hclog.Info})})
	ctx, cancel := context.WithCancel(context.Background())
	p.m.Start(ctx)
	t.Cleanup(func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		p.m.Shutdown(sctx)
		cancel()
	})
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := p.m.WaitReady(wctx); err != nil {
		t.Fatalf("not ready: %v\n%s", err, p.logs.String())
	}
	if snap := p.m.Snapshots()[0]; snap.State != pluginmgr.StateRunning || snap.Version == "" {
		t.Fatalf("snapshot %+v\n%s", snap, p.logs.String())
	}
	var err error
	if p.r, err = router.New(router.Config{Registry: p.m}); err != nil {
		t.Fatal(err)
	}
	return p
}

// serveShim serves the OpenAI shim over the plane's router on a loopback
// HTTP server for the rest of the test, and returns its URL.
func (p *plane) serveShim(t *testing.T) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	shimCfg := p.cfg.Shim
	shimCfg.AllowedHosts = []string{srv.Listener.Addr().String()}
	sh, err := shim.New(shim.Config{Shim: shimCfg, Tenants: p.cfg.Tenants, Models: p.cfg.Models, Router: p.r})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = sh
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}
