package engine

import (
	"context"
	"math"
	"strings"
	"testing"

	"github.com/dsmil/l7/plugins/internal/llm/sampler"
)

// runLogprobs generates req with log probabilities and returns the text
// pieces, the log probabilities in order and the result.
func runLogprobs(t *testing.T, e *Engine, req *Request) ([]string, []Logprob, *Result) {
	t.Helper()
	var pieces []string
	var lps []Logprob
	req.Logprobs = func(s string, l []Logprob) error {
		if s == "" && len(l) == 0 {
			t.Error("Logprobs called with neither text nor log probabilities")
		}
		if s != "" {
			pieces = append(pieces, s)
		}
		lps = append(lps, l...)
		return nil
	}
	res, err := e.Generate(context.Background(), req, func(string) error {
		t.Error("emit called although Request.Logprobs is set")
		return nil
	})
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	return pieces, lps, res
}

// refLogSoftmax is the log-softmax of the prompt's next-token logits over
// the sampled vocabulary, computed from a fresh sequence.
func refLogSoftmax(t *testing.T, e *Engine, prompt []int) []float64 {
	t.Helper()
	seq, err := e.Model.NewSequence(0)
	if err != nil {
		t.Fatal(err)
	}
	defer seq.Close()
	feed := make([]int64, len(prompt))
	for i, id := range prompt {
		feed[i] = int64(id)
	}
	logits, err := seq.Step(context.Background(), feed)
	if err != nil {
		t.Fatal(err)
	}
	v := e.Model.Vocab()
	row := logits[len(logits)-v : len(logits)-v+e.SampleVocab()]
	m := math.Inf(-1)
	for _, x := range row {
		m = math.Max(m, float64(x))
	}
	sum := 0.0
	for _, x := range row {
		sum += math.Exp(float64(x) - m)
	}
	out := make([]float64, len(row))
	for i, x := range row {
		out[i] = float64(x) - m - math.Log(sum)
	}
	return out
}

// TestLogprobs: greedy tokens are the most likely of their position, the
// top alternatives are sorted and match a log-softmax of the model's
// logits, every generated token is reported once (stop sequence
// included), and log probabilities are the model's, before logit_bias.
func TestLogprobs(t *testing.T) {
	e := tinyEngine(t)
	prompt := chatPrompt(t, e, "Describe the night shift's radio log.")
	const n = 20
	plain, _ := run(t, e, &Request{Prompt: prompt, MaxTokens: n, IgnoreEOS: true})
	pieces, lps, res := runLogprobs(t, e, &Request{Prompt: prompt, MaxTokens: n, IgnoreEOS: true, TopLogprobs: 5})
	if strings.Join(pieces, "") != strings.Join(plain, "") {
		t.Fatalf("text with logprobs %q, without %q", pieces, plain)
	}
	if len(lps) != res.CompletionTokens || res.CompletionTokens != n {
		t.Fatalf("%d log probabilities for %d tokens", len(lps), res.CompletionTokens)
	}
	for i, lp := range lps {
		if len(lp.Top) != 5 {
			t.Fatalf("token %d: %d top_logprobs, want 5", i, len(lp.Top))
		}
		if lp.Top[0].ID != lp.ID || lp.Top[0].Logprob != lp.Logprob {
			t.Errorf("token %d: greedy drew %d (logprob %v) but the most likely is %d (%v)", i, lp.ID, lp.Logprob, lp.Top[0].ID, lp.Top[0].Logprob)
		}
		for j := 1; j < len(lp.Top); j++ {
			if lp.Top[j].Logprob > lp.Top[j-1].Logprob || lp.Top[j].ID == lp.Top[j-1].ID {
				t.Errorf("token %d: top_logprobs not sorted: %+v", i, lp.Top)
			}
		}
		if lp.Logprob > 0 || math.IsNaN(float64(lp.Logprob)) {
			t.Errorf("token %d: logprob %v", i, lp.Logprob)
		}
	}
	// The first position against a log-softmax computed here.
	ref := refLogSoftmax(t, e, prompt)
	for _, tl := range lps[0].Top {
		if d := math.Abs(ref[tl.ID] - float64(tl.Logprob)); d > 1e-4 {
			t.Errorf("token %d: logprob %v, log-softmax %v", tl.ID, tl.Logprob, ref[tl.ID])
		}
	}
	for id, x := range ref {
		if x > float64(lps[0].Top[4].Logprob)+1e-6 && !inTop(lps[0].Top, id) {
			t.Errorf("token %d (logprob %v) is missing from the top 5 %+v", id, x, lps[0].Top)
		}
	}

	// logit_bias forces a token; its logprob is still the model's.
	forced := lps[0].Top[4].ID
	_, biased, _ := runLogprobs(t, e, &Request{Prompt: prompt, MaxTokens: 1, TopLogprobs: 2,
		Sampling: sampler.Params{LogitBias: map[int]float32{forced: 100}}})
	if len(biased) != 1 || biased[0].ID != forced || math.Abs(float64(biased[0].Logprob)-ref[forced]) > 1e-4 ||
		biased[0].Top[0].ID != lps[0].Top[0].ID {
		t.Fatalf("logit_bias on %d: %+v; want it drawn with the unbiased logprob %v and top %d", forced, biased, ref[forced], lps[0].Top[0].ID)
	}

	// A stop sequence: its tokens are reported too, at the end, and
	// top_logprobs 0 gives none.
	full := strings.Join(plain, "")
	stop := full[len(full)/2 : len(full)/2+2]
	if !isUTF8(stop) {
		t.Skipf("no UTF-8 stop sequence in %q", full)
	}
	pieces, lps, res = runLogprobs(t, e, &Request{Prompt: prompt, MaxTokens: n, IgnoreEOS: true, Stop: []string{stop}})
	if got := strings.Join(pieces, ""); got != full[:strings.Index(full, stop)] || res.Finish != FinishStop {
		t.Fatalf("stop %q: %q (%v)", stop, got, res.Finish)
	}
	if len(lps) != res.CompletionTokens || lps[0].Top != nil {
		t.Fatalf("stop %q: %d log probabilities for %d tokens, top %v", stop, len(lps), res.CompletionTokens, lps[0].Top)
	}
}

func inTop(top []TopLogprob, id int) bool {
	for _, tl := range top {
		if tl.ID == id {
			return true
		}
	}
	return false
}
