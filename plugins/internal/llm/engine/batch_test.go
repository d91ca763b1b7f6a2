package engine

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/dsmil/l7/plugins/internal/llm/model"
	"github.com/dsmil/l7/plugins/internal/llm/sampler"
)

var (
	unbatchedOnce sync.Once
	unbatchedV    *Engine
	unbatchedErr  error
)

// unbatchedEngine is the tiny model loaded a second time, decoding every
// Generate in its own Sequence: the reference for the batched engine.
func unbatchedEngine(t testing.TB) *Engine {
	t.Helper()
	initORT(t)
	res := tiny(t)
	unbatchedOnce.Do(func() {
		unbatchedV, unbatchedErr = Load(res.Dir, testOptions)
		if unbatchedErr == nil {
			unbatchedV.Unbatched = true
		}
	})
	if unbatchedErr != nil {
		t.Fatal(unbatchedErr)
	}
	return unbatchedV
}

// outcome is what one Generate produced.
type outcome struct {
	text   string
	pieces int
	res    *Result
	err    error
}

func (o outcome) String() string {
	if o.res == nil {
		return fmt.Sprintf("err %v", o.err)
	}
	return fmt.Sprintf("%q (%d tokens, %v, err %v)", o.text, o.res.CompletionTokens, o.res.Finish, o.err)
}

// job is one Generate of a batch test: its request, and the number of
// pieces of an earlier job (after) to wait for before starting (-1: start
// at once), so that it joins a batch already decoding.
type job struct {
	req          func(e *Engine) *Request
	after, count int
	// cancelAt cancels the job's context once it has emitted this many
	// pieces (0: never).
	cancelAt int
}

// runJobs runs the jobs concurrently on e and returns their outcomes.
func runJobs(t *testing.T, e *Engine, jobs []job) []outcome {
	t.Helper()
	out := make([]outcome, len(jobs))
	started := make([]chan struct{}, len(jobs)) // closed when job i reaches its count
	for i := range started {
		started[i] = make(chan struct{})
	}
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if j.after >= 0 {
				<-started[j.after]
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var b strings.Builder
			n := 0
			res, err := e.Generate(ctx, j.req(e), func(s string) error {
				b.WriteString(s)
				n++
				if n == max(j.count, 1) {
					close(started[i])
				}
				if n == j.cancelAt {
					cancel()
				}
				return nil
			})
			if n < max(j.count, 1) {
				close(started[i])
			}
			out[i] = outcome{text: b.String(), pieces: n, res: res, err: err}
		}()
	}
	wg.Wait()
	return out
}

func greedy(text string, maxTokens int) func(e *Engine) *Request {
	return func(e *Engine) *Request {
		return &Request{Prompt: e.TextPrompt(text), MaxTokens: maxTokens, IgnoreEOS: true}
	}
}

// TestBatchedMatchesUnbatched: greedy requests of different prompt
// lengths and lengths, run concurrently so that they share batch steps —
// some joining while others decode, some leaving while others go on —
// give exactly what each gives decoded alone, unbatched.
func TestBatchedMatchesUnbatched(t *testing.T) {
	e, ref := tinyEngine(t), unbatchedEngine(t)
	if !e.Batching() || ref.Batching() {
		t.Fatalf("Batching: %v and %v", e.Batching(), ref.Batching())
	}
	jobs := []job{
		{req: greedy("The first stream runs longest of all.", 80), after: -1, count: 10},
		{req: greedy("Short", 12), after: -1},
		{req: greedy("This one joins a batch that already decodes, and leaves before the first.", 40), after: 0, count: 5},
		{req: greedy("Joins later still", 30), after: 2, count: 8},
	}
	before := e.BatchStats()
	got := runJobs(t, e, jobs)
	after := e.BatchStats()
	want := runJobs(t, ref, jobs)
	for i := range jobs {
		if got[i].err != nil || want[i].err != nil {
			t.Fatalf("job %d: batched %v, unbatched %v", i, got[i], want[i])
		}
		if got[i].text != want[i].text || got[i].res.CompletionTokens != want[i].res.CompletionTokens ||
			got[i].res.Finish != want[i].res.Finish {
			t.Errorf("job %d:\nbatched   %v\nunbatched %v", i, got[i], want[i])
		}
	}
	steps, rows := after.Steps-before.Steps, after.Rows-before.Rows
	t.Logf("%d batch steps decoded %d tokens (mean batch %.2f)", steps, rows, float64(rows)/float64(max(steps, 1)))
	// Every token after each job's first is one row of one step.
	var decoded int64
	for _, o := range got {
		decoded += int64(o.res.CompletionTokens - 1)
	}
	if rows != decoded {
		t.Errorf("batch steps decoded %d tokens, the jobs %d", rows, decoded)
	}
	if steps >= rows {
		t.Errorf("%d steps for %d tokens: the streams never shared a step", steps, rows)
	}
	if ref.BatchStats() != (BatchStats{}) {
		t.Errorf("unbatched engine has batch stats %+v", ref.BatchStats())
	}
}

// TestBatchedPerSequence: what is per request stays per request in a
// batch — seeded sampling with penalties, logit_bias, stop sequences,
// max_tokens, EOS and constraints — and equals the same requests decoded
// unbatched.
func TestBatchedPerSequence(t *testing.T) {
	e, ref := tinyEngine(t), unbatchedEngine(t)
	letters := map[int]bool{}
	for _, s := range []string{"a", "b", "c"} {
		id, ok := e.Tokenizer.TokenID(s)
		if !ok {
			t.Fatalf("no token %q", s)
		}
		letters[id] = true
	}
	eos := e.Model.Config.EOS[0]
	// The stop sequence: a piece of the greedy output of job 0's prompt.
	probe := runJobs(t, ref, []job{{req: greedy("Stop me somewhere in the middle.", 30), after: -1}})[0]
	if len(probe.text) < 20 {
		t.Fatalf("probe output too short: %v", probe)
	}
	stop := probe.text[12:15]
	jobs := []job{
		{req: func(e *Engine) *Request {
			r := greedy("Stop me somewhere in the middle.", 30)(e)
			r.Stop = []string{stop}
			return r
		}, after: -1, count: 2},
		{req: func(e *Engine) *Request {
			return &Request{Prompt: e.TextPrompt("Sample with a seed"), MaxTokens: 50, IgnoreEOS: true,
				Sampling: sampler.Params{Temperature: 0.9, TopP: 0.9, Seed: 42, FrequencyPenalty: 0.5, RepetitionPenalty: 1.1}}
		}, after: -1, count: 3},
		{req: func(e *Engine) *Request { // EOS forced by logit_bias after joining
			return &Request{Prompt: e.TextPrompt("Bias"), MaxTokens: 50, Sampling: sampler.Params{LogitBias: map[int]float32{eos: 1000}}}
		}, after: 1, count: 4},
		{req: func(e *Engine) *Request {
			return &Request{Prompt: e.TextPrompt("Spell it"), MaxTokens: 20, Constraint: &setConstraint{allowed: letters, min: 3, max: 9},
				Sampling: sampler.Params{Temperature: 1, Seed: 7}}
		}, after: 0, count: 2},
		{req: greedy("max tokens", 7), after: 1, count: 1},
	}
	got := runJobs(t, e, jobs)
	want := runJobs(t, ref, jobs)
	for i := range jobs {
		if got[i].err != nil || want[i].err != nil {
			t.Fatalf("job %d: batched %v, unbatched %v", i, got[i], want[i])
		}
		if got[i].text != want[i].text || got[i].res.CompletionTokens != want[i].res.CompletionTokens ||
			got[i].res.Finish != want[i].res.Finish {
			t.Errorf("job %d:\nbatched   %v\nunbatched %v", i, got[i], want[i])
		}
	}
	if r := got[0]; strings.Contains(r.text, stop) || r.res.Finish != FinishStop || !strings.HasPrefix(probe.text, r.text) {
		t.Errorf("stop %q: %v", stop, r)
	}
	if r := got[2]; r.text != "" || r.res.CompletionTokens != 1 || r.res.Finish != FinishStop {
		t.Errorf("forced EOS: %v", r)
	}
	if r := got[3]; strings.Trim(r.text, "abc") != "" || r.res.Finish != FinishStop {
		t.Errorf("constrained: %v", r)
	}
	if r := got[4]; r.res.CompletionTokens != 7 || r.res.Finish != FinishLength {
		t.Errorf("max_tokens 7: %v", r)
	}
}

// TestBatchedCancelOne: cancelling one sequence of a batch ends it (with
// the context's error, after the tokens it had) and changes nothing for
// the others, which finish as they would alone.
func TestBatchedCancelOne(t *testing.T) {
	e, ref := tinyEngine(t), unbatchedEngine(t)
	jobs := []job{
		{req: greedy("Keep going, you are not cancelled.", 60), after: -1, count: 3},
		{req: greedy("This one is cancelled mid-stream.", 200), after: 0, count: 1, cancelAt: 6},
		{req: greedy("And this one goes on too.", 50), after: 1, count: 2},
	}
	got := runJobs(t, e, jobs)
	want := runJobs(t, ref, []job{jobs[0], {req: jobs[1].req, after: -1, cancelAt: 6}, {req: jobs[2].req, after: -1}})
	// Cancelled while its 6th piece goes out: no token after it is drawn.
	if c := got[1]; !errors.Is(c.err, context.Canceled) || c.pieces != 6 || c.res.CompletionTokens >= 200 {
		t.Errorf("cancelled job: %v, %d pieces", c, c.pieces)
	}
	if c := got[1]; c.text != want[1].text || c.res.CompletionTokens != want[1].res.CompletionTokens {
		t.Errorf("cancelled job: batched %v, unbatched %v", c, want[1])
	}
	for _, i := range []int{0, 2} {
		if got[i].err != nil || got[i].text != want[i].text || got[i].res.CompletionTokens != want[i].res.CompletionTokens {
			t.Errorf("job %d:\nbatched   %v\nunbatched %v", i, got[i], want[i])
		}
	}
	// The batch is empty again and works.
	again := runJobs(t, e, jobs[:1])
	if again[0].text != want[0].text {
		t.Errorf("after the cancel: %v, want %v", again[0], want[0])
	}
}

// TestBatchBudget: with a batch KV budget that holds one sequence at a
// time, a second waits to join until the first leaves — and both still
// finish with the tokens they would give alone.
func TestBatchBudget(t *testing.T) {
	initORT(t)
	e, err := Load(tiny(t).Dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ref := unbatchedEngine(t)
	const maxTok = 30
	jobs := []job{
		{req: greedy("One at a time", maxTok), after: -1, count: 2},
		{req: greedy("please", maxTok), after: 0, count: 2},
	}
	longest := 0
	for _, j := range jobs {
		longest = max(longest, len(j.req(e).Prompt)+maxTok)
	}
	e.BatchKVBudget = int64(longest) * e.Model.KVBytesPerToken() // fits 1 row, not 2
	got := runJobs(t, e, jobs)
	want := runJobs(t, ref, jobs)
	for i := range jobs {
		if got[i].err != nil || got[i].text != want[i].text {
			t.Errorf("job %d:\nbatched   %v\nunbatched %v", i, got[i], want[i])
		}
	}
	if s := e.BatchStats(); s.Rows != s.Steps {
		t.Errorf("%+v: the two rows shared a step beyond the budget", s)
	}
}

// TestBatchClose: closing the engine while streams decode in the batch
// stops them with an error (it does not wait for them to finish, and
// never runs a step on the closed model); Generate afterwards fails.
func TestBatchClose(t *testing.T) {
	initORT(t)
	e, err := Load(tiny(t).Dir, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	decoding := make(chan struct{}, n)
	errs := make(chan error, n)
	for i := range n {
		go func() {
			k := 0
			_, err := e.Generate(context.Background(), greedy(strings.Repeat("Long ", i+1), 3000)(e), func(string) error {
				if k++; k == 2 {
					decoding <- struct{}{}
				}
				return nil
			})
			errs <- err
		}()
	}
	for range n {
		<-decoding
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; err == nil {
			t.Error("a Generate decoding in the batch finished without error after Close")
		}
	}
	if _, err := e.Generate(context.Background(), greedy("after", 5)(e), func(string) error { return nil }); !errors.Is(err, model.ErrClosed) {
		t.Fatalf("Generate after Close: %v", err)
	}
}
