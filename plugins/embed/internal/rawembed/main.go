// Command rawembed is the baseline of bench/embed: a minimal embedding loop
// on raw ONNX Runtime (onnxruntime_go directly, nothing of the plugin but
// the tokenizer that makes its inputs): pre-tokenised sequences in runs of
// -batch, each run's int64 tensors built, the session run, the hidden
// states mean-pooled over the tokens and normalised, with the session
// options the plugin uses. It lives here because bench/embed cannot import
// the plugin's internal packages; bench/embed builds and drives it.
//
//	rawembed -model DIR [-file onnx/model.onnx] [-threads 0] [-spin=true] [-batch 32] [-concurrent 1] [-no-arena]
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
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

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
	concurrent := flag.Int("concurrent", 1, "runs in flight at once on the session (the plugin's concurrent_runs)")
	noArena := flag.Bool("no-arena", false, "ONNX Runtime's CPU memory arena off (the plugin's disable_arena)")
	flag.Parse()
	if err := run(*dir, *file, ort.Options{IntraOpThreads: *threads, DisableSpinning: !*spin, StopSpinningAfterRun: *stopSpin, DisableArena: *noArena}, max(*batch, 1), max(*concurrent, 1)); err != nil {
		fmt.Fprintln(os.Stderr, "rawembed:", err)
		os.Exit(1)
	}
}

type model struct {
	sess     *ortgo.DynamicAdvancedSession
	hidden   int
	hasTypes bool
}

func run(dir, file string, opts ort.Options, batch, concurrent int) error {
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
		Hidden int `json:"hidden_size"`
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
	so, err := opts.SessionOptions()
	if err != nil {
		return err
	}
	m.sess, err = ortgo.NewDynamicAdvancedSession(onnxPath, feed, []string{"last_hidden_state"}, so)
	so.Destroy()
	if err != nil {
		return err
	}
	defer m.sess.Destroy()

	out := json.NewEncoder(os.Stdout)
	desc := fmt.Sprintf("%s; %s; session: %d intra-op threads, graph optimization %s, spinning %v, spinning stopped after a run %v; runs of %d, %d in flight at once",
		info, file, opts.IntraOpThreads, opts.GraphOptimization, !opts.DisableSpinning, opts.StopSpinningAfterRun, batch, concurrent)
	if err := out.Encode(map[string]any{"runtime": desc}); err != nil {
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
			if err := m.embed(seqs); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}(sorted[lo:min(lo+size, len(sorted))])
	}
	wg.Wait()
	return errors.Join(errs...)
}

// embed runs seqs as one batch padded to the longest and pools them.
func (m *model) embed(seqs [][]int64) error {
	S := 0
	for _, s := range seqs {
		S = max(S, len(s))
	}
	B, H := len(seqs), m.hidden
	ids, mask := make([]int64, B*S), make([]int64, B*S)
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
		data = append(data, make([]int64, B*S))
	}
	for _, d := range data {
		t, err := ortgo.NewTensor(shape, d)
		if err != nil {
			return err
		}
		vals = append(vals, t)
	}
	out, err := ortgo.NewEmptyTensor[float32](ortgo.NewShape(int64(B), int64(S), int64(H)))
	if err != nil {
		return err
	}
	defer out.Destroy()
	if err := m.sess.Run(vals, []ortgo.Value{out}); err != nil {
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
