// Command embed measures /v1/embeddings through the whole plane against
// raw ONNX Runtime, in one run, on a random-weight all-MiniLM-L6-v2-shaped
// encoder (dsmil-mkmodel's minilm-l6 preset with max_seq_length 512, so
// that 512-token inputs fit):
//
//   - raw: a minimal embedding loop written for this benchmark
//     (plugins/embed/internal/rawembed, built and driven in its own
//     process as the plugin runs in its own): the same texts pre-tokenised,
//     runs of -batch sequences sorted by length, mean pooling,
//     normalisation, the plugin's session options;
//   - stack: the whole plane — an in-process dsmil-host (host/server:
//     OpenAI shim → router → plugin manager) with the built dsmil-embed
//     plugin process, one POST /v1/embeddings over HTTP with the N texts as
//     input and encoding_format base64 (the openai clients' default).
//
// For each input count (-inputs) and length (-tokens) it measures
// embeddings/s of both in interleaved rounds (each sample at least -ms
// long), and prints the medians and the median of the per-round ratios.
// Then, at -conc short inputs (the first of -tokens), batched against one
// at a time through the stack: the inputs as one request ("one request"),
// as -conc concurrent one-input requests (dynamic batching across
// requests, "concurrent"), and as -conc one-input requests one after
// another ("sequential", the baseline); and, in the same rounds, raw
// ONNX Runtime's runs of one sequence in turn against one batch of -conc:
// what batching gains with no cost per request.
//
// -runs sets concurrent_runs in both (rawembed -concurrent): "auto" (the
// default, the plugin's) runs narrow single-threaded runs side by side and
// a lone sequence of at least wide_min_tokens wide; rawembed measures
// wide_min_tokens (or takes -wide-min) and the plugin is given the same.
//
// -file onnx/model_quantized.onnx benches the encoder's dynamic int8 graph
// (dsmil-mkmodel -dtype q8; written into -models when absent) in both, the
// plugin through its model_file setting.
//
// -preset tiny-encoder benches a 2-layer, 32-wide encoder whose run takes
// tens of microseconds: its stack rate is the stack's fixed cost per
// request (HTTP, JSON, the shim, the router, two DBE hops, the plugin's
// dispatch and tokenising), which the minilm-l6 rows pay on top of the run.
// -bins DIR keeps the binaries it builds, for perf to find their symbols.
//
//	go run ./bench/embed [-preset minilm-l6] [-inputs 1,8,32,128] [-tokens 16,128,512] [-rounds 3] [-ms 300] [-threads 0] [-runs auto] [-file onnx/model.onnx]
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/bench/internal/benchhost"
	"github.com/dsmil/l7/host/server"
	"github.com/dsmil/l7/internal/mkmodel"
)

const (
	apiKey  = "bench-embed-key"
	modelID = "bench-random-encoder"
)

type options struct {
	preset, dir, file         string
	inputs, tokens            []int
	rounds, ms, threads, conc int
	batch, waitMS, runs       int
	wideMin                   int    // rawembed's wide_min_tokens, -1: none, 0: not used
	wideMinFlag               string // -wide-min
	bins                      string // -bins: where the binaries are built (kept)
	spin, stopSpin            bool
}

func main() {
	preset := flag.String("preset", "minilm-l6", `the encoder shape (dsmil-mkmodel's preset, with max_seq_length its max_position_embeddings): minilm-l6, or tiny-encoder (2 layers of 32, 64 positions: a run takes microseconds, so the stack's rate is its fixed cost per request)`)
	dir := flag.String("models", "", "model directory (generated when absent; default: the user's cache, dsmil/models/<preset>-<positions>)")
	file := flag.String("file", "onnx/model.onnx", "the encoder graph in the model directory: onnx/model.onnx (fp32) or onnx/model_quantized.onnx (dynamic int8)")
	inputs := flag.String("inputs", "1,8,32,128", "inputs per request")
	tokens := flag.String("tokens", "16,128,512", "tokens per input, [CLS] and [SEP] included")
	rounds := flag.Int("rounds", 3, "interleaved rounds per shape")
	ms := flag.Int("ms", 300, "each sample runs for at least this many milliseconds")
	threads := flag.Int("threads", 0, "ONNX Runtime intra-op threads (0: one per core)")
	spin := flag.Bool("spin", true, "let idle ONNX Runtime threads spin (the plugin's allow_spinning)")
	stopSpin := flag.Bool("stop-spin", false, "ONNX Runtime's threads stop spinning when a run ends (the plugin's force_spinning_stop)")
	batch := flag.Int("batch", 32, "sequences per ONNX Runtime run (the plugin's max_batch)")
	wait := flag.Int("wait", 2, "the plugin's batch_wait_ms")
	conc := flag.Int("conc", 32, "inputs of the batched against one-at-a-time comparison")
	wideMin := flag.String("wide-min", "auto", `with -runs auto: the fewest tokens of a lone sequence that runs wide (the plugin's wide_min_tokens), or "auto": measured by the raw baseline, which the plugin is then given`)
	bins := flag.String("bins", "", "build the plugin and rawembed into this directory and keep them (for profiling with perf); default: a temporary directory")
	runs := flag.String("runs", "auto", `ONNX Runtime runs in flight at once, in both (the plugin's concurrent_runs, rawembed's -concurrent): a number, or "auto" (the plugin's default)`)
	flag.Parse()
	server.TuneGC()
	o := options{preset: *preset, dir: *dir, file: *file, rounds: max(*rounds, 1), ms: *ms, threads: *threads, spin: *spin, stopSpin: *stopSpin, batch: *batch, waitMS: *wait, conc: *conc, wideMinFlag: *wideMin, bins: *bins}
	var err error
	if *runs != "auto" {
		if o.runs, err = strconv.Atoi(*runs); err == nil && o.runs < 1 {
			err = fmt.Errorf("-runs %d: want a positive number or auto", o.runs)
		}
	}
	if err == nil {
		o.inputs, err = ints(*inputs)
	}
	if err == nil {
		o.tokens, err = ints(*tokens)
	}
	if err == nil {
		err = run(o)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench/embed:", err)
		os.Exit(1)
	}
}

// oneWide is rawProc.wideMin when rawembed's measurement made it run one
// wide run at a time (as the plugin then does).
const oneWide = -2

// wideNote describes wide_min_tokens as the plugin was given it.
func wideNote(n int) string {
	switch {
	case n > 0:
		return fmt.Sprintf(", wide_min_tokens %d", n)
	case n < 0:
		return ", no lone sequence runs wide"
	}
	return ""
}

// runsSetting is o.runs as the plugin's concurrent_runs: 0 is "auto".
func (o options) runsSetting() string {
	if o.runs == 0 {
		return `"auto"`
	}
	return strconv.Itoa(o.runs)
}

func ints(list string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q: want positive integers separated by commas", list)
		}
		out = append(out, n)
	}
	return out, nil
}

func run(o options) error {
	spec, err := mkmodel.EncoderPreset(o.preset)
	if err != nil {
		return err
	}
	spec.MaxSeqLength = spec.MaxPositions // 512 for minilm-l6
	if slices.Max(o.tokens) > spec.MaxSeqLength || slices.Min(o.tokens) < 3 {
		return fmt.Errorf("-tokens: 3 to %d (the model's max_seq_length; [CLS] and [SEP] are two of them)", spec.MaxSeqLength)
	}
	if o.dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			return err
		}
		o.dir = filepath.Join(cache, "dsmil", "models", fmt.Sprintf("%s-%d", spec.Name, spec.MaxSeqLength))
	}
	spec.Quantized = o.file == mkmodel.QuantizedEncoderFile
	if _, err := os.Stat(filepath.Join(o.dir, filepath.FromSlash(o.file))); err != nil {
		fmt.Printf("generating %s (max_seq_length %d, %s) into %s ...\n", spec.Name, spec.MaxSeqLength, o.file, o.dir)
		if _, err := mkmodel.WriteEncoder(o.dir, spec); err != nil {
			return err
		}
	}
	tmp, err := os.MkdirTemp("", "bench-embed")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	binDir := tmp
	if o.bins != "" {
		if err := os.MkdirAll(o.bins, 0o755); err != nil {
			return err
		}
		binDir = o.bins
	}
	bins := map[string]string{}
	for name, pkg := range map[string]string{
		"dsmil-embed": "github.com/dsmil/l7/plugins/embed",
		"rawembed":    "github.com/dsmil/l7/plugins/embed/internal/rawembed",
	} {
		bins[name] = filepath.Join(binDir, name)
		if out, err := exec.Command("go", "build", "-o", bins[name], pkg).CombinedOutput(); err != nil {
			return fmt.Errorf("build %s: %v\n%s", name, err, out)
		}
	}
	addr, err := benchhost.FreeAddr()
	if err != nil {
		return err
	}
	// rawembed first: with -runs auto it measures wide_min_tokens (unless
	// -wide-min says), and the plugin is given the same.
	raw, err := startRaw(bins["rawembed"], o)
	if err != nil {
		return err
	}
	defer raw.close()
	o.wideMin = raw.wideMin
	if o.wideMin == oneWide {
		// rawembed measured the graph wide from the shortest length:
		// the plugin does the same from its own measurement.
		o.wideMin = 0
	}
	host, err := startHost(tmp, bins["dsmil-embed"], addr, o)
	if err != nil {
		return err
	}
	defer host.Shutdown()
	c := &client{base: "http://" + addr, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}, dims: spec.Hidden}
	fmt.Printf("embed benchmark: %s, %d CPUs; %s shape (random weights, max_seq_length %d) in %s, %s\n", runtime.Version(), runtime.NumCPU(), spec.Name, spec.MaxSeqLength, o.dir, o.file)
	fmt.Printf("%s\nplugin: max_batch %d, concurrent_runs %s%s, batch_wait_ms %d; %d interleaved rounds, samples of ≥ %d ms\n\n", raw.runtime, o.batch, o.runsSetting(), wideNote(o.wideMin), o.waitMS, o.rounds, o.ms)
	fmt.Printf("%-8s %-8s %14s %14s %12s\n", "inputs", "tokens", "raw emb/s", "stack emb/s", "stack/raw")
	type row struct {
		n, l  int
		ratio float64
	}
	var rows []row
	for _, l := range o.tokens {
		for _, n := range o.inputs {
			texts, err := raw.texts(n, l)
			if err != nil {
				return err
			}
			// Warm up both (first runs of a shape allocate).
			if _, err := raw.run(1); err != nil {
				return err
			}
			req := c.request(texts, n*l)
			if _, err := c.timed(o.ms/10, req.post); err != nil {
				return err
			}
			var rs, ss, ratios []float64
			for r := range o.rounds {
				var rawRate, stackRate float64
				measure := []func() error{
					func() (err error) { rawRate, err = raw.run(o.ms); return err },
					func() (err error) {
						stackRate, err = c.timed(o.ms, req.post)
						return err
					},
				}
				for k := range measure {
					if err := measure[(r+k)%2](); err != nil {
						return err
					}
				}
				rs, ss, ratios = append(rs, rawRate), append(ss, stackRate), append(ratios, stackRate/rawRate)
			}
			m := benchhost.Median(ratios)
			rows = append(rows, row{n, l, m})
			fmt.Printf("%-8d %-8d %14.1f %14.1f %11.3f× %s\n", n, l, benchhost.Median(rs), benchhost.Median(ss), m, mark(m >= 0.9))
		}
	}
	fmt.Println("\nstack/raw: median of the per-round ratios; goal ≥ 0.9×")

	// Batched against one at a time, at -conc inputs of the first length.
	l := o.tokens[0]
	texts, err := raw.texts(o.conc, l)
	if err != nil {
		return err
	}
	ones := make([]*request, len(texts))
	for i, t := range texts {
		ones[i] = c.request([]string{t}, l)
	}
	paths := []struct {
		name string
		f    func() (int, error)
	}{
		{"sequential", func() (int, error) {
			for _, r := range ones {
				if _, err := r.post(); err != nil {
					return 0, err
				}
			}
			return len(texts), nil
		}},
		{"one request", c.request(texts, len(texts)*l).post},
		{"concurrent", func() (int, error) {
			var wg sync.WaitGroup
			errs := make([]error, len(texts))
			for i, r := range ones {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, errs[i] = r.post()
				}()
			}
			wg.Wait()
			return len(texts), errors.Join(errs...)
		}},
	}
	for _, p := range paths {
		if _, err := c.timed(o.ms/10, p.f); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	// The same comparison on raw ONNX Runtime: runs of one sequence, one
	// after another, against runs of -conc (split over the runs in flight
	// as the plugin splits them). Its ratio is what batching gains when a
	// request costs nothing but its run: the ceiling of the stack's, bar
	// the stack's own cost per request, which slows its one-at-a-time path.
	rawPaths := []struct {
		name string
		n    int
	}{{"raw sequential", 1}, {"raw batched", o.conc}}
	rawRun := func(n, ms int) (float64, error) {
		if _, err := raw.texts(n, l); err != nil {
			return 0, err
		}
		return raw.run(ms)
	}
	for _, p := range rawPaths {
		if _, err := rawRun(p.n, o.ms/10); err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
	}
	got := map[string][]float64{}
	for r := range o.rounds {
		for k := range paths {
			p := paths[(r+k)%len(paths)]
			rate, err := c.timed(o.ms, p.f)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			got[p.name] = append(got[p.name], rate)
		}
		for k := range rawPaths {
			p := rawPaths[(r+k)%len(rawPaths)]
			rate, err := rawRun(p.n, o.ms)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			got[p.name] = append(got[p.name], rate)
		}
	}
	fmt.Printf("\n%d inputs of %d tokens through the stack:\n%-40s %14s %12s\n", o.conc, l, "path", "emb/s", "/sequential")
	printRatios(got, "sequential", 4, []string{"sequential", "one request", "concurrent"}, map[string]string{
		"sequential":  fmt.Sprintf("sequential (%d requests of 1, in turn)", o.conc),
		"one request": fmt.Sprintf("one request of %d inputs", o.conc),
		"concurrent":  fmt.Sprintf("concurrent (%d requests of 1 at once)", o.conc),
	})
	fmt.Printf("\nthe same on raw ONNX Runtime, in the same rounds:\n")
	printRatios(got, "raw sequential", 0, []string{"raw sequential", "raw batched"}, map[string]string{
		"raw sequential": fmt.Sprintf("runs of 1, %d in turn", o.conc),
		"raw batched":    fmt.Sprintf("the %d as one batch", o.conc),
	})
	fmt.Println("\nbatched/sequential: median of the per-round ratios; goal ≥ 4×. Raw ONNX Runtime's ratio is what")
	fmt.Println("batching gains when a request costs nothing but its run; the stack's exceeds it by as much as its")
	fmt.Println("cost per request slows its one-at-a-time path.")
	return nil
}

// printRatios prints, for each of names (described by desc), the median
// of its rates in got and the median of its per-round ratios to base's,
// marked against goal (0: not marked) except for base itself.
func printRatios(got map[string][]float64, base string, goal float64, names []string, desc map[string]string) {
	for _, name := range names {
		var ratios []float64
		for i, x := range got[name] {
			ratios = append(ratios, x/got[base][i])
		}
		m := benchhost.Median(ratios)
		flagged := ""
		if name != base && goal > 0 {
			flagged = " " + mark(m >= goal)
		}
		fmt.Printf("%-40s %14.1f %11.2f×%s\n", desc[name], benchhost.Median(got[name]), m, flagged)
	}
}

func mark(ok bool) string {
	if ok {
		return "✔"
	}
	return "✘"
}

// client posts to the shim.
type client struct {
	base string
	http *http.Client
	dims int // floats per vector
}

// timed runs f over and over for at least ms milliseconds (at least once)
// and returns the embeddings per second f reported.
func (c *client) timed(ms int, f func() (int, error)) (float64, error) {
	count, start := 0, time.Now()
	for count == 0 || time.Since(start) < time.Duration(ms)*time.Millisecond {
		n, err := f()
		if err != nil {
			return 0, err
		}
		count += n
	}
	return float64(count) / time.Since(start).Seconds(), nil
}

// request is one /v1/embeddings request, its body encoded once (the
// client's JSON encoding is not the plane's work).
type request struct {
	c          *client
	body       []byte
	texts      int
	wantTokens int
	decoded    atomic.Bool // an answer was decoded in full (post)
}

// request prepares a request for texts (base64) whose answer must have
// wantTokens tokens.
func (c *client) request(texts []string, wantTokens int) *request {
	body, _ := json.Marshal(map[string]any{"model": modelID, "input": texts, "encoding_format": "base64"})
	return &request{c: c, body: body, texts: len(texts), wantTokens: wantTokens}
}

// post posts r and checks the answer: one vector per text, c.dims floats
// each, the tokens wanted. The first answer to each request is decoded in
// full (decodeAnswer); later ones are scanned for the same facts
// (scanAnswer), which costs the client a sixth of the time: 48 µs against
// 310 µs for an answer of 32 vectors of 384 floats (BenchmarkAnswerChecks),
// of a 15 ms request on the same two cores as the plane. The client's work
// is not the plane's.
func (r *request) post() (int, error) {
	c := r.c
	req, _ := http.NewRequest(http.MethodPost, c.base+"/v1/embeddings", bytes.NewReader(r.body))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var b []byte
	if n := resp.ContentLength; n > 0 && n <= 1<<30 {
		b = make([]byte, n) // the shim sizes its answers: one read, no growing
		_, err = io.ReadFull(resp.Body, b)
	} else {
		b, err = io.ReadAll(resp.Body)
	}
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("HTTP %d: %s", resp.StatusCode, b)
	}
	check := scanAnswer
	if !r.decoded.Load() {
		check = decodeAnswer
	}
	vectors, tokens, err := check(b, (c.dims*4+2)/3*4)
	if err != nil {
		return 0, err
	}
	if vectors != r.texts || tokens != r.wantTokens {
		return 0, fmt.Errorf("%d vectors and %d tokens for %d texts of %d tokens in all", vectors, tokens, r.texts, r.wantTokens)
	}
	r.decoded.Store(true)
	return r.texts, nil
}

// decodeAnswer decodes an embeddings answer with encoding/json and returns
// its vector count and prompt_tokens; every vector must be a base64 string
// of vecLen characters.
func decodeAnswer(b []byte, vecLen int) (vectors, tokens int, err error) {
	var a struct {
		Object string `json:"object"`
		Data   []struct {
			Object    string `json:"object"`
			Index     int    `json:"index"`
			Embedding string `json:"embedding"`
		} `json:"data"`
		Usage struct {
			PromptTokens int `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(b, &a); err != nil {
		return 0, 0, err
	}
	if a.Object != "list" {
		return 0, 0, fmt.Errorf("object %q, not list", a.Object)
	}
	for i, d := range a.Data {
		if d.Object != "embedding" || d.Index != i || len(d.Embedding) != vecLen {
			return 0, 0, fmt.Errorf("data[%d]: object %q, index %d, a base64 vector of %d characters; want embedding, %d, %d", i, d.Object, d.Index, len(d.Embedding), i, vecLen)
		}
	}
	return len(a.Data), a.Usage.PromptTokens, nil
}

// scanAnswer finds the same facts as decodeAnswer without decoding: it
// counts the "embedding" strings, checks each one's length and that it
// holds only base64 characters, and reads prompt_tokens. It reads the
// shim's compact layout; decodeAnswer has seen that the answer is what it
// claims.
func scanAnswer(b []byte, vecLen int) (vectors, tokens int, err error) {
	const key = `"embedding":"`
	for rest := b; ; {
		i := bytes.Index(rest, []byte(key))
		if i < 0 {
			break
		}
		rest = rest[i+len(key):]
		end := bytes.IndexByte(rest, '"')
		if end != vecLen {
			return 0, 0, fmt.Errorf("vector %d: %d characters before its closing quote, want %d", vectors, end, vecLen)
		}
		for _, ch := range rest[:end] {
			if !isBase64[ch] {
				return 0, 0, fmt.Errorf("vector %d: %q is not base64", vectors, ch)
			}
		}
		rest = rest[end:]
		vectors++
	}
	const tk = `"prompt_tokens":`
	i := bytes.Index(b, []byte(tk))
	if i < 0 {
		return 0, 0, errors.New("no prompt_tokens")
	}
	digits := b[i+len(tk):]
	n := 0
	for n < len(digits) && digits[n] >= '0' && digits[n] <= '9' {
		n++
	}
	if tokens, err = strconv.Atoi(string(digits[:n])); err != nil {
		return 0, 0, fmt.Errorf("prompt_tokens: %w", err)
	}
	return vectors, tokens, nil
}

// isBase64 is the standard base64 alphabet and its padding.
var isBase64 = func() (t [256]bool) {
	for _, c := range []byte("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=") {
		t[c] = true
	}
	return t
}()

// rawProc is a running rawembed.
type rawProc struct {
	cmd     *exec.Cmd
	in      io.WriteCloser
	out     *json.Decoder
	runtime string
	wideMin int
}

func startRaw(bin string, o options) (*rawProc, error) {
	cmd := exec.Command(bin, "-model", o.dir, "-file", o.file, "-threads", fmt.Sprint(o.threads), "-spin="+fmt.Sprint(o.spin), "-stop-spin="+fmt.Sprint(o.stopSpin), "-batch", fmt.Sprint(o.batch), "-concurrent", fmt.Sprint(o.runs), "-wide-min", o.wideMinFlag)
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
		Runtime string `json:"runtime"`
		WideMin int    `json:"wide_min_tokens"`
		OneWide bool   `json:"one_wide"`
	}
	if err := r.out.Decode(&hello); err != nil {
		r.close()
		return nil, fmt.Errorf("rawembed: %w", err)
	}
	r.runtime, r.wideMin = hello.Runtime, hello.WideMin
	if hello.OneWide {
		r.wideMin = oneWide
	}
	return r, nil
}

func (r *rawProc) texts(n, l int) ([]string, error) {
	if _, err := fmt.Fprintf(r.in, "texts %d %d\n", n, l); err != nil {
		return nil, err
	}
	var res struct {
		Texts []string `json:"texts"`
	}
	if err := r.out.Decode(&res); err != nil {
		return nil, fmt.Errorf("rawembed: %w", err)
	}
	return res.Texts, nil
}

// run returns raw embeddings/s over at least ms milliseconds.
func (r *rawProc) run(ms int) (float64, error) {
	if _, err := fmt.Fprintf(r.in, "run %d\n", ms); err != nil {
		return 0, err
	}
	var res struct {
		Embeddings int   `json:"embeddings"`
		NS         int64 `json:"ns"`
	}
	if err := r.out.Decode(&res); err != nil {
		return 0, fmt.Errorf("rawembed: %w", err)
	}
	return float64(res.Embeddings) / (float64(res.NS) / 1e9), nil
}

func (r *rawProc) close() {
	r.in.Close()
	if err := r.cmd.Wait(); err != nil {
		fmt.Fprintln(os.Stderr, "rawembed:", err)
	}
}

func startHost(tmp, bin, addr string, o options) (*server.Host, error) {
	base, err := benchhost.Base(addr, apiKey)
	if err != nil {
		return nil, err
	}
	wide := ""
	switch {
	case o.wideMin > 0:
		wide = fmt.Sprintf("\n  wide_min_tokens = %d", o.wideMin)
	case o.wideMin < 0: // none: longer than any input
		wide = fmt.Sprintf("\n  wide_min_tokens = %d", 1<<20)
	}
	src := fmt.Sprintf(`
plugin "embed" {
  path           = %[1]q
  device_id      = 49
  profiles       = ["bench-embed"]
  model          = %[2]q
  model_name     = %[3]q
  model_file     = %[9]q
  threads        = %[4]d
  allow_spinning = %[5]v
  max_batch      = %[6]d
  batch_wait_ms  = %[7]d
  force_spinning_stop = %[8]v
  concurrent_runs = %[10]s%[11]s
  pass_env       = ["DSMIL_ORT_LIB"]
}
model %[3]q { profile = "bench-embed" }
`, bin, o.dir, modelID, o.threads, o.spin, o.batch, o.waitMS, o.stopSpin, o.file, o.runsSetting(), wide)
	// The 10-minute timeouts: 128 inputs of 512 tokens take tens of
	// seconds on a busy 2-core machine, and passed the router's 60 s default
	// there once.
	return benchhost.Start(tmp, base+src)
}
