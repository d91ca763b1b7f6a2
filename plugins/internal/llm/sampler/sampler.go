package sampler

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// ErrParams reports sampling parameters out of range; Validate's errors
// are *ParamError values that match it with errors.Is.
var ErrParams = errors.New("sampler: invalid parameters")

// ParamError names the parameter Validate refused.
type ParamError struct {
	// Param is the OpenAI name of the parameter, such as "top_p".
	Param string
	// Reason says what is wrong with it.
	Reason string
}

func (e *ParamError) Error() string { return "sampler: " + e.Reason }

// Is makes a ParamError match ErrParams.
func (e *ParamError) Is(target error) bool { return target == ErrParams }

// Params are one request's sampling parameters. The zero value is greedy
// decoding with no penalties.
type Params struct {
	// Temperature divides the logits before sampling; 0 means greedy
	// (argmax, ties to the lowest id). Must be ≥ 0.
	Temperature float64

	// TopK keeps the k most likely tokens; 0 disables top-k.
	TopK int

	// TopP keeps the smallest set of most likely tokens whose probability
	// reaches TopP; 0 and 1 disable top-p.
	TopP float64

	// MinP drops tokens less likely than MinP times the most likely one;
	// 0 disables min-p.
	MinP float64

	// RepetitionPenalty divides the positive logits (multiplies the
	// negative ones) of every token of the prompt and of the output so
	// far; 0 and 1 disable it.
	RepetitionPenalty float64

	// PresencePenalty is subtracted from the logit of every token
	// generated at least once (OpenAI range -2–2).
	PresencePenalty float64

	// FrequencyPenalty is subtracted from the logit of every generated
	// token once per time it was generated (OpenAI range -2–2).
	FrequencyPenalty float64

	// LogitBias is added to the logits of the given token ids.
	LogitBias map[int]float32

	// Seed seeds the random draws.
	Seed uint64
}

// Validate checks p for a vocabulary of vocab tokens. It reports the
// first problem as a *ParamError.
func (p *Params) Validate(vocab int) error {
	finite := func(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
	bad := func(param, format string, args ...any) error {
		return &ParamError{Param: param, Reason: fmt.Sprintf(format, args...)}
	}
	switch {
	case !finite(p.Temperature) || p.Temperature < 0:
		return bad("temperature", "temperature %v is not a number ≥ 0", p.Temperature)
	case p.TopK < 0:
		return bad("top_k", "top_k %d is negative", p.TopK)
	case !finite(p.TopP) || p.TopP < 0 || p.TopP > 1:
		return bad("top_p", "top_p %v is outside [0, 1]", p.TopP)
	case !finite(p.MinP) || p.MinP < 0 || p.MinP > 1:
		return bad("min_p", "min_p %v is outside [0, 1]", p.MinP)
	case !finite(p.RepetitionPenalty) || p.RepetitionPenalty < 0:
		return bad("repetition_penalty", "repetition_penalty %v is not a number ≥ 0", p.RepetitionPenalty)
	case !finite(p.PresencePenalty):
		return bad("presence_penalty", "presence_penalty %v is not a number", p.PresencePenalty)
	case !finite(p.FrequencyPenalty):
		return bad("frequency_penalty", "frequency_penalty %v is not a number", p.FrequencyPenalty)
	}
	for id, b := range p.LogitBias {
		if id < 0 || id >= vocab {
			return bad("logit_bias", "logit_bias token id %d is outside the vocabulary (0-%d)", id, vocab-1)
		}
		if math.IsNaN(float64(b)) {
			return bad("logit_bias", "logit_bias for token %d is not a number", id)
		}
	}
	return nil
}

// Greedy reports whether p picks the most likely token.
func (p *Params) Greedy() bool { return p.Temperature == 0 }

// Sampler draws the tokens of one generation. It is not safe for
// concurrent use.
type Sampler struct {
	p     Params
	vocab int
	rng   *rand.Rand
	rep   map[int]struct{} // prompt and generated tokens (repetition penalty)
	count map[int]int      // generated tokens (presence, frequency)
	idx   []int32          // candidate ids
	big   []int32          // candidates above tailProb
	prob  []float32        // unnormalized probabilities, by id
}

// New returns a sampler over the first vocab logits of each row (the
// rest, such as padding rows of a model whose logits are wider than its
// tokenizer, are never drawn).
func New(p Params, vocab int) *Sampler {
	s := &Sampler{p: p, vocab: vocab, rng: rand.New(rand.NewPCG(p.Seed, p.Seed^0x9e3779b97f4a7c15))}
	if s.repetition() {
		s.rep = map[int]struct{}{}
	}
	if p.PresencePenalty != 0 || p.FrequencyPenalty != 0 {
		s.count = map[int]int{}
	}
	return s
}

func (s *Sampler) repetition() bool { return s.p.RepetitionPenalty != 0 && s.p.RepetitionPenalty != 1 }

// AddPrompt records the prompt's tokens for the repetition penalty.
func (s *Sampler) AddPrompt(ids []int) {
	if s.rep == nil {
		return
	}
	for _, id := range ids {
		s.rep[id] = struct{}{}
	}
}

// Sample picks the next token from logits (at least vocab long; its
// first vocab entries are modified) and records it for the penalties.
func (s *Sampler) Sample(logits []float32) int {
	l := logits[:s.vocab]
	s.penalize(l)
	var id int
	if s.p.Greedy() {
		id = argmax(l)
	} else {
		id = s.draw(l)
	}
	s.accept(id)
	return id
}

func (s *Sampler) accept(id int) {
	if s.rep != nil {
		s.rep[id] = struct{}{}
	}
	if s.count != nil {
		s.count[id]++
	}
}

// penalize applies the logit bias and the penalties in place.
func (s *Sampler) penalize(l []float32) {
	for id, b := range s.p.LogitBias {
		if id >= 0 && id < len(l) {
			l[id] += b
		}
	}
	if s.rep != nil {
		rp := float32(s.p.RepetitionPenalty)
		for id := range s.rep {
			if id < 0 || id >= len(l) {
				continue
			}
			if l[id] > 0 {
				l[id] /= rp
			} else {
				l[id] *= rp
			}
		}
	}
	for id, n := range s.count {
		if id >= 0 && id < len(l) {
			l[id] -= float32(s.p.PresencePenalty + s.p.FrequencyPenalty*float64(n))
		}
	}
}

// argmax is the id of the largest logit, the lowest such id on ties; NaN
// logits are never picked unless all are NaN (then 0).
func argmax(l []float32) int {
	best, bv := 0, float32(math.Inf(-1))
	found := false
	for i, v := range l {
		if v > bv || (!found && v == bv) {
			best, bv, found = i, v, true
		}
	}
	return best
}

// tailProb is the probability, relative to the most likely candidate,
// below which top-p and min-p first try to do without a token: when the
// candidates above it already reach top_p (and min_p is above it), the
// ones below cannot be in the nucleus, and the selection runs on the few
// above instead of the whole vocabulary. The result is exact either way.
const tailProb = 1e-4

// draw samples from the tempered, truncated distribution.
func (s *Sampler) draw(l []float32) int {
	n := len(l)
	if cap(s.prob) < n {
		s.prob = make([]float32, n)
	}
	prob := s.prob[:n]
	// Candidates: all ids (idx nil), or the top k by logit.
	var idx []int32
	if k := s.p.TopK; k > 0 && k < n {
		idx = s.ids(n)
		selectTop(idx, l, k)
		idx = idx[:k]
	}
	// Probabilities relative to the most likely candidate (which gets 1).
	top := float32(math.Inf(-1))
	if idx == nil {
		for _, v := range l {
			if v > top {
				top = v
			}
		}
	} else {
		for _, i := range idx {
			if l[i] > top {
				top = l[i]
			}
		}
	}
	if math.IsInf(float64(top), -1) {
		return argmax(l) // nothing has any probability
	}
	invT := float32(1 / s.p.Temperature)
	tp, mp := s.p.TopP, s.p.MinP
	truncate := (tp > 0 && tp < 1) || mp > 0
	var sum, bigSum float64
	big := s.big[:0]
	one := func(i int32) {
		p := expNeg((l[i] - top) * invT)
		if p != p { // NaN logit
			p = 0
		}
		prob[i] = p
		sum += float64(p)
		if truncate && p > tailProb {
			bigSum += float64(p)
			big = append(big, i)
		}
	}
	if idx == nil {
		for i := range l {
			one(int32(i))
		}
	} else {
		for _, i := range idx {
			one(i)
		}
	}
	s.big = big
	if truncate {
		if (tp <= 0 || tp >= 1 || bigSum >= tp*sum) && (mp <= 0 || mp > tailProb) {
			idx, sum = big, bigSum
		} else if idx == nil {
			idx = s.ids(n)
		}
	}
	// top-p on the probabilities.
	if tp > 0 && tp < 1 && len(idx) > 1 {
		idx = idx[:nucleus(idx, prob, tp*sum)]
		sum = 0
		for _, i := range idx {
			sum += float64(prob[i])
		}
	}
	// min-p: the most likely candidate has probability 1 here.
	if mp > 0 {
		keep := idx[:0]
		sum = 0
		for _, i := range idx {
			if prob[i] >= float32(mp) {
				keep = append(keep, i)
				sum += float64(prob[i])
			}
		}
		idx = keep
	}
	u := s.rng.Float64() * sum
	last := -1
	pick := func(i int) bool {
		p := float64(prob[i])
		if p <= 0 {
			return false
		}
		last = i
		if u < p {
			return true
		}
		u -= p
		return false
	}
	if idx == nil {
		for i := range prob {
			if pick(i) {
				return i
			}
		}
	} else {
		for _, i := range idx {
			if pick(int(i)) {
				return int(i)
			}
		}
	}
	if last >= 0 {
		return last // rounding left u just above the total
	}
	return argmax(l)
}

// ids returns the buffer of candidate ids filled with 0..n-1.
func (s *Sampler) ids(n int) []int32 {
	if cap(s.idx) < n {
		s.idx = make([]int32, n)
	}
	idx := s.idx[:n]
	for i := range idx {
		idx[i] = int32(i)
	}
	return idx
}

// expNeg is e^x for x ≤ 0 (and NaN for NaN), to about 1e-7 relative
// error: x = (16m + j)·ln2/16 + r with |r| ≤ ln2/32, e^r by a cubic,
// 2^(j/16) from a table, 2^m by the exponent bits. Several times faster
// than math.Exp, which matters over a 150 000-token vocabulary.
func expNeg(x float32) float32 {
	if x < -87 {
		return 0
	}
	const (
		k16log2e = 16 * 1.44269504088896341
		ln2hi    = 0.693359375 / 16 // ln2/16 split so that n·ln2hi is exact
		ln2lo    = -2.12194440e-4 / 16
	)
	n := int32(x*k16log2e - 0.5) // round to nearest (x ≤ 0; conversion truncates toward zero)
	r := x - float32(n)*ln2hi - float32(n)*ln2lo
	p := 1 + r*(1+r*(0.5+r*(1.0/6)))
	return p * exp2Frac[n&15] * math.Float32frombits(uint32((n>>4)+127)<<23)
}

// exp2Frac[j] is 2^(j/16).
var exp2Frac = func() (t [16]float32) {
	for j := range t {
		t[j] = float32(math.Exp2(float64(j) / 16))
	}
	return t
}()

// partition3 rearranges idx (by key v, descending) into idx[:a] > pivot,
// idx[a:b] == pivot and idx[b:] < pivot, with a deterministic pivot (the
// median of the first, middle and last candidates). NaN keys count as
// smaller than everything.
func partition3(idx []int32, v []float32) (a, b int) {
	key := func(i int32) float32 {
		x := v[i]
		if x != x {
			return float32(math.Inf(-1))
		}
		return x
	}
	x, y, z := key(idx[0]), key(idx[len(idx)/2]), key(idx[len(idx)-1])
	pivot := max(min(x, y), min(max(x, y), z))
	// Dutch national flag.
	lt, i, gt := 0, 0, len(idx)
	for i < gt {
		k := key(idx[i])
		switch {
		case k > pivot:
			idx[lt], idx[i] = idx[i], idx[lt]
			lt++
			i++
		case k < pivot:
			gt--
			idx[gt], idx[i] = idx[i], idx[gt]
		default:
			i++
		}
	}
	return lt, gt
}

// selectTop rearranges idx so that idx[:k] hold the k largest keys (in no
// particular order; ties at the boundary are broken deterministically).
func selectTop(idx []int32, v []float32, k int) {
	lo, hi := 0, len(idx)
	for hi-lo > 1 {
		a, b := partition3(idx[lo:hi], v)
		a, b = a+lo, b+lo
		switch {
		case k < a:
			hi = a
		case k <= b:
			return
		default:
			lo = b
		}
	}
}

// nucleus rearranges idx and returns n so that idx[:n] is the smallest set
// of the most probable candidates whose probability (by p) reaches target
// (at least one candidate).
func nucleus(idx []int32, p []float32, target float64) int {
	lo, hi := 0, len(idx)
	need := target
	for hi-lo > 1 && need > 0 {
		a, b := partition3(idx[lo:hi], p)
		a, b = a+lo, b+lo
		var above float64
		for _, i := range idx[lo:a] {
			above += float64(p[i])
		}
		if above >= need {
			hi = a
			continue
		}
		need -= above
		pv := float64(p[idx[a]])
		if eq := float64(b-a) * pv; eq >= need {
			n := a + int(math.Ceil(need/pv))
			return max(min(n, b), 1)
		}
		need -= float64(b-a) * pv
		lo = b
	}
	if need > 0 && hi > lo {
		return max(hi, 1)
	}
	return max(lo, 1)
}
