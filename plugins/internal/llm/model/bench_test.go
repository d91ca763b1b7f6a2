package model

import (
	"context"
	"os"
	"sort"
	"strconv"
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
// at 1, 2, 4 and 8 rows on the model in $DSMIL_BENCH_MODEL (see
// BenchmarkDecode): each row prefilled with a 128-token prompt, then 64
// steps of every row.
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
	m, err := Open(dir, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	ctx := context.Background()
	const decode = 64
	for _, rows := range []int{1, 2, 4, 8} {
		b.Run("rows="+strconv.Itoa(rows), func(b *testing.B) {
			var tps []float64
			for b.Loop() {
				batch, err := m.NewBatch()
				if err != nil {
					b.Fatal(err)
				}
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
				t0 := time.Now()
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
				tps = append(tps, float64(rows*decode)/time.Since(t0).Seconds())
				batch.Close()
			}
			b.ReportMetric(median(tps), "aggregate-tok/s")
		})
	}
}
