package model

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkPrefillLogits measures, on the model in $DSMIL_BENCH_MODEL, a
// prefill of N tokens (N from $DSMIL_BENCH_PROMPTS, default 32,128,512)
// with the graph's logits for every position (Options.AllLogits) and with
// the last position's only (the load-time rewrite, or the generator's
// graph), the two sessions side by side in one process, alternating, and
// prints the medians and their ratio. Threads: $DSMIL_BENCH_THREADS or one
// per core; rounds: $DSMIL_BENCH_ROUNDS (default 5). When the model has a
// prefill graph (dsmil-mkmodel -prefill-graph), a third session runs
// it (Options.PrefillGraph). Times relative to "all positions" are medians
// of the per-round ratios.
//
//	DSMIL_BENCH_MODEL=~/.cache/dsmil/models/qwen2.5-0.5b \
//	  go test -run '^$' -bench PrefillLogits -benchtime 1x ./plugins/llm-amx/internal/model/
func BenchmarkPrefillLogits(b *testing.B) {
	dir := os.Getenv("DSMIL_BENCH_MODEL")
	if dir == "" {
		b.Skip("set DSMIL_BENCH_MODEL to a model directory")
	}
	initORT(b)
	opts := Options{Variant: os.Getenv("DSMIL_BENCH_VARIANT")}
	if n := os.Getenv("DSMIL_BENCH_THREADS"); n != "" {
		t, err := strconv.Atoi(n)
		if err != nil {
			b.Fatalf("DSMIL_BENCH_THREADS: %v", err)
		}
		opts.Session.IntraOpThreads = t
	}
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("DSMIL_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
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
	all := opts
	all.AllLogits = true
	mAll, err := Open(dir, all)
	if err != nil {
		b.Fatal(err)
	}
	defer mAll.Close()
	mLast, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer mLast.Close()
	b.Logf("all: last-only %v; default: last-only %v (%s)", mAll.LastLogits, mLast.LastLogits, mLast.LogitsRewrite)
	var mPre *Model // the prefill graph, when the model has one
	if _, err := os.Stat(prefillPath(mLast.Files.ONNX)); err == nil {
		pre := opts
		pre.PrefillGraph = true
		if mPre, err = Open(dir, pre); err != nil {
			b.Fatal(err)
		}
		defer mPre.Close()
	}
	ctx := context.Background()
	prefill := func(m *Model, n int) time.Duration {
		tokens := make([]int64, n)
		for i := range tokens {
			tokens[i] = int64(i*7%500 + 1)
		}
		seq, err := m.NewSequence(n)
		if err != nil {
			b.Fatal(err)
		}
		defer seq.Close()
		t0 := time.Now()
		if _, err := seq.Step(ctx, tokens); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	median := func(d []float64) float64 {
		sort.Float64s(d)
		return d[len(d)/2]
	}
	for b.Loop() {
		for _, n := range prompts {
			prefill(mAll, n) // warm both
			prefill(mLast, n)
			if mPre != nil {
				prefill(mPre, n)
			}
			var tAll, tLast, tPre, ratio, ratioPre []float64
			for r := 0; r < rounds; r++ {
				ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1e3 }
				var a, l, p time.Duration
				if r%2 == 0 {
					a, l = prefill(mAll, n), prefill(mLast, n)
					if mPre != nil {
						p = prefill(mPre, n)
					}
				} else {
					if mPre != nil {
						p = prefill(mPre, n)
					}
					l, a = prefill(mLast, n), prefill(mAll, n)
				}
				tAll, tLast = append(tAll, ms(a)), append(tLast, ms(l))
				ratio = append(ratio, float64(l)/float64(a))
				if mPre != nil {
					tPre = append(tPre, ms(p))
					ratioPre = append(ratioPre, float64(p)/float64(a))
				}
			}
			ma, ml := median(tAll), median(tLast)
			fmt.Printf("prefill %5d tokens: all positions %8.1f ms (%6.1f tok/s)  last only %8.1f ms (%6.1f tok/s, %.3f× the time)",
				n, ma, float64(n)/ma*1e3, ml, float64(n)/ml*1e3, median(ratio))
			if mPre != nil {
				mp := median(tPre)
				fmt.Printf("  prefill graph %8.1f ms (%6.1f tok/s, %.3f× the time)", mp, float64(n)/mp*1e3, median(ratioPre))
			}
			fmt.Println()
		}
	}
}
