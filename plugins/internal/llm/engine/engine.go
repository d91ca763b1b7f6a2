package engine

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/plugins/internal/llm/chattmpl"
	"github.com/dsmil/l7/plugins/internal/llm/model"
	"github.com/dsmil/l7/plugins/internal/llm/sampler"
	"github.com/dsmil/l7/plugins/internal/tokenizer"
)

var (
	// ErrEmptyPrompt reports a prompt that tokenizes to nothing.
	ErrEmptyPrompt = errors.New("engine: the prompt has no tokens")

	// ErrTooLong reports a request whose prompt and completion do not fit
	// the context.
	ErrTooLong = errors.New("engine: prompt and completion exceed the context")

	// ErrMismatch reports a tokenizer that does not fit the model.
	ErrMismatch = errors.New("engine: tokenizer does not match the model")
)

// Engine is a loaded model with its tokenizer and chat template. It is
// safe for concurrent use: every Generate prefills in its own Sequence,
// then decodes in the engine's continuous batch (or, unbatched, in its
// own Sequence).
type Engine struct {
	// Model is the ONNX model.
	Model *model.Model
	// Tokenizer is the model's tokenizer.
	Tokenizer *tokenizer.Tokenizer
	// Template is the model's chat template.
	Template *chattmpl.Template

	// Unbatched, set before the first Generate, makes every Generate
	// decode in its own model.Sequence, one ONNX Runtime run per sequence
	// per token, instead of in the continuous batch. A model whose graph
	// cannot batch (model.Model.CanBatch) always runs unbatched.
	Unbatched bool
	// BatchKVBudget, set before the first Generate, bounds the batch's
	// padded KV cache: a sequence waits to join while rows (rounded up to
	// a power of two) × the longest row's limit × KV bytes per token would
	// exceed it. 0: no bound (the caller's admission bounds the rows).
	BatchKVBudget int64
	// PrefillChunk, set before the first Generate, is the most prompt
	// tokens one ONNX Runtime run prefills (0: DefaultPrefillChunk; a
	// negative value: the whole prompt in one run). One chunk of all
	// prefills runs at a time (first come first served), so prefill
	// working memory is one chunk's (see PrefillBytes).
	PrefillChunk int
	// Prefix, when set, is the prefix cache: a Generate whose Request
	// names a Tenant reuses the cached KV of its prompt's prefix and
	// stores its prompt's blocks.
	Prefix *PrefixCache

	// Interleave, set before the first Generate, makes batched prefill
	// chunks take turns with the decode steps (one chunk after each step,
	// never both at once) instead of running beside them. Measured
	// (docs/performance.md, "Chunked prefill"), running beside them gives
	// the decoding streams far lower inter-token latency on CPU, where a
	// chunk's run is long: ONNX Runtime's thread pool interleaves the
	// step's small parallel sections with the chunk's.
	Interleave bool

	// afterChunk, when set (by tests, before the first Generate), is
	// called after each prefill chunk; with Interleave inside the chunk's
	// turn, so that no batch step starts or ends while it runs.
	afterChunk func()

	// prefilling admits one prefill chunk at a time (beside the steps):
	// prefill working memory is one chunk's.
	prefilling chan struct{}
	// overlap lets every prefill run its chunks at once (no
	// prefilling; for benchmarks: the behaviour before chunked prefill).
	overlap bool

	// prefills counts the prompts prefilled (for tests: n choices share
	// one).
	prefills atomic.Int64

	schedOnce sync.Once
	sched     *scheduler
	schedErr  error

	eos map[int]bool
	// eosIDs are eos's keys that index the logits, for constrain.
	eosIDs []int
	vocab  int // ids the sampler may draw: those both the model and the tokenizer know
}

// Load opens the model in dir (see model.Open; ort.Init must have been
// called) and its tokenizer and chat template.
func Load(dir string, opts model.Options) (*Engine, error) {
	m, err := model.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	e, err := newEngine(m)
	if err != nil {
		m.Close()
		return nil, err
	}
	return e, nil
}

func newEngine(m *model.Model) (*Engine, error) {
	tok, err := tokenizer.LoadDir(m.Files.Dir)
	if err != nil {
		return nil, err
	}
	if tok.VocabSize() > m.Vocab() {
		return nil, fmt.Errorf("%w: %s has ids up to %d, but the model's vocabulary (vocab_size, logits) is %d",
			ErrMismatch, m.Files.Tokenizer, tok.VocabSize()-1, m.Vocab())
	}
	tmpl, err := chattmpl.LoadDir(m.Files.Dir, "")
	if err != nil {
		return nil, err
	}
	e := &Engine{Model: m, Tokenizer: tok, Template: tmpl, eos: map[int]bool{}, vocab: tok.VocabSize(), prefilling: make(chan struct{}, 1)}
	for _, id := range m.Config.EOS {
		if !e.eos[id] && id >= 0 && id < m.Vocab() {
			e.eosIDs = append(e.eosIDs, id)
		}
		e.eos[id] = true
	}
	return e, nil
}

// Close releases the model. It stops the continuous batch first (the
// Generates decoding in it end with an error); a Generate prefilling or
// decoding unbatched must have returned.
func (e *Engine) Close() error {
	e.schedOnce.Do(func() {}) // no scheduler after this
	if e.sched != nil {
		e.sched.close()
	}
	return e.Model.Close()
}

// Batching reports whether Generate decodes in the continuous batch.
func (e *Engine) Batching() bool { return !e.Unbatched && e.Model.CanBatch() }

// scheduler returns the continuous batch's scheduler, nil when unbatched.
func (e *Engine) scheduler() (*scheduler, error) {
	if !e.Batching() {
		return nil, nil
	}
	e.schedOnce.Do(func() {
		e.sched, e.schedErr = newScheduler(e.Model)
		if e.sched != nil {
			e.sched.budget = e.BatchKVBudget
		}
	})
	return e.sched, e.schedErr
}

// DefaultPrefillChunk is the prefill chunk when Engine.PrefillChunk is 0.
const DefaultPrefillChunk = 256

// chunk is the prefill chunk in tokens (0: the whole prompt).
func (e *Engine) chunk() int {
	switch {
	case e.PrefillChunk < 0:
		return 0
	case e.PrefillChunk == 0:
		return DefaultPrefillChunk
	}
	return e.PrefillChunk
}

// PrefillBytes estimates, as an upper bound, the working memory of
// prefilling a chunk of the prompt at a context of ctxLen tokens: the
// chunk's logits (the caller's output buffer and ONNX Runtime's; one row
// when the model computes the last position's only), the
// attention scores of one layer (heads × chunk × context, float32), the
// hidden states and MLP activations of the chunk, with a 25 % margin for
// the allocator. A prompt of promptLen tokens prefilled whole counts
// promptLen as the chunk.
func (e *Engine) PrefillBytes(promptLen, ctxLen int) int64 {
	c := e.Model.Config
	k := int64(promptLen)
	if ch := e.chunk(); ch > 0 {
		k = min(k, int64(ch))
	}
	logits := 2 * k * int64(c.Vocab) * 4
	if e.Model.LastLogits {
		logits = 2 * int64(c.Vocab) * 4 // one row
	}
	scores := 2 * int64(c.Heads) * k * int64(ctxLen) * 4
	acts := k * int64(24*c.Hidden) * 4 // hidden states and the MLP (intermediate ≈ 5.5 × hidden)
	return (logits + scores + acts) * 5 / 4
}

// MaxContext is the longest sequence (prompt + completion) a request may
// use.
func (e *Engine) MaxContext() int { return e.Model.MaxSequence }

// SampleVocab is the number of ids the sampler draws from: the model's
// logits beyond the tokenizer's last id (padding rows) are never drawn.
func (e *Engine) SampleVocab() int { return e.vocab }

// KVBytes is the most KV cache memory a Generate of n tokens (prompt +
// completion) holds: model.Sequence keeps two buffers per cache tensor,
// each at most n tokens.
func (e *Engine) KVBytes(n int) int64 { return 2 * int64(n) * e.Model.KVBytesPerToken() }

// IsEOS reports whether id ends generation.
func (e *Engine) IsEOS(id int) bool { return e.eos[id] }

// ChatPrompt renders a conversation (and the tools the model may call,
// JSON-schema tool definitions as the template's tools variable; nil for
// none) with the model's chat template and the assistant's generation
// prompt, and tokenizes it as Hugging Face's apply_chat_template does (the
// template writes the special tokens).
func (e *Engine) ChatPrompt(msgs []chattmpl.Message, tools []any) ([]int, error) {
	text, err := e.Template.Render(msgs, chattmpl.Options{AddGenerationPrompt: true, Tools: tools})
	if err != nil {
		return nil, err
	}
	return e.Tokenizer.Encode(text, false), nil
}

// TextPrompt tokenizes a raw completion prompt, with the special tokens
// the tokenizer adds (such as Llama's BOS).
func (e *Engine) TextPrompt(prompt string) []int { return e.Tokenizer.Encode(prompt, true) }

// Finish says why generation ended.
type Finish int

const (
	// FinishStop: an EOS token or a stop sequence.
	FinishStop Finish = iota
	// FinishLength: MaxTokens tokens were generated.
	FinishLength
)

func (f Finish) String() string {
	if f == FinishLength {
		return "length"
	}
	return "stop"
}

// Request is one generation.
type Request struct {
	// Prompt are the prompt's token ids.
	Prompt []int
	// MaxTokens is the most tokens to generate (≥ 1); Prompt + MaxTokens
	// must fit MaxContext.
	MaxTokens int
	// Stop are the stop sequences.
	Stop []string
	// Sampling are the sampling parameters, already validated.
	Sampling sampler.Params
	// IgnoreEOS keeps generating past EOS tokens (for benchmarks).
	IgnoreEOS bool
	// Constraint, when set, restricts every drawn token (structured
	// output): see Constraint.
	Constraint Constraint
	// Tenant is the requester's tenant: the prefix cache's scope (no
	// tenant: no prefix caching).
	Tenant string
	// Logprobs, when set, takes the generated text instead of Generate's
	// emit, with the log probabilities (see Logprob) of the tokens
	// generated since the previous call: every generated token but a
	// final EOS is reported once, in order, with the first text that
	// covers it (text may be empty: tokens of a stop sequence, or whose
	// text the decoder held back, are reported at the end).
	Logprobs func(text string, lps []Logprob) error
	// TopLogprobs is how many of the most likely tokens each position
	// reports with Logprobs (0–MaxTopLogprobs).
	TopLogprobs int
}

// Constraint restricts the tokens a generation may draw, such as a grammar
// compiled from a JSON schema. Before each draw the engine asks for the
// allowed ids, removes every other id from the logits (whatever the
// sampler settings, logit_bias included) and allows EOS only where CanEnd
// holds; after the draw it advances the constraint with the drawn id. A
// constraint that is Done (it accepts and nothing may follow) ends the
// generation with finish "stop" without drawing. It is used by one
// generation at a time.
type Constraint interface {
	// FillMask sets bit id of allowed (len(allowed)*64 ≥ the tokenizer's
	// vocabulary) for each non-special id that may come next, and clears
	// every other bit.
	FillMask(allowed []uint64)
	// Advance moves past id, which FillMask allowed.
	Advance(id int) error
	// CanEnd reports whether the output so far is complete.
	CanEnd() bool
	// Done reports whether the output is complete and nothing may follow.
	Done() bool
}

// ErrConstraint reports a constraint that refused a token it had allowed,
// or that allows nothing and cannot end: a bug in the constraint, never
// the client's fault.
var ErrConstraint = errors.New("engine: constrained decoding failed")

// Result describes a finished generation.
type Result struct {
	// Finish says why it ended.
	Finish Finish
	// PromptTokens is len(Request.Prompt).
	PromptTokens int
	// CachedTokens are the prompt tokens whose KV came from the prefix
	// cache instead of being prefilled.
	CachedTokens int
	// CompletionTokens counts the tokens generated, the EOS token and the
	// tokens of a stop sequence included.
	CompletionTokens int
	// Start is when Generate started; FirstToken when the first token was
	// drawn (zero if none was); End when generation ended.
	Start, FirstToken, End time.Time
	// KVBytes is the KV cache memory the sequence held at the end.
	KVBytes int64
}

// DecodeRate is the tokens per second after the first token.
func (r *Result) DecodeRate() float64 {
	if r.CompletionTokens < 2 || r.FirstToken.IsZero() {
		return 0
	}
	d := r.End.Sub(r.FirstToken).Seconds()
	if d <= 0 {
		return 0
	}
	return float64(r.CompletionTokens-1) / d
}

// Generate runs req, passing each piece of text to emit as it becomes
// final. It returns the result so far with the error of a failed step or
// emit (ctx's error wrapped when ctx was cancelled).
func (e *Engine) Generate(ctx context.Context, req *Request, emit func(string) error) (*Result, error) {
	res, err := e.GenerateN(ctx, []*Request{req}, []func(string) error{emit})
	return res[0], err
}

// ErrChoices reports requests of one GenerateN that do not share their
// prompt.
var ErrChoices = errors.New("engine: the choices of a request must share the prompt")

// GenerateN generates several choices of one prompt (OpenAI's n): reqs
// share Prompt (and Tenant) and may differ in everything else (seeds,
// constraints, which are stateful, log-probability callbacks); emits[i]
// takes choice i's text. The prompt is prefilled once; each further
// choice starts from a copy of its KV cache, and then every choice decodes
// on its own (in the continuous batch, a row each). It returns every
// choice's result so far with the first error; an error ends all choices.
func (e *Engine) GenerateN(ctx context.Context, reqs []*Request, emits []func(string) error) ([]*Result, error) {
	results := make([]*Result, len(reqs))
	start := time.Now()
	for i := range reqs {
		results[i] = &Result{Start: start, PromptTokens: len(reqs[0].Prompt)}
	}
	end := func() {
		for _, r := range results {
			if r.End.IsZero() {
				r.End = time.Now()
			}
		}
	}
	defer end()
	if len(reqs) == 0 || len(emits) != len(reqs) {
		return results, fmt.Errorf("%w: %d requests, %d emits", ErrChoices, len(reqs), len(emits))
	}
	req, res := reqs[0], results[0]
	if len(req.Prompt) == 0 {
		return results, ErrEmptyPrompt
	}
	for _, r := range reqs {
		if !slices.Equal(r.Prompt, req.Prompt) || r.Tenant != req.Tenant {
			return results, ErrChoices
		}
		if r.MaxTokens < 1 || len(r.Prompt)+r.MaxTokens > e.MaxContext() {
			return results, fmt.Errorf("%w: %d prompt tokens + max_tokens %d > %d", ErrTooLong, len(r.Prompt), r.MaxTokens, e.MaxContext())
		}
	}
	sched, err := e.scheduler()
	if err != nil {
		return results, err
	}
	seqs := make([]*model.Sequence, len(reqs))
	// Until a choice's decode takes its sequence over, it is closed here.
	defer func() {
		for _, s := range seqs {
			if s != nil {
				s.Close()
			}
		}
	}()
	if seqs[0], err = e.Model.NewSequence(len(req.Prompt) + req.MaxTokens); err != nil {
		return results, err
	}
	seq := seqs[0]

	feed := make([]int64, len(req.Prompt))
	for i, id := range req.Prompt {
		feed[i] = int64(id)
	}
	var keys [][32]byte
	cached := 0
	if e.Prefix != nil && req.Tenant != "" {
		var blocks []*prefixBlock
		blocks, keys = e.Prefix.lookup(req.Tenant, req.Prompt)
		if len(blocks) > 0 {
			if err := e.Prefix.load(e.Model, seq, blocks); err != nil {
				return results, err
			}
			cached = len(blocks)
			res.CachedTokens = cached * e.Prefix.Block
		}
	}
	e.prefills.Add(1)
	row, err := e.prefill(ctx, sched, seq, feed[res.CachedTokens:])
	if err != nil {
		return results, err
	}
	if keys != nil {
		e.Prefix.insert(e.Model, seq, keys, cached)
	}
	if len(reqs) == 1 {
		seqs[0] = nil
		return results, e.decode(ctx, sched, seq, row, req, emits[0], res)
	}
	// Further choices: a copy of the prompt's cache and of its logits.
	rows := make([][]float32, len(reqs))
	rows[0] = row
	n := seq.Len()
	for i := 1; i < len(reqs); i++ {
		results[i].CachedTokens = res.CachedTokens
		if seqs[i], err = e.Model.NewSequence(len(req.Prompt) + reqs[i].MaxTokens); err != nil {
			return results, err
		}
		err = seqs[i].LoadKV(n, func(j, h int, dst []byte) { copy(dst, seq.KVHeadBytes(j, h, 0, n)) })
		if err != nil {
			return results, err
		}
		rows[i] = slices.Clone(row)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make([]error, len(reqs))
	var wg sync.WaitGroup
	for i := range reqs {
		s := seqs[i]
		seqs[i] = nil
		wg.Add(1)
		go func() {
			defer wg.Done()
			if errs[i] = e.decode(ctx, sched, s, rows[i], reqs[i], emits[i], results[i]); errs[i] != nil {
				cancel()
			}
			results[i].End = time.Now()
		}()
	}
	wg.Wait()
	// The first error that is not another choice's cancellation.
	var first error
	for _, err := range errs {
		if err != nil && (first == nil || errors.Is(first, context.Canceled)) {
			first = err
		}
	}
	return results, first
}

// decode generates one choice from its prefilled sequence seq, whose last
// position's logits are row; it takes seq over (batched, seq joins the
// batch, which closes it; else it closes it).
func (e *Engine) decode(ctx context.Context, sched *scheduler, seq *model.Sequence, row []float32, req *Request, emit func(string) error, res *Result) error {
	var mb *member
	defer func() {
		if mb != nil {
			sched.leave(mb)
			res.KVBytes = mb.kvBytes.Load()
			return
		}
		res.KVBytes = seq.KVBytes()
		seq.Close()
	}()
	// post starts the step that feeds id; next waits for its logits.
	var posted int64
	post := func(id int) error {
		if sched == nil {
			posted = int64(id)
			return nil
		}
		if mb != nil {
			sched.post(mb, int64(id))
			return nil
		}
		m, err := sched.join(seq, int64(id))
		if err != nil {
			return err
		}
		mb = m
		return nil
	}
	next := func() ([]float32, error) {
		if sched == nil {
			return seq.Step(ctx, []int64{posted})
		}
		return sched.wait(ctx, mb)
	}

	smp := sampler.New(req.Sampling, e.vocab)
	smp.AddPrompt(req.Prompt)
	dec := e.Tokenizer.NewStreamDecoder(tokenizer.SkipSpecial())
	stop := newStopper(req.Stop)
	v := e.Model.Vocab()
	var lp *logprober
	if req.Logprobs != nil {
		lp = newLogprober(e.vocab, req.TopLogprobs)
	}
	send := func(s string) error {
		if lp != nil && (s != "" || len(lp.pending) > 0) {
			return req.Logprobs(s, lp.take())
		}
		if s == "" {
			return nil
		}
		return emit(s)
	}
	var mask []uint64
	if req.Constraint != nil {
		mask = make([]uint64, (v+63)/64)
	}
	var err error
	for {
		if lp != nil {
			lp.observe(row)
		}
		if c := req.Constraint; c != nil {
			if c.Done() {
				res.Finish = FinishStop
				break
			}
			if err := e.constrain(c, row, mask); err != nil {
				return err
			}
		}
		id := smp.Sample(row)
		if c := req.Constraint; c != nil && !e.eos[id] {
			if err := c.Advance(id); err != nil {
				return fmt.Errorf("%w: token %d: %v", ErrConstraint, id, err)
			}
		}
		res.CompletionTokens++
		if res.CompletionTokens == 1 {
			res.FirstToken = time.Now()
		}
		if e.eos[id] && !req.IgnoreEOS {
			res.Finish = FinishStop
			break
		}
		if lp != nil {
			lp.add(id)
		}
		text, stopped := stop.push(dec.Add(id))
		more := !stopped && res.CompletionTokens < req.MaxTokens
		// The next step starts before the text goes out: the client's
		// stream and the model run side by side.
		if more {
			if err := post(id); err != nil {
				return err
			}
		}
		if err := send(text); err != nil {
			return err
		}
		if stopped {
			res.Finish = FinishStop
			return nil
		}
		if !more {
			res.Finish = FinishLength
			break
		}
		if row, err = next(); err != nil {
			return err
		}
	}
	// The end: what the decoder and the stop matcher held back is final.
	text, stopped := stop.push(dec.Flush())
	if !stopped {
		text += stop.flush()
	}
	if stopped {
		res.Finish = FinishStop
	}
	return send(text)
}

// constrain removes from row every id the constraint does not allow, and
// the EOS ids unless it can end here. It works a mask word at a time: a
// word of allowed ids costs nothing, a forbidden id one store.
func (e *Engine) constrain(c Constraint, row []float32, mask []uint64) error {
	c.FillMask(mask)
	end := c.CanEnd()
	var eosVals [8]float32
	if end {
		for k, id := range e.eosIDs[:min(len(e.eosIDs), len(eosVals))] {
			eosVals[k] = row[id]
		}
	}
	inf := float32(math.Inf(-1))
	n := min(len(row), e.vocab)
	allowed := 0
	for w := 0; w*64 < n; w++ {
		base := w * 64
		m := mask[w]
		if base+64 > n {
			m &= 1<<(n-base) - 1
		}
		allowed += bits.OnesCount64(m)
		z := ^m
		if base+64 > n {
			z &= 1<<(n-base) - 1
		}
		for z != 0 {
			row[base+bits.TrailingZeros64(z)] = inf
			z &= z - 1
		}
	}
	for i := n; i < len(row); i++ {
		row[i] = inf
	}
	for k, id := range e.eosIDs {
		switch {
		case end && k < len(eosVals):
			row[id] = eosVals[k]
			allowed++
		default:
			row[id] = inf
		}
	}
	if allowed == 0 {
		return fmt.Errorf("%w: no token is allowed and the output is not complete", ErrConstraint)
	}
	return nil
}

// prefill feeds the prompt to seq in chunks and returns the last token's
// logits. One prefill chunk runs at a time, beside the batch's steps, or
// (Interleave) in its turn between them.
func (e *Engine) prefill(ctx context.Context, sched *scheduler, seq *model.Sequence, feed []int64) ([]float32, error) {
	chunk := e.chunk()
	if chunk <= 0 {
		chunk = len(feed)
	}
	var logits []float32
	var err error
	for off := 0; off < len(feed); off += chunk {
		part := feed[off:min(off+chunk, len(feed))]
		switch {
		case e.overlap:
			logits, err = seq.Step(ctx, part)
		case sched == nil || !e.Interleave:
			select {
			case e.prefilling <- struct{}{}:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			logits, err = seq.Step(ctx, part)
			<-e.prefilling
		default:
			err = sched.turn(ctx, func() error {
				logits, err = seq.Step(ctx, part)
				// Inside the turn: no batch step runs, so the hook sees
				// exactly the steps that ran before this chunk's end.
				if err == nil && e.afterChunk != nil {
					e.afterChunk()
				}
				return err
			})
			if err != nil {
				return nil, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if e.afterChunk != nil {
			e.afterChunk()
		}
	}
	v := e.Model.Vocab()
	n := len(logits) / v
	return logits[(n-1)*v : n*v], nil
}
