// Command llm measures the llm-amx plugin against raw ONNX Runtime, in one
// run, for the Qwen2.5-0.5B shape with int4 (block 128), int8 and fp32
// weights:
//
//   - raw: a minimal decode loop written for this benchmark
//     (plugins/llm-amx/internal/rawdecode, which bench/llm builds and drives
//     in its own process, as the plugin runs in its own): one
//     model.Sequence on an ONNX Runtime session with the plugin's session
//     options, Step with the 128-token prompt, then one Step per token,
//     argmax over the tokenizer's vocabulary (as the plugin's greedy
//     sampler does);
//   - stack: the whole plane — an in-process dsmil-host (host/server: OpenAI
//     shim → router → plugin manager) with the built dsmil-llm-amx plugin
//     process, a streamed /v1/completions request over HTTP with the same
//     prompt, temperature 0 and max_tokens fixed. The plugin runs with
//     ignore_eos = true so that every request generates exactly max_tokens
//     tokens (random weights draw EOS at random).
//
// For reference it also measures the plugin alone: the same request as a
// DBE L7_CHAT_REQ on the host's own session to the plugin process
// (pluginmgr.Instance.Call: no router, shim or HTTP).
//
// All measure TTFT (prompt in → first token out: for the stack, the first
// SSE chunk) and decode tokens/s after the first token, in interleaved
// rounds (the order rotating) so that machine noise hits every path, and
// print medians and the medians of the per-round ratios. On the shared
// reference machine, two identical processes doing the same decode differ
// by a few per cent for as long as they live, so each dtype runs -procs
// raw processes and -procs plugin replicas and the rounds go through them
// in turn. Models are generated into -models (default the user cache)
// when absent.
//
//	go run ./bench/llm [-dtypes int4,int8,fp32] [-rounds 8] [-procs 2] [-tokens 128] [-threads 0]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/server"
	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/hashicorp/go-hclog"
	"google.golang.org/protobuf/proto"
)

// dtypes maps the benchmark's dtype names to the plugin's variants.
var dtypes = map[string]struct {
	dtype   mkmodel.DType
	variant string
}{
	"int4": {mkmodel.Int4, "q4"},
	"int8": {mkmodel.Int8, "int8"},
	"fp32": {mkmodel.FP32, "fp32"},
}

const apiKey = "bench-llm-key"

func main() {
	cache, _ := os.UserCacheDir()
	models := flag.String("models", filepath.Join(cache, "dsmil", "models", "qwen2.5-0.5b"), "model directory (generated when absent)")
	which := flag.String("dtypes", "int4,int8,fp32", "weights to measure")
	rounds := flag.Int("rounds", 8, "interleaved rounds per dtype")
	promptLen := flag.Int("prompt", 128, "prompt tokens")
	tokens := flag.Int("tokens", 128, "tokens generated per request")
	threads := flag.Int("threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	spin := flag.Bool("spin", true, "let idle ONNX Runtime threads spin (the plugin's allow_spinning)")
	procs := flag.Int("procs", 2, "raw and plugin processes per dtype, used in turn")
	streams := flag.String("streams", "", `also measure concurrent streams on one plugin process, e.g. "1,2,4" (first dtype only)`)
	cpuprofile := flag.String("cpuprofile", "", "write this process's CPU profile (host, shim and client) to the file")
	flag.Parse()
	server.TuneGC() // as dsmil-host serve does
	if *cpuprofile != "" {
		runtime.SetCPUProfileRate(1000) // finer than pprof's 100 Hz: the host wakes briefly per token
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/llm:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(*models, strings.Split(*which, ","), *rounds, *promptLen, *tokens, *threads, *spin, max(*procs, 1), *streams); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench/llm:", err)
		os.Exit(1)
	}
}

// sample is one measurement: time to first token and decode rate.
type sample struct {
	ttft time.Duration
	tps  float64
	cpu  time.Duration // this process's CPU time per generated token (host and client, for "stack")
}

// cpuTime is this process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(dir string, which []string, rounds, promptLen, tokens, threads int, spin bool, procs int, streams string) error {
	// Check every flag before measuring anything: a bad -streams found
	// after the rounds would throw them away.
	conc, err := parseStreams(streams)
	if err != nil {
		return err
	}
	for _, d := range which {
		if _, ok := dtypes[d]; !ok {
			return fmt.Errorf("unknown dtype %q (int4, int8, fp32)", d)
		}
	}
	for _, d := range which {
		if err := ensureModel(dir, d); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "bench-llm")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	bins := map[string]string{}
	for name, pkg := range map[string]string{
		"dsmil-llm-amx": "github.com/dsmil/l7/plugins/llm-amx",
		"rawdecode":     "github.com/dsmil/l7/plugins/llm-amx/internal/rawdecode",
	} {
		bins[name] = filepath.Join(tmp, name)
		if out, err := exec.Command("go", "build", "-o", bins[name], pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", name, err, out)
		}
	}
	fmt.Printf("llm benchmark: %s, %d CPUs; qwen2.5-0.5b shape (random weights) in %s\n", runtime.Version(), runtime.NumCPU(), dir)
	fmt.Printf("prompt %d tokens, %d generated per request (greedy, EOS ignored), %d interleaved rounds over %d raw and %d plugin processes\n",
		promptLen, tokens, rounds, procs, procs)
	header := false
	type row struct {
		dtype                 string
		ttftRatio, tpsRatio   float64
		pluginTTFT, pluginTPS float64
		conc                  []string // concurrency results
	}
	var rows []row
	for _, d := range which {
		// One host per dtype, so that only one model's processes are in
		// memory at a time.
		addr, err := freeAddr()
		if err != nil {
			return err
		}
		host, err := startHost(tmp, bins["dsmil-llm-amx"], dir, addr, d, threads, spin, procs)
		if err != nil {
			return err
		}
		var raws []*rawProc
		stop := func() {
			for _, r := range raws {
				r.close()
			}
			host.Shutdown()
		}
		for range procs {
			r, err := startRaw(bins["rawdecode"], dir, dtypes[d].variant, threads, spin, promptLen)
			if err != nil {
				stop()
				return err
			}
			raws = append(raws, r)
		}
		if !header {
			fmt.Printf("%s\n\n%-5s %-6s %12s %14s %24s\n", raws[0].runtime, "dtype", "path", "TTFT (ms)", "decode tok/s", "bench CPU/token (µs)")
			header = true
		}
		insts := host.Manager.Instances()
		prompt := raws[0].prompt
		round := 0 // spreads the rounds over the processes
		paths := []struct {
			name string
			run  func(tokens int) (sample, error)
		}{
			{"raw", func(n int) (sample, error) { return raws[round%procs].run(n) }},
			{"stack", func(n int) (sample, error) { return stackRun(addr, modelID(d), prompt, n) }},
			{"plugin", func(n int) (sample, error) { return pluginRun(insts[round%procs], d, prompt, n) }},
		}
		// Warm up every process (first runs allocate and pre-pack).
		for round = range procs {
			for _, p := range paths {
				if _, err := p.run(8); err != nil {
					stop()
					return fmt.Errorf("%s: %w", p.name, err)
				}
			}
		}
		got := map[string][]sample{}
		for round = range rounds {
			// Rotate the order so that no path always follows another.
			for k := range paths {
				p := paths[(round+k)%len(paths)]
				c0 := cpuTime()
				s, err := p.run(tokens)
				s.cpu = (cpuTime() - c0) / time.Duration(tokens)
				if err != nil {
					stop()
					return fmt.Errorf("%s: %w", p.name, err)
				}
				got[p.name] = append(got[p.name], s)
			}
		}
		var concRes []string
		if len(conc) > 0 && d == which[0] {
			if concRes, err = concurrency(insts[0], d, prompt, tokens, conc); err != nil {
				stop()
				return err
			}
		}
		stop()
		for _, p := range paths {
			m := medians(got[p.name])
			fmt.Printf("%-5s %-6s %12.1f %14.1f %24.0f\n", d, p.name, ms(m.ttft), m.tps, float64(m.cpu.Nanoseconds())/1e3)
		}
		// Ratios per round (the paths of one round ran within seconds of
		// each other), then their median: this cancels the slow swings of
		// a shared machine better than a ratio of medians.
		ratio := func(path string) (ttft, tps float64) {
			var tt, tp []float64
			for i, s := range got[path] {
				r := got["raw"][i]
				tt = append(tt, float64(s.ttft)/float64(r.ttft))
				tp = append(tp, s.tps/r.tps)
			}
			return median(tt), median(tp)
		}
		row := row{dtype: d, conc: concRes}
		row.ttftRatio, row.tpsRatio = ratio("stack")
		row.pluginTTFT, row.pluginTPS = ratio("plugin")
		rows = append(rows, row)
	}
	fmt.Printf("\n%-5s %20s %20s %22s %22s\n", "dtype", "decode stack/raw", "TTFT stack/raw", "decode plugin/raw", "TTFT plugin/raw")
	for _, r := range rows {
		fmt.Printf("%-5s %18.3f× %s %18.3f× %s %21.3f× %21.3f×\n", r.dtype, r.tpsRatio, mark(r.tpsRatio >= 0.97),
			r.ttftRatio, mark(r.ttftRatio <= 1.05), r.pluginTPS, r.pluginTTFT)
	}
	fmt.Println("\nratios: medians of the per-round ratios; goals: decode ≥ 0.97× raw, TTFT ≤ 1.05× raw")
	for _, r := range rows {
		if len(r.conc) > 0 {
			fmt.Printf("\nconcurrent streams on one %s plugin process (parallelism %d, DBE requests started together):\n", r.dtype, maxStreams)
			fmt.Printf("%-8s %22s %22s\n", "streams", "aggregate decode tok/s", "per-stream decode tok/s")
			for _, l := range r.conc {
				fmt.Println(l)
			}
		}
	}
	return nil
}

func mark(ok bool) string {
	if ok {
		return "✔"
	}
	return "✘"
}

func modelID(dtype string) string { return "bench-random-qwen2.5-0.5b-" + dtype }

// ensureModel writes the dtype's model file into dir unless it is there.
func ensureModel(dir, dtype string) error {
	spec, err := mkmodel.Preset("qwen2.5-0.5b")
	if err != nil {
		return err
	}
	spec.DType, spec.BlockSize = dtypes[dtype].dtype, 128
	if _, err := os.Stat(filepath.Join(dir, spec.ONNXFile())); err == nil {
		return nil
	}
	fmt.Printf("generating %s %s into %s ...\n", spec.Name, dtype, dir)
	_, err = mkmodel.Write(dir, spec)
	return err
}

// rawProc is a running rawdecode.
type rawProc struct {
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *json.Decoder
	prompt string
	// runtime describes ONNX Runtime and the session options.
	runtime string
}

func startRaw(bin, dir, variant string, threads int, spin bool, promptLen int) (*rawProc, error) {
	cmd := exec.Command(bin, "-model", dir, "-variant", variant, "-threads", fmt.Sprint(threads),
		"-spin="+fmt.Sprint(spin), "-prompt", fmt.Sprint(promptLen))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	r := &rawProc{cmd: cmd, in: in, out: json.NewDecoder(out)}
	var hello struct {
		Prompt  string `json:"prompt"`
		Runtime string `json:"runtime"`
	}
	if err := r.out.Decode(&hello); err != nil {
		r.close()
		return nil, fmt.Errorf("rawdecode: %w", err)
	}
	r.prompt, r.runtime = hello.Prompt, hello.Runtime
	return r, nil
}

func (r *rawProc) run(tokens int) (sample, error) {
	if _, err := fmt.Fprintln(r.in, tokens); err != nil {
		return sample{}, err
	}
	var res struct {
		TTFT int64   `json:"ttft_ns"`
		TPS  float64 `json:"tokens_per_s"`
	}
	if err := r.out.Decode(&res); err != nil {
		return sample{}, fmt.Errorf("rawdecode: %w", err)
	}
	return sample{ttft: time.Duration(res.TTFT), tps: res.TPS}, nil
}

func (r *rawProc) close() {
	r.in.Close()
	if err := r.cmd.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, "rawdecode:", err)
	}
}

// stackRun streams one completion through the shim.
func stackRun(addr, modelID, prompt string, tokens int) (sample, error) {
	body, _ := json.Marshal(map[string]any{
		"model": modelID, "prompt": prompt, "max_tokens": tokens, "temperature": 0,
		"stream": true, "stream_options": map[string]any{"include_usage": true},
	})
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return sample{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return sample{}, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	var first, end time.Time
	completion := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if line == "[DONE]" {
			break
		}
		var chunk struct {
			Choices []struct {
				Text         string  `json:"text"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal([]byte(line), &chunk); err != nil {
			return sample{}, fmt.Errorf("SSE chunk %q: %w", line, err)
		}
		now := time.Now()
		for _, c := range chunk.Choices {
			if c.Text != "" && first.IsZero() {
				first = now
			}
			if c.FinishReason != nil {
				end = now
			}
		}
		if chunk.Usage != nil {
			completion = chunk.Usage.CompletionTokens
		}
	}
	if err := sc.Err(); err != nil {
		return sample{}, err
	}
	if first.IsZero() || end.IsZero() || completion != tokens {
		return sample{}, fmt.Errorf("stream: first chunk %v, end %v, %d completion tokens (want %d)", first, end, completion, tokens)
	}
	return sample{ttft: first.Sub(start), tps: float64(tokens-1) / end.Sub(first).Seconds()}, nil
}

// maxStreams is the plugin's parallelism: the most concurrent streams
// -streams may ask for.
const maxStreams = 4

// parseStreams reads -streams: a comma-separated list of stream counts
// from 1 to maxStreams ("" is none).
func parseStreams(list string) ([]int, error) {
	if list == "" {
		return nil, nil
	}
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 || n > maxStreams {
			return nil, fmt.Errorf("-streams: %q is not a number from 1 to %d", f, maxStreams)
		}
		out = append(out, n)
	}
	return out, nil
}

// concurrency starts n streamed requests at once on one plugin process for
// each n in list and reports the aggregate and per-stream decode rates
// (from the first token of the first stream to the last token of the
// last: prefills overlap decodes).
func concurrency(inst *pluginmgr.Instance, dtype, prompt string, tokens int, list []int) ([]string, error) {
	var out []string
	for _, n := range list {
		type result struct {
			s   sample
			err error
			end time.Time
		}
		res := make(chan result, n)
		start := time.Now()
		for range n {
			go func() {
				s, err := pluginRun(inst, dtype, prompt, tokens)
				res <- result{s, err, time.Now()}
			}()
		}
		var per []float64
		var last time.Time
		for range n {
			r := <-res
			if r.err != nil {
				return nil, r.err
			}
			per = append(per, r.s.tps)
			if r.end.After(last) {
				last = r.end
			}
		}
		agg := float64(n*tokens) / last.Sub(start).Seconds()
		out = append(out, fmt.Sprintf("%-8d %22.1f %22.1f", n, agg, median(per)))
	}
	return out, nil
}

// pluginRun sends the completion as a DBE request on the host's own
// session to the plugin process: the plugin without the router, the shim
// and HTTP.
func pluginRun(inst *pluginmgr.Instance, dtype, prompt string, tokens int) (sample, error) {
	f := &dbe.Frame{Type: dbe.MsgChatReq}
	f.SetTenantID("BENCH")
	f.SetCompartmentMask(dbe.CompartmentSOC)
	f.SetClassification(dbe.Unclas)
	f.SetROELevel(dbe.AnalysisOnly)
	f.SetProfile("bench-" + dtype)
	f.SetRequestID([16]byte{0xbe, 0x9c})
	var err error
	f.Payload, err = proto.Marshal(&l7v1.L7ChatRequest{Prompt: prompt, MaxTokens: int32(tokens),
		Temperature: proto.Float32(0), Stream: true, IncludeUsage: true})
	if err != nil {
		return sample{}, err
	}
	var first, end time.Time
	completion := 0
	start := time.Now()
	err = inst.Call(context.Background(), f, func(fr *dbe.Frame) error {
		var c l7v1.L7ChatChunk
		if err := proto.Unmarshal(fr.Payload, &c); err != nil {
			return err
		}
		now := time.Now()
		if c.GetDelta() != "" && first.IsZero() {
			first = now
		}
		if c.GetFinishReason() != l7v1.FinishReason_FINISH_REASON_UNSPECIFIED {
			end, completion = now, int(c.GetUsage().GetCompletionTokens())
		}
		return nil
	})
	if err != nil {
		return sample{}, err
	}
	if first.IsZero() || end.IsZero() || completion != tokens {
		return sample{}, fmt.Errorf("stream: first chunk %v, end %v, %d completion tokens (want %d)", first, end, completion, tokens)
	}
	return sample{ttft: first.Sub(start), tps: float64(tokens-1) / end.Sub(first).Seconds()}, nil
}

func medians(s []sample) sample {
	t := make([]time.Duration, len(s))
	r := make([]float64, len(s))
	c := make([]time.Duration, len(s))
	for i, x := range s {
		t[i], r[i], c[i] = x.ttft, x.tps, x.cpu
	}
	slices.Sort(t)
	slices.Sort(r)
	slices.Sort(c)
	return sample{ttft: t[len(t)/2], tps: r[len(r)/2], cpu: c[len(c)/2]}
}

func median(x []float64) float64 {
	x = slices.Clone(x)
	slices.Sort(x)
	return x[len(x)/2]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// startHost starts dsmil-host in process with one llm-amx plugin block for
// dtype, of replicas processes.
func startHost(tmp, bin, modelDir, addr, dtype string, threads int, spin bool, replicas int) (*server.Host, error) {
	metrics, err := freeAddr()
	if err != nil {
		return nil, err
	}
	src := fmt.Sprintf(`
shim    { listen = %[1]q }
router  { socket = "run/router.sock" }
admin   { socket = "run/admin.sock" }
metrics { listen = %[2]q }
tenant "BENCH" {
  api_key_sha256 = [%[3]q]
  compartments   = ["SOC"]
  classification = "UNCLAS"
  roe            = "ANALYSIS_ONLY"
  models         = ["*"]
}
plugin "llm-%[4]s" {
  path           = %[5]q
  device_id      = 47
  profiles       = ["bench-%[4]s"]
  replicas       = %[11]d
  model          = %[6]q
  variant        = %[7]q
  model_name     = %[8]q
  threads        = %[9]d
  allow_spinning = %[10]v
  parallelism    = %[12]d
  ignore_eos     = true
  pass_env       = ["DSMIL_ORT_LIB"]
}
model %[8]q { profile = "bench-%[4]s" }
`, addr, metrics, config.HashKey(apiKey), dtype, bin, modelDir, dtypes[dtype].variant, modelID(dtype), threads, spin, replicas, maxStreams)
	cfg, diags := config.Parse(filepath.Join(tmp, "dsmil.hcl"), []byte(src))
	if diags.HasErrors() {
		return nil, diags
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "dsmil-host", Level: hclog.Error, Output: os.Stderr})
	h, err := server.Start(context.Background(), cfg, log, server.Options{})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := h.Manager.WaitReady(ctx); err != nil {
		h.Shutdown()
		return nil, err
	}
	for _, s := range h.Manager.Snapshots() {
		if s.State != "running" {
			h.Shutdown()
			return nil, errors.New("plugin " + s.Name + " did not start: " + s.LastError)
		}
	}
	return h, nil
}
