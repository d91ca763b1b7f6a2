package model

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/internal/onnx/weightref"
)

// procStatus reads a field of /proc/self/status in bytes ("VmHWM",
// "VmRSS", "RssAnon", "RssFile").
func procStatus(key string) int64 {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(l, key+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// resetPeak resets VmHWM to the current resident set.
func resetPeak() error { return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// loadChild is the environment variable naming the configuration a child
// of BenchmarkOpenMemory measures.
const loadChild = "DSMIL_BENCH_LOAD_CHILD"

// BenchmarkOpenMemory measures the memory of opening the model in
// $DSMIL_BENCH_MODEL, each configuration in a fresh process (the test
// binary run again), in $DSMIL_BENCH_ROUNDS (default 3) interleaved
// rounds: "plain" (Options.AllLogits: the graph as it is), "last" (the
// default: the last-position rewrite) and, when the model has a prefill
// graph, "prefill" (last with Options.PrefillGraph). For each it prints
// the medians of the peak resident set while opening (VmHWM, reset before
// Open), the resident set after opening (and its anonymous and
// file-backed parts: weights ONNX Runtime maps from the model file are
// file-backed, shared with the page cache), and the peak and resident set
// after a $DSMIL_BENCH_PREFILL-token (default 256) prefill. Threads:
// $DSMIL_BENCH_THREADS (default 2).
//
//	DSMIL_BENCH_MODEL=/tmp/q05 go test -run '^$' -bench OpenMemory -benchtime 1x ./plugins/internal/llm/model/
func BenchmarkOpenMemory(b *testing.B) {
	dir := os.Getenv("DSMIL_BENCH_MODEL")
	if dir == "" {
		b.Skip("set DSMIL_BENCH_MODEL to a model directory")
	}
	if cfg := os.Getenv(loadChild); cfg != "" {
		loadChildRun(b, dir, cfg)
		return
	}
	configs := []string{"plain", "last"}
	if m, err := Inspect(dir, Options{Variant: os.Getenv("DSMIL_BENCH_VARIANT")}); err == nil {
		if _, err := os.Stat(prefillPath(m.Files.ONNX)); err == nil {
			configs = append(configs, "prefill")
		}
	}
	rounds := 3
	if n, err := strconv.Atoi(os.Getenv("DSMIL_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	const cols = 7
	res := map[string][][cols]float64{}
	for b.Loop() {
		for r := 0; r < rounds; r++ {
			for i := range configs {
				cfg := configs[(i+r)%len(configs)]
				cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^BenchmarkOpenMemory$", "-test.benchtime=1x")
				cmd.Env = append(os.Environ(), loadChild+"="+cfg)
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("%s: %v\n%s", cfg, err, out)
				}
				var v [cols]float64
				found := false
				for _, l := range strings.Split(string(out), "\n") {
					if f, ok := strings.CutPrefix(strings.TrimSpace(l), "openmemory "); ok {
						for j, s := range strings.Fields(f) {
							if j < cols {
								v[j], _ = strconv.ParseFloat(s, 64)
							}
						}
						found = true
					}
				}
				if !found {
					b.Fatalf("%s: no result in\n%s", cfg, out)
				}
				res[cfg] = append(res[cfg], v)
			}
		}
	}
	var tab strings.Builder
	fmt.Fprintf(&tab, "%s, median of %d fresh processes each, GB (1e9 bytes)\n", dir, rounds)
	fmt.Fprintf(&tab, "%-8s %10s %10s %8s %8s %12s %12s %8s\n", "config", "open peak", "after", "anon", "file",
		"prefill pk", "after pf", "open s")
	for _, cfg := range configs {
		var med [cols]float64
		for j := 0; j < cols; j++ {
			var xs []float64
			for _, v := range res[cfg] {
				xs = append(xs, v[j])
			}
			sort.Float64s(xs)
			med[j] = xs[len(xs)/2]
		}
		fmt.Fprintf(&tab, "%-8s %10.2f %10.2f %8.2f %8.2f %12.2f %12.2f %8.1f\n", cfg,
			med[0]/1e9, med[1]/1e9, med[2]/1e9, med[3]/1e9, med[4]/1e9, med[5]/1e9, med[6])
	}
	b.Log("\n" + tab.String())
}

// loadChildRun measures one configuration and prints "openmemory" and
// the figures BenchmarkOpenMemory reads.
func loadChildRun(b *testing.B, dir, cfg string) {
	initORT(b)
	opts := Options{Variant: os.Getenv("DSMIL_BENCH_VARIANT"), Session: testOptions.Session}
	opts.Session.IntraOpThreads = 2
	if n, err := strconv.Atoi(os.Getenv("DSMIL_BENCH_THREADS")); err == nil && n > 0 {
		opts.Session.IntraOpThreads = n
	}
	switch cfg {
	case "plain":
		opts.AllLogits = true
	case "prefill":
		opts.PrefillGraph = true
	}
	prefill := 256
	if n, err := strconv.Atoi(os.Getenv("DSMIL_BENCH_PREFILL")); err == nil && n > 0 {
		prefill = n
	}
	for b.Loop() {
		if err := resetPeak(); err != nil {
			b.Fatalf("resetting VmHWM: %v", err)
		}
		start := time.Now()
		m, err := Open(dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		secs := time.Since(start).Seconds()
		peak, rss, anon, file := procStatus("VmHWM"), procStatus("VmRSS"), procStatus("RssAnon"), procStatus("RssFile")
		s, err := m.NewSequence(0)
		if err != nil {
			b.Fatal(err)
		}
		ids := make([]int64, prefill)
		for i := range ids {
			ids[i] = int64(1 + (i*7919)%(m.Vocab()-1))
		}
		if err := resetPeak(); err != nil {
			b.Fatal(err)
		}
		if _, err := s.Step(context.Background(), ids); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("openmemory %d %d %d %d %d %d %.2f\n", peak, rss, anon, file, procStatus("VmHWM"), procStatus("VmRSS"), secs)
		s.Close()
		m.Close()
	}
}

// BenchmarkWeightRefs compares, in one process, the model in
// $DSMIL_BENCH_MODEL opened with its weights read from the file (the
// default: weightref references) and with its weights copied into the
// graph ONNX Runtime parses (as before), in $DSMIL_BENCH_ROUNDS (default
// 5) interleaved rounds whose order alternates: a 128-token prefill and 32
// decode steps each. It prints the medians of the per-round time ratios
// references / copy (1.00: the same speed). Threads: $DSMIL_BENCH_THREADS
// (default 2).
//
//	DSMIL_BENCH_MODEL=/tmp/q05 go test -run '^$' -bench WeightRefs -benchtime 1x ./plugins/internal/llm/model/
func BenchmarkWeightRefs(b *testing.B) {
	dir := os.Getenv("DSMIL_BENCH_MODEL")
	if dir == "" {
		b.Skip("set DSMIL_BENCH_MODEL to a model directory")
	}
	initORT(b)
	opts := Options{Variant: os.Getenv("DSMIL_BENCH_VARIANT"), Session: testOptions.Session}
	opts.Session.IntraOpThreads = 2
	if n, err := strconv.Atoi(os.Getenv("DSMIL_BENCH_THREADS")); err == nil && n > 0 {
		opts.Session.IntraOpThreads = n
	}
	rounds := 5
	if n, err := strconv.Atoi(os.Getenv("DSMIL_BENCH_ROUNDS")); err == nil && n > 0 {
		rounds = n
	}
	open := func(refMin int) *Model {
		defer func(old int) { weightRefMin = old }(weightRefMin)
		weightRefMin = refMin
		m, err := Open(dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		return m
	}
	models := []*Model{open(math.MaxInt), open(weightref.DefaultMinBytes)} // copy, references
	defer models[0].Close()
	defer models[1].Close()
	ctx := context.Background()
	run := func(m *Model) (prefill, decode time.Duration) {
		s, err := m.NewSequence(0)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		ids := make([]int64, 128)
		for i := range ids {
			ids[i] = int64(1 + (i*7919)%(m.Vocab()-1))
		}
		t0 := time.Now()
		if _, err := s.Step(ctx, ids); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		for i := 0; i < 32; i++ {
			if _, err := s.Step(ctx, []int64{int64(3 + i)}); err != nil {
				b.Fatal(err)
			}
		}
		return t1.Sub(t0), time.Since(t1)
	}
	run(models[0]) // warm-up: first-touch page faults, ORT's first-run allocations
	run(models[1])
	var pr, dr []float64
	for b.Loop() {
		for r := 0; r < rounds; r++ {
			var p, d [2]time.Duration
			for i := range 2 {
				k := (i + r) % 2
				p[k], d[k] = run(models[k])
			}
			pr, dr = append(pr, p[1].Seconds()/p[0].Seconds()), append(dr, d[1].Seconds()/d[0].Seconds())
		}
	}
	med := func(x []float64) float64 { sort.Float64s(x); return x[len(x)/2] }
	b.Logf("weights read from the file / copied: prefill 128 time %.3f×, 32 decode steps time %.3f× (medians of %d rounds)",
		med(pr), med(dr), len(pr))
}
