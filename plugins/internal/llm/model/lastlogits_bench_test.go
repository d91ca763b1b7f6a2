package model

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkPrefillLogits measures, on the model in $DSMIL_BENCH_MODEL, a
// prefill of N tokens in one run (N from $DSMIL_BENCH_PROMPTS, default
// 32,128,512) followed by $DSMIL_BENCH_DECODE (default 32) decode steps,
// in sessions side by side in one process, in interleaved rounds whose
// order rotates:
//
//   - "all": the graph's logits for every position (Options.AllLogits),
//     as before issue 18;
//   - "last": the last position's only (the load-time rewrite, or the
//     generator's graph);
//   - "prefill": when the model has a prefill graph (dsmil-mkmodel
//     -prefill-graph), last-only with Options.PrefillGraph;
//   - "prefill-B": with $DSMIL_BENCH_MODEL_B, that model's prefill graph
//     (to compare two prefill graphs of the same model);
//   - with $DSMIL_BENCH_LLAMACPP set to bench/llamacpp/run.sh's work
//     directory, llama.cpp's prompt processing of the same N in the same
//     rounds (its pp program, 2 threads, each run a fresh process whose
//     first, warm-up prompt is not counted): "llama-<build>-<type>" for
//     each build-*/pp and *.gguf there.
//
// It prints medians (prefill tok/s, decode tok/s), the best round's
// prefill (the least disturbed on a shared machine) and the medians of
// the per-round ratios to "all". Threads: $DSMIL_BENCH_THREADS or one per
// core; rounds: $DSMIL_BENCH_ROUNDS (default 5). Every session's threads
// spin (ONNX Runtime's default) unless $DSMIL_BENCH_SPIN=0; with
// $DSMIL_BENCH_STOP_SPIN=1 they stop spinning when a run ends
// (force_spinning_stop), so that one session's idle threads do not spin
// on the cores the next session's run needs.
//
//	DSMIL_BENCH_MODEL=/tmp/q05 go test -run '^$' -bench PrefillLogits -benchtime 1x ./plugins/internal/llm/model/
func BenchmarkPrefillLogits(b *testing.B) {
	dir := os.Getenv("DSMIL_BENCH_MODEL")
	if dir == "" {
		b.Skip("set DSMIL_BENCH_MODEL to a model directory")
	}
	initORT(b)
	opts := Options{Variant: os.Getenv("DSMIL_BENCH_VARIANT")}
	opts.Session.DisableSpinning = os.Getenv("DSMIL_BENCH_SPIN") == "0"
	opts.Session.StopSpinningAfterRun = os.Getenv("DSMIL_BENCH_STOP_SPIN") == "1"
	threads := 2
	if n := os.Getenv("DSMIL_BENCH_THREADS"); n != "" {
		t, err := strconv.Atoi(n)
		if err != nil {
			b.Fatalf("DSMIL_BENCH_THREADS: %v", err)
		}
		opts.Session.IntraOpThreads, threads = t, t
	}
	envInt := func(name string, def int) int {
		if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
			return n
		}
		return def
	}
	rounds, decode := envInt("DSMIL_BENCH_ROUNDS", 5), envInt("DSMIL_BENCH_DECODE", 32)
	prompts := []int{32, 128, 512}
	if s := os.Getenv("DSMIL_BENCH_PROMPTS"); s != "" {
		prompts = nil
		for _, f := range strings.Split(s, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				b.Fatalf("DSMIL_BENCH_PROMPTS: %v", err)
			}
			prompts = append(prompts, n)
		}
	}
	type variant struct {
		name  string
		m     *Model
		llama [2]string // pp binary, gguf
	}
	var vs []variant
	open := func(name string, o Options) {
		m, err := Open(dir, o)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close() })
		vs = append(vs, variant{name: name, m: m})
	}
	all := opts
	all.AllLogits = true
	open("all", all)
	open("last", opts)
	b.Logf("last: %s", vs[1].m.LogitsRewrite)
	if _, err := os.Stat(prefillPath(vs[1].m.Files.ONNX)); err == nil {
		pre := opts
		pre.PrefillGraph = true
		open("prefill", pre)
	}
	if dirB := os.Getenv("DSMIL_BENCH_MODEL_B"); dirB != "" {
		// Another model's prefill graph (before / after a change to it).
		pre := opts
		pre.PrefillGraph = true
		m, err := Open(dirB, pre)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Close() })
		vs = append(vs, variant{name: "prefill-B", m: m})
	}
	if w := os.Getenv("DSMIL_BENCH_LLAMACPP"); w != "" {
		bins, _ := filepath.Glob(filepath.Join(w, "build-*", "pp"))
		ggufs, _ := filepath.Glob(filepath.Join(w, "*.gguf"))
		for _, bin := range bins {
			for _, g := range ggufs {
				name := "llama-" + strings.TrimPrefix(filepath.Base(filepath.Dir(bin)), "build-") + "-" + strings.TrimSuffix(filepath.Base(g), ".gguf")
				vs = append(vs, variant{name: name, llama: [2]string{bin, g}})
			}
		}
	}
	ctx := context.Background()
	ppLine := regexp.MustCompile(`pp(\d+): ([0-9.]+) ms`)
	// run returns the prefill time and the decode rate (0 for llama.cpp).
	run := func(v variant, n int) (time.Duration, float64) {
		if v.m == nil {
			out, err := exec.Command(v.llama[0], v.llama[1], strconv.Itoa(threads), "1", strconv.Itoa(n)).Output()
			if err != nil {
				b.Fatalf("%s: %v", v.name, err)
			}
			sm := ppLine.FindStringSubmatch(string(out))
			if sm == nil {
				b.Fatalf("%s: no pp line in %q", v.name, out)
			}
			ms, _ := strconv.ParseFloat(sm[2], 64)
			return time.Duration(ms * float64(time.Millisecond)), 0
		}
		tokens := make([]int64, n)
		for i := range tokens {
			tokens[i] = int64(i*7%500 + 1)
		}
		seq, err := v.m.NewSequence(n + decode)
		if err != nil {
			b.Fatal(err)
		}
		defer seq.Close()
		t0 := time.Now()
		if _, err := seq.Step(ctx, tokens); err != nil {
			b.Fatal(err)
		}
		pre := time.Since(t0)
		t1 := time.Now()
		for i := 0; i < decode; i++ {
			if _, err := seq.Step(ctx, []int64{int64(i%400 + 3)}); err != nil {
				b.Fatal(err)
			}
		}
		return pre, float64(decode) / time.Since(t1).Seconds()
	}
	median := func(d []float64) float64 {
		s := append([]float64(nil), d...)
		sort.Float64s(s)
		return s[len(s)/2]
	}
	for b.Loop() {
		for _, n := range prompts {
			for _, v := range vs { // warm-up
				if v.m != nil {
					run(v, n)
				}
			}
			pre := make([][]float64, len(vs))
			dec := make([][]float64, len(vs))
			rel := make([][]float64, len(vs))
			for r := 0; r < rounds; r++ {
				got := make([]time.Duration, len(vs))
				for j := range vs {
					i := (j + r) % len(vs)
					var tps float64
					got[i], tps = run(vs[i], n)
					pre[i] = append(pre[i], float64(n)/got[i].Seconds())
					dec[i] = append(dec[i], tps)
				}
				for i := range vs {
					rel[i] = append(rel[i], float64(got[0])/float64(got[i]))
				}
			}
			for i, v := range vs {
				d := ""
				if v.m != nil {
					d = fmt.Sprintf("  decode %6.1f tok/s (%.3f× all's)", median(dec[i]), median(dec[i])/median(dec[0]))
				}
				best := slices.Max(pre[i])
				fmt.Printf("N=%-5d %-18s prefill %7.1f tok/s %8.1f ms (best %7.1f tok/s %8.1f ms)  %.3f× all's speed%s\n",
					n, v.name, median(pre[i]), float64(n)/median(pre[i])*1e3, best, float64(n)/best*1e3, median(rel[i]), d)
			}
		}
	}
}
