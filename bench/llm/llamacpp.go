package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// llamaGGUF maps the benchmark's dtypes to the GGUF of the same
// quantisation that bench/llamacpp/build.sh writes (int4 block 128 ↔ Q4_0
// block 32, int8 ↔ Q8_0). fp32 has no anchor.
var llamaGGUF = map[string]string{"int4": "q4_0.gguf", "int8": "q8_0.gguf"}

// llamaCPP is -llamacpp: llama.cpp's batched decode (bench/llamacpp/
// batched.cpp, llama-batched-bench's test) run beside -streams.
type llamaCPP struct {
	dir     string   // build.sh's WORKDIR
	builds  []string // build variants: "amx", "stock"
	threads int
	splitKV bool // one KV stream per sequence (llama-batched-bench's default) instead of the unified cache
	// ompWait is OMP_WAIT_POLICY for llama.cpp's OpenMP threads ("": its
	// default, active spinning, which collapses when the cores are shared).
	ompWait string
}

// bin is the batched binary of build b.
func (l *llamaCPP) bin(b string) string { return filepath.Join(l.dir, "build-"+b, "batched") }

// check verifies, before anything is measured, that every build's batched
// binary and every dtype's GGUF are in the work directory.
func (l *llamaCPP) check(dtypes []string) error {
	if fi, err := os.Stat(l.dir); err != nil || !fi.IsDir() {
		return fmt.Errorf("-llamacpp %s: not a directory (run sh bench/llamacpp/build.sh %[1]s)", l.dir)
	}
	if l.ompWait != "" && l.ompWait != "active" && l.ompWait != "passive" {
		return fmt.Errorf("-llamacpp-omp-wait %q: active, passive or empty", l.ompWait)
	}
	if len(l.builds) == 0 {
		return errors.New("-llamacpp-builds: empty (amx, stock)")
	}
	for _, b := range l.builds {
		if b != "amx" && b != "stock" {
			return fmt.Errorf("-llamacpp-builds: unknown build %q (amx, stock)", b)
		}
		fi, err := os.Stat(l.bin(b))
		if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
			return fmt.Errorf("-llamacpp: no executable %s (run sh bench/llamacpp/build.sh %s)", l.bin(b), l.dir)
		}
	}
	for _, d := range dtypes {
		g, ok := llamaGGUF[d]
		if !ok {
			return fmt.Errorf("-llamacpp: no llama.cpp quantisation for dtype %s (int4 ↔ Q4_0, int8 ↔ Q8_0)", d)
		}
		if _, err := os.Stat(filepath.Join(l.dir, g)); err != nil {
			return fmt.Errorf("-llamacpp: %w (run sh bench/llamacpp/build.sh %s)", err, l.dir)
		}
	}
	return nil
}

// batchedResult is one line of batched's output.
type batchedResult struct {
	npl, npp, ntg int
	tPP, tTG      time.Duration // prompt and decode time
	sPP, sTG      float64       // prompt and aggregate decode tok/s
}

// parseBatched reads the result line of batched's output ("batched npl=8
// npp=128 ntg=128 … t_pp_ms=… s_pp=… t_tg_ms=… s_tg=… …").
func parseBatched(line string) (batchedResult, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "batched ")
	if !ok {
		return batchedResult{}, fmt.Errorf("batched: not a result line: %q", line)
	}
	kv := map[string]string{}
	for _, f := range strings.Fields(rest) {
		k, v, ok := strings.Cut(f, "=")
		if !ok || k == "" {
			return batchedResult{}, fmt.Errorf("batched: field %q is not key=value", f)
		}
		kv[k] = v
	}
	var r batchedResult
	ints := map[string]*int{"npl": &r.npl, "npp": &r.npp, "ntg": &r.ntg}
	for k, p := range ints {
		n, err := strconv.Atoi(kv[k])
		if err != nil || n < 1 {
			return batchedResult{}, fmt.Errorf("batched: %s=%q is not a positive integer", k, kv[k])
		}
		*p = n
	}
	floats := map[string]*float64{"s_pp": &r.sPP, "s_tg": &r.sTG}
	var tpp, ttg float64
	floats["t_pp_ms"], floats["t_tg_ms"] = &tpp, &ttg
	for k, p := range floats {
		f, err := strconv.ParseFloat(kv[k], 64)
		if err != nil || !(f > 0) || f > 1e12 {
			return batchedResult{}, fmt.Errorf("batched: %s=%q is not a positive number", k, kv[k])
		}
		*p = f
	}
	r.tPP, r.tTG = time.Duration(tpp*1e6), time.Duration(ttg*1e6)
	return r, nil
}

// run runs build b's batched once for npl sequences of dtype's GGUF (one
// process: the model load is not timed; batched warms up before its one
// timed repetition).
func (l *llamaCPP) run(ctx context.Context, b, dtype string, npp, ntg, npl int) (batchedResult, error) {
	args := []string{"-m", filepath.Join(l.dir, llamaGGUF[dtype]), "-t", strconv.Itoa(l.threads), "-r", "1",
		"-npp", strconv.Itoa(npp), "-ntg", strconv.Itoa(ntg), "-npl", strconv.Itoa(npl)}
	if l.splitKV {
		args = append(args, "-no-kvu")
	}
	cmd := exec.CommandContext(ctx, l.bin(b), args...)
	if l.ompWait != "" {
		cmd.Env = append(os.Environ(), "OMP_WAIT_POLICY="+l.ompWait)
	}
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		tail := stderr.String()
		if len(tail) > 2000 {
			tail = tail[len(tail)-2000:]
		}
		return batchedResult{}, fmt.Errorf("llama.cpp %s %s: %w\n%s", b, strings.Join(args, " "), err, tail)
	}
	r, err := parseBatched(out.String())
	if err != nil {
		return batchedResult{}, fmt.Errorf("llama.cpp %s: %w", b, err)
	}
	if r.npl != npl || r.npp != npp || r.ntg != ntg {
		return batchedResult{}, fmt.Errorf("llama.cpp %s: ran npl %d npp %d ntg %d, asked %d %d %d", b, r.npl, r.npp, r.ntg, npl, npp, ntg)
	}
	return r, nil
}
