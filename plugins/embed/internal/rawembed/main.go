// Command rawembed is the baseline of bench/embed: a minimal embedding loop
// on raw ONNX Runtime (onnxruntime_go directly, nothing of the plugin but
// the tokenizer that makes its inputs): pre-tokenised sequences in runs of
// -batch, each run's int64 tensors built, the session run, the hidden
// states mean-pooled over the tokens and normalised, with the session
// options the plugin uses. It lives here because bench/embed cannot import
// the plugin's internal packages; bench/embed builds and drives it.
//
//	rawembed -model DIR [-file onnx/model.onnx] [-threads 0] [-spin=true] [-batch 32] [-concurrent 0] [-no-arena]
//
// It loads the model and prints {"runtime": DESCRIPTION}. Then, for each
// stdin line:
//
//   - "texts N L": prints {"texts": [...]}: N different texts of words of
//     the vocabulary, each tokenizing to exactly L tokens with [CLS] and
//     [SEP] (the stack is sent the same texts), and keeps their ids;
//   - "run MS": embeds the kept sequences over and over, -batch at a time
//     sorted by length as the plugin does, for at least MS milliseconds
//     (at least once), -concurrent runs in flight at once (the kept
//     sequences split evenly over them, at most -batch a run, as the plugin
//     splits its queue), and prints {"embeddings": COUNT, "ns": ELAPSED}.
//     -concurrent 0 is the plugin's concurrent_runs "auto": a session with
//     one intra-op thread whose runs go -threads at a time, and a second
//     session with -threads threads for a lone sequence (wide) of at least
//     -wide-min tokens: "auto" measures that as the plugin does
//     (widerun.MinTokens) and prints it in the first line,
//     {"runtime": ..., "wide_min_tokens": N} (-1: none).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/dsmil/l7/internal/slicepool"
	"github.com/dsmil/l7/plugins/embed/internal/widerun"
	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/plugins/internal/tokenizer"
	ortgo "github.com/yalue/onnxruntime_go"
)

func main() {
	dir := flag.String("model", "", "model directory (sentence-transformers layout, mean pooling)")
	file := flag.String("file", "onnx/model.onnx", "the graph in the model directory (onnx/model_quantized.onnx: the int8 one)")
	threads := flag.Int("threads", 0, "intra-op threads (0: one per core)")
	spin := flag.Bool("spin", true, "let idle intra-op threads spin (the plugin's allow_spinning)")
	batch := flag.Int("batch", 32, "sequences per run (the plugin's max_batch)")
	stopSpin := flag.Bool("stop-spin", false, "intra-op threads stop spinning when a run ends (the plugin's force_spinning_stop)")
	concurrent := flag.Int("concurrent", 0, `runs in flight at once on the session (the plugin's concurrent_runs); 0: "auto", one single-threaded run per thread and a -threads session for a lone sequence`)
	wideMin := flag.String("wide-min", "auto", `-concurrent 0: the fewest tokens of a lone sequence that runs wide, or "auto" (measured, as the plugin's wide_min_tokens)`)
	noArena := flag.Bool("no-arena", false, "ONNX Runtime's CPU memory arena off (the plugin's disable_arena)")
	flag.Parse()
	minTokens := 0
	if *wideMin != "auto" {
		var err error
		if minTokens, err = strconv.Atoi(*wideMin); err != nil || minTokens < 1 {
			fmt.Fprintf(os.Stderr, "rawembed: -wide-min %q: want a positive number or auto\n", *wideMin)
			os.Exit(2)
		}
	}
	if err := run(*dir, *file, ort.Options{IntraOpThreads: *threads, DisableSpinning: !*spin, StopSpinningAfterRun: *stopSpin, DisableArena: *noArena}, max(*batch, 1), max(*concurrent, 0), minTokens); err != nil {
		fmt.Fprintln(os.Stderr, "rawembed:", err)
		os.Exit(1)
	}
}

type model struct {
	sess     *ortgo.DynamicAdvancedSession
	wide     *ortgo.DynamicAdvancedSession // concurrent 0: a lone sequence's session (nil: none)
	wideMin  int                           // the fewest tokens of a lone sequence wide runs
	hidden   int
	hasTypes bool
}

func run(dir, file string, opts ort.Options, batch, concurrent, wideMin int) error {
	info, err := ort.Init(ort.ResolveLibrary(os.Getenv))
	if err != nil {
		return err
	}
	opts = opts.WithDefaults()
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		return err
	}
	var cfg struct {
		Hidden    int `json:"hidden_size"`
		Positions int `json:"max_position_embeddings"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err == nil {
		err = json.Unmarshal(b, &cfg)
	}
	if err != nil {
		return fmt.Errorf("config.json: %w", err)
	}
	onnxPath := filepath.Join(dir, filepath.FromSlash(file))
	ins, _, err := ortgo.GetInputOutputInfo(onnxPath)
	if err != nil {
		return err
	}
	m := &model{hidden: cfg.Hidden}
	feed := []string{"input_ids", "attention_mask"}
	for _, in := range ins {
		if in.Name == "token_type_ids" {
			m.hasTypes = true
			feed = append(feed, in.Name)
		}
	}
	open := func(o ort.Options) (*ortgo.DynamicAdvancedSession, error) {
		so, err := o.SessionOptions()
		if err != nil {
			return nil, err
		}
		defer so.Destroy()
		return ortgo.NewDynamicAdvancedSession(onnxPath, feed, []string{"last_hidden_state"}, so)
	}
	narrow, mode := opts, fmt.Sprintf("%d in flight at once", concurrent)
	if concurrent == 0 {
		concurrent, narrow.IntraOpThreads = opts.IntraOpThreads, 1
		mode = fmt.Sprintf(`"auto": %d single-threaded in flight at once`, concurrent)
	}
	if m.sess, err = open(narrow); err != nil {
		return err
	}
	defer m.sess.Destroy()
	hello := map[string]any{}
	if concurrent > 1 && narrow.IntraOpThreads == 1 {
		if m.wide, err = open(opts); err != nil {
			return err
		}
		defer m.wide.Destroy()
		m.wideMin = wideMin
		if wideMin == 0 {
			lone := func(sess *ortgo.DynamicAdvancedSession) widerun.RunFunc {
				return func(_ context.Context, n int) error {
					s := make([]int64, n)
					for i := range s {
						s[i] = 1
					}
					return m.embed(sess, [][]int64{s})
				}
			}
			// As the plugin: once the machine is quiet (the
			// benchmark's builds have just ended), at most 15 s.
			share, quiet, err := widerun.WaitQuiet(context.Background(), 15*time.Second)
			if err != nil {
				return err
			}
			if !quiet {
				mode += fmt.Sprintf(", measured on a busy machine (%.0f %% idle)", 100*share)
			}
			if m.wideMin, err = widerun.MinTokens(context.Background(), cfg.Positions, lone(m.sess), lone(m.wide)); err != nil {
				return err
			}
		}
		hello["wide_min_tokens"] = -1
		if m.wideMin != widerun.None {
			hello["wide_min_tokens"] = m.wideMin
		}
		if m.wideMin == widerun.None {
			mode += ", no lone sequence on the wide session (none measured sooner there)"
		} else {
			mode += fmt.Sprintf(", a lone sequence of %d tokens or more on a session of %d threads", m.wideMin, opts.IntraOpThreads)
		}
		if wideMin == 0 && m.wideMin == widerun.Lengths[0] {
			// As the plugin: the graph splits well over threads; one
			// run at a time on the wide session.
			m.sess, m.wide, concurrent = m.wide, nil, 1
			hello["one_wide"] = true
			mode = fmt.Sprintf(`"auto": wide from %d tokens, so one run at a time on %d threads`, widerun.Lengths[0], opts.IntraOpThreads)
		}
	}

	out := json.NewEncoder(os.Stdout)
	desc := fmt.Sprintf("%s; %s; session: %d intra-op threads, graph optimization %s, spinning %v, spinning stopped after a run %v; runs of %d, %s",
		info, file, opts.IntraOpThreads, opts.GraphOptimization, !opts.DisableSpinning, opts.StopSpinningAfterRun, batch, mode)
	hello["runtime"] = desc
	if err := out.Encode(hello); err != nil {
		return err
	}
	var words []string
	for id := range tok.VocabSize() {
		t, ok := tok.Token(id)
		if ok && len(t) > 2 && !tok.IsSpecial(id) && strings.IndexFunc(t, func(r rune) bool { return !unicode.IsLower(r) }) < 0 {
			words = append(words, t)
		}
	}
	var seqs [][]int64
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		var n, l, ms int
		switch f := strings.Fields(in.Text()); {
		case len(f) == 3 && f[0] == "texts":
			if _, err := fmt.Sscan(f[1]+" "+f[2], &n, &l); err != nil {
				return err
			}
			texts := make([]string, n)
			seqs = make([][]int64, n)
			for i := range texts {
				w := make([]string, max(l-2, 0))
				for k := range w {
					w[k] = words[(i*7919+k*31)%len(words)]
				}
				texts[i] = strings.Join(w, " ")
				ids := tok.Encode(texts[i], true)
				if len(ids) != l {
					return fmt.Errorf("text %d tokenizes to %d tokens, not %d", i, len(ids), l)
				}
				seqs[i] = make([]int64, len(ids))
				for k, id := range ids {
					seqs[i][k] = int64(id)
				}
			}
			if err := out.Encode(map[string]any{"texts": texts}); err != nil {
				return err
			}
		case len(f) == 2 && f[0] == "run":
			if _, err := fmt.Sscan(f[1], &ms); err != nil {
				return err
			}
			if len(seqs) == 0 {
				return errors.New("run before texts")
			}
			sorted := slices.Clone(seqs)
			slices.SortStableFunc(sorted, func(a, b []int64) int { return len(a) - len(b) })
			count, start := 0, time.Now()
			for count == 0 || time.Since(start) < time.Duration(ms)*time.Millisecond {
				if err := m.embedAll(sorted, batch, concurrent); err != nil {
					return err
				}
				count += len(sorted)
			}
			if err := out.Encode(map[string]any{"embeddings": count, "ns": time.Since(start).Nanoseconds()}); err != nil {
				return err
			}
		default:
			return fmt.Errorf("unknown command %q", in.Text())
		}
	}
	return in.Err()
}

// embedAll embeds sorted (sorted by length) in runs of at most batch
// sequences, concurrent of them in flight at once: as the plugin splits a
// queue over its free runs, each run takes an equal share, at most batch.
func (m *model) embedAll(sorted [][]int64, batch, concurrent int) error {
	if len(sorted) == 1 && m.wide != nil && len(sorted[0]) >= m.wideMin {
		return m.embed(m.wide, sorted)
	}
	size := min(batch, (len(sorted)+concurrent-1)/concurrent)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, concurrent)
	)
	for lo := 0; lo < len(sorted); lo += size {
		sem <- struct{}{}
		wg.Add(1)
		go func(seqs [][]int64) {
			defer func() { <-sem; wg.Done() }()
			if err := m.embed(m.sess, seqs); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(sorted[lo:min(lo+size, len(sorted))])
	}
	wg.Wait()
	return errors.Join(errs...)
}

// float32Bufs and int64Bufs are the buffers of runs' outputs and inputs,
// kept for the next run.
var (
	float32Bufs slicepool.Pool[float32]
	int64Bufs   slicepool.Pool[int64]
)

// embed runs seqs as one batch padded to the longest and pools them.
func (m *model) embed(sess *ortgo.DynamicAdvancedSession, seqs [][]int64) error {
	S := 0
	for _, s := range seqs {
		S = max(S, len(s))
	}
	B, H := len(seqs), m.hidden
	// Input and output buffers are reused from run to run, as the
	// plugin's encoder does, so that neither side pays the allocation
	// and garbage collection of hidden states the other does not.
	inBuf := int64Bufs.Get(3 * B * S)
	defer int64Bufs.Put(inBuf)
	in := *inBuf
	clear(in)
	ids, mask := in[:B*S], in[B*S:2*B*S]
	for b, s := range seqs {
		copy(ids[b*S:], s)
		for i := range s {
			mask[b*S+i] = 1
		}
	}
	shape := ortgo.NewShape(int64(B), int64(S))
	var vals []ortgo.Value
	defer func() {
		for _, v := range vals {
			v.Destroy()
		}
	}()
	data := [][]int64{ids, mask}
	if m.hasTypes {
		data = append(data, in[2*B*S:])
	}
	for _, d := range data {
		t, err := ortgo.NewTensor(shape, d)
		if err != nil {
			return err
		}
		vals = append(vals, t)
	}
	outBuf := float32Bufs.Get(B * S * H)
	defer float32Bufs.Put(outBuf)
	out, err := ortgo.NewTensor(ortgo.NewShape(int64(B), int64(S), int64(H)), *outBuf)
	if err != nil {
		return err
	}
	defer out.Destroy()
	if err := sess.Run(vals, []ortgo.Value{out}); err != nil {
		return err
	}
	hs := out.GetData()
	vec, unit := make([]float64, H), make([]float32, H)
	for b, s := range seqs {
		clear(vec)
		for t := range s {
			for i, v := range hs[(b*S+t)*H : (b*S+t+1)*H] {
				vec[i] += float64(v)
			}
		}
		var sum float64
		for i := range vec {
			vec[i] /= float64(len(s))
			sum += vec[i] * vec[i]
		}
		n := max(math.Sqrt(sum), 1e-12)
		for i := range vec {
			unit[i] = float32(vec[i] / n)
		}
	}
	return nil
}
