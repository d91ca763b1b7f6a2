package constrain

import (
	"fmt"
	"slices"
)

// Lazy is a lazy grammar: generation is free text until a trigger string
// appears in the output, and from the trigger on it follows a grammar whose
// sentences begin with the trigger. It is what tool_choice "auto" needs:
// the model may answer in prose, but once it opens a tool-call envelope
// (`<tool_call>` for Hermes/Qwen templates) the call is constrained to the
// declared tools and their parameters, as llama.cpp's lazy grammars do.
//
// The switch is exact at the byte level: a token may finish the trigger and
// go on with the grammar's first bytes (or the trigger may be spread over
// several tokens); a token whose bytes after the trigger the grammar cannot
// read is masked out while the text is still free. Before the trigger every
// non-special token and EOS are allowed; after it, what the grammar allows.
// Lazy implements the engine's constraint hook like Matcher and, like it, is
// used by one generation at a time.
type Lazy struct {
	v     *Vocab
	t     *trigger
	start *Matcher // the grammar having read the trigger
	state int      // the trigger automaton's state; -1: it can no longer appear
	m     *Matcher // the grammar's parse once triggered; nil before
	ended bool     // EOS was read in free text

	refused map[int][]int32 // per trigger state: completing tokens the grammar refuses
}

// NewLazy starts a lazy match of g, which must accept the trigger as the
// start of its sentences. With atStart the trigger counts only at the start
// of the output (after whitespace), as for formats whose tool call is the
// whole reply (Llama 3.1's JSON calls); otherwise anywhere in it.
func NewLazy(g *Grammar, v *Vocab, trigger string, atStart bool) (*Lazy, error) {
	if trigger == "" {
		return nil, fmt.Errorf("%w: empty lazy-grammar trigger", ErrGrammar)
	}
	if atStart && isSpace(trigger[0]) {
		return nil, fmt.Errorf("%w: lazy-grammar trigger %q starts with whitespace", ErrGrammar, trigger)
	}
	m, err := NewMatcher(g, v)
	if err != nil {
		return nil, err
	}
	if err := m.feed([]byte(trigger)); err != nil {
		return nil, fmt.Errorf("%w: the grammar does not start with its trigger %q: %v", ErrGrammar, trigger, err)
	}
	return &Lazy{v: v, t: v.trigger(trigger, atStart), start: m, refused: map[int][]int32{}}, nil
}

// Triggered reports whether the trigger has appeared: the output is under
// the grammar from there on.
func (l *Lazy) Triggered() bool { return l.m != nil }

// FillMask sets in bits (at least (Size()+63)/64 words) the ids Advance
// would accept now.
func (l *Lazy) FillMask(bits []uint64) {
	switch {
	case l.m != nil:
		l.m.FillMask(bits)
	case l.ended:
		clear(bits[:l.v.words()])
	default:
		copy(bits, l.t.all)
		if l.state >= 0 {
			for _, id := range l.refusedAt(l.state) {
				bits[id>>6] &^= 1 << (id & 63)
			}
		}
	}
}

// refusedAt is, for trigger state s, the tokens that complete the trigger
// from s and go on with bytes the grammar cannot read.
func (l *Lazy) refusedAt(s int) []int32 {
	r, ok := l.refused[s]
	if !ok {
		for _, c := range l.t.completes[s] {
			if rest := l.v.toks[c.id][c.end:]; len(rest) > 0 && !l.start.viable(rest) {
				r = append(r, c.id)
			}
		}
		l.refused[s] = r
	}
	return r
}

// Advance reads token id. In free text a token that completes the trigger
// switches to the grammar, which reads the token's bytes after the trigger.
// A token not allowed here is an error wrapping ErrRejected and leaves the
// state unchanged.
func (l *Lazy) Advance(id int) error {
	if l.m != nil {
		return l.m.Advance(id)
	}
	if l.ended {
		return fmt.Errorf("%w: token %d after EOS", ErrRejected, id)
	}
	if l.v.isEOS(id) {
		l.ended = true
		return nil
	}
	b := l.v.Bytes(id)
	if len(b) == 0 {
		return fmt.Errorf("%w: token %d is special or unknown", ErrRejected, id)
	}
	s, end := l.t.run(l.state, b)
	if end < 0 {
		l.state = s
		return nil
	}
	m := l.start.Clone()
	if err := m.feed(b[end:]); err != nil {
		return fmt.Errorf("token %d after the trigger %q: %w", id, l.t.text, err)
	}
	l.m = m
	return nil
}

// CanEnd reports whether EOS is allowed: always in free text, where the
// grammar accepts once triggered.
func (l *Lazy) CanEnd() bool { return l.m == nil || l.m.CanEnd() }

// Done reports whether nothing but EOS may follow.
func (l *Lazy) Done() bool {
	if l.m != nil {
		return l.m.Done()
	}
	return l.ended
}

// trigger finds a trigger string in free text: a KMP automaton over its
// bytes, and per automaton state the vocabulary's tokens that complete it
// from there. It depends only on the vocabulary and the trigger, so the
// vocabulary keeps one per trigger for every request.
type trigger struct {
	text      []byte
	delta     [][256]int16 // state (bytes of the trigger matched) × byte → state; len(text): found; -1: never
	completes [][]completion
	all       []uint64 // every id with bytes, and the EOS ids
}

// completion is a token that completes the trigger; its bytes from end on
// follow the trigger.
type completion struct{ id, end int32 }

func (v *Vocab) trigger(text string, atStart bool) *trigger {
	key := fmt.Sprintf("trigger:%t:%s", atStart, text)
	v.mu.Lock()
	defer v.mu.Unlock()
	if t, ok := v.triggers[key]; ok {
		return t
	}
	t := newTrigger(v, []byte(text), atStart)
	if v.triggers == nil {
		v.triggers = map[string]*trigger{}
	}
	v.triggers[key] = t
	return t
}

func newTrigger(v *Vocab, text []byte, atStart bool) *trigger {
	n := len(text)
	t := &trigger{text: text, delta: make([][256]int16, n), completes: make([][]completion, n), all: make([]uint64, v.words())}
	if atStart {
		for k := range t.delta {
			for c := range t.delta[k] {
				t.delta[k][c] = -1
			}
			t.delta[k][text[k]] = int16(k + 1)
		}
		for _, c := range []byte(" \t\n\r") {
			t.delta[0][c] = 0
		}
	} else {
		t.delta[0][text[0]] = 1
		x := 0 // the state of the longest proper border
		for k := 1; k < n; k++ {
			t.delta[k] = t.delta[x]
			t.delta[k][text[k]] = int16(k + 1)
			x = int(t.delta[x][text[k]])
		}
	}
	for id, b := range v.toks {
		if len(b) == 0 {
			continue
		}
		t.all[id>>6] |= 1 << (id & 63)
		if slices.Contains(v.eos, id) {
			continue
		}
		for k := range n {
			if _, end := t.run(k, b); end >= 0 {
				t.completes[k] = append(t.completes[k], completion{int32(id), int32(end)})
			}
		}
	}
	for _, id := range v.eos {
		t.all[id>>6] |= 1 << (id & 63)
	}
	return t
}

// run reads b from state s: the state after it, or where in b the trigger
// ends (end ≥ 0) if it completes.
func (t *trigger) run(s int, b []byte) (state, end int) {
	for i, c := range b {
		if s < 0 {
			return s, -1
		}
		s = int(t.delta[s][c])
		if s == len(t.text) {
			return s, i + 1
		}
	}
	return s, -1
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
