package tokenizer

import (
	"encoding/json"
	"fmt"
	"sync"
	"unicode/utf8"
)

// bpe is the BPE model: a vocabulary and ranked merges, with the options of
// the Rust implementation (byte_fallback, fuse_unk, ignore_merges,
// continuing_subword_prefix, end_of_word_suffix).
type bpe struct {
	vocab        map[string]int
	vocabR       []string // id -> token ("" for gaps)
	merges       map[uint64]mergeInfo
	unkID        int // -1 if none
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	byteIDs      [256]int

	cache bpeCache
}

type mergeInfo struct {
	rank  int
	newID int
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func buildBPE(m *modelJSON) (*bpe, error) {
	if m.Type != "BPE" && m.Type != "" {
		return nil, fmt.Errorf("%w: model type %q (supported: BPE)", ErrUnsupported, m.Type)
	}
	if m.Dropout != nil && *m.Dropout > 0 {
		return nil, fmt.Errorf("%w: BPE dropout %v (non-deterministic encoding)", ErrUnsupported, *m.Dropout)
	}
	var vocab map[string]int
	if err := json.Unmarshal(m.Vocab, &vocab); err != nil {
		return nil, fmt.Errorf("%w: model.vocab: %v", ErrInvalid, err)
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("%w: model.vocab is empty", ErrInvalid)
	}
	merges, err := parseMerges(m.Merges)
	if err != nil {
		return nil, err
	}
	b := &bpe{
		vocab:        vocab,
		merges:       make(map[uint64]mergeInfo, len(merges)),
		unkID:        -1,
		fuseUnk:      m.FuseUnk,
		byteFallback: m.ByteFallback,
		ignoreMerges: m.IgnoreMerges,
	}
	if m.ContinuingSubwordPrefix != nil {
		b.prefix = *m.ContinuingSubwordPrefix
	}
	if m.EndOfWordSuffix != nil {
		b.suffix = *m.EndOfWordSuffix
	}
	maxID := 0
	for _, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("%w: negative token id %d", ErrInvalid, id)
		}
		maxID = max(maxID, id)
	}
	b.vocabR = make([]string, maxID+1)
	for tok, id := range vocab {
		b.vocabR[id] = tok
	}
	if m.UnkToken != nil {
		id, ok := vocab[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("%w: unk_token %q is not in the vocabulary", ErrInvalid, *m.UnkToken)
		}
		b.unkID = id
	}
	for i := range b.byteIDs {
		b.byteIDs[i] = -1
		if id, ok := vocab[fmt.Sprintf("<0x%02X>", i)]; ok {
			b.byteIDs[i] = id
		}
	}
	prefixLen := len(b.prefix)
	for rank, mg := range merges {
		a, ok1 := vocab[mg[0]]
		c, ok2 := vocab[mg[1]]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("%w: merge %d (%q %q) uses a token missing from the vocabulary", ErrInvalid, rank, mg[0], mg[1])
		}
		right := mg[1]
		if prefixLen > 0 && len(right) >= prefixLen && right[:prefixLen] == b.prefix {
			right = right[prefixLen:]
		}
		n, ok := vocab[mg[0]+right]
		if !ok {
			return nil, fmt.Errorf("%w: merge %d result %q is not in the vocabulary", ErrInvalid, rank, mg[0]+right)
		}
		k := pairKey(a, c)
		if _, dup := b.merges[k]; !dup {
			b.merges[k] = mergeInfo{rank: rank, newID: n}
		}
	}
	b.cache.m = make(map[string][]int)
	return b, nil
}

// tokenize appends the ids of one pre-token to out.
func (b *bpe) tokenize(word string, out []int) []int {
	if word == "" {
		return out
	}
	if b.ignoreMerges {
		if id, ok := b.vocab[word]; ok {
			return append(out, id)
		}
	}
	if ids, ok := b.cache.get(word); ok {
		return append(out, ids...)
	}
	ids := b.mergeWord(word)
	b.cache.put(word, ids)
	return append(out, ids...)
}

type symbol struct {
	id         int
	prev, next int
	removed    bool
}

// mergeWord runs BPE on one word: initial symbols are its characters (or
// their byte-fallback tokens, or unk), then the lowest-ranked adjacent pair is
// merged, leftmost first, until no merge applies.
func (b *bpe) mergeWord(word string) []int {
	syms := make([]symbol, 0, len(word))
	for i := 0; i < len(word); {
		r, n := utf8.DecodeRuneInString(word[i:])
		_ = r
		s := word[i : i+n]
		if i > 0 && b.prefix != "" {
			s = b.prefix + s
		}
		if i+n == len(word) && b.suffix != "" {
			s += b.suffix
		}
		if id, ok := b.vocab[s]; ok {
			syms = append(syms, symbol{id: id})
		} else if b.byteFallback && b.hasBytes(word[i:i+n]) {
			for j := i; j < i+n; j++ {
				syms = append(syms, symbol{id: b.byteIDs[word[j]]})
			}
		} else if b.unkID >= 0 {
			if b.fuseUnk && len(syms) > 0 && syms[len(syms)-1].id == b.unkID {
				// fused into the previous unk
			} else {
				syms = append(syms, symbol{id: b.unkID})
			}
		}
		i += n
	}
	for i := range syms {
		syms[i].prev = i - 1
		syms[i].next = i + 1
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	if len(syms) > 1 {
		q := make(mergeQueue, 0, len(syms))
		for i := 0; i+1 < len(syms); i++ {
			if m, ok := b.merges[pairKey(syms[i].id, syms[i+1].id)]; ok {
				q = append(q, mergeCand{pos: i, rank: m.rank, newID: m.newID})
			}
		}
		q.init()
		for len(q) > 0 {
			top := q.pop()
			s := &syms[top.pos]
			if s.removed || s.next < 0 {
				continue
			}
			right := &syms[s.next]
			if m, ok := b.merges[pairKey(s.id, right.id)]; !ok || m.newID != top.newID {
				continue
			}
			s.id = top.newID
			right.removed = true
			s.next = right.next
			if s.next >= 0 {
				syms[s.next].prev = top.pos
			}
			if s.prev >= 0 {
				if m, ok := b.merges[pairKey(syms[s.prev].id, s.id)]; ok {
					q.push(mergeCand{pos: s.prev, rank: m.rank, newID: m.newID})
				}
			}
			if s.next >= 0 {
				if m, ok := b.merges[pairKey(s.id, syms[s.next].id)]; ok {
					q.push(mergeCand{pos: top.pos, rank: m.rank, newID: m.newID})
				}
			}
		}
	}
	ids := make([]int, 0, len(syms))
	for i := 0; i >= 0 && i < len(syms); i = syms[i].next {
		ids = append(ids, syms[i].id)
	}
	return ids
}

func (b *bpe) hasBytes(s string) bool {
	for i := 0; i < len(s); i++ {
		if b.byteIDs[s[i]] < 0 {
			return false
		}
	}
	return true
}

type mergeCand struct {
	pos, rank, newID int
}

// mergeQueue is a binary min-heap of merge candidates ordered by rank, then
// position (leftmost first).
type mergeQueue []mergeCand

func (q mergeQueue) less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}

func (q mergeQueue) init() {
	for i := len(q)/2 - 1; i >= 0; i-- {
		q.down(i)
	}
}

func (q *mergeQueue) push(c mergeCand) {
	*q = append(*q, c)
	h := *q
	for i := len(h) - 1; i > 0; {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *mergeQueue) pop() mergeCand {
	h := *q
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	*q = h[:last]
	q.down(0)
	return top
}

func (q mergeQueue) down(i int) {
	n := len(q)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			return
		}
		q[i], q[m] = q[m], q[i]
		i = m
	}
}

// bpeCache memoizes words up to cacheMaxWordLen bytes, up to cacheCapacity
// entries (then it stops growing, as the Rust cache does).
type bpeCache struct {
	mu sync.RWMutex
	m  map[string][]int
}

const (
	cacheCapacity   = 10000
	cacheMaxWordLen = 256
)

func (c *bpeCache) get(w string) ([]int, bool) {
	if len(w) > cacheMaxWordLen {
		return nil, false
	}
	c.mu.RLock()
	ids, ok := c.m[w]
	c.mu.RUnlock()
	return ids, ok
}

func (c *bpeCache) put(w string, ids []int) {
	if len(w) > cacheMaxWordLen {
		return
	}
	c.mu.Lock()
	if len(c.m) < cacheCapacity {
		c.m[w] = ids
	}
	c.mu.Unlock()
}
