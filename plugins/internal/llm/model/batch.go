package model

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	ortgo "github.com/yalue/onnxruntime_go"
)

// ErrNoBatching reports a model whose graph cannot step several sequences
// of different lengths in one run (see Model.CanBatch).
var ErrNoBatching = errors.New("model: the graph cannot batch sequences of different lengths")

// Batch is the KV cache of several sequences in one buffer per cache
// tensor, [rows, kv_heads, capacity, head_dim], stepped together: Step
// feeds one token to every row in one ONNX Runtime run.
//
// The cache is in place: each past_key_values.N input and its present.N
// output are the same memory, so GroupQueryAttention runs in its
// shared-buffer mode and writes each row's new key and value at that
// row's own length (seqlens_k, from the attention mask's row sums);
// nothing is copied from step to step. Rows are padded to the longest:
// row i attends over its first Len(i) tokens only, so a row's padding
// never reaches its logits.
//
// A sequence joins by moving a prefilled Sequence's cache into a new last
// row (Join) and leaves by Leave, which moves the last row into its place;
// both happen between steps. A Batch is not safe for concurrent use.
type Batch struct {
	m    *Model
	rows []batchRow
	// capRows × capTok tokens are allocated per cache tensor.
	capRows, capTok int
	kv              [][]byte // per cache tensor (per layer: key, value)

	// kvVals are ORT values over kv for (valRows, valTok): the past
	// inputs and the present outputs, over the same memory.
	kvIn, kvOut     []ortgo.Value
	valRows, valTok int
	ids, pos, mask  []int64
	logits          []float32
	logit16         []uint16
	ro              *ortgo.RunOptions
	ins, outs       []ortgo.Value
	closed          bool
}

type batchRow struct {
	n, maxLen int
}

// CanBatch reports whether Batch can step this model: its graph computes
// attention with com.microsoft GroupQueryAttention (whose CPU kernel
// reads each row's length from seqlens_k and updates a shared KV buffer
// in place) and takes attention_mask and position_ids, which give each
// row its own length and position.
func (m *Model) CanBatch() bool {
	return m.hasMask && m.hasPos && m.Graph.Ops["com.microsoft:GroupQueryAttention"] > 0
}

// NewBatch returns an empty batch.
func (m *Model) NewBatch() (*Batch, error) {
	if m.session == nil {
		return nil, ErrClosed
	}
	if !m.CanBatch() {
		return nil, fmt.Errorf("%w: %s needs attention_mask, position_ids and com.microsoft GroupQueryAttention",
			ErrNoBatching, m.Files.ONNX)
	}
	ro, err := ortgo.NewRunOptions()
	if err != nil {
		return nil, fmt.Errorf("model: run options: %w", err)
	}
	return &Batch{m: m, kv: make([][]byte, 2*m.Config.Layers), ro: ro}, nil
}

// Size is the number of rows (sequences) in the batch.
func (b *Batch) Size() int { return len(b.rows) }

// Len is the number of tokens in row i's cache.
func (b *Batch) Len(i int) int { return b.rows[i].n }

// MaxLen is the most tokens row i may hold.
func (b *Batch) MaxLen(i int) int { return b.rows[i].maxLen }

// KVBytes is the memory the batch's cache buffers hold now.
func (b *Batch) KVBytes() int64 {
	var n int64
	for _, buf := range b.kv {
		n += int64(len(buf))
	}
	return n
}

// Capacity is the number of tokens each row may hold before the buffers
// grow.
func (b *Batch) Capacity() int { return b.capTok }

func (b *Batch) tokenBytes() int {
	c := b.m.Config
	return c.KVHeads * c.HeadDim * b.m.KVElem.Size()
}

// resize reallocates the buffers for rows × tok tokens and copies the
// rows' caches over.
func (b *Batch) resize(rows, tok int) {
	if rows == b.capRows && tok == b.capTok {
		return
	}
	b.dropValues()
	c := b.m.Config
	tb, hb := b.tokenBytes(), c.HeadDim*b.m.KVElem.Size()
	for j, old := range b.kv {
		var nb []byte
		if rows > 0 && tok > 0 {
			nb = alloc(rows * tok * tb)
		}
		for r, row := range b.rows {
			for h := 0; h < c.KVHeads; h++ {
				src := old[(r*c.KVHeads+h)*b.capTok*hb:]
				dst := nb[(r*c.KVHeads+h)*tok*hb:]
				copy(dst[:row.n*hb], src[:row.n*hb])
			}
		}
		b.kv[j] = nb
	}
	b.capRows, b.capTok = rows, tok
}

// Join moves s's cache into a new last row and returns its index; s is
// left empty (Reset), to be closed or reused. s must hold at least one
// token. The batch's buffers grow as needed (by doubling).
func (b *Batch) Join(s *Sequence) (int, error) {
	if b.closed {
		return 0, ErrClosed
	}
	if s.m != b.m {
		return 0, fmt.Errorf("model: Join of a sequence of another model")
	}
	if s.n == 0 {
		return 0, fmt.Errorf("model: Join of an empty sequence (prefill it first)")
	}
	rows, tok := b.capRows, b.capTok
	if len(b.rows)+1 > rows {
		rows = max(2*rows, 1)
	}
	if s.n+1 > tok {
		tok = b.grownCap(s.n+1, s.maxLen)
	}
	b.resize(rows, tok)
	c := b.m.Config
	hb := c.HeadDim * b.m.KVElem.Size()
	r := len(b.rows)
	for j := range b.kv {
		sl := &s.slots[j]
		src := sl.buf[sl.cur]
		for h := 0; h < c.KVHeads; h++ {
			// The sequence's present is [1, kv_heads, n, head_dim].
			copy(b.kv[j][(r*c.KVHeads+h)*b.capTok*hb:][:s.n*hb], src[h*s.n*hb:][:s.n*hb])
		}
	}
	b.rows = append(b.rows, batchRow{n: s.n, maxLen: s.maxLen})
	s.Reset()
	return r, nil
}

// grownCap is the capacity for a row that needs need tokens: double the
// current one (at least 16), at most the longest row's limit.
func (b *Batch) grownCap(need, maxLen int) int {
	limit := maxLen
	for _, r := range b.rows {
		limit = max(limit, r.maxLen)
	}
	return max(need, min(max(2*b.capTok, 16), limit))
}

// Leave removes row i: the last row moves into its place (so the row
// that was Size()-1 is i afterwards). The buffers shrink when the rows
// left need a quarter of them or less, and are released when the batch is
// empty.
func (b *Batch) Leave(i int) {
	last := len(b.rows) - 1
	if i != last {
		c := b.m.Config
		hb := c.HeadDim * b.m.KVElem.Size()
		n := b.rows[last].n
		for j := range b.kv {
			for h := 0; h < c.KVHeads; h++ {
				src := b.kv[j][(last*c.KVHeads+h)*b.capTok*hb:]
				dst := b.kv[j][(i*c.KVHeads+h)*b.capTok*hb:]
				copy(dst[:n*hb], src[:n*hb])
			}
		}
		b.rows[i] = b.rows[last]
	}
	b.rows = b.rows[:last]
	if len(b.rows) == 0 {
		b.resize(0, 0)
		return
	}
	longest := 0
	for _, r := range b.rows {
		longest = max(longest, r.n+1)
	}
	rows, tok := b.capRows, b.capTok
	if 4*len(b.rows) <= rows {
		rows = max(len(b.rows), rows/2)
	}
	if 4*longest <= tok {
		tok = max(2*longest, 16)
	}
	b.resize(rows, tok)
}

// Step feeds tokens[i] to row i, for every row, at position Len(i), adds
// their keys and values to the cache and returns their logits: Size()
// rows of Model.Vocab() float32 each. The slice is reused by the next
// Step. Cancelling ctx stops ONNX Runtime within the step; a failed or
// cancelled step leaves the rows' lengths as they were (their caches hold
// a key and value past their lengths, which the next step overwrites).
func (b *Batch) Step(ctx context.Context, tokens []int64) ([]float32, error) {
	if b.closed || b.m.session == nil {
		return nil, ErrClosed
	}
	n := len(b.rows)
	if len(tokens) != n || n == 0 {
		return nil, fmt.Errorf("model: batch Step with %d tokens for %d rows", len(tokens), n)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	vocab := b.m.Config.Vocab
	longest := 0
	for i, r := range b.rows {
		if r.n+1 > r.maxLen {
			return nil, fmt.Errorf("%w: row %d: %d tokens + 1 new > %d", ErrContextFull, i, r.n, r.maxLen)
		}
		if id := tokens[i]; id < 0 || id >= int64(vocab) {
			return nil, fmt.Errorf("model: row %d: token id %d outside the vocabulary (%d)", i, id, vocab)
		}
		longest = max(longest, r.n+1)
	}
	if longest > b.capTok {
		b.resize(b.capRows, b.grownCap(longest, 0))
	}
	if err := b.values(n); err != nil {
		return nil, err
	}

	// Inputs: ids and positions [n, 1]; the mask [n, longest], row i
	// ones over its Len(i)+1 tokens.
	b.ids = append(b.ids[:0], tokens...)
	b.pos, b.mask = b.pos[:0], b.mask[:0]
	for _, r := range b.rows {
		b.pos = append(b.pos, int64(r.n))
		for k := 0; k < longest; k++ {
			v := int64(0)
			if k <= r.n {
				v = 1
			}
			b.mask = append(b.mask, v)
		}
	}
	var made []ortgo.Value
	defer func() {
		for _, v := range made {
			v.Destroy()
		}
	}()
	b.ins, b.outs = b.ins[:0], b.outs[:0]
	for _, in := range []struct {
		data []int64
		cols int
	}{{b.ids, 1}, {b.mask, longest}, {b.pos, 1}} {
		t, err := ortgo.NewTensor(ortgo.NewShape(int64(n), int64(in.cols)), in.data)
		if err != nil {
			return nil, fmt.Errorf("model: input tensor: %w", err)
		}
		made = append(made, t)
		b.ins = append(b.ins, t)
	}
	b.ins = append(b.ins, b.kvIn...)

	var logitsT ortgo.Value
	var err error
	shape := ortgo.NewShape(int64(n), 1, int64(vocab))
	if b.m.LogitsElem == ElemFloat16 {
		if cap(b.logit16) < n*vocab {
			b.logit16 = make([]uint16, n*vocab)
		}
		raw := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(b.logit16))), 2*n*vocab)
		logitsT, err = ortgo.NewCustomDataTensor(shape, raw, ortgo.TensorElementDataType(ElemFloat16))
	} else {
		if cap(b.logits) < n*vocab {
			b.logits = make([]float32, n*vocab)
		}
		logitsT, err = ortgo.NewTensor(shape, b.logits[:n*vocab])
	}
	if err != nil {
		return nil, fmt.Errorf("model: logits tensor: %w", err)
	}
	made = append(made, logitsT)
	b.outs = append(b.outs, logitsT)
	b.outs = append(b.outs, b.kvOut...)

	// n rows of one token each are an M = n matrix product for every
	// linear layer, as a prefill of n tokens is: from PrefillMin rows on,
	// the prefill graph's GEMM is the faster one (Options.PrefillGraph).
	if err := runSession(ctx, b.m.sessionFor(n), b.ro, b.ins, b.outs); err != nil {
		return nil, err
	}
	for i := range b.rows {
		b.rows[i].n++
	}
	if b.m.LogitsElem == ElemFloat16 {
		if cap(b.logits) < n*vocab {
			b.logits = make([]float32, n*vocab)
		}
		out := b.logits[:n*vocab]
		for i, h := range b.logit16[:n*vocab] {
			out[i] = halfToFloat(h)
		}
	}
	return b.logits[:n*vocab], nil
}

// values makes (or keeps) the ORT values of the cache for n rows at the
// current capacity: [n, kv_heads, capacity, head_dim] over the first n
// rows of each buffer, once as the past input and once as the present
// output.
func (b *Batch) values(n int) error {
	if b.kvIn != nil && b.valRows == n && b.valTok == b.capTok {
		return nil
	}
	b.dropValues()
	c := b.m.Config
	shape := ortgo.NewShape(int64(n), int64(c.KVHeads), int64(b.capTok), int64(c.HeadDim))
	size := n * b.capTok * b.tokenBytes()
	for _, buf := range b.kv {
		for _, dst := range []*[]ortgo.Value{&b.kvIn, &b.kvOut} {
			t, err := ortgo.NewCustomDataTensor(shape, buf[:size], ortgo.TensorElementDataType(b.m.KVElem))
			if err != nil {
				b.dropValues()
				return fmt.Errorf("model: KV tensor: %w", err)
			}
			*dst = append(*dst, t)
		}
	}
	b.valRows, b.valTok = n, b.capTok
	return nil
}

func (b *Batch) dropValues() {
	for _, v := range b.kvIn {
		v.Destroy()
	}
	for _, v := range b.kvOut {
		v.Destroy()
	}
	b.kvIn, b.kvOut = nil, nil
}

// Close releases the batch's ONNX Runtime values and buffers.
func (b *Batch) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	b.dropValues()
	b.rows, b.kv = nil, nil
	return b.ro.Destroy()
}
