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

// benchEngine loads $DSMIL_BENCH_MODEL ($DSMIL_BENCH_VARIANT,
// $DSMIL_BENCH_THREADS; $DSMIL_BENCH_PREFILL_GRAPH=1: with its prefill
// graph; $DSMIL_BENCH_STOP_SPIN=1: force_spinning_stop, the LLM plugins'
// default) with arena as the ORT arena setting, or skips.
func benchEngine(b *testing.B, arena bool) *Engine {
	dir := os.Getenv("DSMIL_BENCH_MODEL")
	if dir == "" {
		b.Skip("set DSMIL_BENCH_MODEL to a model directory")
	}
	initORT(b)
	opts := model.Options{Variant: os.Getenv("DSMIL_BENCH_VARIANT"), PrefillGraph: os.Getenv("DSMIL_BENCH_PREFILL_GRAPH") == "1"}
	opts.Session.DisableArena = !arena
	opts.Session.StopSpinningAfterRun = os.Getenv("DSMIL_BENCH_STOP_SPIN") == "1"
	if n := os.Getenv("DSMIL_BENCH_THREADS"); n != "" {
		t, err := strconv.Atoi(n)
		if err != nil {
			b.Fatalf("DSMIL_BENCH_THREADS: %v", err)
		}
		opts.Session.IntraOpThreads = t
	}
	e, err := Load(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	if !e.Model.CanBatch() {
		e.Close()
		b.Skip("the model's graph cannot batch")
	}
	return e
}

func pct(x []float64, p float64) float64 {
	if len(x) == 0 {
		return 0
	}
	x = slices.Clone(x)
	slices.Sort(x)
	return x[min(int(p*float64(len(x))), len(x)-1)]
}

// BenchmarkArrival measures what a long prompt arriving does to streams
// that decode: 4 streams (32-token prompts, greedy, EOS ignored) decode in
// the batch; once each has 8 tokens, a request with a 2,000-token prompt
// arrives. It logs the p50 / p99 / max inter-token latency of the 4
// streams while the newcomer prefills (from its arrival to its first
// token) and the newcomer's TTFT, for each way of prefilling, in
// $DSMIL_BENCH_ROUNDS (default 2) interleaved rounds:
//
//   - none: no arrival (the streams' steady inter-token latency over 3 s);
//   - whole-overlap: the prompt in one ORT run beside the batch's steps
//     (before chunked prefill);
//   - chunk-N (beside): chunks of N, one at a time, beside the batch's
//     steps (the engine's default);
//   - chunk-N-turns: chunks of N taking turns with the decode steps
//     (Engine.Interleave).
//
// $DSMIL_BENCH_ARRIVAL (default 2000) is the long prompt's length.
//
//	DSMIL_BENCH_MODEL=~/.cache/dsmil/models/qwen2.5-0.5b go test -run '^$' -bench Arrival -benchtime 1x ./plugins/internal/llm/engine/
func BenchmarkArrival(b *testing.B) {
	e := benchEngine(b, false)
	defer e.Close()
	rounds := 2
	if n := os.Getenv("DSMIL_BENCH_ROUNDS"); n != "" {
		rounds, _ = strconv.Atoi(n)
	}
	arrival := 2000
	if n := os.Getenv("DSMIL_BENCH_ARRIVAL"); n != "" {
		arrival, _ = strconv.Atoi(n)
	}
	type mode struct {
		name       string
		chunk      int // -1: whole
		overlap    bool
		none       bool
		interleave bool
	}
	modes := []mode{{"none", 0, false, true, false}, {"whole-overlap", -1, true, false, false},
		{"chunk-256 (beside)", 256, false, false, false}, {"chunk-256-turns", 256, false, false, true}, {"chunk-64-turns", 64, false, false, true}}
	type stats struct{ p50, p99, max, ttft []float64 }
	got := map[string]*stats{}
	runMode := func(m mode) {
		e.PrefillChunk, e.overlap, e.Interleave = 32, false, false // the streams' own prefills
		ctx, cancel := context.WithCancel(context.Background())
		var mu sync.Mutex
		times := make([][]time.Time, 4)
		var ready sync.WaitGroup
		ready.Add(4)
		var wg sync.WaitGroup
		for s := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				n := 0
				_, err := e.Generate(ctx, &Request{Prompt: longPrompt(e, 32, s), MaxTokens: 4000, IgnoreEOS: true}, func(string) error {
					mu.Lock()
					times[s] = append(times[s], time.Now())
					mu.Unlock()
					if n++; n == 8 {
						ready.Done()
					}
					return nil
				})
				if err != nil && ctx.Err() == nil {
					b.Error(err)
				}
			}()
		}
		ready.Wait()
		t0 := time.Now()
		var t1 time.Time
		if m.none {
			time.Sleep(3 * time.Second)
			t1 = time.Now()
		} else {
			e.PrefillChunk, e.overlap, e.Interleave = m.chunk, m.overlap, m.interleave
			res, err := e.Generate(context.Background(), &Request{Prompt: longPrompt(e, arrival, 9), MaxTokens: 1, IgnoreEOS: true},
				func(string) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
			t1 = res.FirstToken
			got[m.name].ttft = append(got[m.name].ttft, float64(res.FirstToken.Sub(res.Start).Milliseconds()))
		}
		cancel()
		wg.Wait()
		// Intervals that end within [t0, t1], and the one that spans t1
		// (a stall across the end of the window counts).
		var itl []float64
		for _, ts := range times {
			for i := 1; i < len(ts); i++ {
				if ts[i].After(t0) && (ts[i-1].Before(t1)) {
					itl = append(itl, float64(ts[i].Sub(ts[i-1]).Microseconds())/1e3)
				}
			}
		}
		st := got[m.name]
		st.p50, st.p99, st.max = append(st.p50, pct(itl, 0.5)), append(st.p99, pct(itl, 0.99)), append(st.max, slices.Max(itl))
	}
	for _, m := range modes {
		got[m.name] = &stats{}
	}
	for b.Loop() {
		for r := range rounds {
			for k := range modes {
				runMode(modes[(r+k)%len(modes)])
			}
		}
	}
	med := func(x []float64) float64 { return pct(x, 0.5) }
	var tab strings.Builder
	fmt.Fprintf(&tab, "4 streams decoding, a %d-token prompt arriving; %d rounds, medians; inter-token latency of the 4 streams while it prefills (ms)\n", arrival, rounds)
	fmt.Fprintf(&tab, "%-18s %8s %8s %8s %14s\n", "prefill", "ITL p50", "ITL p99", "ITL max", "newcomer TTFT")
	for _, m := range modes {
		st := got[m.name]
		fmt.Fprintf(&tab, "%-18s %8.1f %8.1f %8.1f %14.0f\n", m.name, med(st.p50), med(st.p99), med(st.max), med(st.ttft))
	}
	b.Log("\n" + tab.String())
}

// vmHWM is the process's peak resident set (VmHWM), in bytes.
func vmHWM() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// vmRSS is the process's resident set, in bytes.
func vmRSS() int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkPrefillMemory measures the peak resident set of one request
// (max_tokens 1) with a prompt of each of $DSMIL_BENCH_PROMPTS (default
// "1024,4096,16384") tokens, prefilled in chunks of $DSMIL_BENCH_CHUNK
// (default 256; -1: whole) with the ORT arena on or off
// ($DSMIL_BENCH_ARENA=1: on). The peak (VmHWM) is reset before each
// request (/proc/self/clear_refs); it logs the resident set after load,
// the peak, the resident set after the request, and Engine.PrefillBytes.
//
//	DSMIL_BENCH_MODEL=~/.cache/dsmil/models/qwen2.5-0.5b go test -run '^$' -bench PrefillMemory -benchtime 1x ./plugins/internal/llm/engine/
func BenchmarkPrefillMemory(b *testing.B) {
	arena := os.Getenv("DSMIL_BENCH_ARENA") == "1"
	e := benchEngine(b, arena)
	defer e.Close()
	e.PrefillChunk = 256
	if n := os.Getenv("DSMIL_BENCH_CHUNK"); n != "" {
		e.PrefillChunk, _ = strconv.Atoi(n)
	}
	prompts := []int{1024, 4096, 16384}
	if list := os.Getenv("DSMIL_BENCH_PROMPTS"); list != "" {
		prompts = nil
		for _, f := range strings.Split(list, ",") {
			n, _ := strconv.Atoi(f)
			prompts = append(prompts, n)
		}
	}
	const gib = 1 << 30
	var tab strings.Builder
	fmt.Fprintf(&tab, "chunk %d, arena %v, prefill graph %q; resident set after load %.2f GiB\n", e.PrefillChunk, arena,
		e.Model.PrefillFile, float64(vmRSS())/gib)
	fmt.Fprintf(&tab, "%-8s %14s %14s %16s %12s\n", "prompt", "peak RSS GiB", "after GiB", "PrefillBytes GiB", "prefill s")
	for b.Loop() {
		for _, n := range prompts {
			if n+1 > e.MaxContext() {
				b.Fatalf("prompt %d > context %d", n, e.MaxContext())
			}
			if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
				b.Fatalf("resetting VmHWM: %v", err)
			}
			res, err := e.Generate(context.Background(), &Request{Prompt: longPrompt(e, n, 7), MaxTokens: 1, IgnoreEOS: true},
				func(string) error { return nil })
			if err != nil {
				b.Fatal(err)
			}
			fmt.Fprintf(&tab, "%-8d %14.2f %14.2f %16.2f %12.1f\n", n, float64(vmHWM())/gib, float64(vmRSS())/gib,
				float64(e.PrefillBytes(n, n+1))/gib, res.FirstToken.Sub(res.Start).Seconds())
		}
	}
	b.Log("\n" + tab.String())
}

// BenchmarkPrefixTTFT measures the TTFT of a request whose prompt starts
// with a 1,000-token system prompt that an earlier request of the same
// tenant sent (the prefix cache holds it), against the first request's,
// in $DSMIL_BENCH_ROUNDS (default 3) rounds, each with a new system prompt
// (so the first request of a round misses).
//
//	DSMIL_BENCH_MODEL=~/.cache/dsmil/models/qwen2.5-0.5b go test -run '^$' -bench PrefixTTFT -benchtime 1x ./plugins/internal/llm/engine/
func BenchmarkPrefixTTFT(b *testing.B) {
	e := benchEngine(b, false)
	defer e.Close()
	e.Prefix = NewPrefixCache(1<<30, 0)
	rounds := 3
	if n := os.Getenv("DSMIL_BENCH_ROUNDS"); n != "" {
		rounds, _ = strconv.Atoi(n)
	}
	var first, second, ratio []float64
	ttft := func(prompt []int) (float64, int) {
		res, err := e.Generate(context.Background(), &Request{Prompt: prompt, MaxTokens: 1, IgnoreEOS: true, Tenant: "T"},
			func(string) error { return nil })
		if err != nil {
			b.Fatal(err)
		}
		return float64(res.FirstToken.Sub(res.Start).Microseconds()) / 1e3, res.CachedTokens
	}
	var cached int
	for b.Loop() {
		for r := range rounds {
			system := longPrompt(e, 1000, 100+r)
			a, _ := ttft(append(slices.Clone(system), longPrompt(e, 20, 1)...))
			s, c := ttft(append(slices.Clone(system), longPrompt(e, 24, 2)...))
			first, second, ratio, cached = append(first, a), append(second, s), append(ratio, s/a), c
		}
	}
	b.Logf("1,000-token shared system prompt, %d rounds, medians: first TTFT %.1f ms, second %.1f ms (%d tokens cached), second/first %.3f×",
		rounds, pct(first, 0.5), pct(second, 0.5), cached, pct(ratio, 0.5))
}
