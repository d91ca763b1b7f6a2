package model

import (
	"context"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDecode measures raw decode speed through Sequence.Step on the
// model in $DSMIL_BENCH_MODEL (for example one written by
// `dsmil-mkmodel -preset qwen2.5-0.5b -dtype int4 -block 128`): the time to
// prefill a 128-token prompt, then greedy decode of 64 tokens. Threads:
// $DSMIL_BENCH_THREADS or one per core.
//
//	DSMIL_BENCH_MODEL=/tmp/q05 go test -run '^$' -bench Decode -benchtime 3x ./plugins/internal/llm/model/
func BenchmarkDecode(b *testing.B) {
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
	m, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	prompt := make([]int64, 128)
	for i := range prompt {
		prompt[i] = int64(i*7%500 + 1)
	}
	const decode = 64
	var prefills, tps []float64
	ctx := context.Background()
	v := m.Vocab()
	for b.Loop() {
		seq, err := m.NewSequence(len(prompt) + decode + 1)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		logits, err := seq.Step(ctx, prompt)
		if err != nil {
			b.Fatal(err)
		}
		prefills = append(prefills, float64(time.Since(t0).Milliseconds()))
		next := int64(argmax(logits[len(logits)-v:]))
		t1 := time.Now()
		for i := 0; i < decode; i++ {
			logits, err = seq.Step(ctx, []int64{next})
			if err != nil {
				b.Fatal(err)
			}
			next = int64(argmax(logits))
		}
		tps = append(tps, decode/time.Since(t1).Seconds())
		seq.Close()
	}
	b.ReportMetric(median(prefills), "prefill128-ms")
	b.ReportMetric(median(tps), "decode-tok/s")
}

func median(x []float64) float64 {
	sort.Float64s(x)
	return x[len(x)/2]
}

// BenchmarkBatchDecode measures aggregate decode speed through Batch.Step
// at 1, 2, 4 and 8 rows ($DSMIL_BENCH_ROWS, e.g. "8") on the model in
// $DSMIL_BENCH_MODEL (see BenchmarkDecode): each row prefilled with a
// 128-token prompt, then 64 steps of every row. $DSMIL_BENCH_PREFILL_GRAPH=1
// opens it with its prefill graph (Options.PrefillGraph). With
// $DSMIL_BENCH_MODEL_B, each round runs that model too, after the first:
// B-aggregate-tok/s and the median of the rounds' ratios B/A.
// cpu-ms/step is the process's CPU time per step ($DSMIL_BENCH_SPIN=0:
// without ORT's spinning threads, the work of a step).
// $DSMIL_BENCH_PREFILL_MIN sets Options.PrefillMin; $DSMIL_BENCH_SPIN_B
// (0 or 1) overrides $DSMIL_BENCH_SPIN for model B (the same directory
// twice: what spinning costs).
//
//	DSMIL_BENCH_MODEL=/tmp/q05 go test -run '^$' -bench BatchDecode -benchtime 3x ./plugins/internal/llm/model/
func BenchmarkBatchDecode(b *testing.B) {
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
	opts.PrefillGraph = os.Getenv("DSMIL_BENCH_PREFILL_GRAPH") == "1"
	opts.Session.DisableSpinning = os.Getenv("DSMIL_BENCH_SPIN") == "0"
	if n, err := strconv.Atoi(os.Getenv("DSMIL_BENCH_PREFILL_MIN")); err == nil {
		opts.PrefillMin = n
	}
	rowList := []int{1, 2, 4, 8}
	if list := os.Getenv("DSMIL_BENCH_ROWS"); list != "" {
		rowList = nil
		for _, f := range strings.Split(list, ",") {
			n, err := strconv.Atoi(f)
			if err != nil || n < 1 {
				b.Fatalf("DSMIL_BENCH_ROWS: %q", list)
			}
			rowList = append(rowList, n)
		}
	}
	m, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	models := []*Model{m}
	if dirB := os.Getenv("DSMIL_BENCH_MODEL_B"); dirB != "" {
		optsB := opts
		if sp := os.Getenv("DSMIL_BENCH_SPIN_B"); sp != "" {
			optsB.Session.DisableSpinning = sp == "0"
		}
		mb, err := Open(dirB, optsB)
		if err != nil {
			b.Fatal(err)
		}
		defer mb.Close()
		models = append(models, mb)
	}
	ctx := context.Background()
	const decode = 64
	// cpu is the process's CPU time so far: beside the wall-clock rate,
	// the work a step costs, which other processes on a shared machine
	// disturb less (with $DSMIL_BENCH_SPIN=0, idle ORT threads burn none).
	cpu := func() time.Duration {
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var cpuMs [2][]float64
	rate := func(b *testing.B, m *Model, rows int) float64 {
		batch, err := m.NewBatch()
		if err != nil {
			b.Fatal(err)
		}
		defer batch.Close()
		for r := 0; r < rows; r++ {
			seq, err := m.NewSequence(128 + decode + 1)
			if err != nil {
				b.Fatal(err)
			}
			prompt := make([]int64, 128)
			for i := range prompt {
				prompt[i] = int64((i*7+r*13)%500 + 1)
			}
			if _, err := seq.Step(ctx, prompt); err != nil {
				b.Fatal(err)
			}
			if _, err := batch.Join(seq); err != nil {
				b.Fatal(err)
			}
			seq.Close()
		}
		tokens := make([]int64, rows)
		t0, c0 := time.Now(), cpu()
		for i := 0; i < decode; i++ {
			logits, err := batch.Step(ctx, tokens)
			if err != nil {
				b.Fatal(err)
			}
			v := m.Vocab()
			for r := range tokens {
				tokens[r] = int64(argmax(logits[r*v : (r+1)*v]))
			}
		}
		i := 0
		if m != models[0] {
			i = 1
		}
		cpuMs[i] = append(cpuMs[i], float64(cpu()-c0)/1e6/decode)
		return float64(rows*decode) / time.Since(t0).Seconds()
	}
	for _, rows := range rowList {
		b.Run("rows="+strconv.Itoa(rows), func(b *testing.B) {
			tps := make([][]float64, len(models))
			var ratios []float64
			cpuMs = [2][]float64{}
			for b.Loop() {
				for i, m := range models {
					tps[i] = append(tps[i], rate(b, m, rows))
				}
				if len(models) == 2 {
					ratios = append(ratios, tps[1][len(tps[1])-1]/tps[0][len(tps[0])-1])
				}
			}
			b.ReportMetric(median(tps[0]), "aggregate-tok/s")
			b.ReportMetric(median(cpuMs[0]), "cpu-ms/step")
			if len(models) == 2 {
				b.ReportMetric(median(tps[1]), "B-aggregate-tok/s")
				b.ReportMetric(median(cpuMs[1]), "B-cpu-ms/step")
				b.ReportMetric(median(ratios), "B/A")
			}
		})
	}
}
