package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/host/cli"
	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/server"
	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/hashicorp/go-hclog"
)

// npuAPIKey is the tenant's key in the llm-npu tests.
const npuAPIKey = "llm-npu-test-key"

// freeAddr is a loopback TCP address free at the time of the call.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// llmHost is dsmil-host (host/server, as `dsmil-host serve` runs it) in
// this process, with llm-amx (Device 47, profile llm-7b-amx) and llm-npu
// (Device 44, profile llm-1b-npu) serving tiny random-weight models, and
// npuExtra added to llm-npu's block.
type llmHost struct {
	h                *server.Host
	shim, metrics    string
	admin            string
	logs             *testutil.SyncBuffer
	amxModel, npuMod string
}

func startLLMHost(t *testing.T, npuExtra string) *llmHost {
	t.Helper()
	if os.Getenv(ortLibEnv) == "" {
		t.Skip(ortLibEnv + " is not set: make test sets it to the `make ort` cache")
	}
	if testing.Short() {
		t.Skip("spawns llm-amx and llm-npu")
	}
	dir := t.TempDir()
	spec, err := mkmodel.Preset("tiny")
	if err != nil {
		t.Fatal(err)
	}
	spec.DType = mkmodel.Int4
	model := filepath.Join(dir, "tiny")
	if _, err := mkmodel.Write(model, spec); err != nil {
		t.Fatal(err)
	}
	l := &llmHost{shim: freeAddr(t), metrics: freeAddr(t), logs: &testutil.SyncBuffer{},
		amxModel: "dsmil-demo-random-tiny-amx", npuMod: "dsmil-demo-random-tiny-npu"}
	src := fmt.Sprintf(`
shim    { listen = %q }
router  { socket = "run/router.sock" }
admin   { socket = "run/admin.sock" }
metrics { listen = %q }
plugin "llm-amx" {
  path            = %q
  device_id       = 47
  profiles        = ["llm-7b-amx"]
  max_restarts    = 0
  health_interval = "200ms"
  pass_env        = ["DSMIL_ORT_LIB"]
  model           = "tiny"
  model_name      = %q
  threads         = 1
}
plugin "llm-npu" {
  path            = %q
  device_id       = 44
  profiles        = ["llm-1b-npu"]
  memory_budget   = "2GiB"
  max_restarts    = 0
  health_interval = "200ms"
  pass_env        = ["DSMIL_ORT_LIB"]
  model           = "tiny"
  model_name      = %q
  %s
}
model %q { profile = "llm-7b-amx" }
model %q { profile = "llm-1b-npu" }
tenant "T" {
  api_key_sha256 = [%q]
  compartments   = ["SOC"]
  models         = ["*"]
}
`, l.shim, l.metrics, pluginBin, l.amxModel, npuBin, l.npuMod, npuExtra, l.amxModel, l.npuMod, config.HashKey(npuAPIKey))
	cfg, diags := config.Parse(filepath.Join(dir, "dsmil.hcl"), []byte(src))
	if diags.HasErrors() {
		t.Fatalf("config: %v", diags)
	}
	l.admin = cfg.Admin.Socket
	log := hclog.New(&hclog.LoggerOptions{Name: "dsmil-host", Level: hclog.Info, Output: l.logs})
	if l.h, err = server.Start(context.Background(), cfg, log, server.Options{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.h.Shutdown() })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := l.h.Manager.WaitReady(ctx); err != nil {
		t.Fatalf("not ready: %v\n%s", err, l.logs.String())
	}
	return l
}

// get GETs path from base with the tenant's key and returns the body.
func (l *llmHost) get(t *testing.T, url string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+npuAPIKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	return string(b)
}

// pluginsList runs `dsmil-host plugins list` (args added) against the host.
func (l *llmHost) pluginsList(t *testing.T, args ...string) string {
	t.Helper()
	var out, errb bytes.Buffer
	if rc := cli.Run(context.Background(), append([]string{"plugins", "list", "-admin", l.admin}, args...), &out, &errb); rc != 0 {
		t.Fatalf("plugins list: %d %s", rc, errb.String())
	}
	return out.String()
}

// TestLLMNPU runs the real host with llm-amx and llm-npu on this machine,
// whose ONNX Runtime has no NPU provider and which has no NPU: a chat for
// the llm-1b-npu model is answered by Device 44 and one for the llm-7b-amx
// model by Device 47 (the router's metrics count each on its device), and
// llm-npu says it runs on the CPU in plugins list, /v1/models, the metrics
// and one warning.
func TestLLMNPU(t *testing.T) {
	l := startLLMHost(t, "")
	base := "http://" + l.shim
	for _, m := range []string{l.npuMod, l.amxModel, l.npuMod} {
		body := fmt.Sprintf(`{"model": %q, "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 3, "temperature": 0}`, m)
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+npuAPIKey)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var out struct {
			Model string `json:"model"`
			Usage struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || out.Model != m || out.Usage.CompletionTokens == 0 {
			t.Fatalf("chat with %s: HTTP %d %s\n%s", m, resp.StatusCode, b, l.logs.String())
		}
	}

	// Routing: two requests on Device 44's profile, one on Device 47's.
	metrics := l.get(t, "http://"+l.metrics+"/metrics")
	for _, want := range []string{
		`dsmil_l7_requests_total{device_id="44",profile="llm-1b-npu",status="ok"} 2`,
		`dsmil_l7_requests_total{device_id="47",profile="llm-7b-amx",status="ok"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	if strings.Contains(metrics, `device_id="47",profile="llm-1b-npu"`) || strings.Contains(metrics, `device_id="44",profile="llm-7b-amx"`) {
		t.Errorf("a profile was served by the other device:\n%s", metrics)
	}

	// Where llm-npu computes: the CPU, everywhere.
	var snaps []struct {
		Name        string `json:"name"`
		DeviceID    int    `json:"device_id"`
		Accelerator string `json:"accelerator"`
	}
	if err := json.Unmarshal([]byte(l.pluginsList(t, "-json")), &snaps); err != nil || len(snaps) != 2 {
		t.Fatalf("plugins list -json: %v %+v", err, snaps)
	}
	accel := map[string]string{}
	for _, s := range snaps {
		accel[s.Name] = s.Accelerator
		if !strings.HasPrefix(s.Accelerator, "cpu") {
			t.Errorf("%s (device %d) reports accelerator %q on a machine without an NPU", s.Name, s.DeviceID, s.Accelerator)
		}
	}
	table := l.pluginsList(t)
	if !strings.Contains(table, "ACCELERATOR") || !strings.Contains(table, "llm-npu#0  44      llm-1b-npu  "+accel["llm-npu"]) {
		t.Errorf("plugins list:\n%s", table)
	}
	if !strings.Contains(metrics, fmt.Sprintf(`dsmil_l7_plugin_up{accelerator=%q,device_id="44",plugin="llm-npu",replica="0"} 1`, accel["llm-npu"])) {
		t.Errorf("no plugin_up for llm-npu with accelerator %q", accel["llm-npu"])
	}
	var models struct {
		Data []struct {
			ID          string `json:"id"`
			Accelerator string `json:"accelerator"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(l.get(t, base+"/v1/models")), &models); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, m := range models.Data {
		got[m.ID] = m.Accelerator
	}
	if got[l.npuMod] != accel["llm-npu"] || got[l.amxModel] != accel["llm-amx"] {
		t.Errorf("/v1/models accelerators %v, plugins %v", got, accel)
	}
	if n := strings.Count(l.logs.String(), "running on the CPU, not an NPU"); n != 1 {
		t.Errorf("%d warnings that llm-npu runs on the CPU, want 1\n%s", n, l.logs.String())
	}
	t.Logf("llm-npu on %q, llm-amx on %q\n%s", accel["llm-npu"], accel["llm-amx"], table)
}

// TestLLMNPURequired: with require_accelerator = true on a machine without
// an NPU, llm-npu does not start, and plugins list says why.
func TestLLMNPURequired(t *testing.T) {
	l := startLLMHost(t, "require_accelerator = true")
	var failed bool
	for _, s := range l.h.Manager.Snapshots() {
		if s.Name != "llm-npu" {
			if s.State != "running" {
				t.Errorf("%s: %s %s", s.Name, s.State, s.LastError)
			}
			continue
		}
		failed = s.State == "failed"
		if !failed || !strings.Contains(s.LastError, "require_accelerator") || !strings.Contains(s.LastError, "no usable accelerator") {
			t.Errorf("llm-npu: state %s, error %q", s.State, s.LastError)
		}
	}
	if !failed {
		t.Fatalf("llm-npu started\n%s", l.logs.String())
	}
	table := l.pluginsList(t)
	if !strings.Contains(table, "llm-npu#0: error:") || !strings.Contains(table, "require_accelerator is true") {
		t.Errorf("plugins list does not say why llm-npu is down:\n%s", table)
	}
	t.Logf("%s", table)
}
