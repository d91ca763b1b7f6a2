package model

import (
	"context"
	"errors"
	"fmt"
	"math"
	"unsafe"

	ortgo "github.com/yalue/onnxruntime_go"
)

// ErrClosed reports the use of a closed Sequence or Model.
var ErrClosed = errors.New("model: closed")

// Sequence is the state of one generation: the tokens fed so far and
// their KV cache. It is not safe for concurrent use; many Sequences may
// step the same Model concurrently.
//
// Each cache tensor (past_key_values.N.key/value) has two buffers: the
// step reads the past from one and ONNX Runtime writes the present
// ([1, kv_heads, past+new, head_dim]) into the other, which then is the
// next step's past — the same ORT value, not a copy. Buffers grow by
// doubling, so a sequence of L tokens holds at most about
// 4 × L × KVBytesPerToken.
type Sequence struct {
	m       *Model
	maxLen  int
	n       int
	slots   []kvSlot      // per layer: key, value
	past    []ortgo.Value // the slots' current past values
	ids     []int64
	pos     []int64
	ones    []int64
	logits  []float32
	logit16 []uint16
	ro      *ortgo.RunOptions
	ins     []ortgo.Value
	outs    []ortgo.Value
	closed  bool
}

type kvSlot struct {
	buf [2][]byte
	cur int // buf[cur] holds the past
}

// NewSequence starts an empty sequence of at most maxLen tokens (0 means
// Model.MaxSequence).
func (m *Model) NewSequence(maxLen int) (*Sequence, error) {
	if m.session == nil {
		return nil, ErrClosed
	}
	if maxLen <= 0 || maxLen > m.MaxSequence {
		maxLen = m.MaxSequence
	}
	ro, err := ortgo.NewRunOptions()
	if err != nil {
		return nil, fmt.Errorf("model: run options: %w", err)
	}
	return &Sequence{m: m, maxLen: maxLen, slots: make([]kvSlot, 2*m.Config.Layers), ro: ro}, nil
}

// Len is the number of tokens in the cache.
func (s *Sequence) Len() int { return s.n }

// MaxLen is the most tokens the sequence may hold.
func (s *Sequence) MaxLen() int { return s.maxLen }

// KVBytes is the memory the KV cache buffers hold now.
func (s *Sequence) KVBytes() int64 {
	var b int64
	for _, sl := range s.slots {
		b += int64(len(sl.buf[0]) + len(sl.buf[1]))
	}
	return b
}

// tokenBytes is one token's size in one cache tensor.
func (s *Sequence) tokenBytes() int {
	c := s.m.Config
	return c.KVHeads * c.HeadDim * s.m.KVElem.Size()
}

func (s *Sequence) kvShape(tokens int) ortgo.Shape {
	c := s.m.Config
	return ortgo.NewShape(1, int64(c.KVHeads), int64(tokens), int64(c.HeadDim))
}

// alloc returns a zeroed, 8-byte aligned buffer of n bytes.
func alloc(n int) []byte {
	w := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(w))), n)
}

// Step feeds tokens at positions Len() .. Len()+len(tokens)-1 (the prompt,
// or part of it, on the first call; usually one token after that), adds
// their keys and values to the cache and returns their logits: len(tokens)
// rows of Model.Vocab() float32 each, row-major, or only the last token's
// row when Model.LastLogits (the last row is always
// logits[len(logits)-Vocab():]). The slice is reused by
// the next Step. Cancelling ctx stops ONNX Runtime within the step; a
// failed or cancelled step leaves the sequence as it was.
func (s *Sequence) Step(ctx context.Context, tokens []int64) ([]float32, error) {
	if s.closed || s.m.session == nil {
		return nil, ErrClosed
	}
	k := len(tokens)
	if k == 0 {
		return nil, fmt.Errorf("model: Step with no tokens")
	}
	if s.n+k > s.maxLen {
		return nil, fmt.Errorf("%w: %d tokens + %d new > %d", ErrContextFull, s.n, k, s.maxLen)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	vocab := s.m.Config.Vocab
	rows := k // logits rows
	if s.m.LastLogits {
		rows = 1
	}
	for _, id := range tokens {
		if id < 0 || id >= int64(vocab) {
			return nil, fmt.Errorf("model: token id %d outside the vocabulary (%d)", id, vocab)
		}
	}
	total := s.n + k
	tb := s.tokenBytes()
	if s.past == nil {
		if err := s.initPast(); err != nil {
			return nil, err
		}
	}

	// Inputs.
	s.ids = append(s.ids[:0], tokens...)
	s.pos = s.pos[:0]
	for i := 0; i < k; i++ {
		s.pos = append(s.pos, int64(s.n+i))
	}
	for len(s.ones) < total {
		s.ones = append(s.ones, 1)
	}
	s.ins, s.outs = s.ins[:0], s.outs[:0]
	var made []ortgo.Value // values this step created, released on failure
	fail := func(err error) ([]float32, error) {
		for _, v := range made {
			v.Destroy()
		}
		return nil, err
	}
	addIn := func(data []int64, n int) error {
		t, err := ortgo.NewTensor(ortgo.NewShape(1, int64(n)), data[:n])
		if err != nil {
			return fmt.Errorf("model: input tensor: %w", err)
		}
		made = append(made, t)
		s.ins = append(s.ins, t)
		return nil
	}
	if err := addIn(s.ids, k); err != nil {
		return fail(err)
	}
	if s.m.hasMask {
		if err := addIn(s.ones, total); err != nil {
			return fail(err)
		}
	}
	if s.m.hasPos {
		if err := addIn(s.pos, k); err != nil {
			return fail(err)
		}
	}
	nInputs := len(made)
	s.ins = append(s.ins, s.past...)

	// Outputs, all pre-allocated: logits, then the presents in the other
	// buffer of each slot.
	var logitsT ortgo.Value
	var err error
	if s.m.LogitsElem == ElemFloat16 {
		if cap(s.logit16) < rows*vocab {
			s.logit16 = make([]uint16, rows*vocab)
		}
		b := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s.logit16))), 2*rows*vocab)
		logitsT, err = ortgo.NewCustomDataTensor(ortgo.NewShape(1, int64(rows), int64(vocab)), b,
			ortgo.TensorElementDataType(ElemFloat16))
	} else {
		if cap(s.logits) < rows*vocab {
			s.logits = make([]float32, rows*vocab)
		}
		logitsT, err = ortgo.NewTensor(ortgo.NewShape(1, int64(rows), int64(vocab)), s.logits[:rows*vocab])
	}
	if err != nil {
		return fail(fmt.Errorf("model: logits tensor: %w", err))
	}
	made = append(made, logitsT)
	s.outs = append(s.outs, logitsT)
	for i := range s.slots {
		sl := &s.slots[i]
		dst := 1 - sl.cur
		if len(sl.buf[dst]) < total*tb {
			grow := max(total, min(2*len(sl.buf[sl.cur])/tb, s.maxLen), 16)
			sl.buf[dst] = alloc(min(grow, s.maxLen) * tb)
		}
		t, err := ortgo.NewCustomDataTensor(s.kvShape(total), sl.buf[dst][:total*tb], ortgo.TensorElementDataType(s.m.KVElem))
		if err != nil {
			return fail(fmt.Errorf("model: KV tensor: %w", err))
		}
		made = append(made, t)
		s.outs = append(s.outs, t)
	}

	if err := runSession(ctx, s.m.sessionFor(k), s.ro, s.ins, s.outs); err != nil {
		return fail(err)
	}

	// The presents become the past: release the old past values and the
	// inputs, keep the new values.
	for _, v := range s.past {
		v.Destroy()
	}
	for _, v := range made[:nInputs] {
		v.Destroy()
	}
	logitsT.Destroy()
	copy(s.past, s.outs[1:])
	for i := range s.slots {
		s.slots[i].cur = 1 - s.slots[i].cur
	}
	s.n = total
	if s.m.LogitsElem == ElemFloat16 {
		if cap(s.logits) < rows*vocab {
			s.logits = make([]float32, rows*vocab)
		}
		out := s.logits[:rows*vocab]
		for i, h := range s.logit16[:rows*vocab] {
			out[i] = halfToFloat(h)
		}
	}
	return s.logits[:rows*vocab], nil
}

// ErrTerminated is wrapped (with the context's error) by a step that ONNX
// Runtime stopped part-way because its context was cancelled; a step that
// completed before it noticed returns the context's error alone.
var ErrTerminated = errors.New("model: run terminated")

// run runs the session, terminating it if ctx is cancelled meanwhile.
func (s *Sequence) run(ctx context.Context) error {
	return runSession(ctx, s.m.session, s.ro, s.ins, s.outs)
}

// runSession runs session with ro, terminating it if ctx is cancelled
// meanwhile.
func runSession(ctx context.Context, session *ortgo.DynamicAdvancedSession, ro *ortgo.RunOptions, ins, outs []ortgo.Value) error {
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		_ = ro.Terminate()
	})
	err := session.RunWithOptions(ins, outs, ro)
	if !stop() {
		<-done
		_ = ro.UnsetTerminate()
	}
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return fmt.Errorf("model: step cancelled: %w: %w", ErrTerminated, cerr)
		}
		return fmt.Errorf("model: step: %w", err)
	}
	return ctx.Err()
}

// initPast makes the empty past values ([1, kv_heads, 0, head_dim]).
func (s *Sequence) initPast() error {
	tb := s.tokenBytes()
	s.past = make([]ortgo.Value, len(s.slots))
	for i := range s.slots {
		sl := &s.slots[i]
		if len(sl.buf[sl.cur]) == 0 {
			sl.buf[sl.cur] = alloc(min(16, s.maxLen) * tb)
		}
		t, err := ortgo.NewCustomDataTensor(s.kvShape(0), sl.buf[sl.cur], ortgo.TensorElementDataType(s.m.KVElem))
		if err != nil {
			for _, v := range s.past[:i] {
				v.Destroy()
			}
			s.past = nil
			return fmt.Errorf("model: KV tensor: %w", err)
		}
		s.past[i] = t
	}
	return nil
}

// Reset empties the sequence, keeping its buffers for reuse.
func (s *Sequence) Reset() {
	for _, v := range s.past {
		v.Destroy()
	}
	s.past = nil
	s.n = 0
}

// Close releases the sequence's ONNX Runtime values and buffers.
func (s *Sequence) Close() error {
	if s.closed {
		return nil
	}
	s.Reset()
	s.closed = true
	s.slots = nil
	return s.ro.Destroy()
}

// halfToFloat converts an IEEE 754 binary16 value.
func halfToFloat(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0x1f: // inf, NaN
		return math.Float32frombits(sign | 0xff<<23 | frac<<13)
	case exp != 0: // normal
		return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
	case frac == 0: // ±0
		return math.Float32frombits(sign)
	}
	// Subnormal: normalize.
	e := uint32(113)
	for frac&0x400 == 0 {
		frac <<= 1
		e--
	}
	return math.Float32frombits(sign | e<<23 | (frac&0x3ff)<<13)
}

// KVHeadBytes returns, of the cache tensor j (layer j/2; key, then value)
// and KV head h, the keys or values of tokens [from, to): (to − from) ×
// head_dim elements, a view into the sequence's buffer valid until its
// next Step.
func (s *Sequence) KVHeadBytes(j, h, from, to int) []byte {
	hb := s.m.Config.HeadDim * s.m.KVElem.Size()
	sl := &s.slots[j]
	return sl.buf[sl.cur][(h*s.n+from)*hb : (h*s.n+to)*hb]
}

// LoadKV fills an empty sequence with the keys and values of n tokens
// computed elsewhere (a prefix cache): fill(j, h, dst) writes cache tensor
// j's head h, n × head_dim elements, into dst. The next Step continues at
// position n.
func (s *Sequence) LoadKV(n int, fill func(j, h int, dst []byte)) error {
	if s.closed || s.m.session == nil {
		return ErrClosed
	}
	if s.n != 0 {
		return fmt.Errorf("model: LoadKV into a sequence of %d tokens", s.n)
	}
	if n <= 0 || n > s.maxLen {
		return fmt.Errorf("%w: LoadKV of %d tokens, at most %d", ErrContextFull, n, s.maxLen)
	}
	s.Reset()
	c := s.m.Config
	tb, hb := s.tokenBytes(), c.HeadDim*s.m.KVElem.Size()
	s.past = make([]ortgo.Value, len(s.slots))
	for j := range s.slots {
		sl := &s.slots[j]
		if len(sl.buf[sl.cur]) < n*tb {
			sl.buf[sl.cur] = alloc(min(max(2*n, 16), s.maxLen) * tb)
		}
		for h := 0; h < c.KVHeads; h++ {
			fill(j, h, sl.buf[sl.cur][h*n*hb:(h+1)*n*hb])
		}
		t, err := ortgo.NewCustomDataTensor(s.kvShape(n), sl.buf[sl.cur][:n*tb], ortgo.TensorElementDataType(s.m.KVElem))
		if err != nil {
			for _, v := range s.past[:j] {
				v.Destroy()
			}
			s.past = nil
			return fmt.Errorf("model: KV tensor: %w", err)
		}
		s.past[j] = t
	}
	s.n = n
	return nil
}
