// Command ocr measures the multimodal plugin's OCR pipeline.
//
// Without -stack it runs plugins/multimodal/internal/ocrbench (internal
// to the plugin, so built by path, as bench/llm builds rawdecode) with
// the same flags: accuracy and speed on the rendered corpus against
// @gutenye/ocr-node and tesseract, or -screenshot N. Run from the
// repository root:
//
//	go run ./bench/ocr [-n 100] [-seed 1] [-threads 2] [-keep DIR] [-classify] [-unclip 2.5]
//	go run ./bench/ocr -screenshot 10
//
// With -stack N it reads the 1280×720 screenshot of 20 lines N times
// through the whole stack (HTTP → shim → router → the dsmil-multimodal
// process, a data: URL in a chat request) and N times with the raw
// pipeline in a process of its own (ocrbench -stdin), interleaved, and
// prints both and their ratio (the goal: ≥ 0.95×):
//
//	go run ./bench/ocr -stack 10 [-threads 2]
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/router"
	"github.com/dsmil/l7/host/shim"
	"github.com/hashicorp/go-hclog"
)

func main() {
	if len(os.Args) < 2 || !slices.ContainsFunc(os.Args[1:], func(a string) bool { return strings.HasPrefix(strings.TrimLeft(a, "-"), "stack") }) {
		cmd := exec.Command("go", append([]string{"run", "./plugins/multimodal/internal/ocrbench"}, os.Args[1:]...)...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "bench/ocr:", err)
			os.Exit(1)
		}
		return
	}
	n := flag.Int("stack", 10, "reads of the screenshot through each path")
	threads := flag.Int("threads", 2, "ONNX Runtime intra-op threads, both paths")
	flag.Parse()
	if err := stack(*n, *threads); err != nil {
		fmt.Fprintln(os.Stderr, "bench/ocr:", err)
		os.Exit(1)
	}
}

const apiKey = "bench-ocr-key"

func stack(n, threads int) error {
	dir, err := os.MkdirTemp("", "bench-ocr-stack")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	plugin, ocrbench := filepath.Join(dir, "dsmil-multimodal"), filepath.Join(dir, "ocrbench")
	for bin, pkg := range map[string]string{plugin: "./plugins/multimodal", ocrbench: "./plugins/multimodal/internal/ocrbench"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	shot := filepath.Join(dir, "screenshot.png")
	if out, err := exec.Command(ocrbench, "-write-screenshot", shot).CombinedOutput(); err != nil {
		return fmt.Errorf("ocrbench: %v\n%s", err, out)
	}
	png, err := os.ReadFile(shot)
	if err != nil {
		return err
	}
	models, err := exec.Command("sh", "plugins/multimodal/models/fetch.sh").Output()
	if err != nil {
		return fmt.Errorf("fetch.sh: %w", err)
	}

	// The whole stack, as dsmil-host serve wires it.
	cfg, diags := config.Parse(filepath.Join(dir, "dsmil.hcl"), []byte(fmt.Sprintf(`
plugin "multimodal" {
  path     = %q
  device_id = 45
  profiles = ["ocr"]
  pass_env = ["DSMIL_ORT_LIB"]
  models   = %q
  threads  = %d
}
model "dsmil-ocr-ppocrv4" { profile = "ocr" }
tenant "BENCH" {
  api_key_sha256 = ["%x"]
  compartments   = ["SOC"]
  models         = ["*"]
}
`, plugin, strings.TrimSpace(string(models)), threads, sha256.Sum256([]byte(apiKey)))))
	if diags.HasErrors() {
		return diags
	}
	m := pluginmgr.New(pluginmgr.Config{Plugins: cfg.Plugins, Files: cfg.Files(), Logger: hclog.NewNullLogger()})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m.Start(ctx)
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		m.Shutdown(sctx)
	}()
	wctx, wcancel := context.WithTimeout(ctx, 60*time.Second)
	defer wcancel()
	if err := m.WaitReady(wctx); err != nil {
		return err
	}
	r, err := router.New(router.Config{Registry: m})
	if err != nil {
		return err
	}
	srv := httptest.NewUnstartedServer(nil)
	shimCfg := cfg.Shim
	shimCfg.AllowedHosts = []string{srv.Listener.Addr().String()}
	sh, err := shim.New(shim.Config{Shim: shimCfg, Tenants: cfg.Tenants, Models: cfg.Models, Router: r})
	if err != nil {
		return err
	}
	srv.Config.Handler = sh
	srv.Start()
	defer srv.Close()
	body := `{"model": "dsmil-ocr-ppocrv4", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,` +
		base64.StdEncoding.EncodeToString(png) + `"}}]}]}`
	viaStack := func() (time.Duration, string, error) {
		start := time.Now()
		req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+apiKey)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		var out struct {
			Choices []struct {
				Message struct{ Content string } `json:"message"`
			} `json:"choices"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(b, &out) != nil || len(out.Choices) != 1 {
			return 0, "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
		}
		return d, out.Choices[0].Message.Content, nil
	}

	// The raw pipeline in its own process.
	raw := exec.Command(ocrbench, "-stdin", "-threads", fmt.Sprint(threads))
	raw.Stderr = os.Stderr
	in, err := raw.StdinPipe()
	if err != nil {
		return err
	}
	outPipe, err := raw.StdoutPipe()
	if err != nil {
		return err
	}
	if err := raw.Start(); err != nil {
		return err
	}
	defer func() { in.Close(); _ = raw.Wait() }()
	rawOut := bufio.NewScanner(outPipe)
	rawOut.Buffer(nil, 1<<20)
	viaRaw := func() (time.Duration, string, error) {
		fmt.Fprintln(in, shot)
		if !rawOut.Scan() {
			return 0, "", fmt.Errorf("ocrbench -stdin ended: %v", rawOut.Err())
		}
		var v struct {
			MS    float64  `json:"ms"`
			Lines []string `json:"lines"`
		}
		if err := json.Unmarshal(rawOut.Bytes(), &v); err != nil {
			return 0, "", err
		}
		return time.Duration(v.MS * 1e6), strings.Join(v.Lines, "\n"), nil
	}

	// One warm-up each, then interleaved.
	if _, _, err := viaStack(); err != nil {
		return err
	}
	if _, _, err := viaRaw(); err != nil {
		return err
	}
	var st, rw []time.Duration
	for i := 0; i < n; i++ {
		d, s, err := viaStack()
		if err != nil {
			return err
		}
		d2, s2, err := viaRaw()
		if err != nil {
			return err
		}
		if s != s2 {
			return fmt.Errorf("the stack read %q, the raw pipeline %q", s, s2)
		}
		st, rw = append(st, d), append(rw, d2)
	}
	mean := func(ds []time.Duration) float64 {
		var t time.Duration
		for _, d := range ds {
			t += d
		}
		return float64(t) / float64(len(ds)) / 1e6
	}
	p50 := func(ds []time.Duration) float64 {
		c := slices.Clone(ds)
		slices.Sort(c)
		return float64(c[len(c)/2]) / 1e6
	}
	fmt.Printf("screenshot 1280x720, 20 lines, %d reads each, interleaved, %d ORT threads\n", n, threads)
	fmt.Printf("whole stack  mean %7.1f ms  p50 %7.1f ms  %.2f images/s\n", mean(st), p50(st), 1000/mean(st))
	fmt.Printf("raw pipeline mean %7.1f ms  p50 %7.1f ms  %.2f images/s\n", mean(rw), p50(rw), 1000/mean(rw))
	fmt.Printf("stack/raw throughput %.3f× (goal ≥ 0.95×)\n", mean(rw)/mean(st))
	return nil
}
