package constrain

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// byteSet is a set of bytes.
type byteSet [4]uint64

func (s *byteSet) add(b byte)      { s[b>>6] |= 1 << (b & 63) }
func (s *byteSet) has(b byte) bool { return s[b>>6]&(1<<(b&63)) != 0 }
func (s *byteSet) addRange(lo, hi byte) {
	for c := int(lo); c <= int(hi); c++ {
		s.add(byte(c))
	}
}

// rx is a regular expression over bytes, the terminals' source form.
type rx struct {
	op       rxOp
	set      byteSet // rxSet
	subs     []*rx   // rxSeq, rxAlt, rxRep (one)
	min, max int     // rxRep; max < 0: unbounded
	dfa      *dfa    // rxDFA
}

type rxOp uint8

const (
	rxEmpty rxOp = iota // the empty string
	rxSet               // one byte of set
	rxSeq
	rxAlt
	rxRep
	rxDFA // an automaton built already (one character of a class)
)

func rxBytes(lo, hi byte) *rx {
	r := &rx{op: rxSet}
	r.set.addRange(lo, hi)
	return r
}

func rxByteSet(s byteSet) *rx { return &rx{op: rxSet, set: s} }

func rxLit(s string) *rx {
	subs := make([]*rx, len(s))
	for i := range len(s) {
		subs[i] = rxBytes(s[i], s[i])
	}
	return rxSeqOf(subs...)
}

func rxSeqOf(subs ...*rx) *rx {
	if len(subs) == 1 {
		return subs[0]
	}
	return &rx{op: rxSeq, subs: subs}
}

func rxAltOf(subs ...*rx) *rx {
	if len(subs) == 1 {
		return subs[0]
	}
	return &rx{op: rxAlt, subs: subs}
}

func rxRepOf(r *rx, min, max int) *rx { return &rx{op: rxRep, subs: []*rx{r}, min: min, max: max} }
func rxOpt(r *rx) *rx                 { return rxRepOf(r, 0, 1) }

// Limits that keep compiling bounded for any input (FuzzCompileSchema).
const (
	maxNFAStates = 400_000
	maxDFAStates = 60_000
	maxWork      = 20_000_000 // NFA states visited by one subset construction
)

var errTooBig = errors.New("automaton too large")

// nfa is a Thompson automaton: each state has ε-edges and at most one byte
// edge.
type nfa struct {
	eps [][]int32
	set []byteSet
	out []int32 // byte edge target, -1 none
}

func (n *nfa) state() (int32, error) {
	if len(n.out) >= maxNFAStates {
		return 0, errTooBig
	}
	n.eps = append(n.eps, nil)
	n.set = append(n.set, byteSet{})
	n.out = append(n.out, -1)
	return int32(len(n.out) - 1), nil
}

// build adds r between from and a new state it returns.
func (n *nfa) build(r *rx, from int32) (int32, error) {
	switch r.op {
	case rxEmpty:
		return from, nil
	case rxSet:
		from, err := n.fresh(from)
		if err != nil {
			return 0, err
		}
		to, err := n.state()
		if err != nil {
			return 0, err
		}
		n.set[from], n.out[from] = r.set, to
		return to, nil
	case rxSeq:
		cur := from
		for _, s := range r.subs {
			var err error
			if cur, err = n.build(s, cur); err != nil {
				return 0, err
			}
		}
		return cur, nil
	case rxAlt:
		to, err := n.state()
		if err != nil {
			return 0, err
		}
		for _, s := range r.subs {
			start, err := n.state()
			if err != nil {
				return 0, err
			}
			n.eps[from] = append(n.eps[from], start)
			end, err := n.build(s, start)
			if err != nil {
				return 0, err
			}
			n.eps[end] = append(n.eps[end], to)
		}
		return to, nil
	case rxDFA:
		return n.embed(r.dfa, from)
	case rxRep:
		cur := from
		var err error
		for range r.min {
			if cur, err = n.build(r.subs[0], cur); err != nil {
				return 0, err
			}
		}
		if r.max < 0 { // loop: cur -ε-> start -sub-> end -ε-> cur
			start, err := n.state()
			if err != nil {
				return 0, err
			}
			end, err := n.build(r.subs[0], start)
			if err != nil {
				return 0, err
			}
			to, err := n.state()
			if err != nil {
				return 0, err
			}
			n.eps[cur] = append(n.eps[cur], start, to)
			n.eps[end] = append(n.eps[end], start, to)
			return to, nil
		}
		to, err := n.state()
		if err != nil {
			return 0, err
		}
		for range r.max - r.min {
			n.eps[cur] = append(n.eps[cur], to)
			if cur, err = n.build(r.subs[0], cur); err != nil {
				return 0, err
			}
		}
		n.eps[cur] = append(n.eps[cur], to)
		return to, err
	}
	panic("unreachable")
}

// embed adds automaton d after from: one state per state of d, reaching
// through ε one state per transition, so subsets stay as small as d's
// states (Thompson alternatives of overlapping UTF-8 ranges would not).
func (n *nfa) embed(d *dfa, from int32) (int32, error) {
	var sets []byteSet
	for c := range d.nclass {
		var set byteSet
		for b := range 256 {
			if int(d.class[b]) == c {
				set.add(byte(b))
			}
		}
		sets = append(sets, set)
	}
	ids := make([]int32, d.states())
	for q := range ids {
		id, err := n.state()
		if err != nil {
			return 0, err
		}
		ids[q] = id
	}
	end, err := n.state()
	if err != nil {
		return 0, err
	}
	n.eps[from] = append(n.eps[from], ids[0])
	for q := range ids {
		if d.accept[q] {
			n.eps[ids[q]] = append(n.eps[ids[q]], end)
		}
		// one byte edge per target: the union of the classes leading there
		var targets []int32
		edge := map[int32]byteSet{}
		for c := range d.nclass {
			t := d.next[q*d.nclass+c]
			if t < 0 {
				continue
			}
			set, seen := edge[t]
			if !seen {
				targets = append(targets, t)
			}
			for w := range set {
				set[w] |= sets[c][w]
			}
			edge[t] = set
		}
		for _, t := range targets {
			f, err := n.state()
			if err != nil {
				return 0, err
			}
			n.eps[ids[q]] = append(n.eps[ids[q]], f)
			n.set[f], n.out[f] = edge[t], ids[t]
		}
	}
	return end, nil
}

// fresh returns a state reachable from cur by ε that has no byte edge yet.
func (n *nfa) fresh(cur int32) (int32, error) {
	if n.out[cur] < 0 {
		return cur, nil
	}
	s, err := n.state()
	if err != nil {
		return 0, err
	}
	n.eps[cur] = append(n.eps[cur], s)
	return s, nil
}

// dfa is a trimmed deterministic automaton over bytes: every state can reach
// an accepting one, and a missing transition is -1. Bytes are mapped to
// classes that no transition distinguishes.
type dfa struct {
	class  [256]uint8
	nclass int
	next   []int32 // state*nclass + class
	accept []bool
	key    string // identity of the language's automaton, for shared caches
}

func (d *dfa) step(s int32, b byte) int32 { return d.next[int(s)*d.nclass+int(d.class[b])] }
func (d *dfa) states() int                { return len(d.accept) }

// compileRx builds the automaton of r; start state 0.
func compileRx(r *rx) (*dfa, error) {
	var n nfa
	start, err := n.state()
	if err != nil {
		return nil, err
	}
	end, err := n.build(r, start)
	if err != nil {
		return nil, err
	}
	// Byte classes: bytes with the same membership in every edge set.
	var sets []byteSet
	seen := map[byteSet]bool{}
	for i, o := range n.out {
		if o >= 0 && !seen[n.set[i]] {
			seen[n.set[i]] = true
			sets = append(sets, n.set[i])
		}
	}
	var class [256]uint8
	sig := map[string]uint8{}
	var rep []byte // a byte of each class
	buf := make([]byte, (len(sets)+7)/8)
	for b := range 256 {
		clear(buf)
		for j, s := range sets {
			if s.has(byte(b)) {
				buf[j/8] |= 1 << (j % 8)
			}
		}
		c, ok := sig[string(buf)]
		if !ok {
			c = uint8(len(rep))
			sig[string(buf)] = c
			rep = append(rep, byte(b))
		}
		class[b] = c
	}
	nclass := len(rep)
	if len(rep) > 256 {
		panic("unreachable")
	}

	// Subset construction; work counts NFA states visited, so any input
	// finishes in bounded time.
	stamp := make([]uint32, len(n.out))
	gen := uint32(0)
	work := 0
	var stack []int32
	closure := func(states []int32) []int32 {
		gen++
		stack = append(stack[:0], states...)
		var out []int32
		for len(stack) > 0 {
			s := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if stamp[s] == gen {
				continue
			}
			stamp[s] = gen
			out = append(out, s)
			stack = append(stack, n.eps[s]...)
		}
		work += len(out)
		slices.Sort(out)
		return out
	}
	var keyBuf []byte
	keyOf := func(ss []int32) string {
		keyBuf = keyBuf[:0]
		for _, s := range ss {
			keyBuf = binary.LittleEndian.AppendUint32(keyBuf, uint32(s))
		}
		return string(keyBuf)
	}
	d := &dfa{class: class, nclass: nclass}
	states := newStateTable[string](d)
	var todo [][]int32
	add := func(ss []int32) (int32, error) {
		id, isNew, err := states.add(keyOf(ss), func() bool { return slices.Contains(ss, end) })
		if isNew {
			todo = append(todo, ss)
		}
		return id, err
	}
	if _, err := add(closure([]int32{start})); err != nil {
		return nil, err
	}
	var tgt []int32
	for i := 0; i < len(todo); i++ {
		ss := todo[i]
		for c := range nclass {
			b := rep[c]
			tgt = tgt[:0]
			for _, s := range ss {
				if n.out[s] >= 0 && n.set[s].has(b) {
					tgt = append(tgt, n.out[s])
				}
			}
			work += len(ss)
			if work > maxWork {
				return nil, errTooBig
			}
			t := int32(-1)
			if len(tgt) > 0 {
				var err error
				if t, err = add(closure(tgt)); err != nil {
					return nil, err
				}
			}
			d.next[i*nclass+c] = t
		}
	}
	if t := d.trim(); t != nil {
		return t.minimize(), nil
	}
	return nil, nil
}

// stateTable numbers the states of an automaton under construction by key.
type stateTable[K comparable] struct {
	d   *dfa
	ids map[K]int32
}

func newStateTable[K comparable](d *dfa) *stateTable[K] {
	return &stateTable[K]{d: d, ids: map[K]int32{}}
}

// add returns the state of k, adding it (with no transitions yet) if new.
func (t *stateTable[K]) add(k K, accept func() bool) (id int32, isNew bool, err error) {
	if id, ok := t.ids[k]; ok {
		return id, false, nil
	}
	if len(t.d.accept) >= maxDFAStates {
		return 0, false, errTooBig
	}
	id = int32(len(t.d.accept))
	t.ids[k] = id
	t.d.accept = append(t.d.accept, accept())
	t.d.next = append(t.d.next, make([]int32, t.d.nclass)...)
	return id, true, nil
}

// trim removes the states that cannot reach an accepting one and renumbers
// the rest (start stays 0; an empty language gives nil), then sets key.
func (d *dfa) trim() *dfa {
	n := d.states()
	// Backward reachability from the accepting states.
	rev := make([][]int32, n)
	for s := range n {
		for c := range d.nclass {
			if t := d.next[s*d.nclass+c]; t >= 0 {
				rev[t] = append(rev[t], int32(s))
			}
		}
	}
	live := make([]bool, n)
	var queue []int32
	for s := range n {
		if d.accept[s] {
			live[s] = true
			queue = append(queue, int32(s))
		}
	}
	for len(queue) > 0 {
		t := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, s := range rev[t] {
			if !live[s] {
				live[s] = true
				queue = append(queue, s)
			}
		}
	}
	if !live[0] {
		return nil
	}
	// Renumber in breadth-first order from the start, so equal languages
	// built the same way get equal keys.
	id := make([]int32, n)
	for i := range id {
		id[i] = -1
	}
	order := []int32{0}
	id[0] = 0
	for i := 0; i < len(order); i++ {
		s := int(order[i])
		for c := range d.nclass {
			if t := d.next[s*d.nclass+c]; t >= 0 && live[t] && id[t] < 0 {
				id[t] = int32(len(order))
				order = append(order, t)
			}
		}
	}
	out := &dfa{class: d.class, nclass: d.nclass, next: make([]int32, len(order)*d.nclass), accept: make([]bool, len(order))}
	for i, s := range order {
		out.accept[i] = d.accept[s]
		for c := range d.nclass {
			t := d.next[int(s)*d.nclass+c]
			if t >= 0 {
				t = id[t]
			}
			out.next[i*d.nclass+c] = t
		}
	}
	out.setKey()
	return out
}

func (d *dfa) setKey() {
	h := sha256.New()
	h.Write(d.class[:])
	var buf []byte
	for _, t := range d.next {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(t))
	}
	for _, a := range d.accept {
		if a {
			buf = append(buf, 1)
		} else {
			buf = append(buf, 0)
		}
	}
	h.Write(buf)
	d.key = string(h.Sum(nil))
}

// product runs a and b side by side; keep decides which pairs accept. b may
// be left (state -1) when keep allows it (difference).
func product(a, b *dfa, keep func(accA, accB bool) bool) (*dfa, error) {
	var class [256]uint8
	sig := map[[2]uint8]uint8{}
	var rep []byte
	for x := range 256 {
		k := [2]uint8{a.class[x], b.class[x]}
		c, ok := sig[k]
		if !ok {
			c = uint8(len(rep))
			sig[k] = c
			rep = append(rep, byte(x))
		}
		class[x] = c
	}
	d := &dfa{class: class, nclass: len(rep)}
	leaveB := keep(true, false)
	states := newStateTable[[2]int32](d)
	var todo [][2]int32
	add := func(p [2]int32) (int32, error) {
		id, isNew, err := states.add(p, func() bool { return keep(a.accept[p[0]], p[1] >= 0 && b.accept[p[1]]) })
		if isNew {
			todo = append(todo, p)
		}
		return id, err
	}
	if _, err := add([2]int32{0, 0}); err != nil {
		return nil, err
	}
	for i := 0; i < len(todo); i++ {
		p := todo[i]
		for c, x := range rep {
			ta := a.step(p[0], x)
			tb := int32(-1)
			if p[1] >= 0 {
				tb = b.step(p[1], x)
			}
			t := int32(-1)
			if ta >= 0 && (tb >= 0 || leaveB) {
				var err error
				if t, err = add([2]int32{ta, tb}); err != nil {
					return nil, err
				}
			}
			d.next[i*d.nclass+c] = t
		}
	}
	if t := d.trim(); t != nil {
		return t.minimize(), nil
	}
	return nil, nil
}

func intersect(a, b *dfa) (*dfa, error) {
	return product(a, b, func(x, y bool) bool { return x && y })
}

func minus(a, b *dfa) (*dfa, error) {
	return product(a, b, func(x, y bool) bool { return x && !y })
}

// nonEmpty is d without the empty string (nil if that leaves nothing).
func (d *dfa) nonEmpty() *dfa {
	if !d.accept[0] {
		return d
	}
	n := d.states()
	out := &dfa{class: d.class, nclass: d.nclass, accept: make([]bool, n+1), next: make([]int32, (n+1)*d.nclass)}
	// New start n+... is placed at 0; old states shift by one.
	for c := range d.nclass {
		t := d.next[c]
		if t >= 0 {
			t++
		}
		out.next[c] = t
	}
	for s := range n {
		out.accept[s+1] = d.accept[s]
		for c := range d.nclass {
			t := d.next[s*d.nclass+c]
			if t >= 0 {
				t++
			}
			out.next[(s+1)*d.nclass+c] = t
		}
	}
	return out.trim()
}

// matches reports whether d accepts s (tests and enum checks).
func (d *dfa) matches(s []byte) bool {
	st := int32(0)
	for _, b := range s {
		if st = d.step(st, b); st < 0 {
			return false
		}
	}
	return d.accept[st]
}

// canStep reports whether state s has any transition.
func (d *dfa) canStep(s int32) bool {
	for _, t := range d.next[int(s)*d.nclass : int(s+1)*d.nclass] {
		if t >= 0 {
			return true
		}
	}
	return false
}

// maxMinimizeWork bounds minimize: Moore's refinement costs states ×
// classes per round, and long chains (counted repetitions) need many
// rounds; past the budget the automaton stays as it is.
const maxMinimizeWork = 5_000_000

// minimize merges equivalent states.
func (d *dfa) minimize() *dfa {
	n := d.states()
	if n < 2 {
		return d
	}
	work := 0
	part := make([]int32, n)
	for s := range n {
		if d.accept[s] != d.accept[0] {
			part[s] = 1
		}
	}
	blocks := 0
	var buf []byte
	for {
		if work += n * d.nclass; work > maxMinimizeWork {
			return d
		}
		sig := map[string]int32{}
		next := make([]int32, n)
		for s := range n {
			buf = binary.LittleEndian.AppendUint32(buf[:0], uint32(part[s]))
			for c := range d.nclass {
				t := d.next[s*d.nclass+c]
				if t >= 0 {
					t = part[t]
				}
				buf = binary.LittleEndian.AppendUint32(buf, uint32(t))
			}
			id, ok := sig[string(buf)]
			if !ok {
				id = int32(len(sig))
				sig[string(buf)] = id
			}
			next[s] = id
		}
		part = next
		if len(sig) == blocks {
			break
		}
		blocks = len(sig)
	}
	out := &dfa{class: d.class, nclass: d.nclass, next: make([]int32, blocks*d.nclass), accept: make([]bool, blocks)}
	for s := range n {
		b := int(part[s])
		out.accept[b] = d.accept[s]
		for c := range d.nclass {
			t := d.next[s*d.nclass+c]
			if t >= 0 {
				t = part[t]
			}
			out.next[b*d.nclass+c] = t
		}
	}
	return out.trim() // part[0] is 0: the start stays 0
}

// quotedRepeat is the automaton of '"' char{min,max} '"' (max < 0: no
// bound) for the automaton of one character, built by counting: one copy of
// the character's states per count, so maxLength costs copies × states
// instead of a subset construction. The character's language must be a
// prefix code (accepting states have no transitions) that does not start
// with '"'.
func quotedRepeat(char *dfa, min, max int) (*dfa, error) {
	nc := char.nclass
	if nc >= 255 || char.step(0, '"') >= 0 {
		return nil, errTooBig
	}
	var mids []int32 // the character's non-accepting states
	midIdx := make([]int32, char.states())
	for q := range char.states() {
		midIdx[q] = -1
		if char.accept[q] {
			if char.canStep(int32(q)) {
				return nil, fmt.Errorf("character automaton is not a prefix code")
			}
			continue
		}
		midIdx[q] = int32(len(mids))
		mids = append(mids, int32(q))
	}
	copies := max
	if max < 0 {
		copies = min
	}
	total := 2 + (copies+1)*len(mids)
	if total > maxDFAStates {
		return nil, errTooBig
	}
	d := &dfa{class: char.class, nclass: nc + 1, accept: make([]bool, total), next: make([]int32, total*(nc+1))}
	d.class['"'] = uint8(nc)
	for i := range d.next {
		d.next[i] = -1
	}
	const final = 1
	d.accept[final] = true
	id := func(c int, q int32) int32 { return int32(2 + c*len(mids) + int(midIdx[q])) }
	d.next[0*(nc+1)+nc] = id(0, 0)
	for c := 0; c <= copies; c++ {
		for _, q := range mids {
			from := int(id(c, q))
			for k := 0; k <= nc; k++ {
				var t int32
				if k == nc { // the quote byte
					if q == 0 {
						if c >= min {
							d.next[from*(nc+1)+k] = final
						}
						continue
					}
					t = char.step(q, '"')
				} else {
					t = char.next[int(q)*nc+k]
				}
				switch {
				case t < 0:
				case !char.accept[t]:
					d.next[from*(nc+1)+k] = id(c, t)
				case c < copies:
					d.next[from*(nc+1)+k] = id(c+1, 0)
				case max < 0:
					d.next[from*(nc+1)+k] = id(c, 0)
				}
			}
		}
	}
	return d.trim(), nil
}
