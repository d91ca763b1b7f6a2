package constrain

import (
	"bytes"
	"fmt"
	"math/bits"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/dsmil/l7/plugins/internal/tokenizer"
)

// Vocab is a tokenizer's vocabulary as constrained decoding sees it: the raw
// bytes of every token in a byte trie, the ids that may end generation, and
// the per-terminal token analyses that every grammar and request using the
// vocabulary share. Build it once per tokenizer; it is safe for concurrent
// use.
type Vocab struct {
	size int
	toks [][]byte // nil: never allowed (special, unknown or empty)
	eos  []int

	// The trie in preorder: node 0 is the root; node i's subtree is
	// i..skip[i]-1; tokS[i]..tokS[i+1] index the ids in toksAt that end at
	// node i.
	tByte    []byte
	tDepth   []uint16
	tSkip    []int32
	tokS     []int32
	toksAt   []int32
	maxDepth int

	mu       sync.Mutex
	analyses map[string]*termInfo // by dfa key
	triggers map[string]*trigger  // lazy-grammar triggers, by text
	held     atomic.Int64         // bytes of analyses in the map
	maxHeld  int64
	scratch  sync.Pool // zeroed bitsets for analyze
}

// maxAnalysisBytes bounds the memory of the shared analyses: past it the
// map starts afresh (matchers keep the analyses they already use), so a
// server that sees many different schemas does not grow without bound.
const maxAnalysisBytes = 256 << 20

// NewVocab builds a vocabulary from each id's bytes (nil or empty for an id
// that must never be generated, such as special tokens) and the ids that end
// generation (allowed only where the grammar accepts).
func NewVocab(tokens [][]byte, eos []int) (*Vocab, error) {
	v := &Vocab{size: len(tokens), toks: tokens, analyses: map[string]*termInfo{}, maxHeld: maxAnalysisBytes}
	for _, id := range eos {
		if id < 0 || id >= len(tokens) {
			return nil, fmt.Errorf("constrain: EOS id %d outside the vocabulary of %d", id, len(tokens))
		}
		v.eos = append(v.eos, id)
	}
	ids := make([]int32, 0, len(tokens))
	for id, b := range tokens {
		if len(b) > 0 && !slices.Contains(v.eos, id) {
			ids = append(ids, int32(id))
		}
	}
	slices.SortFunc(ids, func(a, b int32) int { return bytes.Compare(tokens[a], tokens[b]) })
	v.tByte, v.tDepth, v.tSkip, v.tokS = []byte{0}, []uint16{0}, []int32{0}, []int32{0}
	path := []int32{0}
	var prev []byte
	for _, id := range ids {
		b := tokens[id]
		if len(b) > 1<<16-1 {
			return nil, fmt.Errorf("constrain: token %d is %d bytes long", id, len(b))
		}
		l := 0
		for l < len(b) && l < len(prev) && b[l] == prev[l] {
			l++
		}
		for len(path)-1 > l {
			v.tSkip[path[len(path)-1]] = int32(len(v.tByte))
			path = path[:len(path)-1]
		}
		for d := l; d < len(b); d++ {
			v.tByte = append(v.tByte, b[d])
			v.tDepth = append(v.tDepth, uint16(d+1))
			v.tSkip = append(v.tSkip, 0)
			v.tokS = append(v.tokS, int32(len(v.toksAt)))
			path = append(path, int32(len(v.tByte)-1))
		}
		v.toksAt = append(v.toksAt, id)
		v.maxDepth = max(v.maxDepth, len(b))
		prev = b
	}
	for _, n := range path {
		v.tSkip[n] = int32(len(v.tByte))
	}
	v.tokS = append(v.tokS, int32(len(v.toksAt)))
	return v, nil
}

// VocabFromTokenizer builds the vocabulary of t: every id's TokenBytes,
// special tokens excluded; eos are the ids that end generation (the model's
// EOS ids).
func VocabFromTokenizer(t *tokenizer.Tokenizer, eos []int) (*Vocab, error) {
	toks := make([][]byte, t.VocabSize())
	for id := range toks {
		if t.IsSpecial(id) {
			continue
		}
		if b, ok := t.TokenBytes(id); ok {
			toks[id] = b
		}
	}
	return NewVocab(toks, eos)
}

// Size is the number of ids; masks have (Size()+63)/64 words.
func (v *Vocab) Size() int { return v.size }

// Bytes returns the bytes of id (nil for ids never allowed).
func (v *Vocab) Bytes(id int) []byte {
	if id < 0 || id >= v.size {
		return nil
	}
	return v.toks[id]
}

func (v *Vocab) isEOS(id int) bool { return slices.Contains(v.eos, id) }

func (v *Vocab) words() int { return (v.size + 63) / 64 }

// termInfo holds, per state of one terminal automaton, what the vocabulary
// does from there; computed on first use.
type termInfo struct {
	d      *dfa
	states []atomic.Pointer[stateInfo]
}

// stateInfo: from a state of a terminal, the tokens all of whose bytes the
// terminal reads (allowed whatever follows the terminal: the automaton is
// trimmed and every rule derives a string), and the exits: trie nodes at
// which the terminal accepts and the token may go on into what follows.
type stateInfo struct {
	inside   []uint64 // bitset; nil when sparse
	insideID []int32  // when sparse
	exits    []int32  // trie nodes, never the root
	exitRoot bool     // the state accepts: every token may start after it
}

func (v *Vocab) terminal(d *dfa) *termInfo {
	v.mu.Lock()
	defer v.mu.Unlock()
	ti, ok := v.analyses[d.key]
	if !ok {
		ti = &termInfo{d: d, states: make([]atomic.Pointer[stateInfo], d.states())}
		v.analyses[d.key] = ti
	}
	return ti
}

func (v *Vocab) state(ti *termInfo, q int32) *stateInfo {
	if si := ti.states[q].Load(); si != nil {
		return si
	}
	si := v.analyze(ti.d, q)
	ti.states[q].Store(si)
	if v.held.Add(si.bytes()) > v.maxHeld {
		v.mu.Lock()
		v.analyses = map[string]*termInfo{}
		v.held.Store(0)
		v.mu.Unlock()
	}
	return si
}

func (si *stateInfo) bytes() int64 {
	return int64(64 + 8*len(si.inside) + 4*len(si.insideID) + 4*len(si.exits))
}

// analyze walks the whole trie from state q of d.
func (v *Vocab) analyze(d *dfa, q int32) *stateInfo {
	si := &stateInfo{exitRoot: d.accept[q]}
	st := make([]int32, v.maxDepth+1)
	st[0] = q
	set, _ := v.scratch.Get().([]uint64)
	if set == nil {
		set = make([]uint64, v.words())
	}
	count := 0
	n := int32(len(v.tByte))
	for i := int32(1); i < n; {
		dep := v.tDepth[i]
		s := d.step(st[dep-1], v.tByte[i])
		if s < 0 {
			i = v.tSkip[i]
			continue
		}
		st[dep] = s
		for _, id := range v.toksAt[v.tokS[i]:v.tokS[i+1]] {
			set[id>>6] |= 1 << (id & 63)
			count++
		}
		if d.accept[s] && v.tSkip[i] > i+1 {
			si.exits = append(si.exits, i)
		}
		i++
	}
	if count >= v.size/32 {
		si.inside = set
		return si
	}
	si.insideID = make([]int32, 0, count)
	for w, word := range set {
		for ; word != 0; word &= word - 1 {
			si.insideID = append(si.insideID, int32(w*64+bits.TrailingZeros64(word)))
		}
	}
	for _, id := range si.insideID {
		set[id>>6] = 0
	}
	v.scratch.Put(set) // all zero again
	return si
}
