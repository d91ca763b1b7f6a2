package engine

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dsmil/l7/plugins/internal/llm/model"
)

// BenchmarkStreams measures aggregate decode speed of concurrent streams,
// decoded unbatched (each Generate its own ORT run per token) and in the
// continuous batch, on the model in $DSMIL_BENCH_MODEL (for example the
// qwen2.5-0.5b int4 model bench/llm writes). For 1, 2, 4 and 8 streams
// started together (128-token prompts, 128 greedy tokens, EOS ignored), in
// $DSMIL_BENCH_ROUNDS (default 3) interleaved rounds, it logs the medians:
// aggregate = all tokens after each stream's first / (last token of the
// last stream − first token of the first: prefills overlap decodes), the
// per-stream decode rate, and the median of the per-round ratios batched /
// unbatched (the two runs of a round follow each other, so the ratio
// suffers less from a shared machine's drift than the rates), and the
// steady aggregate of the batched runs: batch rows stepped while all n
// streams decode together (from the last stream's first token to the
// first stream's end) per second — the decode-only rate llama.cpp's
// batched-bench reports as S_TG — with its ratio to the first stream
// count's (so list 1 first). Threads: $DSMIL_BENCH_THREADS or one per
// core. $DSMIL_BENCH_STREAMS (e.g. "1,8") picks the stream counts.
// $DSMIL_BENCH_MODEL_B: compare the batched runs of two models instead
// (model A batched against model B batched, same options; e.g. two
// prefill graphs). $DSMIL_BENCH_SPIN=0: ORT threads do not spin (the
// shipped dsmil.hcl's llm-amx allow_spinning = false);
// $DSMIL_BENCH_STOP_SPIN=1: they stop spinning when a run ends
// (force_spinning_stop).
//
//	DSMIL_BENCH_MODEL=~/.cache/dsmil/models/qwen2.5-0.5b go test -run '^$' -bench Streams -benchtime 1x ./plugins/internal/llm/engine/
func BenchmarkStreams(b *testing.B) {
	dir := os.Getenv("DSMIL_BENCH_MODEL")
	if dir == "" {
		b.Skip("set DSMIL_BENCH_MODEL to a model directory")
	}
	initORT(b)
	opts := model.Options{Variant: os.Getenv("DSMIL_BENCH_VARIANT"), PrefillGraph: os.Getenv("DSMIL_BENCH_PREFILL_GRAPH") == "1"}
	if n, err := strconv.Atoi(os.Getenv("DSMIL_BENCH_PREFILL_MIN")); err == nil {
		opts.PrefillMin = n
	}
	if n := os.Getenv("DSMIL_BENCH_THREADS"); n != "" {
		t, err := strconv.Atoi(n)
		if err != nil {
			b.Fatalf("DSMIL_BENCH_THREADS: %v", err)
		}
		opts.Session.IntraOpThreads = t
	}
	rounds := 3
	if n := os.Getenv("DSMIL_BENCH_ROUNDS"); n != "" {
		var err error
		if rounds, err = strconv.Atoi(n); err != nil || rounds < 1 {
			b.Fatalf("DSMIL_BENCH_ROUNDS: %q", n)
		}
	}
	opts.Session.DisableSpinning = os.Getenv("DSMIL_BENCH_SPIN") == "0"
	opts.Session.StopSpinningAfterRun = os.Getenv("DSMIL_BENCH_STOP_SPIN") == "1"
	e, err := Load(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if !e.Model.CanBatch() {
		b.Skip("the model's graph cannot batch")
	}
	// With $DSMIL_BENCH_MODEL_B, the first column is model A batched, the
	// second model B batched (before / after a change to the model).
	eb, labels := e, [2]string{"unbatched", "batched"}
	if dirB := os.Getenv("DSMIL_BENCH_MODEL_B"); dirB != "" {
		if eb, err = Load(dirB, opts); err != nil {
			b.Fatal(err)
		}
		defer eb.Close()
		labels = [2]string{"A batched", "B batched"}
	}
	const promptLen, tokens = 128, 128
	streams := []int{1, 2, 4, 8}
	if list := os.Getenv("DSMIL_BENCH_STREAMS"); list != "" {
		streams = nil
		for _, f := range strings.Split(list, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil || n < 1 {
				b.Fatalf("DSMIL_BENCH_STREAMS: %q", list)
			}
			streams = append(streams, n)
		}
	}
	type key struct {
		batched bool
		n       int
	}
	agg, per, steady := map[key][]float64{}, map[key][]float64{}, map[key][]float64{}
	run := func(batched bool, n int) {
		e := e
		switch {
		case eb == e:
			e.Unbatched = !batched
		case batched: // the second column: model B
			e = eb
		}
		res := make([]*Result, n)
		// The steady window: from when every stream has its first token
		// (all n are in the batch) to when the first one ends; the batch
		// rows stepped in it over its length are the aggregate decode rate
		// of n streams decoding together, no prefill beside them (what
		// llama-batched-bench's S_TG measures).
		var (
			mu     sync.Mutex
			joined int
			t0, t1 time.Time
			s0, s1 BatchStats
		)
		var wg sync.WaitGroup
		for s := range n {
			prompt := make([]int, promptLen)
			for i := range prompt {
				prompt[i] = (i*7+s*31)%(e.SampleVocab()-1) + 1
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				first := true
				r, err := e.Generate(context.Background(), &Request{Prompt: prompt, MaxTokens: tokens, IgnoreEOS: true},
					func(string) error {
						if first {
							first = false
							mu.Lock()
							if joined++; joined == n {
								t0, s0 = time.Now(), e.BatchStats()
							}
							mu.Unlock()
						}
						return nil
					})
				if err != nil {
					b.Error(err)
				}
				mu.Lock()
				if t1.IsZero() {
					t1, s1 = time.Now(), e.BatchStats()
				}
				mu.Unlock()
				res[s] = r
			}()
		}
		wg.Wait()
		first, last := res[0].FirstToken, res[0].End
		decoded := 0
		for _, r := range res {
			decoded += r.CompletionTokens - 1
			if r.FirstToken.Before(first) {
				first = r.FirstToken
			}
			if r.End.After(last) {
				last = r.End
			}
			per[key{batched, n}] = append(per[key{batched, n}], r.DecodeRate())
		}
		agg[key{batched, n}] = append(agg[key{batched, n}], float64(decoded)/last.Sub(first).Seconds())
		if batched && !t0.IsZero() && t1.After(t0) {
			steady[key{batched, n}] = append(steady[key{batched, n}], float64(s1.Rows-s0.Rows)/t1.Sub(t0).Seconds())
		}
	}
	ratios := map[int][]float64{}
	for b.Loop() {
		for range rounds {
			for _, n := range streams {
				run(false, n)
				run(true, n)
				u, bt := agg[key{false, n}], agg[key{true, n}]
				ratios[n] = append(ratios[n], bt[len(bt)-1]/u[len(u)-1])
			}
		}
	}
	med := func(x []float64) float64 {
		x = slices.Clone(x)
		slices.Sort(x)
		return x[len(x)/2]
	}
	var tab strings.Builder
	fmt.Fprintf(&tab, "%s (B: %s), %d threads, spinning %v, %d rounds: aggregate decode tok/s (per-stream median)\n", dir,
		os.Getenv("DSMIL_BENCH_MODEL_B"), opts.Session.WithDefaults().IntraOpThreads, !opts.Session.DisableSpinning, rounds)
	fmt.Fprintf(&tab, "%-8s %22s %22s %8s %14s %8s\n", "streams", labels[0], labels[1], "ratio", labels[1]+" steady", "/1")
	for _, n := range streams {
		u, bt := med(agg[key{false, n}]), med(agg[key{true, n}])
		st, st1 := 0.0, 0.0
		if x := steady[key{true, n}]; len(x) > 0 {
			st = med(x)
		}
		if x := steady[key{true, streams[0]}]; len(x) > 0 {
			st1 = med(x)
		}
		fmt.Fprintf(&tab, "%-8d %10.1f (%5.1f each) %10.1f (%5.1f each) %7.2fx %14.1f %7.2fx\n", n,
			u, med(per[key{false, n}]), bt, med(per[key{true, n}]), med(ratios[n]), st, st/max(st1, 1e-9))
		b.ReportMetric(st, fmt.Sprintf("%s-steady-%d-tok/s", strings.ReplaceAll(labels[1], " ", "-"), n))
		b.ReportMetric(u, fmt.Sprintf("%s-%d-tok/s", strings.ReplaceAll(labels[0], " ", "-"), n))
		b.ReportMetric(bt, fmt.Sprintf("%s-%d-tok/s", strings.ReplaceAll(labels[1], " ", "-"), n))
	}
	b.Log("\n" + tab.String())
}
