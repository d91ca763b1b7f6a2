// Command llm measures the llm-amx plugin against raw ONNX Runtime, in one
// run, for the Qwen2.5-0.5B shape with int4 (block 128), int8 and fp32
// weights:
//
//   - raw: a minimal decode loop written for this benchmark
//     (plugins/internal/llm/rawdecode, which bench/llm builds and drives
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
// -constrained adds three chat paths to the rounds (issue 11: constrained
// decode ≥ 0.95× free decode through the whole stack): the prompt as one
// user message to /v1/chat/completions, free ("chat") and with
// response_format json_schema (-schema; by default an array that cannot
// end before max_tokens) and json_object, and prints constrained/free
// ratios of decode and TTFT, chat against chat. A constrained reply whose
// grammar completes ends early with "stop": decode rates are over the
// tokens each reply generated, printed beside them. -vocab qwen swaps the
// generated 512-id tokenizer for the real Qwen vocabulary (151k tokens),
// so that the grammar's masks cover what a Qwen2.5 model's would.
//
//	go run ./bench/llm [-dtypes int4,int8,fp32] [-rounds 8] [-procs 2] [-tokens 128] [-threads 0]
//	go run ./bench/llm -dtypes int4 -constrained -vocab qwen [-schema file.json]
//	go run ./bench/llm -dtypes int4 -rounds 0 -procs 1 -streams 1,2,4,8,16 [-stream-rounds 3]
//
// -remote adds the path "remote" (issue 19: a remote llm-amx decodes at
// ≥ 0.97× a local one): the host above becomes a worker node (a security
// block, a cross-node listener on loopback, the router host's key trusted
// for the tenant's claims), and a second in-process host, a router host
// with no plugin of its own and one peer block for the model's profile,
// takes the same streamed /v1/completions request on its shim: shim →
// router → cross-node link (TLS 1.3 SecP384r1MLKEM1024) → the worker's
// router (claims verified again, its policy) → the same plugin processes.
// It prints remote/stack ratios.
//
//	go run ./bench/llm -dtypes int4 -remote [-rounds 8] [-procs 1]
//
// -streams measures concurrent streams through the whole stack (issue 15),
// for each dtype: a host with one plugin process whose parallelism is the
// largest count, n streamed /v1/completions requests started together,
// aggregate and per-stream decode and TTFT (-rounds 0 skips the
// raw/stack/plugin rounds). -llamacpp DIR (bench/llamacpp/build.sh's work
// directory) adds the issue's anchor: in each round, beside each stream
// count, llama.cpp's batched decode (bench/llamacpp/batched.cpp,
// llama-batched-bench's test) of as many sequences on the GGUF of the same
// quantisation and shape (int4 ↔ Q4_0, int8 ↔ Q8_0), the two in turn, and
// prints ours / llama.cpp and ours at n / ours at 1 (medians of the
// per-round ratios). llama.cpp runs with OMP_WAIT_POLICY=passive by
// default (-llamacpp-omp-wait): its spinning OpenMP threads, its own
// default, decode 10–20× slower when the cores are shared.
//
//	sh bench/llamacpp/build.sh /tmp/dsmil-llamacpp
//	go run ./bench/llm -dtypes int4,int8 -rounds 0 -procs 1 -streams 1,2,4,8,16 -llamacpp /tmp/dsmil-llamacpp
//
// -npu measures llm-amx and llm-npu side by side (issue 16): one host with
// both plugins (llm-amx on the first dtype's model, llm-npu on a
// TinyLlama-1.1B-shaped int4 model in -npu-model, with llm-npu's default
// threads), each plugin's decode alone and then one stream on each at once
// (npu.go).
//
//	go run ./bench/llm -dtypes int4 -rounds 0 -procs 1 -npu [-stream-rounds 3]
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
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

	"github.com/dsmil/l7/bench/internal/benchhost"
	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/host/pluginmgr"
	"github.com/dsmil/l7/host/server"
	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
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
	rounds := flag.Int("rounds", 8, "interleaved rounds per dtype (0: none, only -streams)")
	promptLen := flag.Int("prompt", 128, "prompt tokens")
	tokens := flag.Int("tokens", 128, "tokens generated per request")
	threads := flag.Int("threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	spin := flag.Bool("spin", true, "let idle ONNX Runtime threads spin (the plugin's allow_spinning)")
	procs := flag.Int("procs", 2, "raw and plugin processes per dtype, used in turn")
	streamRounds := flag.Int("stream-rounds", 3, "rounds per -streams count")
	streams := flag.String("streams", "", `also measure concurrent streams through the whole stack on one plugin process, e.g. "1,2,4,8,16" (each dtype)`)
	llamaDir := flag.String("llamacpp", "", "with -streams: bench/llamacpp/build.sh's work directory; run llama.cpp's batched decode (llama-batched-bench's test) beside each stream count, on the GGUF of the same quantisation")
	llamaBuilds := flag.String("llamacpp-builds", "amx", `-llamacpp's builds to run: "amx" (AMX kernels for this shape), "stock" (as vendored: AVX-512), or both`)
	llamaOMPWait := flag.String("llamacpp-omp-wait", "passive", `-llamacpp: OMP_WAIT_POLICY for llama.cpp's OpenMP threads: "passive" (they sleep at barriers), "active" or "" (llama.cpp's default: they spin, and on cores shared with other work its decode collapses 10–20×)`)
	llamaSplitKV := flag.Bool("llamacpp-split-kv", false, "-llamacpp: one KV stream per sequence (llama-batched-bench's default) instead of the unified KV cache (llama.cpp server's default with automatic slots)")
	cpuprofile := flag.String("cpuprofile", "", "write this process's CPU profile (host, shim and client) to the file")
	constrained := flag.Bool("constrained", false, "also measure chat completions free and with response_format json_schema and json_object (constrained decoding)")
	schemaFile := flag.String("schema", "", "-constrained's JSON Schema (default: an array of at least 1000 bounded records, which cannot end before max_tokens)")
	remote := flag.Bool("remote", false, "also measure a remote path (issue 19): a second in-process host, a router host whose peer block routes the model to the first (now a worker node with a cross-node listener on loopback), the same /v1/completions request through its shim")
	npu := flag.Bool("npu", false, "also measure llm-amx and llm-npu side by side in one host: decode tok/s of each alone and together (first dtype only)")
	npuModel := flag.String("npu-model", filepath.Join(cache, "dsmil", "models", "tinyllama-1.1b-int4"), "-npu's llm-npu model directory (generated when absent)")
	flag.BoolVar(&ttftText, "ttft-text", false, "raw's TTFT ends at its first text (the first token the streaming decoder gives text for), as the stack's and the plugin's do, instead of at its first token id")
	flag.BoolVar(&arena, "arena", true, "keep ONNX Runtime's memory arena in the plugin (memory_arena, the plugin's default), as raw does; -arena=false: freed after each run")
	flag.BoolVar(&noPrefixCache, "no-prefix-cache", false, "turn the plugin's prefix cache off (prefix_cache = \"0\"): every round repeats the prompt, so with the cache the stack prefills only its last block while raw prefills all of it")
	flag.BoolVar(&stopSpin, "stop-spin", true, "the llm-amx plugin's and raw's ONNX Runtime threads stop spinning when a run ends (force_spinning_stop, llm-amx's default; with -spin, they spin only inside a run); -stop-spin=false: they spin on after a run")
	flag.BoolVar(&prefillGraph, "prefill-graph", false, "write the models with a prefill graph (dsmil-mkmodel -prefill-graph) and run prefills on it in raw and the plugin (prefill_graph = true); issue 18")
	vocab := flag.String("vocab", "generated", `the models' tokenizer: "generated" (dsmil-mkmodel's 512 ids) or "qwen" (the real Qwen2.5/Qwen3 vocabulary, 151k tokens, from the tokenizer package's testdata)`)
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
	o := options{dir: *models, dtypes: strings.Split(*which, ","), rounds: *rounds, promptLen: *promptLen, tokens: *tokens,
		threads: *threads, spin: *spin, procs: max(*procs, 1), streams: *streams, streamRounds: *streamRounds, constrained: *constrained, vocab: *vocab, remote: *remote,
		npu: *npu, npuModel: *npuModel}
	if *llamaDir != "" {
		t := *threads
		if t <= 0 {
			t = runtime.NumCPU() // as the plugin: one per core
		}
		var builds []string
		for _, b := range strings.Split(*llamaBuilds, ",") {
			if b = strings.TrimSpace(b); b != "" {
				builds = append(builds, b)
			}
		}
		o.llama = &llamaCPP{dir: *llamaDir, builds: builds, threads: t, splitKV: *llamaSplitKV, ompWait: *llamaOMPWait}
	}
	if *schemaFile != "" {
		b, err := os.ReadFile(*schemaFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench/llm:", err)
			os.Exit(1)
		}
		o.schema = json.RawMessage(b)
	}
	if err := run(o); err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "bench/llm:", err)
		os.Exit(1)
	}
}

// options are the flags.
type options struct {
	dir                                       string
	dtypes                                    []string
	rounds, promptLen, tokens, threads, procs int
	spin                                      bool
	streams                                   string
	streamRounds                              int
	constrained                               bool
	schema                                    json.RawMessage // -constrained's schema; nil: benchSchema
	vocab                                     string
	remote                                    bool
	npu                                       bool      // -npu: llm-amx and llm-npu side by side
	npuModel                                  string    // -npu's llm-npu model directory
	llama                                     *llamaCPP // -llamacpp; nil: none
}

// benchSchema is -constrained's default JSON Schema: an array of records
// whose every field is bounded, so that a random-weight model walks
// through all of a record's states (keys, integers, bounded string, enum,
// boolean) instead of staying in one unbounded string or number, and whose
// 1000 required items (≈ 10 tokens each at the least) cannot be finished
// within any -tokens the model's context allows, so that
// every request generates max_tokens tokens like the free ones. (Items
// are unrolled up to minItems: the compiler takes ≈ 2–3 ms on it.)
const benchSchema = `{"type": "array", "minItems": 1000, "items": {"type": "object",
  "properties": {"id": {"type": "integer", "minimum": 0, "maximum": 999999}, "name": {"type": "string", "maxLength": 16},
    "kind": {"enum": ["user", "group", "service"]}, "score": {"type": "integer", "minimum": 0, "maximum": 100},
    "active": {"type": "boolean"}},
  "required": ["id", "name", "kind", "score", "active"], "additionalProperties": false}}`

// sample is one measurement: time to first token and decode rate.
type sample struct {
	ttft   time.Duration
	tps    float64
	cpu    time.Duration // this process's CPU time per generated token (host and client, for "stack")
	tokens int           // tokens generated
	text   string        // the reply (chat paths)
	chunks []time.Time   // arrival of each SSE chunk with text (-streams)
}

// cpuTime is this process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func run(o options) error {
	which, rounds, promptLen, tokens, procs := o.dtypes, o.rounds, o.promptLen, o.tokens, o.procs
	// Check every flag before measuring anything: a bad -streams found
	// after the rounds would throw them away.
	conc, err := parseStreams(o.streams)
	if err != nil {
		return err
	}
	for _, d := range which {
		if _, ok := dtypes[d]; !ok {
			return fmt.Errorf("unknown dtype %q (int4, int8, fp32)", d)
		}
	}
	if o.vocab != "generated" && o.vocab != "qwen" {
		return fmt.Errorf("-vocab %q: generated or qwen", o.vocab)
	}
	schema := o.schema
	if schema == nil {
		schema = json.RawMessage(benchSchema)
	}
	if !json.Valid(schema) {
		return errors.New("-schema: not JSON")
	}
	if o.llama != nil {
		if len(conc) == 0 {
			return errors.New("-llamacpp: needs -streams (it is the anchor of the concurrent streams)")
		}
		if err := o.llama.check(which); err != nil {
			return err
		}
	}
	for _, d := range which {
		if err := ensureModel(o.dir, d); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "bench-llm")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dir := o.dir
	if o.vocab == "qwen" {
		if dir, err = qwenVocabDir(tmp, o.dir); err != nil {
			return err
		}
	}
	var keys *benchhost.KeyDir
	if o.remote {
		if keys, err = benchhost.NewKeyDir(filepath.Join(tmp, "keys")); err != nil {
			return err
		}
		a, err := keys.Issue("a", "router-a", "host", nil)
		if err == nil {
			_, err = keys.Issue("a-node", "router-a", "node", a.Key)
		}
		if err == nil {
			_, err = keys.Issue("b", "node-b", "host", nil)
		}
		if err != nil {
			return err
		}
	}
	bins := map[string]string{}
	for name, pkg := range map[string]string{
		"dsmil-llm-amx": "github.com/dsmil/l7/plugins/llm-amx",
		"dsmil-llm-npu": "github.com/dsmil/l7/plugins/llm-npu",
		"rawdecode":     "github.com/dsmil/l7/plugins/internal/llm/rawdecode",
	} {
		bins[name] = filepath.Join(tmp, name)
		if out, err := exec.Command("go", "build", "-o", bins[name], pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", name, err, out)
		}
	}
	fmt.Printf("llm benchmark: %s, %d CPUs; qwen2.5-0.5b shape (random weights) in %s, %s tokenizer\n", runtime.Version(), runtime.NumCPU(), o.dir, o.vocab)
	fmt.Printf("prompt %d tokens, %d generated per request (greedy, EOS ignored), %d interleaved rounds over %d raw and %d plugin processes\n",
		promptLen, tokens, rounds, procs, procs)
	if o.constrained {
		fmt.Printf("chat paths: the prompt as one user message to /v1/chat/completions, free and with response_format; json_schema:\n%s\n", schema)
	}
	header := false
	type row struct {
		dtype                 string
		ttftRatio, tpsRatio   float64
		pluginTTFT, pluginTPS float64
		conc                  []string // concurrency results
		// -constrained: decode and TTFT of json_schema and json_object
		// against free chat, and free chat against raw.
		schemaTPS, schemaTTFT, objectTPS, objectTTFT, chatTPS float64
		// -remote: decode and TTFT of remote against stack
		remoteTPS, remoteTTFT float64
	}
	var rows []row
	for _, d := range which {
		// One host per dtype, so that only one model's processes are in
		// memory at a time.
		addr, err := benchhost.FreeAddr()
		if err != nil {
			return err
		}
		var security, cross, remoteAddr string
		if o.remote {
			if cross, err = benchhost.FreeAddr(); err != nil {
				return err
			}
			security = fmt.Sprintf(`
security {
  identity_key      = "keys/b.key"
  identity_bundle   = "keys/b.bundle"
  roots             = ["keys/root.pub"]
  cross_node_listen = %q
  claim_issuer "router-a" {
    key     = "keys/a.pub"
    tenants = ["BENCH"]
  }
}
`, cross)
		}
		host, err := startHost(tmp, bins["dsmil-llm-amx"], dir, addr, d, o.threads, o.spin, procs, 4, security)
		if err != nil {
			return err
		}
		var router *server.Host
		if o.remote {
			if remoteAddr, err = benchhost.FreeAddr(); err == nil {
				router, err = startRouterHost(tmp, remoteAddr, cross, d)
			}
			if err != nil {
				host.Shutdown()
				return fmt.Errorf("router host: %w", err)
			}
		}
		var raws []*rawProc
		stop := func() {
			for _, r := range raws {
				r.close()
			}
			if router != nil {
				router.Shutdown()
			}
			host.Shutdown()
		}
		for range procs {
			r, err := startRaw(bins["rawdecode"], dir, dtypes[d].variant, o.threads, o.spin, promptLen)
			if err != nil {
				stop()
				return err
			}
			raws = append(raws, r)
		}
		if !header {
			fmt.Printf("%s\n\n%-5s %-11s %12s %14s %8s %24s\n", raws[0].runtime, "dtype", "path", "TTFT (ms)", "decode tok/s", "tokens", "bench CPU/token (µs)")
			header = true
		}
		insts := host.Manager.Instances()
		prompt := raws[0].prompt
		round := 0 // spreads the rounds over the processes
		type path struct {
			name string
			run  func(tokens int) (sample, error)
		}
		paths := []path{
			{"raw", func(n int) (sample, error) { return raws[round%procs].run(n) }},
			{"stack", func(n int) (sample, error) { return completionRun(addr, modelID(d), prompt, n) }},
			{"plugin", func(n int) (sample, error) { return pluginRun(insts[round%procs], d, prompt, n) }},
		}
		if o.remote {
			paths = append(paths, path{"remote", func(n int) (sample, error) { return completionRun(remoteAddr, modelID(d), prompt, n) }})
		}
		if o.constrained {
			paths = append(paths,
				path{"chat", func(n int) (sample, error) { return chatRun(addr, modelID(d), prompt, n, nil) }},
				path{"json_schema", func(n int) (sample, error) {
					return chatRun(addr, modelID(d), prompt, n, map[string]any{"type": "json_schema",
						"json_schema": map[string]any{"name": "bench", "schema": schema, "strict": true}})
				}},
				path{"json_object", func(n int) (sample, error) {
					return chatRun(addr, modelID(d), prompt, n, map[string]any{"type": "json_object"})
				}})
		}
		// Warm up every process (first runs allocate and pre-pack). Each
		// path runs procs times in a row: the router takes idle replicas
		// in turn, so every plugin process sees each path once. The chat
		// paths generate the full length: a constrained reply's first
		// pass through a grammar state analyses it over the vocabulary
		// (cached per process); the rounds measure the warm rate, and
		// the first requests are reported apart.
		cold := map[string][]sample{}
		for _, p := range paths {
			n := 8
			if o.constrained && (p.name == "chat" || p.name == "json_schema" || p.name == "json_object") {
				n = tokens
			}
			for round = range procs {
				s, err := p.run(n)
				if err != nil {
					stop()
					return fmt.Errorf("%s: %w", p.name, err)
				}
				if n == tokens {
					cold[p.name] = append(cold[p.name], s)
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
				s.cpu = (cpuTime() - c0) / time.Duration(max(s.tokens, 1))
				if err != nil {
					stop()
					return fmt.Errorf("%s: %w", p.name, err)
				}
				got[p.name] = append(got[p.name], s)
			}
		}
		stop()
		if o.npu && d == which[0] {
			if err := sideBySide(tmp, bins["dsmil-llm-amx"], bins["dsmil-llm-npu"], dir, o.npuModel, d, prompt, o); err != nil {
				return err
			}
		}
		var concRes []string
		if len(conc) > 0 {
			if concRes, err = streamsRun(tmp, bins["dsmil-llm-amx"], dir, d, o, prompt, conc); err != nil {
				return err
			}
		}
		if rounds == 0 {
			rows = append(rows, row{dtype: d, conc: concRes})
			continue
		}
		for _, p := range paths {
			m := medians(got[p.name])
			fmt.Printf("%-5s %-11s %12.1f %14.1f %8d %24.0f\n", d, p.name, ms(m.ttft), m.tps, m.tokens, float64(m.cpu.Nanoseconds())/1e3)
		}
		for _, p := range []string{"chat", "json_schema", "json_object"} {
			if s := cold[p]; len(s) > 0 {
				m := medians(s)
				fmt.Printf("%-5s %-11s %12.1f %14.1f %8d   first request per plugin process (cold)\n", d, p, ms(m.ttft), m.tps, m.tokens)
			}
		}
		for _, p := range []string{"json_schema", "json_object"} {
			if s := got[p]; len(s) > 0 {
				t := s[len(s)-1].text
				fmt.Printf("%18s %q\n", p+" reply:", t[:min(len(t), 100)])
			}
		}
		// Ratios per round (the paths of one round ran within seconds of
		// each other), then their median: this cancels the slow swings of
		// a shared machine better than a ratio of medians.
		ratio := func(path, base string) (ttft, tps float64) {
			var tt, tp []float64
			for i, s := range got[path] {
				r := got[base][i]
				tt = append(tt, float64(s.ttft)/float64(r.ttft))
				tp = append(tp, s.tps/r.tps)
			}
			return benchhost.Median(tt), benchhost.Median(tp)
		}
		row := row{dtype: d, conc: concRes}
		row.ttftRatio, row.tpsRatio = ratio("stack", "raw")
		row.pluginTTFT, row.pluginTPS = ratio("plugin", "raw")
		if o.remote {
			row.remoteTTFT, row.remoteTPS = ratio("remote", "stack")
		}
		if o.constrained {
			row.schemaTTFT, row.schemaTPS = ratio("json_schema", "chat")
			row.objectTTFT, row.objectTPS = ratio("json_object", "chat")
			_, row.chatTPS = ratio("chat", "raw")
		}
		rows = append(rows, row)
	}
	if rounds > 0 {
		fmt.Printf("\n%-5s %20s %20s %22s %22s\n", "dtype", "decode stack/raw", "TTFT stack/raw", "decode plugin/raw", "TTFT plugin/raw")
		for _, r := range rows {
			fmt.Printf("%-5s %18.3f× %s %18.3f× %s %21.3f× %21.3f×\n", r.dtype, r.tpsRatio, mark(r.tpsRatio >= 0.97),
				r.ttftRatio, mark(r.ttftRatio <= 1.05), r.pluginTPS, r.pluginTTFT)
		}
		fmt.Println("\nratios: medians of the per-round ratios; goals: decode ≥ 0.97× raw, TTFT ≤ 1.05× raw")
	}
	if o.remote && rounds > 0 {
		fmt.Printf("\n%-5s %22s %22s\n", "dtype", "decode remote/stack", "TTFT remote/stack")
		for _, r := range rows {
			fmt.Printf("%-5s %20.3f× %s %21.3f×\n", r.dtype, r.remoteTPS, mark(r.remoteTPS >= 0.97), r.remoteTTFT)
		}
		fmt.Println("\nremote: through a router host and the cross-node link to the same plugin processes (one machine: both hosts" +
			"\nshare its cores); medians of the per-round ratios; goal: decode ≥ 0.97× local (stack)")
	}
	if o.constrained && rounds > 0 {
		fmt.Printf("\n%-5s %24s %24s %22s %22s %16s\n", "dtype", "decode json_schema/chat", "decode json_object/chat",
			"TTFT json_schema/chat", "TTFT json_object/chat", "decode chat/raw")
		for _, r := range rows {
			fmt.Printf("%-5s %22.3f× %s %22.3f× %s %21.3f× %21.3f× %15.3f×\n", r.dtype, r.schemaTPS, mark(r.schemaTPS >= 0.95),
				r.objectTPS, mark(r.objectTPS >= 0.95), r.schemaTTFT, r.objectTTFT, r.chatTPS)
		}
		fmt.Println("\nconstrained: decode tok/s over the tokens each request generated (the tokens column: a grammar that completes" +
			"\nends the reply early with \"stop\"); TTFT includes compiling the schema; goal: constrained ≥ 0.95× free chat decode")
	}
	for _, r := range rows {
		if len(r.conc) > 0 {
			fmt.Printf("\nconcurrent streams through the whole stack (shim → router → one %s plugin process, parallelism = the most streams;\n"+
				"streamed /v1/completions requests started together; medians over %d rounds):\n", r.dtype, max(o.streamRounds, 1))
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

// prefillGraph is -prefill-graph, noPrefixCache -no-prefix-cache,
// stopSpin -stop-spin.
var prefillGraph, noPrefixCache, arena, ttftText, stopSpin bool

// pluginFlagLines are the llm-amx plugin block's lines that the flags
// -no-prefix-cache, -arena and -stop-spin set (prefix_cache, memory_arena,
// force_spinning_stop).
func pluginFlagLines() string {
	l := ""
	if noPrefixCache {
		l = `prefix_cache   = "0"`
	}
	l += fmt.Sprintf("\n  memory_arena   = %v", arena)
	l += fmt.Sprintf("\n  force_spinning_stop = %v", stopSpin)
	return l
}

// ensureModel writes the dtype's model file into dir unless it is there
// (and, with -prefill-graph, its prefill graph).
func ensureModel(dir, dtype string) error {
	spec, err := mkmodel.Preset("qwen2.5-0.5b")
	if err != nil {
		return err
	}
	spec.DType, spec.BlockSize, spec.PrefillGraph = dtypes[dtype].dtype, 128, prefillGraph
	if _, err := os.Stat(filepath.Join(dir, spec.ONNXFile())); err == nil {
		if _, err := os.Stat(filepath.Join(dir, spec.PrefillFile())); err == nil || !prefillGraph {
			return nil
		}
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
		"-spin="+fmt.Sprint(spin), "-stop-spin="+fmt.Sprint(stopSpin), "-prompt", fmt.Sprint(promptLen), "-prefill-graph="+fmt.Sprint(prefillGraph))
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
		TTFT     int64   `json:"ttft_ns"`
		TTFTText int64   `json:"ttft_text_ns"`
		TPS      float64 `json:"tokens_per_s"`
	}
	if err := r.out.Decode(&res); err != nil {
		return sample{}, fmt.Errorf("rawdecode: %w", err)
	}
	ttft := res.TTFT
	if ttftText && res.TTFTText > 0 {
		ttft = res.TTFTText
	}
	return sample{ttft: time.Duration(ttft), tps: res.TPS, tokens: tokens}, nil
}

func (r *rawProc) close() {
	r.in.Close()
	if err := r.cmd.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, "rawdecode:", err)
	}
}

// completionRun streams one completion through the shim.
func completionRun(addr, modelID, prompt string, tokens int) (sample, error) {
	return streamRun(addr, "/v1/completions", map[string]any{"model": modelID, "prompt": prompt}, tokens, true)
}

// chatRun streams one chat completion through the shim, the prompt as one
// user message, with response_format rf (nil: free text). A free reply
// generates exactly tokens tokens (the plugin ignores EOS); a constrained
// one ends early, with "stop", if its grammar completes.
func chatRun(addr, modelID, prompt string, tokens int, rf map[string]any) (sample, error) {
	body := map[string]any{"model": modelID, "messages": []map[string]any{{"role": "user", "content": prompt}}}
	if rf != nil {
		body["response_format"] = rf
	}
	return streamRun(addr, "/v1/chat/completions", body, tokens, rf == nil)
}

// streamRun sends body (plus max_tokens, greedy sampling and streaming) to
// the shim's endpoint and times the stream: TTFT to the first chunk with
// text, decode rate over the tokens after the first. exact: the reply must
// have tokens tokens, else at least two.
func streamRun(addr, endpoint string, body map[string]any, tokens int, exact bool) (sample, error) {
	body["max_tokens"], body["temperature"], body["stream"] = tokens, 0, true
	body["stream_options"] = map[string]any{"include_usage": true}
	b, err := json.Marshal(body)
	if err != nil {
		return sample{}, err
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+addr+endpoint, bytes.NewReader(b))
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
	var chunks []time.Time
	completion := 0
	var text strings.Builder
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
				Text  string `json:"text"` // completions
				Delta struct {
					Content string `json:"content"` // chat
				} `json:"delta"`
				FinishReason *string `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int `json:"completion_tokens"`
			} `json:"usage"`
			Error *json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal([]byte(line), &chunk); err != nil {
			return sample{}, fmt.Errorf("SSE chunk %q: %w", line, err)
		}
		if chunk.Error != nil {
			return sample{}, fmt.Errorf("stream error: %s", *chunk.Error)
		}
		now := time.Now()
		for _, c := range chunk.Choices {
			if c.Text != "" || c.Delta.Content != "" {
				if first.IsZero() {
					first = now
				}
				chunks = append(chunks, now)
			}
			text.WriteString(c.Delta.Content)
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
	if first.IsZero() || end.IsZero() || exact && completion != tokens || completion < 2 {
		want := fmt.Sprint(tokens)
		if !exact {
			want = "2 or more"
		}
		return sample{}, fmt.Errorf("stream: first chunk %v, end %v, %d completion tokens (want %s)", first, end, completion, want)
	}
	return sample{ttft: first.Sub(start), tps: float64(completion-1) / end.Sub(first).Seconds(), tokens: completion, text: text.String(), chunks: chunks}, nil
}

// maxStreams bounds -streams: the plugin's parallelism is set to the
// largest count asked for, and each stream holds a KV reservation.
const maxStreams = 64

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

// streamsRun starts a host whose one plugin process (dtype) has
// parallelism = the largest stream count, warms it up and measures the
// stream counts through the shim, -stream-rounds times; with -llamacpp,
// llama.cpp's batched decode of as many sequences beside each (the two in
// turn, which one first alternating). It returns the tables' lines.
func streamsRun(tmp, bin, dir, dtype string, o options, prompt string, conc []int) ([]string, error) {
	addr, err := benchhost.FreeAddr()
	if err != nil {
		return nil, err
	}
	host, err := startHost(tmp, bin, dir, addr, dtype, o.threads, o.spin, 1, slices.Max(conc), "")
	if err != nil {
		return nil, err
	}
	defer host.Shutdown()
	// Warm-up: the first runs allocate and pre-pack; a batch of the
	// largest size sizes the batch's buffers once.
	for _, n := range []int{1, slices.Max(conc)} {
		if _, err := streamsOnce(addr, modelID(dtype), prompt, 8, n); err != nil {
			return nil, fmt.Errorf("streams warm-up: %w", err)
		}
	}
	var builds []string
	if o.llama != nil {
		builds = o.llama.builds
	}
	rounds := max(o.streamRounds, 1)
	ours := make([][]streamSample, len(conc))        // [count][round]
	theirs := make([][][]batchedResult, len(builds)) // [build][count][round]
	for b := range builds {
		theirs[b] = make([][]batchedResult, len(conc))
	}
	for round := range rounds {
		for i, n := range conc {
			runOurs := func() error {
				s, err := streamsOnce(addr, modelID(dtype), prompt, o.tokens, n)
				if err == nil {
					ours[i] = append(ours[i], s)
					fmt.Printf("  %s round %d, %d streams: aggregate decode %.1f tok/s\n", dtype, round+1, n, s.agg)
				}
				return err
			}
			runTheirs := func() error {
				for b, build := range builds {
					// A bound for a machine so loaded that llama.cpp's spinning OpenMP threads crawl.
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
					r, err := o.llama.run(ctx, build, dtype, o.promptLen, o.tokens, n)
					cancel()
					if err != nil {
						return err
					}
					theirs[b][i] = append(theirs[b][i], r)
					fmt.Printf("  %s round %d, %d streams: llama.cpp %s S_TG %.1f tok/s (prompt %.0f ms)\n", dtype, round+1, n, build, r.sTG, ms(r.tPP))
				}
				return nil
			}
			first, second := runOurs, runTheirs
			if (round+i)%2 == 1 {
				first, second = runTheirs, runOurs
			}
			if err := first(); err != nil {
				return nil, err
			}
			if err := second(); err != nil {
				return nil, err
			}
		}
	}
	return streamsTable(dtype, o, conc, builds, ours, theirs), nil
}

// streamsTable formats -streams' results: the stack's table, then with
// -llamacpp the anchor's (medians over rounds; ratios are medians of the
// per-round ratios).
func streamsTable(dtype string, o options, conc []int, builds []string, ours [][]streamSample, theirs [][][]batchedResult) []string {
	col := func(i int, f func(streamSample) float64) float64 {
		var v []float64
		for _, s := range ours[i] {
			v = append(v, f(s))
		}
		return benchhost.Median(v)
	}
	out := []string{fmt.Sprintf("%-8s %22s %22s %22s %22s %16s %16s", "streams", "aggregate decode tok/s", "steady decode tok/s", "aggregate incl. TTFT", "per-stream decode", "TTFT median ms", "TTFT worst ms")}
	for i, n := range conc {
		out = append(out, fmt.Sprintf("%-8d %22.1f %22.1f %22.1f %22.1f %16.1f %16.1f", n, col(i, func(s streamSample) float64 { return s.agg }),
			col(i, func(s streamSample) float64 { return s.steady }),
			col(i, func(s streamSample) float64 { return s.overall }), col(i, func(s streamSample) float64 { return s.per }),
			col(i, func(s streamSample) float64 { return s.ttft }), col(i, func(s streamSample) float64 { return s.worst })))
	}
	if len(builds) == 0 {
		return out
	}
	one := slices.Index(conc, 1)
	// ratio is the median over rounds of num(round)/den(round).
	ratio := func(num, den func(r int) float64, rounds int) float64 {
		var v []float64
		for r := range rounds {
			v = append(v, num(r)/den(r))
		}
		return benchhost.Median(v)
	}
	kv := "unified KV cache"
	if o.llama.splitKV {
		kv = "one KV stream per sequence"
	}
	if o.llama.ompWait != "" {
		kv += ", OMP_WAIT_POLICY=" + o.llama.ompWait
	}
	out = append(out, "", fmt.Sprintf("llama.cpp beside it (%s, %s): bench/llamacpp/batched.cpp, llama-batched-bench's test, %d threads, %s;\n"+
		"n sequences of %d prompt tokens each, then %d decode steps of all n in one llama_decode; S_TG = n·%d / decode time.\n"+
		"ours: aggregate decode above (first token of the first stream to the last token of the last, prefills of the others inside it);\n"+
		"steady: the tokens that arrived while all n streams decoded, over that time (no prefill inside it: S_TG's measure).\n"+
		"n/1: aggregate at n / at 1 stream; ours/it: ours / S_TG; medians of the per-round ratios (each round runs both, in turn)",
		dtype, strings.ToUpper(strings.TrimSuffix(llamaGGUF[dtype], ".gguf")), o.llama.threads, kv, o.promptLen, o.tokens, o.tokens))
	h := fmt.Sprintf("%-8s %12s %8s", "streams", "ours tok/s", "n/1")
	for _, b := range builds {
		h += fmt.Sprintf(" %16s %8s %10s %12s", b+" S_TG", "n/1", "prompt ms", "ours/"+b)
	}
	out = append(out, h)
	var goals []string
	for i, n := range conc {
		rounds := len(ours[i])
		oursN1 := math.NaN()
		if one >= 0 {
			oursN1 = ratio(func(r int) float64 { return ours[i][r].agg }, func(r int) float64 { return ours[one][r].agg }, rounds)
		}
		l := fmt.Sprintf("%-8d %12.1f %7.2f×", n, col(i, func(s streamSample) float64 { return s.agg }), oursN1)
		for b, build := range builds {
			var stg, tpp []float64
			for _, r := range theirs[b][i] {
				stg, tpp = append(stg, r.sTG), append(tpp, ms(r.tPP))
			}
			itN1 := math.NaN()
			if one >= 0 {
				itN1 = ratio(func(r int) float64 { return theirs[b][i][r].sTG }, func(r int) float64 { return theirs[b][one][r].sTG }, rounds)
			}
			vs := ratio(func(r int) float64 { return ours[i][r].agg }, func(r int) float64 { return theirs[b][i][r].sTG }, rounds)
			vsSteady := ratio(func(r int) float64 { return ours[i][r].steady }, func(r int) float64 { return theirs[b][i][r].sTG }, rounds)
			l += fmt.Sprintf(" %16.1f %7.2f× %10.0f %11.3f× %s", benchhost.Median(stg), itN1, benchhost.Median(tpp), vs, mark(vs >= 1))
			if n == 8 {
				goals = append(goals, fmt.Sprintf("ours / llama.cpp %s = %.3f× (goal ≥ 1×) %s", build, vs, mark(vs >= 1)),
					fmt.Sprintf("ours steady / llama.cpp %s = %.3f× %s", build, vsSteady, mark(vsSteady >= 1)))
			}
		}
		if n == 8 && one >= 0 {
			steadyN1 := ratio(func(r int) float64 { return ours[i][r].steady }, func(r int) float64 { return ours[one][r].steady }, rounds)
			goals = append([]string{fmt.Sprintf("ours 8/1 = %.2f× (goal ≥ 4×) %s", oursN1, mark(oursN1 >= 4)),
				fmt.Sprintf("ours steady 8/1 = %.2f× %s", steadyN1, mark(steadyN1 >= 4))}, goals...)
		}
		out = append(out, l)
	}
	if len(goals) > 0 {
		out = append(out, "at 8 streams: "+strings.Join(goals, "; "))
	}
	return out
}

// streamSample is one round's measurement of n concurrent streams.
type streamSample struct {
	agg     float64 // aggregate decode tok/s: tokens after each stream's first / first stream's first token → last stream's last
	overall float64 // all tokens / wall time from the requests' start (prefills included)
	steady  float64 // steady aggregate decode tok/s: while all n streams decode (see steadyRate)
	per     float64 // median per-stream decode rate
	ttft    float64 // median TTFT, ms
	worst   float64 // worst TTFT, ms
}

// streamsOnce starts n streamed /v1/completions requests at once through
// the shim (a host whose one plugin process has parallelism ≥ n) and
// measures them.
func streamsOnce(addr, model, prompt string, tokens, n int) (streamSample, error) {
	type result struct {
		s          sample
		err        error
		first, end time.Time
	}
	res := make(chan result, n)
	start := time.Now()
	for range n {
		go func() {
			s, err := completionRun(addr, model, prompt, tokens)
			end := time.Now()
			res <- result{s, err, start.Add(s.ttft), end}
		}()
	}
	var first, last time.Time
	var streamTPS, streamTTFT []float64
	var errs []error
	var done []sample
	for range n {
		r := <-res
		if r.err != nil {
			errs = append(errs, r.err)
			continue
		}
		done = append(done, r.s)
		streamTPS = append(streamTPS, r.s.tps)
		streamTTFT = append(streamTTFT, ms(r.s.ttft))
		if first.IsZero() || r.first.Before(first) {
			first = r.first
		}
		if r.end.After(last) {
			last = r.end
		}
	}
	if len(errs) > 0 {
		return streamSample{}, fmt.Errorf("%d of %d streams failed: %w", len(errs), n, errors.Join(errs...))
	}
	return streamSample{
		agg:     float64(n*(tokens-1)) / last.Sub(first).Seconds(),
		steady:  steadyRate(done),
		overall: float64(n*tokens) / last.Sub(start).Seconds(),
		per:     benchhost.Median(streamTPS),
		ttft:    benchhost.Median(streamTTFT),
		worst:   slices.Max(streamTTFT),
	}, nil
}

// steadyRate is the aggregate decode rate while every stream decodes: the
// tokens that arrived after the last stream's first chunk and up to the
// first stream's last, over that window — no stream's prefill inside it,
// what llama-batched-bench reports as S_TG. Each chunk counts for its
// stream's mean tokens per chunk after the first (a chunk carries one
// token's text, or several when the decoder held text back). 0 when the
// window is empty.
func steadyRate(streams []sample) float64 {
	var from, to time.Time
	for _, s := range streams {
		if len(s.chunks) < 2 {
			return 0
		}
		if f := s.chunks[0]; f.After(from) {
			from = f
		}
		if l := s.chunks[len(s.chunks)-1]; to.IsZero() || l.Before(to) {
			to = l
		}
	}
	if !to.After(from) {
		return 0
	}
	var tokens float64
	for _, s := range streams {
		per := float64(s.tokens-1) / float64(len(s.chunks)-1)
		for _, c := range s.chunks[1:] {
			if c.After(from) && !c.After(to) {
				tokens += per
			}
		}
	}
	return tokens / to.Sub(from).Seconds()
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
	return sample{ttft: first.Sub(start), tps: float64(tokens-1) / end.Sub(first).Seconds(), tokens: tokens}, nil
}

func medians(s []sample) sample {
	t := make([]time.Duration, len(s))
	r := make([]float64, len(s))
	c := make([]time.Duration, len(s))
	n := make([]int, len(s))
	for i, x := range s {
		t[i], r[i], c[i], n[i] = x.ttft, x.tps, x.cpu, x.tokens
	}
	slices.Sort(t)
	slices.Sort(r)
	slices.Sort(c)
	slices.Sort(n)
	return sample{ttft: t[len(t)/2], tps: r[len(r)/2], cpu: c[len(c)/2], tokens: n[len(n)/2]}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }

// startHost starts dsmil-host in process with one llm-amx plugin block for
// dtype, of replicas processes.
func startHost(tmp, bin, modelDir, addr, dtype string, threads int, spin bool, replicas, parallelism int, security string) (*server.Host, error) {
	base, err := benchhost.Base(addr, apiKey)
	if err != nil {
		return nil, err
	}
	src := fmt.Sprintf(`
plugin "llm-%[1]s" {
  path           = %[2]q
  device_id      = 47
  profiles       = ["bench-%[1]s"]
  replicas       = %[8]d
  model          = %[3]q
  variant        = %[4]q
  model_name     = %[5]q
  threads        = %[6]d
  allow_spinning = %[7]v
  parallelism    = %[9]d
  queue          = %[9]d
  ignore_eos     = true
  prefill_graph  = %[10]v
  %[11]s
  pass_env       = ["DSMIL_ORT_LIB"]
}
model %[5]q { profile = "bench-%[1]s" }
`, dtype, bin, modelDir, dtypes[dtype].variant, modelID(dtype), threads, spin, replicas, parallelism, prefillGraph, pluginFlagLines())
	return benchhost.Start(tmp, security+base+src)
}

// startRouterHost starts -remote's router host: no plugin of its own, one
// peer block routing dtype's profile to the worker node at cross, whose
// claim issuer it is (its shim mints the tenant's claims with its key).
func startRouterHost(tmp, addr, cross, dtype string) (*server.Host, error) {
	metrics, err := benchhost.FreeAddr()
	if err != nil {
		return nil, err
	}
	h, err := benchhost.Start(tmp, fmt.Sprintf(`
security {
  identity_key    = "keys/a.key"
  identity_bundle = "keys/a.bundle"
  node_bundle     = "keys/a-node.bundle"
  roots           = ["keys/root.pub"]
}
shim    {
  listen          = %[1]q
  request_timeout = "10m"
}
router  {
  socket          = "run-a/router.sock"
  request_timeout = "10m"
}
admin   { socket = "run-a/admin.sock" }
metrics { listen = %[2]q }
peer "node-b" {
  address  = %[3]q
  profiles = ["bench-%[4]s"]
}
tenant "BENCH" {
  api_key_sha256 = [%[5]q]
  compartments   = ["SOC"]
  classification = "UNCLAS"
  roe            = "ANALYSIS_ONLY"
  models         = ["*"]
}
model %[6]q { profile = "bench-%[4]s" }
`, addr, metrics, cross, dtype, config.HashKey(apiKey), modelID(dtype)))
	if err != nil {
		return nil, err
	}
	if err := benchhost.WaitPeer(h, "bench-"+dtype); err != nil {
		h.Shutdown()
		return nil, err
	}
	return h, nil
}

// qwenVocabDir makes, in tmp, a model directory that is dir's models
// (symbolic links to their ONNX files) with the Qwen3 tokenizer of the
// tokenizer package's testdata in place of the generated one: the
// byte-level BPE vocabulary Qwen2.5 also uses (151,643 tokens, then special
// tokens; Qwen3 has four more of those), which the models' 151,936 rows
// cover. config.json and generation_config.json get its special ids.
func qwenVocabDir(tmp, dir string) (string, error) {
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		return "", fmt.Errorf("go list -m: %w", err)
	}
	src := filepath.Join(strings.TrimSpace(string(root)), "plugins", "internal", "tokenizer", "testdata", "qwen3")
	f, err := os.Open(filepath.Join(src, "tokenizer.json.gz"))
	if err != nil {
		return "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return "", err
	}
	tj, err := io.ReadAll(zr)
	if err != nil {
		return "", err
	}
	cfg, err := os.ReadFile(filepath.Join(src, "tokenizer_config.json"))
	if err != nil {
		return "", err
	}
	var tok struct {
		Added []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
	}
	if err := json.Unmarshal(tj, &tok); err != nil {
		return "", err
	}
	special := map[string]int{}
	for _, t := range tok.Added {
		special[t.Content] = t.ID
	}
	eot, okEOT := special["<|endoftext|>"]
	imEnd, okIMEnd := special["<|im_end|>"]
	if !okEOT || !okIMEnd {
		return "", errors.New("qwen tokenizer: no <|endoftext|> or <|im_end|>")
	}
	out := filepath.Join(tmp, "model-qwen-vocab")
	if err := os.Mkdir(out, 0o755); err != nil {
		return "", err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	for _, e := range entries {
		name := e.Name()
		switch name {
		case "tokenizer.json", "tokenizer_config.json":
			continue
		case "config.json", "generation_config.json":
			var c map[string]any
			b, err := os.ReadFile(filepath.Join(dir, name))
			if err == nil {
				err = json.Unmarshal(b, &c)
			}
			if err != nil {
				return "", fmt.Errorf("%s: %w", name, err)
			}
			c["bos_token_id"], c["eos_token_id"] = eot, imEnd
			if name == "generation_config.json" {
				c["eos_token_id"] = []int{imEnd, eot}
			}
			if _, ok := c["pad_token_id"]; ok {
				c["pad_token_id"] = eot
			}
			if b, err = json.MarshalIndent(c, "", "  "); err == nil {
				err = os.WriteFile(filepath.Join(out, name), b, 0o644)
			}
			if err != nil {
				return "", err
			}
		default:
			if err := os.Symlink(filepath.Join(dir, name), filepath.Join(out, name)); err != nil {
				return "", err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(out, "tokenizer.json"), tj, 0o644); err != nil {
		return "", err
	}
	return out, os.WriteFile(filepath.Join(out, "tokenizer_config.json"), cfg, 0o644)
}
