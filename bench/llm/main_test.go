package main

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseStreams(t *testing.T) {
	got, err := parseStreams("1,2,4,8,16")
	if err != nil || !slices.Equal(got, []int{1, 2, 4, 8, 16}) {
		t.Fatalf("parseStreams(1,2,4,8,16) = %v, %v", got, err)
	}
	if got, err := parseStreams(""); err != nil || got != nil {
		t.Fatalf("parseStreams(\"\") = %v, %v", got, err)
	}
	for _, bad := range []string{"0", "1,,2", "x", "1,65", "-1"} {
		if _, err := parseStreams(bad); err == nil {
			t.Errorf("parseStreams(%q): no error", bad)
		}
	}
}

const batchedLine = "batched npl=8 npp=128 ntg=128 pps=0 kvu=1 threads=2 t_pp_ms=1340.2 s_pp=764.06 t_tg_ms=9120.5 s_tg=112.28 s_tg_best=112.28 reps=1\n"

func TestParseBatched(t *testing.T) {
	r, err := parseBatched(batchedLine)
	if err != nil {
		t.Fatal(err)
	}
	want := batchedResult{npl: 8, npp: 128, ntg: 128, tPP: 1340200 * time.Microsecond, tTG: 9120500 * time.Microsecond, sPP: 764.06, sTG: 112.28}
	if r != want {
		t.Fatalf("parseBatched = %+v, want %+v", r, want)
	}
	for _, bad := range []string{
		"",
		"pp128: 153.2 ms",
		strings.Replace(batchedLine, "s_tg=112.28", "s_tg=NaN", 1),
		strings.Replace(batchedLine, "s_tg=112.28", "s_tg=-1", 1),
		strings.Replace(batchedLine, "npl=8", "npl=0", 1),
		strings.Replace(batchedLine, " t_pp_ms=1340.2", "", 1),
		strings.Replace(batchedLine, "reps=1", "reps", 1),
	} {
		if _, err := parseBatched(bad); err == nil {
			t.Errorf("parseBatched(%q): no error", bad)
		}
	}
}

func FuzzParseBatched(f *testing.F) {
	f.Add(batchedLine)
	f.Add("batched npl=1 npp=1 ntg=1 t_pp_ms=1 s_pp=1 t_tg_ms=1 s_tg=1")
	f.Add("batched =")
	f.Fuzz(func(t *testing.T, line string) {
		r, err := parseBatched(line)
		if err != nil {
			return
		}
		if r.npl < 1 || r.npp < 1 || r.ntg < 1 || !(r.sTG > 0) || !(r.sPP > 0) || r.tTG < 0 || r.tPP < 0 {
			t.Fatalf("parseBatched(%q) accepted %+v", line, r)
		}
	})
}

// workDir makes a build.sh-like work directory with stand-in files.
func workDir(t *testing.T, builds []string, ggufs ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range builds {
		if err := os.MkdirAll(filepath.Join(dir, "build-"+b), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "build-"+b, "batched"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range ggufs {
		if err := os.WriteFile(filepath.Join(dir, g), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLlamaCheck(t *testing.T) {
	ok := workDir(t, []string{"amx", "stock"}, "q4_0.gguf", "q8_0.gguf")
	if err := (&llamaCPP{dir: ok, builds: []string{"amx", "stock"}}).check([]string{"int4", "int8"}); err != nil {
		t.Fatalf("complete work directory: %v", err)
	}
	for name, c := range map[string]struct {
		l      llamaCPP
		dtypes []string
		want   string
	}{
		"no directory":  {llamaCPP{dir: filepath.Join(ok, "nope"), builds: []string{"amx"}}, []string{"int4"}, "not a directory"},
		"no binary":     {llamaCPP{dir: workDir(t, nil, "q4_0.gguf"), builds: []string{"amx"}}, []string{"int4"}, "no executable"},
		"unknown build": {llamaCPP{dir: ok, builds: []string{"avx2"}}, []string{"int4"}, `unknown build "avx2"`},
		"fp32":          {llamaCPP{dir: ok, builds: []string{"amx"}}, []string{"int4", "fp32"}, "dtype fp32"},
		"omp wait":      {llamaCPP{dir: ok, builds: []string{"amx"}, ompWait: "spin"}, []string{"int4"}, "-llamacpp-omp-wait"},
		"no gguf":       {llamaCPP{dir: workDir(t, []string{"amx"}, "q4_0.gguf"), builds: []string{"amx"}}, []string{"int8"}, "q8_0.gguf"},
	} {
		err := c.l.check(c.dtypes)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: check = %v, want an error with %q", name, err, c.want)
		}
	}
}

// TestRunChecksFlagsFirst: bad -streams and -llamacpp fail before any
// model is generated or anything measured (the models directory here
// cannot be written, so a late check would fail on that instead).
func TestRunChecksFlagsFirst(t *testing.T) {
	base := options{dir: "/dev/null/models", dtypes: []string{"int4"}, vocab: "generated", streams: "1,2,4,8,16"}
	for name, c := range map[string]struct {
		mod  func(*options)
		want string
	}{
		"streams":         {func(o *options) { o.streams = "1,2,100" }, "-streams"},
		"llamacpp dir":    {func(o *options) { o.llama = &llamaCPP{dir: "/dev/null/llama", builds: []string{"amx"}} }, "-llamacpp"},
		"llamacpp builds": {func(o *options) { o.llama = &llamaCPP{dir: t.TempDir(), builds: []string{}} }, "-llamacpp-builds"},
		"llamacpp alone":  {func(o *options) { o.streams = ""; o.llama = &llamaCPP{dir: t.TempDir(), builds: []string{"amx"}} }, "needs -streams"},
		"llamacpp binary": {func(o *options) { o.llama = &llamaCPP{dir: t.TempDir(), builds: []string{"amx"}} }, "no executable"},
	} {
		o := base
		c.mod(&o)
		err := run(o)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: run = %v, want an error with %q", name, err, c.want)
		}
	}
}

// TestLlamaRun runs the real batched binary when $DSMIL_BENCH_LLAMACPP
// names bench/llamacpp/build.sh's work directory.
func TestLlamaRun(t *testing.T) {
	dir := os.Getenv("DSMIL_BENCH_LLAMACPP")
	if dir == "" {
		t.Skip("DSMIL_BENCH_LLAMACPP (bench/llamacpp/build.sh's work directory) not set")
	}
	l := &llamaCPP{dir: dir, builds: []string{"amx"}, threads: 2}
	if err := l.check([]string{"int4"}); err != nil {
		t.Fatal(err)
	}
	r, err := l.run(context.Background(), "amx", "int4", 16, 4, 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.npl != 3 || r.npp != 16 || r.ntg != 4 || !(r.sTG > 0) || r.tTG <= 0 {
		t.Fatalf("batched: %+v", r)
	}
	// S_TG is npl·ntg over the decode time, as llama-batched-bench's.
	if want := 12 / r.tTG.Seconds(); r.sTG < want*0.99 || r.sTG > want*1.01 {
		t.Fatalf("S_TG %.2f, want 12 tokens / %v = %.2f", r.sTG, r.tTG, want)
	}
}

// TestStreamsTable: ratios are medians of the per-round ratios, and the
// goals at 8 streams are judged on them.
func TestStreamsTable(t *testing.T) {
	ours := [][]streamSample{{{agg: 10, steady: 10}, {agg: 12, steady: 12}, {agg: 11, steady: 11}},
		{{agg: 45, steady: 60}, {agg: 40, steady: 36}, {agg: 50, steady: 44}}}
	theirs := [][][]batchedResult{{
		{{sTG: 20, tPP: time.Second}, {sTG: 20, tPP: time.Second}, {sTG: 20, tPP: time.Second}},
		{{sTG: 40, tPP: time.Second}, {sTG: 50, tPP: time.Second}, {sTG: 45, tPP: time.Second}},
	}}
	o := options{promptLen: 128, tokens: 128, llama: &llamaCPP{threads: 2}}
	out := strings.Join(streamsTable("int4", o, []int{1, 8}, []string{"amx"}, ours, theirs), "\n")
	for _, want := range []string{
		"ours 8/1 = 4.50× (goal ≥ 4×) ✔",              // 45/10, 40/12, 50/11: median 4.5
		"ours / llama.cpp amx = 1.111× (goal ≥ 1×) ✔", // 45/40, 40/50, 50/45: median 1.111
		"int4, Q4_0",
		"ours steady 8/1 = 4.00× ✔",              // 60/10, 36/12, 44/11: median 4
		"ours steady / llama.cpp amx = 0.978× ✘", // 60/40, 36/50, 44/45: median 0.978
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

// TestSteadyRate: only the tokens that arrive while every stream decodes
// count, each chunk for its stream's tokens per chunk.
func TestSteadyRate(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms ...int) []time.Time {
		var out []time.Time
		for _, m := range ms {
			out = append(out, t0.Add(time.Duration(m)*time.Millisecond))
		}
		return out
	}
	// Stream a decodes from 0 to 1000 ms, one token a chunk every 100 ms;
	// b starts at 400 ms (its prefill beside a's decode) and ends at 1400,
	// two tokens a chunk every 200 ms. The window is 400–1000 ms: a's
	// chunks at 500…1000 (6 tokens), b's at 600, 800, 1000 (6 tokens).
	a := sample{tokens: 11, chunks: at(0, 100, 200, 300, 400, 500, 600, 700, 800, 900, 1000)}
	b := sample{tokens: 11, chunks: at(400, 600, 800, 1000, 1200, 1400)}
	if got, want := steadyRate([]sample{a, b}), 12/0.6; math.Abs(got-want) > 1e-9 {
		t.Errorf("steady %v, want %v", got, want)
	}
	// One stream: its own decode rate.
	if got, want := steadyRate([]sample{a}), 10/1.0; math.Abs(got-want) > 1e-9 {
		t.Errorf("one stream: steady %v, want %v", got, want)
	}
	// Streams that never decode together: no window.
	c := sample{tokens: 3, chunks: at(2000, 2100, 2200)}
	if got := steadyRate([]sample{a, c}); got != 0 {
		t.Errorf("disjoint streams: steady %v, want 0", got)
	}
}
