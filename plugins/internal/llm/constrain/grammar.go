package constrain

import (
	"errors"
	"fmt"
	"sync"
)

// ErrGrammar is wrapped by the errors of grammars that cannot be matched
// (left recursion, a language with no string, too large).
var ErrGrammar = errors.New("constrain: bad grammar")

// Grammar is a context-free language over bytes: a tree of sequences,
// alternatives, repetitions and named rules (for recursion) whose leaves are
// terminals, each a deterministic automaton over bytes. Grammars are
// immutable and safe for concurrent use; they compose with Seq, Alt, Repeat
// and Optional.
type Grammar struct {
	e *gexpr

	once sync.Once
	prog *program
	err  error
}

type gexpr struct {
	kind     gkind
	term     *dfa     // gTerm: non-empty language, no empty string
	subs     []*gexpr // gSeq, gAlt, gRep (one)
	min, max int      // gRep; max < 0 unbounded
	rule     *gRule   // gRef
}

type gkind uint8

const (
	gEmpty gkind = iota
	gTerm
	gSeq
	gAlt
	gRep
	gRef
)

// gRule is a named rule, referenced by gRef before its body is known (for
// recursive $refs).
type gRule struct{ body *gexpr }

var (
	eEmpty   = &gexpr{kind: gEmpty}
	eNothing = &gexpr{kind: gAlt} // no alternatives: the empty language
)

func eSeq(subs ...*gexpr) *gexpr {
	var out []*gexpr
	for _, s := range subs {
		if s.kind == gEmpty {
			continue
		}
		out = append(out, s)
	}
	switch len(out) {
	case 0:
		return eEmpty
	case 1:
		return out[0]
	}
	return &gexpr{kind: gSeq, subs: out}
}

func eAlt(subs ...*gexpr) *gexpr {
	if len(subs) == 1 {
		return subs[0]
	}
	return &gexpr{kind: gAlt, subs: subs}
}

func eRep(e *gexpr, min, max int) *gexpr {
	if max == 0 {
		return eEmpty
	}
	if min == 1 && max == 1 {
		return e
	}
	return &gexpr{kind: gRep, subs: []*gexpr{e}, min: min, max: max}
}

func eOpt(e *gexpr) *gexpr { return eRep(e, 0, 1) }

// eTerm is the terminal of r's language (split into ε | the rest when r
// accepts the empty string).
func eTerm(r *rx) (*gexpr, error) {
	d, err := compileRx(r)
	if err != nil {
		return nil, err
	}
	return eDFA(d), nil
}

func eDFA(d *dfa) *gexpr {
	if d == nil {
		return eNothing
	}
	if d.accept[0] {
		if ne := d.nonEmpty(); ne != nil {
			return eOpt(&gexpr{kind: gTerm, term: ne})
		}
		return eEmpty
	}
	return &gexpr{kind: gTerm, term: d}
}

func eLit(s string) *gexpr {
	e, err := eTerm(rxLit(s))
	if err != nil {
		panic(err) // a literal's automaton is its length
	}
	return e
}

// Literal is the grammar of exactly the bytes of s.
func Literal(s string) *Grammar { return &Grammar{e: eLit(s)} }

// Seq is the concatenation of gs.
func Seq(gs ...*Grammar) *Grammar { return &Grammar{e: eSeq(exprs(gs)...)} }

// Alt is the union of gs.
func Alt(gs ...*Grammar) *Grammar {
	if len(gs) == 0 {
		return &Grammar{e: eNothing}
	}
	return &Grammar{e: eAlt(exprs(gs)...)}
}

// Repeat is g repeated min to max times (max < 0: without bound).
func Repeat(g *Grammar, min, max int) *Grammar { return &Grammar{e: eRep(g.e, min, max)} }

// Optional is g or nothing.
func Optional(g *Grammar) *Grammar { return Repeat(g, 0, 1) }

func exprs(gs []*Grammar) []*gexpr {
	es := make([]*gexpr, len(gs))
	for i, g := range gs {
		es[i] = g.e
	}
	return es
}

// program is a grammar lowered for matching: rules whose alternatives are
// runs of elements in one flat array, each run ending with an end element.
type program struct {
	elems []elem
	rules [][]int32 // per rule, the position of each alternative's first element
	dfas  []*dfa
	root  int32 // rule
}

type elem struct {
	kind uint8 // elTerm, elRef, elEnd
	arg  int32 // dfa index or rule index
}

const (
	elEnd uint8 = iota
	elTerm
	elRef
)

// Size limits for lowering (bounded repetitions are unrolled).
const maxElems = 1 << 20

func (g *Grammar) program() (*program, error) {
	g.once.Do(func() { g.prog, g.err = lower(g.e) })
	return g.prog, g.err
}

type lowerer struct {
	p       *program
	byExpr  map[*gexpr]int32
	byRule  map[*gRule]int32
	byDFA   map[string]int32
	pending [][]*gexpr // per rule, its alternatives still to emit
}

func lower(e *gexpr) (*program, error) {
	l := &lowerer{p: &program{}, byExpr: map[*gexpr]int32{}, byRule: map[*gRule]int32{}, byDFA: map[string]int32{}}
	root := l.rule(e)
	// Rules are created on demand; emit alternatives until none is pending.
	for i := 0; i < len(l.pending); i++ {
		for _, alt := range l.pending[i] {
			l.p.rules[i] = append(l.p.rules[i], int32(len(l.p.elems)))
			var items []*gexpr
			if alt.kind == gSeq {
				items = alt.subs
			} else if alt.kind != gEmpty {
				items = []*gexpr{alt}
			}
			for _, it := range items {
				if it.kind == gTerm {
					l.p.elems = append(l.p.elems, elem{elTerm, l.dfa(it.term)})
				} else {
					l.p.elems = append(l.p.elems, elem{elRef, l.rule(it)})
				}
			}
			l.p.elems = append(l.p.elems, elem{kind: elEnd})
			if len(l.p.elems) > maxElems {
				return nil, fmt.Errorf("%w: more than %d elements", ErrGrammar, maxElems)
			}
		}
		l.pending[i] = nil
	}
	l.p.root = root
	if err := l.p.check(); err != nil {
		return nil, err
	}
	return l.p, nil
}

func (l *lowerer) dfa(d *dfa) int32 {
	if i, ok := l.byDFA[d.key]; ok {
		return i
	}
	i := int32(len(l.p.dfas))
	l.p.dfas = append(l.p.dfas, d)
	l.byDFA[d.key] = i
	return i
}

func (l *lowerer) newRule(alts []*gexpr) int32 {
	l.p.rules = append(l.p.rules, nil)
	l.pending = append(l.pending, alts)
	return int32(len(l.p.rules) - 1)
}

// rule returns the rule that derives e.
func (l *lowerer) rule(e *gexpr) int32 {
	if e.kind == gRef {
		if r, ok := l.byRule[e.rule]; ok {
			return r
		}
		r := l.newRule(nil)
		l.byRule[e.rule] = r
		l.pending[r] = []*gexpr{e.rule.body}
		return r
	}
	if r, ok := l.byExpr[e]; ok {
		return r
	}
	var r int32
	switch e.kind {
	case gAlt:
		r = l.newRule(e.subs)
	case gRep:
		r = l.newRule(nil)
		l.byExpr[e] = r
		sub := e.subs[0]
		var alts []*gexpr
		switch {
		case e.min > 0: // sub^min then the rest
			rest := eRep(sub, 0, e.max-e.min)
			if e.max < 0 {
				rest = eRep(sub, 0, -1)
			}
			seq := make([]*gexpr, 0, e.min+1)
			for range e.min {
				seq = append(seq, sub)
			}
			alts = []*gexpr{eSeq(append(seq, rest)...)}
		case e.max < 0: // R := sub R | ε
			alts = []*gexpr{{kind: gSeq, subs: []*gexpr{sub, {kind: gRef, rule: l.selfRule(e, r)}}}, eEmpty}
		case e.max == 1:
			alts = []*gexpr{sub, eEmpty}
		default: // R_n := sub R_{n-1} | ε
			alts = []*gexpr{eSeq(sub, eRep(sub, 0, e.max-1)), eEmpty}
		}
		l.pending[r] = alts
		return r
	default: // gSeq, gTerm, gEmpty: a rule of one alternative
		r = l.newRule([]*gexpr{e})
	}
	l.byExpr[e] = r
	return r
}

// selfRule names rule r for a reference to itself.
func (l *lowerer) selfRule(e *gexpr, r int32) *gRule {
	g := &gRule{body: e}
	l.byRule[g] = r
	return g
}

// closeRules marks the rules that derive a string (terms) or the empty
// string (!terms): a rule is marked once one of its alternatives holds
// only marked rules (and, with terms, terminals). A worklist keeps it
// linear in the program's size.
func (p *program) closeRules(terms bool) []bool {
	n := len(p.rules)
	mark := make([]bool, n)
	users := make([][]int32, n) // rule → the alternatives that reference it
	var altRule, need []int32   // per alternative: its rule, unmarked references left
	var queue []int32
	for r, alts := range p.rules {
		for _, a := range alts {
			id := int32(len(need))
			altRule = append(altRule, int32(r))
			cnt, dead := int32(0), false
			for i := a; p.elems[i].kind != elEnd; i++ {
				dead = dead || p.elems[i].kind == elTerm && !terms
			}
			for i := a; !dead && p.elems[i].kind != elEnd; i++ {
				if e := p.elems[i]; e.kind == elRef {
					users[e.arg] = append(users[e.arg], id)
					cnt++
				}
			}
			if dead {
				cnt = -1
			}
			need = append(need, cnt)
			if cnt == 0 && !mark[r] {
				mark[r] = true
				queue = append(queue, int32(r))
			}
		}
	}
	for len(queue) > 0 {
		s := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, id := range users[s] {
			if need[id]--; need[id] == 0 && !mark[altRule[id]] {
				mark[altRule[id]] = true
				queue = append(queue, altRule[id])
			}
		}
	}
	return mark
}

// check removes alternatives that derive no string, refuses a grammar whose
// root derives none, and refuses left recursion (a rule reaching itself
// without consuming a byte), which the matcher's expansion could not
// finish.
func (p *program) check() error {
	n := len(p.rules)
	productive := p.closeRules(true)
	if !productive[p.root] {
		return fmt.Errorf("%w: the grammar derives no string", ErrGrammar)
	}
	for r := range n {
		alts := p.rules[r][:0]
		for _, a := range p.rules[r] {
			ok := true
			for i := a; p.elems[i].kind != elEnd; i++ {
				if e := p.elems[i]; e.kind == elRef && !productive[e.arg] {
					ok = false
				}
			}
			if ok {
				alts = append(alts, a)
			}
		}
		p.rules[r] = alts
	}
	nullable := p.closeRules(false)
	// Left-corner graph: r → s when s can start r.
	const (
		unseen = iota
		active
		done
	)
	state := make([]uint8, n)
	var visit func(r int32) error
	visit = func(r int32) error {
		state[r] = active
		for _, a := range p.rules[r] {
			for i := a; p.elems[i].kind == elRef; i++ {
				s := p.elems[i].arg
				switch state[s] {
				case active:
					return fmt.Errorf("%w: left recursion (a rule can reach itself without reading a byte)", ErrGrammar)
				case unseen:
					if err := visit(s); err != nil {
						return err
					}
				}
				if !nullable[s] {
					break
				}
			}
		}
		state[r] = done
		return nil
	}
	for r := range n {
		if state[r] == unseen {
			if err := visit(int32(r)); err != nil {
				return err
			}
		}
	}
	return nil
}
