package engine

import "math"

// MaxTopLogprobs is the most alternatives a position reports (OpenAI's
// limit for chat).
const MaxTopLogprobs = 20

// Logprob is the log probability of a generated token and the most likely
// tokens at its position.
type Logprob struct {
	// ID is the generated token.
	ID int
	// Logprob is its natural-log probability.
	Logprob float32
	// Top are the Request.TopLogprobs most likely tokens at the position,
	// most likely first (ties: lower id first).
	Top []TopLogprob
}

// TopLogprob is one of the most likely tokens at a position.
type TopLogprob struct {
	ID      int
	Logprob float32
}

// logprober computes log probabilities from the model's logits as they
// come out of the model: a log-softmax over the ids the sampler may draw,
// before logit_bias, penalties, temperature, truncation and constraints
// (vLLM's default, "raw_logprobs"; what OpenAI reports). It holds those of
// the tokens whose text has not gone out yet.
type logprober struct {
	vocab int
	top   int
	raw   []float32 // the last position's logits, before the sampler changes them
	lse   float64   // log-sum-exp of raw
	best  []TopLogprob
	// pending are the tokens generated since the last text went out.
	pending []Logprob
}

func newLogprober(vocab, top int) *logprober {
	return &logprober{vocab: vocab, top: min(max(top, 0), MaxTopLogprobs), raw: make([]float32, vocab)}
}

// observe reads the logits of the next position, before sampling changes
// them.
func (p *logprober) observe(row []float32) {
	raw := p.raw
	copy(raw, row[:p.vocab])
	m := math.Inf(-1)
	for _, x := range raw {
		if f := float64(x); f > m {
			m = f
		}
	}
	sum := 0.0
	if !math.IsInf(m, -1) {
		for _, x := range raw {
			if f := float64(x); f > math.Inf(-1) { // NaN fails too
				sum += math.Exp(f - m)
			}
		}
	}
	p.lse = m + math.Log(sum)
	// The top k by insertion into a sorted list: one comparison per id
	// for all but the few that enter it.
	k := p.top
	p.best = p.best[:0]
	if k == 0 {
		return
	}
	for id, x := range raw {
		if x != x || (len(p.best) == k && x <= p.best[k-1].Logprob) {
			continue
		}
		if len(p.best) < k {
			p.best = append(p.best, TopLogprob{})
		}
		i := len(p.best) - 1
		for i > 0 && p.best[i-1].Logprob < x {
			p.best[i] = p.best[i-1]
			i--
		}
		p.best[i] = TopLogprob{ID: id, Logprob: x}
	}
}

// add records the token drawn at the observed position.
func (p *logprober) add(id int) {
	lp := Logprob{ID: id, Logprob: p.logprob(p.raw[id])}
	if len(p.best) > 0 {
		lp.Top = make([]TopLogprob, len(p.best))
		for i, b := range p.best {
			lp.Top[i] = TopLogprob{ID: b.ID, Logprob: p.logprob(b.Logprob)}
		}
	}
	p.pending = append(p.pending, lp)
}

func (p *logprober) logprob(x float32) float32 {
	if x != x {
		return float32(math.Inf(-1))
	}
	return float32(float64(x) - p.lse)
}

// take returns the pending tokens and forgets them.
func (p *logprober) take() []Logprob {
	out := p.pending
	p.pending = nil
	return out
}
