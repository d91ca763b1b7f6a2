package regex

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Regex is a compiled pattern. It is immutable and safe for concurrent use.
type Regex struct {
	src  string
	prog []inst
}

// ErrUnsupported is wrapped by every error of Compile: a construct outside
// the subset (lookbehind, a backreference, ...) or a malformed pattern.
var ErrUnsupported = errors.New("regex: unsupported")

type opcode uint8

const (
	opRune   opcode = iota // match rune r (folded if fold)
	opClass                // match a rune in class
	opAny                  // any rune but \n
	opAnyNL                // any rune
	opSplit                // try x, then y
	opJmp                  // goto x
	opAssert               // zero-width assertion
	opLook                 // lookahead sub-program
	opMatch                // success
)

type assertKind uint8

const (
	assertBOL   assertKind = iota // ^
	assertEOL                     // $
	assertBegin                   // \A
	assertEnd                     // \z
	assertEndZ                    // \Z
)

type inst struct {
	op     opcode
	fold   bool
	neg    bool // opLook: negative lookahead
	assert assertKind
	r      rune
	x, y   int
	class  *charClass
	sub    *Regex // opLook
}

// Compile parses and compiles pattern. Errors wrap ErrUnsupported.
func Compile(pattern string) (*Regex, error) {
	p := &reParser{src: pattern}
	n, err := p.parseAlt()
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.src) {
		return nil, p.errorf("unexpected %q", p.src[p.pos])
	}
	re := &Regex{src: pattern}
	if err := re.emit(n); err != nil {
		return nil, err
	}
	re.prog = append(re.prog, inst{op: opMatch})
	return re, nil
}

// matchAt reports the end of the match starting at byte offset pos, or -1.
func (re *Regex) matchAt(s string, pos int) int {
	type thread struct{ pc, pos int }
	var stackBuf [32]thread
	stack := append(stackBuf[:0], thread{0, pos})
	for len(stack) > 0 {
		t := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		pc, i := t.pc, t.pos
	run:
		for {
			in := &re.prog[pc]
			switch in.op {
			case opMatch:
				return i
			case opRune:
				if i >= len(s) {
					break run
				}
				r, n := decodeRune(s, i)
				if r != in.r && !(in.fold && foldEqual(r, in.r)) {
					break run
				}
				i += n
				pc++
			case opClass:
				if i >= len(s) {
					break run
				}
				r, n := decodeRune(s, i)
				if !in.class.matches(r) {
					break run
				}
				i += n
				pc++
			case opAny, opAnyNL:
				if i >= len(s) {
					break run
				}
				r, n := decodeRune(s, i)
				if in.op == opAny && r == '\n' {
					break run
				}
				i += n
				pc++
			case opSplit:
				stack = append(stack, thread{in.y, i})
				pc = in.x
			case opJmp:
				pc = in.x
			case opAssert:
				if !assertHolds(in.assert, s, i) {
					break run
				}
				pc++
			case opLook:
				if (in.sub.matchAt(s, i) >= 0) == in.neg {
					break run
				}
				pc++
			}
		}
	}
	return -1
}

// FindAll calls fn with the [start, end) byte ranges of successive non-overlapping
// matches, scanning as JavaScript's matchAll and Oniguruma's search do: an
// empty match advances the scan by one rune.
func (re *Regex) FindAll(s string, fn func(start, end int)) {
	for pos := 0; pos <= len(s); {
		end := re.matchAt(s, pos)
		if end < 0 {
			if pos == len(s) {
				return
			}
			_, n := decodeRune(s, pos)
			pos += n
			continue
		}
		fn(pos, end)
		if end == pos {
			if pos == len(s) {
				return
			}
			_, n := decodeRune(s, pos)
			end += n
		}
		pos = end
	}
}

// ReplaceAll replaces every match of re in s with repl (taken literally).
func (re *Regex) ReplaceAll(s, repl string) string {
	var b strings.Builder
	last := 0
	re.FindAll(s, func(start, end int) {
		b.WriteString(s[last:start])
		b.WriteString(repl)
		last = end
	})
	if last == 0 && b.Len() == 0 {
		return s
	}
	b.WriteString(s[last:])
	return b.String()
}

func decodeRune(s string, i int) (rune, int) {
	if c := s[i]; c < utf8.RuneSelf {
		return rune(c), 1
	}
	return utf8.DecodeRuneInString(s[i:])
}

func assertHolds(k assertKind, s string, i int) bool {
	switch k {
	case assertBOL:
		return i == 0 || s[i-1] == '\n'
	case assertEOL:
		return i == len(s) || s[i] == '\n'
	case assertBegin:
		return i == 0
	case assertEnd:
		return i == len(s)
	case assertEndZ:
		return i == len(s) || (i == len(s)-1 && s[i] == '\n')
	}
	return false
}

// foldEqual reports whether a and b are equal under simple case folding.
func foldEqual(a, b rune) bool {
	if a == b {
		return true
	}
	for f := unicode.SimpleFold(a); f != a; f = unicode.SimpleFold(f) {
		if f == b {
			return true
		}
	}
	return false
}

// ---- syntax tree ----

type nodeKind uint8

const (
	nLit nodeKind = iota
	nClass
	nAny
	nAssert
	nConcat
	nAlt
	nRepeat
	nLook
	nEmpty
)

type reNode struct {
	kind     nodeKind
	r        rune
	fold     bool
	class    *charClass
	assert   assertKind
	subs     []*reNode
	min, max int // nRepeat; max -1 = unbounded
	lazy     bool
	neg      bool // nLook
}

const maxRepeatExpansion = 1000

func (re *Regex) emit(n *reNode) error {
	switch n.kind {
	case nEmpty:
	case nLit:
		re.prog = append(re.prog, inst{op: opRune, r: n.r, fold: n.fold})
	case nClass:
		re.prog = append(re.prog, inst{op: opClass, class: n.class})
	case nAny:
		re.prog = append(re.prog, inst{op: opAny})
	case nAssert:
		re.prog = append(re.prog, inst{op: opAssert, assert: n.assert})
	case nConcat:
		for _, s := range n.subs {
			if err := re.emit(s); err != nil {
				return err
			}
		}
	case nAlt:
		// split L1, next; L1: a; jmp end; next: split L2, next2; ...
		var jmps []int
		for i, s := range n.subs {
			if i < len(n.subs)-1 {
				split := len(re.prog)
				re.prog = append(re.prog, inst{op: opSplit, x: split + 1})
				if err := re.emit(s); err != nil {
					return err
				}
				jmps = append(jmps, len(re.prog))
				re.prog = append(re.prog, inst{op: opJmp})
				re.prog[split].y = len(re.prog)
			} else if err := re.emit(s); err != nil {
				return err
			}
		}
		for _, j := range jmps {
			re.prog[j].x = len(re.prog)
		}
	case nLook:
		sub := &Regex{src: re.src}
		if err := sub.emit(n.subs[0]); err != nil {
			return err
		}
		sub.prog = append(sub.prog, inst{op: opMatch})
		re.prog = append(re.prog, inst{op: opLook, neg: n.neg, sub: sub})
	case nRepeat:
		body := n.subs[0]
		if n.max < 0 && nullable(body) {
			return fmt.Errorf("%w: %q: unbounded repetition of an expression that can match empty", ErrUnsupported, re.src)
		}
		if n.min > maxRepeatExpansion || n.max > maxRepeatExpansion {
			return fmt.Errorf("%w: %q: repetition count over %d", ErrUnsupported, re.src, maxRepeatExpansion)
		}
		for i := 0; i < n.min; i++ {
			if err := re.emit(body); err != nil {
				return err
			}
		}
		if n.max < 0 {
			// L: split body, out (greedy) ; body ; jmp L
			l := len(re.prog)
			re.prog = append(re.prog, inst{op: opSplit})
			if err := re.emit(body); err != nil {
				return err
			}
			re.prog = append(re.prog, inst{op: opJmp, x: l})
			re.setSplit(l, l+1, len(re.prog), n.lazy)
			return nil
		}
		// Optional copies nest: (body (body …)?)?
		var splits []int
		for i := n.min; i < n.max; i++ {
			splits = append(splits, len(re.prog))
			re.prog = append(re.prog, inst{op: opSplit})
			if err := re.emit(body); err != nil {
				return err
			}
		}
		end := len(re.prog)
		for _, s := range splits {
			re.setSplit(s, s+1, end, n.lazy)
		}
	}
	return nil
}

func (re *Regex) setSplit(pc, body, out int, lazy bool) {
	if lazy {
		re.prog[pc].x, re.prog[pc].y = out, body
	} else {
		re.prog[pc].x, re.prog[pc].y = body, out
	}
}

func nullable(n *reNode) bool {
	switch n.kind {
	case nEmpty, nAssert, nLook:
		return true
	case nConcat:
		for _, s := range n.subs {
			if !nullable(s) {
				return false
			}
		}
		return true
	case nAlt:
		for _, s := range n.subs {
			if nullable(s) {
				return true
			}
		}
		return false
	case nRepeat:
		return n.min == 0 || nullable(n.subs[0])
	}
	return false
}

// ---- parser ----

type reParser struct {
	src  string
	pos  int
	fold bool
}

func (p *reParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %q at offset %d: %s", ErrUnsupported, p.src, p.pos, fmt.Sprintf(format, args...))
}

func (p *reParser) more() bool { return p.pos < len(p.src) }

func (p *reParser) peek() rune {
	r, _ := utf8.DecodeRuneInString(p.src[p.pos:])
	return r
}

func (p *reParser) next() rune {
	r, n := utf8.DecodeRuneInString(p.src[p.pos:])
	p.pos += n
	return r
}

func (p *reParser) parseAlt() (*reNode, error) {
	var alts []*reNode
	for {
		c, err := p.parseConcat()
		if err != nil {
			return nil, err
		}
		alts = append(alts, c)
		if p.more() && p.peek() == '|' {
			p.pos++
			continue
		}
		break
	}
	if len(alts) == 1 {
		return alts[0], nil
	}
	return &reNode{kind: nAlt, subs: alts}, nil
}

func (p *reParser) parseConcat() (*reNode, error) {
	var items []*reNode
	for p.more() {
		c := p.peek()
		if c == '|' || c == ')' {
			break
		}
		atom, err := p.parseAtom()
		if err != nil {
			return nil, err
		}
		if atom == nil {
			continue
		}
		atom, err = p.parseQuantifier(atom)
		if err != nil {
			return nil, err
		}
		items = append(items, atom)
	}
	switch len(items) {
	case 0:
		return &reNode{kind: nEmpty}, nil
	case 1:
		return items[0], nil
	}
	return &reNode{kind: nConcat, subs: items}, nil
}

func (p *reParser) parseQuantifier(atom *reNode) (*reNode, error) {
	for p.more() {
		min, max := -1, -1
		start := p.pos
		switch p.peek() {
		case '?':
			p.pos++
			min, max = 0, 1
		case '*':
			p.pos++
			min, max = 0, -1
		case '+':
			p.pos++
			min, max = 1, -1
		case '{':
			lo, hi, ok := p.parseBraces()
			if !ok {
				p.pos = start
				return atom, nil // a literal '{', as in Oniguruma
			}
			min, max = lo, hi
		default:
			return atom, nil
		}
		if atom.kind == nAssert || atom.kind == nLook {
			return nil, p.errorf("quantifier after an assertion")
		}
		rep := &reNode{kind: nRepeat, subs: []*reNode{atom}, min: min, max: max}
		if p.more() {
			switch p.peek() {
			case '?':
				p.pos++
				rep.lazy = true
			case '+':
				return nil, p.errorf("possessive quantifiers are not supported")
			}
		}
		atom = rep
	}
	return atom, nil
}

// parseBraces parses {n}, {n,}, {n,m} or {,m}; ok is false if the text is not
// a quantifier.
func (p *reParser) parseBraces() (min, max int, ok bool) {
	end := strings.IndexByte(p.src[p.pos:], '}')
	if end < 0 {
		return 0, 0, false
	}
	body := p.src[p.pos+1 : p.pos+end]
	lo, hi, hasComma := strings.Cut(body, ",")
	var err error
	if lo == "" {
		if !hasComma {
			return 0, 0, false
		}
		min = 0
	} else if min, err = strconv.Atoi(lo); err != nil {
		return 0, 0, false
	}
	switch {
	case !hasComma:
		max = min
	case hi == "":
		max = -1
	default:
		if max, err = strconv.Atoi(hi); err != nil || max < min {
			return 0, 0, false
		}
	}
	p.pos += end + 1
	return min, max, true
}

func (p *reParser) parseAtom() (*reNode, error) {
	c := p.next()
	switch c {
	case '(':
		return p.parseGroup()
	case '[':
		cls, err := p.parseClass()
		if err != nil {
			return nil, err
		}
		return &reNode{kind: nClass, class: cls}, nil
	case '.':
		return &reNode{kind: nAny}, nil
	case '^':
		return &reNode{kind: nAssert, assert: assertBOL}, nil
	case '$':
		return &reNode{kind: nAssert, assert: assertEOL}, nil
	case '\\':
		return p.parseEscape()
	case '*', '+', '?':
		return nil, p.errorf("nothing to repeat")
	}
	return &reNode{kind: nLit, r: c, fold: p.fold && hasFold(c)}, nil
}

func hasFold(r rune) bool { return unicode.SimpleFold(r) != r }

func (p *reParser) parseGroup() (*reNode, error) {
	saved := p.fold
	defer func() { p.fold = saved }()
	var look, neg bool
	if strings.HasPrefix(p.src[p.pos:], "?") {
		rest := p.src[p.pos+1:]
		switch {
		case strings.HasPrefix(rest, ":"):
			p.pos += 2
		case strings.HasPrefix(rest, "="):
			p.pos += 2
			look = true
		case strings.HasPrefix(rest, "!"):
			p.pos += 2
			look, neg = true, true
		case strings.HasPrefix(rest, "i:"):
			p.pos += 3
			p.fold = true
		case strings.HasPrefix(rest, "-i:"):
			p.pos += 4
			p.fold = false
		case strings.HasPrefix(rest, "<") && !strings.HasPrefix(rest, "<=") && !strings.HasPrefix(rest, "<!"):
			// named group (?<name>…): treated as a plain group
			end := strings.IndexByte(rest, '>')
			if end < 0 {
				return nil, p.errorf("unterminated group name")
			}
			p.pos += 2 + end
		default:
			return nil, p.errorf("group syntax (?%s is not supported", firstRune(rest))
		}
	}
	n, err := p.parseAlt()
	if err != nil {
		return nil, err
	}
	if !p.more() || p.next() != ')' {
		return nil, p.errorf("missing )")
	}
	if look {
		return &reNode{kind: nLook, neg: neg, subs: []*reNode{n}}, nil
	}
	return n, nil
}

func firstRune(s string) string {
	if s == "" {
		return ""
	}
	_, n := utf8.DecodeRuneInString(s)
	return s[:n]
}

func (p *reParser) parseEscape() (*reNode, error) {
	if !p.more() {
		return nil, p.errorf("trailing backslash")
	}
	c := p.peek()
	switch c {
	case 'A':
		p.pos++
		return &reNode{kind: nAssert, assert: assertBegin}, nil
	case 'z':
		p.pos++
		return &reNode{kind: nAssert, assert: assertEnd}, nil
	case 'Z':
		p.pos++
		return &reNode{kind: nAssert, assert: assertEndZ}, nil
	case 'b', 'B', 'G', 'K', 'R', 'X', 'k', 'g':
		return nil, p.errorf("escape \\%c is not supported", c)
	}
	if c >= '1' && c <= '9' {
		return nil, p.errorf("backreferences are not supported")
	}
	cls := &charClass{}
	isClass, r, err := p.parseEscapeInto(cls)
	if err != nil {
		return nil, err
	}
	if isClass {
		cls.fold = p.fold
		cls.finish()
		return &reNode{kind: nClass, class: cls}, nil
	}
	return &reNode{kind: nLit, r: r, fold: p.fold && hasFold(r)}, nil
}

// parseEscapeInto parses the escape after a backslash. A class escape (\s,
// \p{L}, …) is added to cls and isClass is true; otherwise the escaped rune is
// returned.
func (p *reParser) parseEscapeInto(cls *charClass) (isClass bool, r rune, err error) {
	c := p.next()
	switch c {
	case 's':
		cls.addTable(unicode.White_Space, false)
	case 'S':
		cls.addTable(unicode.White_Space, true)
	case 'd':
		cls.addTable(unicode.Nd, false)
	case 'D':
		cls.addTable(unicode.Nd, true)
	case 'w':
		cls.addTables(wordTables, false)
	case 'W':
		cls.addTables(wordTables, true)
	case 'h':
		cls.addRange('0', '9')
		cls.addRange('a', 'f')
		cls.addRange('A', 'F')
	case 'H':
		cls.addTables([]*unicode.RangeTable{hexTable}, true)
	case 'p', 'P':
		neg := c == 'P'
		if !p.more() || p.peek() != '{' {
			return false, 0, p.errorf("\\%c needs {name}", c)
		}
		end := strings.IndexByte(p.src[p.pos:], '}')
		if end < 0 {
			return false, 0, p.errorf("unterminated \\%c{", c)
		}
		name := p.src[p.pos+1 : p.pos+end]
		p.pos += end + 1
		if strings.HasPrefix(name, "^") {
			neg = !neg
			name = name[1:]
		}
		tables, ok := propertyTables(name)
		if !ok {
			return false, 0, p.errorf("unknown Unicode property %q", name)
		}
		cls.addTables(tables, neg)
	default:
		r, err := p.escapedRune(c)
		return false, r, err
	}
	return true, 0, nil
}

func (p *reParser) escapedRune(c rune) (rune, error) {
	switch c {
	case 't':
		return '\t', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 'f':
		return '\f', nil
	case 'v':
		return '\v', nil
	case 'a':
		return '\a', nil
	case 'e':
		return 0x1b, nil
	case '0':
		return 0, nil
	case 'x':
		if p.more() && p.peek() == '{' {
			end := strings.IndexByte(p.src[p.pos:], '}')
			if end < 0 {
				return 0, p.errorf("unterminated \\x{")
			}
			v, err := strconv.ParseUint(p.src[p.pos+1:p.pos+end], 16, 32)
			if err != nil {
				return 0, p.errorf("bad \\x{…}")
			}
			p.pos += end + 1
			return rune(v), nil
		}
		return p.hexRune(2)
	case 'u':
		return p.hexRune(4)
	}
	if c < utf8.RuneSelf && (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
		return 0, p.errorf("escape \\%c is not supported", c)
	}
	return c, nil // escaped punctuation or any other rune stands for itself
}

func (p *reParser) hexRune(n int) (rune, error) {
	if p.pos+n > len(p.src) {
		return 0, p.errorf("short hex escape")
	}
	v, err := strconv.ParseUint(p.src[p.pos:p.pos+n], 16, 32)
	if err != nil {
		return 0, p.errorf("bad hex escape")
	}
	p.pos += n
	return rune(v), nil
}

// parseClass parses a bracket expression; the '[' has been consumed.
func (p *reParser) parseClass() (*charClass, error) {
	cls := &charClass{fold: p.fold}
	if p.more() && p.peek() == '^' {
		p.pos++
		cls.negated = true
	}
	first := true
	for {
		if !p.more() {
			return nil, p.errorf("missing ]")
		}
		c := p.next()
		if c == ']' && !first {
			break
		}
		first = false
		switch c {
		case '[':
			if strings.HasPrefix(p.src[p.pos:], ":") {
				return nil, p.errorf("POSIX bracket classes are not supported")
			}
			return nil, p.errorf("nested character classes are not supported")
		case '&':
			if strings.HasPrefix(p.src[p.pos:], "&") {
				return nil, p.errorf("class intersection is not supported")
			}
		}
		lo := c
		if c == '\\' {
			if !p.more() {
				return nil, p.errorf("trailing backslash")
			}
			isClass, r, err := p.parseEscapeInto(cls)
			if err != nil {
				return nil, err
			}
			if isClass {
				continue
			}
			lo = r
		}
		// A range lo-hi, unless '-' is last.
		if strings.HasPrefix(p.src[p.pos:], "-") && p.pos+1 < len(p.src) && p.src[p.pos+1] != ']' {
			p.pos++
			hi := p.next()
			if hi == '\\' {
				if !p.more() {
					return nil, p.errorf("trailing backslash")
				}
				r, err := p.escapedRune(p.next())
				if err != nil {
					return nil, err
				}
				hi = r
			} else if hi == '[' {
				return nil, p.errorf("nested character classes are not supported")
			}
			if hi < lo {
				return nil, p.errorf("bad range %c-%c", lo, hi)
			}
			cls.addRange(lo, hi)
			continue
		}
		cls.addRange(lo, lo)
	}
	cls.finish()
	return cls, nil
}

// ---- character classes ----

// charClass is a union of rune ranges, Unicode tables and negated tables,
// optionally negated as a whole and case-folded. Membership of ASCII runes is
// precomputed.
type charClass struct {
	negated   bool
	fold      bool
	ranges    []rune // pairs lo, hi
	tables    []*unicode.RangeTable
	notTables [][]*unicode.RangeTable // each entry: rune is in none of these tables
	ascii     [2]uint64
}

func (c *charClass) addRange(lo, hi rune) { c.ranges = append(c.ranges, lo, hi) }

func (c *charClass) addTable(t *unicode.RangeTable, neg bool) {
	c.addTables([]*unicode.RangeTable{t}, neg)
}

func (c *charClass) addTables(ts []*unicode.RangeTable, neg bool) {
	if neg {
		c.notTables = append(c.notTables, ts)
	} else {
		c.tables = append(c.tables, ts...)
	}
}

func (c *charClass) finish() {
	for r := rune(0); r < utf8.RuneSelf; r++ {
		if c.slowMatch(r) {
			c.ascii[r>>6] |= 1 << (r & 63)
		}
	}
}

func (c *charClass) matches(r rune) bool {
	if r < utf8.RuneSelf {
		return c.ascii[r>>6]&(1<<(r&63)) != 0
	}
	return c.slowMatch(r)
}

func (c *charClass) slowMatch(r rune) bool {
	in := c.contains(r)
	if !in && c.fold {
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			if c.contains(f) {
				in = true
				break
			}
		}
	}
	return in != c.negated
}

func (c *charClass) contains(r rune) bool {
	for i := 0; i < len(c.ranges); i += 2 {
		if r >= c.ranges[i] && r <= c.ranges[i+1] {
			return true
		}
	}
	for _, t := range c.tables {
		if unicode.Is(t, r) {
			return true
		}
	}
	for _, ts := range c.notTables {
		if !unicode.In(r, ts...) {
			return true
		}
	}
	return false
}

var (
	hexTable = &unicode.RangeTable{R16: []unicode.Range16{
		{Lo: '0', Hi: '9', Stride: 1}, {Lo: 'A', Hi: 'F', Stride: 1}, {Lo: 'a', Hi: 'f', Stride: 1},
	}}
	// alphabeticTables is the Alphabetic property: L + Nl + Other_Alphabetic.
	alphabeticTables = []*unicode.RangeTable{unicode.L, unicode.Nl, unicode.Other_Alphabetic}
	// wordTables is Oniguruma's Unicode \w.
	wordTables = []*unicode.RangeTable{unicode.L, unicode.Nl, unicode.Other_Alphabetic, unicode.M, unicode.Nd, unicode.Pc}
)

// propertyTables resolves a \p{…} name: a general category (short or long
// name), a script, or a binary property, loosely matched as Oniguruma does
// (case, spaces, '-' and '_' ignored).
func propertyTables(name string) ([]*unicode.RangeTable, bool) {
	key := looseName(name)
	if ts, ok := propertyIndex[key]; ok {
		return ts, true
	}
	return nil, false
}

func looseName(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case ' ', '_', '-':
			continue
		}
		b.WriteRune(unicode.ToLower(r))
	}
	return b.String()
}

var propertyIndex = func() map[string][]*unicode.RangeTable {
	m := map[string][]*unicode.RangeTable{}
	for name, t := range unicode.Scripts {
		m[looseName(name)] = []*unicode.RangeTable{t}
	}
	for name, t := range unicode.Properties {
		m[looseName(name)] = []*unicode.RangeTable{t}
	}
	for name, t := range unicode.Categories {
		m[looseName(name)] = []*unicode.RangeTable{t}
	}
	long := map[string]string{
		"Letter": "L", "Cased_Letter": "LC", "Uppercase_Letter": "Lu", "Lowercase_Letter": "Ll",
		"Titlecase_Letter": "Lt", "Modifier_Letter": "Lm", "Other_Letter": "Lo",
		"Mark": "M", "Combining_Mark": "M", "Nonspacing_Mark": "Mn", "Spacing_Mark": "Mc", "Enclosing_Mark": "Me",
		"Number": "N", "Decimal_Number": "Nd", "Digit": "Nd", "Letter_Number": "Nl", "Other_Number": "No",
		"Punctuation": "P", "Connector_Punctuation": "Pc", "Dash_Punctuation": "Pd", "Open_Punctuation": "Ps",
		"Close_Punctuation": "Pe", "Initial_Punctuation": "Pi", "Final_Punctuation": "Pf", "Other_Punctuation": "Po",
		"Symbol": "S", "Math_Symbol": "Sm", "Currency_Symbol": "Sc", "Modifier_Symbol": "Sk", "Other_Symbol": "So",
		"Separator": "Z", "Space_Separator": "Zs", "Line_Separator": "Zl", "Paragraph_Separator": "Zp",
		"Other": "C", "Control": "Cc", "Format": "Cf", "Surrogate": "Cs", "Private_Use": "Co",
	}
	for l, s := range long {
		if t, ok := unicode.Categories[s]; ok {
			m[looseName(l)] = []*unicode.RangeTable{t}
		}
	}
	m["lc"] = []*unicode.RangeTable{unicode.Lu, unicode.Ll, unicode.Lt}
	m["casedletter"] = m["lc"]
	m["alphabetic"] = alphabeticTables
	m["alpha"] = alphabeticTables
	m["word"] = wordTables
	m["space"] = []*unicode.RangeTable{unicode.White_Space}
	m["whitespace"] = []*unicode.RangeTable{unicode.White_Space}
	m["any"] = []*unicode.RangeTable{{R16: []unicode.Range16{{Lo: 0, Hi: 0xffff, Stride: 1}}, R32: []unicode.Range32{{Lo: 0x10000, Hi: unicode.MaxRune, Stride: 1}}}}
	return m
}()
