package constrain

import (
	"errors"
	"fmt"
)

// ErrRejected is wrapped by Advance's error for a token the grammar does not
// allow here.
var ErrRejected = errors.New("constrain: token not allowed")

// maxHeads bounds the parse states a matcher tracks at once (an ambiguous
// grammar could otherwise multiply them).
const maxHeads = 4096

// Matcher is the parse state of one generation: the set of ways the bytes so
// far can continue in the grammar. It is not safe for concurrent use; Clone
// gives an independent copy.
type Matcher struct {
	p     *program
	v     *Vocab
	terms []*termInfo // per program dfa
	heads []head
	ended bool // EOS was accepted

	// scratch for FillMask
	exps map[expKey][]head
}

// head is one parse: inside terminal elems[pos] in automaton state state,
// with the rule stack stk to return to when the terminal's rule alternative
// is done. pos < 0: the grammar is complete (only EOS may follow).
type head struct {
	pos   int32
	state int32
	stk   *frame
}

// frame is a persistent stack of return positions.
type frame struct {
	ret    int32
	parent *frame
}

type expKey struct {
	pos int32
	stk *frame
}

// NewMatcher starts matching g with vocabulary v. The grammar is lowered on
// first use (and then shared); a grammar that cannot be matched is an error
// wrapping ErrGrammar.
func NewMatcher(g *Grammar, v *Vocab) (*Matcher, error) {
	p, err := g.program()
	if err != nil {
		return nil, err
	}
	m := &Matcher{p: p, v: v, terms: make([]*termInfo, len(p.dfas))}
	for i, d := range p.dfas {
		m.terms[i] = v.terminal(d)
	}
	for _, alt := range p.rules[p.root] {
		m.heads = m.expand(alt, nil, m.heads)
	}
	m.heads = dedup(m.heads)
	return m, nil
}

// expand adds the heads that reading from position pos with stack stk
// reaches without consuming a byte.
func (m *Matcher) expand(pos int32, stk *frame, out []head) []head {
	for {
		e := m.p.elems[pos]
		switch e.kind {
		case elTerm:
			return append(out, head{pos: pos, stk: stk})
		case elRef:
			inner := stk
			if m.p.elems[pos+1].kind != elEnd { // not a tail call
				inner = &frame{ret: pos + 1, parent: stk}
			}
			for _, alt := range m.p.rules[e.arg] {
				out = m.expand(alt, inner, out)
			}
			return out
		default: // elEnd
			if stk == nil {
				return append(out, head{pos: -1})
			}
			pos, stk = stk.ret, stk.parent
		}
	}
}

func sameStack(a, b *frame) bool {
	for a != b {
		if a == nil || b == nil || a.ret != b.ret {
			return false
		}
		a, b = a.parent, b.parent
	}
	return true
}

func dedup(hs []head) []head {
	out := hs[:0]
	for _, h := range hs {
		dup := false
		for _, o := range out {
			if o.pos == h.pos && o.state == h.state && sameStack(o.stk, h.stk) {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, h)
		}
	}
	return out
}

// CanEnd reports whether the bytes so far are a complete sentence of the
// grammar: EOS is allowed.
func (m *Matcher) CanEnd() bool {
	if m.ended {
		return true
	}
	for _, h := range m.heads {
		if h.pos < 0 {
			return true
		}
		if m.p.dfas[m.p.elems[h.pos].arg].accept[h.state] {
			for _, x := range m.next(h) {
				if x.pos < 0 {
					return true
				}
			}
		}
	}
	return false
}

// Done reports whether nothing but EOS can follow (or EOS was accepted).
func (m *Matcher) Done() bool {
	if m.ended {
		return true
	}
	for _, h := range m.heads {
		if h.pos < 0 {
			continue
		}
		d := m.p.dfas[m.p.elems[h.pos].arg]
		if !d.accept[h.state] || d.canStep(h.state) {
			return false
		}
		for _, x := range m.next(h) {
			if x.pos >= 0 {
				return false
			}
		}
	}
	return true
}

// next is what follows the terminal of h once it is complete.
func (m *Matcher) next(h head) []head {
	return m.expand(h.pos+1, h.stk, nil)
}

// Clone returns an independent copy of the parse state.
func (m *Matcher) Clone() *Matcher {
	c := *m
	c.heads = append([]head(nil), m.heads...)
	c.exps = nil
	return &c
}

// Advance reads token id. A token the grammar does not allow here is an
// error wrapping ErrRejected, and the state is unchanged. EOS is allowed
// only when CanEnd, and nothing after it.
func (m *Matcher) Advance(id int) error {
	if m.ended {
		return fmt.Errorf("%w: token %d after EOS", ErrRejected, id)
	}
	if m.v.isEOS(id) {
		if !m.CanEnd() {
			return fmt.Errorf("%w: EOS before the grammar is complete", ErrRejected)
		}
		m.ended = true
		return nil
	}
	b := m.v.Bytes(id)
	if len(b) == 0 {
		return fmt.Errorf("%w: token %d is special or unknown", ErrRejected, id)
	}
	if err := m.feed(b); err != nil {
		return fmt.Errorf("token %d: %w", id, err)
	}
	return nil
}

// feed reads bytes b; on an error the state is unchanged.
func (m *Matcher) feed(b []byte) error {
	out := m.step(b)
	if len(out) == 0 {
		return fmt.Errorf("%w: %q", ErrRejected, b)
	}
	if len(out) > maxHeads {
		return fmt.Errorf("%w: more than %d parses at once (ambiguous grammar)", ErrRejected, maxHeads)
	}
	m.heads = out
	return nil
}

// viable reports whether bytes b can be read here.
func (m *Matcher) viable(b []byte) bool { return len(m.step(b)) > 0 }

// step is the set of heads after reading b (empty if none can).
func (m *Matcher) step(b []byte) []head {
	var out []head
	for _, h := range m.heads {
		if h.pos >= 0 {
			out = m.run(h, b, out)
		}
	}
	return dedup(out)
}

// run feeds b to head h, adding the heads that result.
func (m *Matcher) run(h head, b []byte, out []head) []head {
	d := m.p.dfas[m.p.elems[h.pos].arg]
	s := h.state
	for i, c := range b {
		if d.accept[s] {
			for _, x := range m.next(h) {
				if x.pos >= 0 {
					out = m.run(x, b[i:], out)
				}
			}
		}
		if s = d.step(s, c); s < 0 {
			return out
		}
	}
	return append(out, head{pos: h.pos, state: s, stk: h.stk})
}

// FillMask sets in bits (at least (Size()+63)/64 words, cleared first) the
// ids that Advance would accept now.
func (m *Matcher) FillMask(bits []uint64) {
	bits = bits[:m.v.words()]
	clear(bits)
	if m.ended {
		return
	}
	if m.exps == nil {
		m.exps = map[expKey][]head{}
	} else {
		clear(m.exps)
	}
	for _, h := range m.heads {
		if h.pos >= 0 {
			m.fillHead(h, bits)
		}
	}
	if m.CanEnd() {
		for _, id := range m.v.eos {
			bits[id>>6] |= 1 << (id & 63)
		}
	}
}

// follow is next(h) memoized for one FillMask.
func (m *Matcher) follow(h head) []head {
	k := expKey{h.pos, h.stk}
	if x, ok := m.exps[k]; ok {
		return x
	}
	x := m.next(h)
	m.exps[k] = x
	return x
}

// fillHead adds the tokens allowed from head h at the trie's root, using the
// terminal state's shared analysis.
func (m *Matcher) fillHead(h head, bits []uint64) {
	si := m.v.state(m.terms[m.p.elems[h.pos].arg], h.state)
	if si.inside != nil {
		for i, w := range si.inside {
			bits[i] |= w
		}
	} else {
		for _, id := range si.insideID {
			bits[id>>6] |= 1 << (id & 63)
		}
	}
	if !si.exitRoot && len(si.exits) == 0 {
		return
	}
	nexts := m.follow(h)
	for _, x := range nexts {
		if x.pos < 0 {
			continue
		}
		if si.exitRoot {
			m.fillHead(x, bits)
		}
		for _, n := range si.exits {
			m.walk(n, x, bits)
		}
	}
}

// walk adds the tokens of the trie below node n (whose bytes so far brought
// the previous terminal to an end) that head x reads.
func (m *Matcher) walk(n int32, x head, bits []uint64) {
	v := m.v
	d := m.p.dfas[m.p.elems[x.pos].arg]
	base := v.tDepth[n]
	var stBuf [64]int32
	st := stBuf[:0]
	st = append(st, x.state)
	end := v.tSkip[n]
	for i := n + 1; i < end; {
		dep := int(v.tDepth[i] - base)
		for len(st) > dep {
			st = st[:len(st)-1]
		}
		s := d.step(st[dep-1], v.tByte[i])
		if s < 0 {
			i = v.tSkip[i]
			continue
		}
		st = append(st, s)
		for _, id := range v.toksAt[v.tokS[i]:v.tokS[i+1]] {
			bits[id>>6] |= 1 << (id & 63)
		}
		if d.accept[s] && v.tSkip[i] > i+1 {
			for _, y := range m.follow(head{pos: x.pos, stk: x.stk}) {
				if y.pos >= 0 {
					m.walk(i, y, bits)
				}
			}
		}
		i++
	}
}
