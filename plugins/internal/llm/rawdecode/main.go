// Command rawdecode is the baseline of bench/llm: a minimal decode loop on
// raw ONNX Runtime, through model.Sequence.Step and nothing else of the
// plugin — one Step with the whole prompt, then one Step per token, argmax
// over the tokenizer's vocabulary (what the plugin's greedy sampler
// does), with the session options the plugin uses. It lives here because
// bench/llm cannot import the plugin's internal packages; bench/llm builds
// and drives it.
//
//	rawdecode -model DIR -variant q4 [-threads 0] [-spin=true] [-prompt 128]
//
// It loads the model, prints one JSON line {"prompt": TEXT, "runtime":
// DESCRIPTION} with a prompt text that tokenizes to exactly -prompt tokens
// (the stack is sent the same text), then answers each line "N" on stdin by generating N tokens
// and printing {"ttft_ns": ..., "tokens_per_s": ...}. EOS is ignored.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/dsmil/l7/plugins/internal/llm/model"
	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/plugins/internal/tokenizer"
)

func main() {
	dir := flag.String("model", "", "model directory")
	variant := flag.String("variant", "", "model variant")
	threads := flag.Int("threads", 0, "intra-op threads (0: one per core)")
	promptLen := flag.Int("prompt", 128, "prompt tokens")
	spin := flag.Bool("spin", true, "let idle intra-op threads spin (the plugin's allow_spinning)")
	prefillGraph := flag.Bool("prefill-graph", false, "prefill on the model's prefill graph (the plugin's prefill_graph)")
	stopSpin := flag.Bool("stop-spin", true, "intra-op threads stop spinning when a run ends (the plugin's force_spinning_stop, on by default in the LLM plugins)")
	flag.Parse()
	if err := run(*dir, *variant, ort.Options{IntraOpThreads: *threads, DisableSpinning: !*spin, StopSpinningAfterRun: *stopSpin}, *promptLen, *prefillGraph); err != nil {
		fmt.Fprintln(os.Stderr, "rawdecode:", err)
		os.Exit(1)
	}
}

func run(dir, variant string, opts ort.Options, promptLen int, prefillGraph bool) error {
	info, err := ort.Init(ort.ResolveLibrary(os.Getenv))
	if err != nil {
		return err
	}
	// The plugin's session options: settings threads and
	// graph_optimization, defaults filled in the same way.
	opts = opts.WithDefaults()
	m, err := model.Open(dir, model.Options{Variant: variant, Session: opts, PrefillGraph: prefillGraph})
	if err != nil {
		return err
	}
	defer m.Close()
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		return err
	}
	text, ids, err := exactPrompt(tok, promptLen)
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	desc := fmt.Sprintf("%s; %d intra-op threads, graph optimization %s, spinning %v, spinning stopped after a run %v", info, opts.IntraOpThreads,
		opts.GraphOptimization, !opts.DisableSpinning, opts.StopSpinningAfterRun)
	if err := out.Encode(map[string]any{"prompt": text, "runtime": desc}); err != nil {
		return err
	}
	vocab := min(tok.VocabSize(), m.Vocab())
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		n, err := strconv.Atoi(strings.TrimSpace(in.Text()))
		if err != nil || n < 1 {
			return fmt.Errorf("want a token count, got %q", in.Text())
		}
		ttft, ttftText, tps, err := decode(m, tok, ids, n, vocab)
		if err != nil {
			return err
		}
		if err := out.Encode(map[string]any{"ttft_ns": ttft.Nanoseconds(), "ttft_text_ns": ttftText.Nanoseconds(),
			"tokens_per_s": tps}); err != nil {
			return err
		}
	}
	return in.Err()
}

// decode prefills the prompt and generates n tokens greedily, carrying
// the KV cache. It returns the time to the first token, the time to the
// first text (the first token whose text the tokenizer's streaming
// decoder gives out, as the plugin streams it; 0 if none within n), and
// the decode rate after the first token.
func decode(m *model.Model, tok *tokenizer.Tokenizer, prompt []int, n, vocab int) (time.Duration, time.Duration, float64, error) {
	var firstText time.Time
	dec := tok.NewStreamDecoder(tokenizer.SkipSpecial())
	emit := func(id int) {
		if firstText.IsZero() && dec.Add(id) != "" {
			firstText = time.Now()
		}
	}
	ctx := context.Background()
	feed := make([]int64, len(prompt))
	for i, id := range prompt {
		feed[i] = int64(id)
	}
	start := time.Now()
	seq, err := m.NewSequence(len(prompt) + n)
	if err != nil {
		return 0, 0, 0, err
	}
	defer seq.Close()
	logits, err := seq.Step(ctx, feed)
	if err != nil {
		return 0, 0, 0, err
	}
	v := m.Vocab()
	next := argmax(logits[len(logits)-v:][:vocab])
	first := time.Now()
	emit(next)
	for i := 1; i < n; i++ {
		if logits, err = seq.Step(ctx, []int64{int64(next)}); err != nil {
			return 0, 0, 0, err
		}
		next = argmax(logits[:vocab])
		emit(next)
	}
	end := time.Now()
	tps := 0.0
	if n > 1 {
		tps = float64(n-1) / end.Sub(first).Seconds()
	}
	var text time.Duration
	if !firstText.IsZero() {
		text = firstText.Sub(start)
	}
	return first.Sub(start), text, tps, nil
}

func argmax(x []float32) int {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return best
}

// exactPrompt builds a text that tokenizes (as a completions prompt) to
// exactly n tokens.
func exactPrompt(tok *tokenizer.Tokenizer, n int) (string, []int, error) {
	words := strings.Fields(`The local plane answers questions on the machine itself. A request comes in over
		HTTP, is wrapped in a binary envelope, checked against the policy of its tenant and routed to a worker
		that runs the model. The worker reads the prompt, turns it into tokens, runs the decoder one step at a
		time and streams the text back as it is produced. Nothing leaves the host.`)
	count := func(s string) int { return len(tok.Encode(s, true)) }
	text := ""
	for i := 0; count(text) < n && i < 10*n; i++ {
		next := words[i%len(words)]
		if text != "" {
			next = text + " " + next
		}
		if count(next) <= n {
			text = next
			continue
		}
		// The next word overshoots: pad with single characters.
		for _, c := range ".,;:!?-+=ab" {
			if count(text+string(c)) <= n {
				text += string(c)
				break
			}
		}
	}
	ids := tok.Encode(text, true)
	if len(ids) != n {
		return "", nil, fmt.Errorf("could not build a prompt of exactly %d tokens (got %d)", n, len(ids))
	}
	return text, ids, nil
}
