package constrain

import (
	"errors"
	"math/rand/v2"
	"testing"
)

func mustSchema(t testing.TB, schema string) *Grammar {
	t.Helper()
	g, err := CompileSchema([]byte(schema))
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// accepts feeds text to g token by token (as the Qwen tokenizer splits it)
// and reports whether every token is in the mask and accepted, and whether
// the grammar can end after it.
func accepts(t *testing.T, g *Grammar, text string) (ok, canEnd bool) {
	t.Helper()
	v := qwenVocab(t)
	m, err := NewMatcher(g, v)
	if err != nil {
		t.Fatal(err)
	}
	mask := make([]uint64, (v.Size()+63)/64)
	for _, id := range qwenTok.Encode(text, false) {
		m.FillMask(mask)
		inMask := mask[id>>6]&(1<<(id&63)) != 0
		err := m.Advance(id)
		if inMask != (err == nil) {
			t.Fatalf("%q: token %q: in mask %v, Advance error %v", text, v.Bytes(id), inMask, err)
		}
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("Advance error %v does not wrap ErrRejected", err)
			}
			return false, false
		}
	}
	return true, m.CanEnd()
}

func TestAcceptsTexts(t *testing.T) {
	person := mustSchema(t, `{"type":"object","properties":{"name":{"type":"string"},"age":{"type":"integer","minimum":0,"maximum":150}},"required":["name"]}`)
	for _, c := range []struct {
		g      *Grammar
		text   string
		ok     bool
		canEnd bool
	}{
		{person, `{"name": "Bob the builder", "age": 42}`, true, true},
		{person, `{"name":"Zoë 🧪","age":150}`, true, true},
		{person, `{"name":"x"}`, true, true},
		{person, `{"name":"x","age":151}`, false, false},
		{person, `{"name":"x","age":01}`, false, false},
		{person, `{"age":1,"name":"x"}`, false, false}, // schema order
		{person, `{"name":"x",`, true, false},
		{person, `{ "name":"x"}`, false, false}, // only after , and :
		{person, `{"name":"a\"b\\c\n\u001f"}`, true, true},
		{person, `{"name":"a\/b"}`, false, false},
		{person, "{\"name\":\"tab\there\"}", false, false},
		{JSONObject(), `{"a": [1, 2.5e3, {"b": null}], "c": "d"}`, true, true},
		{JSONObject(), `[]`, false, false},
		{JSONValue(), `-0.5`, true, true},
		{mustSchema(t, `{"type":"integer","exclusiveMinimum":-3,"maximum":12}`), `-2`, true, true},
		{mustSchema(t, `{"type":"integer","exclusiveMinimum":-3,"maximum":12}`), `-3`, false, false},
		{mustSchema(t, `{"type":"integer","exclusiveMinimum":-3,"maximum":12}`), `1`, true, true}, // 1 may become 12
		{mustSchema(t, `{"type":"string","nullable":true}`), `null`, true, true},
		{mustSchema(t, `{"maxLength":3,"nullable":true}`), `null`, true, true},
		{mustSchema(t, `{"type":["integer","number"]}`), `1.5`, true, true},
		{mustSchema(t, `{"type":"string","format":"date"}`), `"2024-02-29"`, false, false},
		{mustSchema(t, `{"type":"string","format":"date"}`), `"2024-02-28"`, true, true},
		{mustSchema(t, `{"type":"string","pattern":"^a+$","maxLength":3}`), `"aaa"`, true, true},
		{mustSchema(t, `{"type":"string","pattern":"^a+$","maxLength":3}`), `"aaaa"`, false, false},
	} {
		ok, canEnd := accepts(t, c.g, c.text)
		if ok != c.ok || canEnd != c.canEnd {
			t.Errorf("%s: ok %v canEnd %v, want %v %v", c.text, ok, canEnd, c.ok, c.canEnd)
		}
	}
}

// A Hermes/Qwen tool call: an envelope of literals around each tool's
// arguments schema, alternatives over the tools, one or more calls.
func TestToolCallComposition(t *testing.T) {
	weather := mustSchema(t, `{"type":"object","properties":{"city":{"type":"string","maxLength":20}},"required":["city"],"additionalProperties":false}`)
	clock := mustSchema(t, `{"type":"object","properties":{"tz":{"enum":["UTC","CET"]}}}`)
	call := func(name string, args *Grammar) *Grammar {
		return Seq(Literal("<tool_call>\n{\"name\": \""+name+"\", \"arguments\": "), args, Literal("}\n</tool_call>"))
	}
	g := Repeat(Alt(call("get_weather", weather), call("get_time", clock)), 1, -1)
	good := "<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\":\"CET\"}}\n</tool_call>" +
		"<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>"
	if ok, canEnd := accepts(t, g, good); !ok || !canEnd {
		t.Errorf("two calls: ok %v canEnd %v", ok, canEnd)
	}
	bad := "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"tz\":\"CET\"}}\n</tool_call>"
	if ok, _ := accepts(t, g, bad); ok {
		t.Error("arguments of another tool accepted")
	}
	// Qwen's <tool_call> is one (non-special) added token: the mask at the
	// start allows it.
	v := qwenVocab(t)
	m, err := NewMatcher(g, v)
	if err != nil {
		t.Fatal(err)
	}
	id, ok := qwenTok.TokenID("<tool_call>")
	if !ok {
		t.Fatal("no <tool_call> token")
	}
	mask := make([]uint64, (v.Size()+63)/64)
	m.FillMask(mask)
	if mask[id>>6]&(1<<(id&63)) == 0 {
		t.Error("<tool_call> token not allowed at the start")
	}
	for _, e := range v.eos {
		if mask[e>>6]&(1<<(e&63)) != 0 {
			t.Error("EOS allowed before the grammar can end")
		}
	}
}

// bruteMask is the mask by definition: the ids whose Advance succeeds on a
// clone.
func bruteMask(m *Matcher) []uint64 {
	return bruteMaskOf(m.v, func(id int) error { return m.Clone().Advance(id) })
}

// bruteMaskOf sets the bit of every id of v that try accepts.
func bruteMaskOf(v *Vocab, try func(id int) error) []uint64 {
	mask := make([]uint64, v.words())
	for id := range v.Size() {
		if try(id) == nil {
			mask[id>>6] |= 1 << (id & 63)
		}
	}
	return mask
}

// FillMask equals trying every token, at states along random walks (string
// bodies, numbers that may end or go on, structure, the middle of a UTF-8
// character).
func TestMaskIsExhaustive(t *testing.T) {
	v := qwenVocab(t)
	schemas := []string{
		`{"type":"object","properties":{"s":{"type":"string","maxLength":6},"n":{"type":"number","minimum":-2,"maximum":3},"e":{"enum":["ab","abc",null]}},"required":["s","n"]}`,
		`{"type":"array","items":{"type":"string","pattern":"^[α-ω]+é?$"},"maxItems":3}`,
		`{"type":"object","properties":{"a":{"type":"boolean"},"ab":{"type":"integer"},"b":{"type":"null"}},"additionalProperties":{"type":"array","items":{"$ref":"#"}}}`,
	}
	perSchema := 3
	if testing.Short() {
		perSchema = 1
	}
	for i, s := range schemas {
		checks := perSchema
		g := mustSchema(t, s)
		rng := rand.New(rand.NewPCG(uint64(i), 3))
		m, err := NewMatcher(g, v)
		if err != nil {
			t.Fatal(err)
		}
		mask := make([]uint64, v.words())
		var out []byte
		for step := 0; step < 40 && !m.Done(); step++ {
			m.FillMask(mask)
			if step%4 == 0 && checks > 0 {
				checks--
				want := bruteMask(m)
				for w := range mask {
					if mask[w] != want[w] {
						t.Fatalf("schema %d after %q: mask word %d = %x, trying every token gives %x", i, out, w, mask[w], want[w])
					}
				}
			}
			id := pickBit(rng, mask, nil)
			if v.isEOS(id) {
				break
			}
			if err := m.Advance(id); err != nil {
				t.Fatal(err)
			}
			out = append(out, v.Bytes(id)...)
		}
		if checks == perSchema {
			t.Errorf("schema %d: no state checked", i)
		}
	}
}

// A rejected token leaves the state as it was; EOS only where the grammar
// can end, and nothing after it.
func TestRejectLeavesState(t *testing.T) {
	v := qwenVocab(t)
	g := mustSchema(t, `{"type":"object","properties":{"a":{"type":"boolean"}},"required":["a"]}`)
	m, err := NewMatcher(g, v)
	if err != nil {
		t.Fatal(err)
	}
	eos := v.eos[0]
	if err := m.Advance(eos); !errors.Is(err, ErrRejected) {
		t.Fatalf("EOS at the start: %v", err)
	}
	for _, id := range qwenTok.Encode(`{"a":tru`, false) {
		if err := m.Advance(id); err != nil {
			t.Fatal(err)
		}
	}
	before := m.Clone()
	for _, bad := range []string{"x", "}", "true", " "} {
		id, _ := qwenTok.TokenID(bad)
		if err := m.Advance(id); !errors.Is(err, ErrRejected) {
			t.Fatalf("%q after tru: %v", bad, err)
		}
	}
	a, b := make([]uint64, v.words()), make([]uint64, v.words())
	m.FillMask(a)
	before.FillMask(b)
	for i := range a {
		if a[i] != b[i] {
			t.Fatal("state changed by rejected tokens")
		}
	}
	for _, id := range qwenTok.Encode(`e}`, false) {
		if err := m.Advance(id); err != nil {
			t.Fatal(err)
		}
	}
	if !m.CanEnd() || !m.Done() {
		t.Fatal("complete object: not CanEnd/Done")
	}
	m.FillMask(a)
	if n := countBits(a); n != 1 || a[eos>>6]&(1<<(eos&63)) == 0 {
		t.Fatalf("after the object the mask has %d ids, want only EOS", n)
	}
	if err := m.Advance(eos); err != nil {
		t.Fatal(err)
	}
	if err := m.Advance(eos); !errors.Is(err, ErrRejected) {
		t.Fatalf("EOS twice: %v", err)
	}
	im, _ := qwenTok.TokenID("<|im_start|>")
	m2, _ := NewMatcher(JSONValue(), v)
	if err := m2.Advance(im); !errors.Is(err, ErrRejected) {
		t.Fatalf("special token: %v", err)
	}
}

func countBits(mask []uint64) int {
	n := 0
	for _, w := range mask {
		for ; w != 0; w &= w - 1 {
			n++
		}
	}
	return n
}

func TestGrammarErrors(t *testing.T) {
	v := qwenVocab(t)
	for name, g := range map[string]*Grammar{
		"nullable repeat": Repeat(Optional(Literal("a")), 0, -1),
		"empty alt":       Alt(),
	} {
		if _, err := NewMatcher(g, v); !errors.Is(err, ErrGrammar) {
			t.Errorf("%s: %v, want ErrGrammar", name, err)
		}
	}
	m, err := NewMatcher(Literal(""), v)
	if err != nil || !m.CanEnd() || !m.Done() {
		t.Errorf("empty literal: %v", err)
	}
}

// Past its memory budget a Vocab forgets its analyses; matchers go on with
// the ones they hold, and new ones recompute.
func TestAnalysisBudget(t *testing.T) {
	v := freshVocab(t)
	v.maxHeld = 100 << 10 // a few string states
	g := mustSchema(t, `{"type":"object","properties":{"a":{"type":"string","maxLength":8},"b":{"type":"string"}},"required":["a","b"]}`)
	text := `{"a":"héllo","b":"wörld and more"}`
	for range 2 {
		m, err := NewMatcher(g, v)
		if err != nil {
			t.Fatal(err)
		}
		mask := make([]uint64, v.words())
		for _, id := range qwenTok.Encode(text, false) {
			m.FillMask(mask)
			if mask[id>>6]&(1<<(id&63)) == 0 {
				t.Fatalf("%q not allowed", v.Bytes(id))
			}
			if err := m.Advance(id); err != nil {
				t.Fatal(err)
			}
		}
		if !m.CanEnd() {
			t.Fatal("cannot end")
		}
	}
	if held := v.held.Load(); held > v.maxHeld {
		t.Errorf("holds %d bytes of analyses, budget %d", held, v.maxHeld)
	}
}

// Requests share a Vocab and a Grammar: analyses computed concurrently on
// first use (run with -race).
func TestConcurrentMatchers(t *testing.T) {
	v := freshVocab(t)
	g := mustSchema(t, `{"type":"object","properties":{"a":{"type":"string","maxLength":5},"b":{"type":"array","items":{"type":"integer"},"maxItems":3}},"required":["a","b"]}`)
	errs := make(chan error)
	for seed := range 4 {
		go func() {
			out, _, err := walk(g, v, rand.New(rand.NewPCG(uint64(seed), 5)), 100)
			if err == nil && len(out) == 0 {
				err = errors.New("empty generation")
			}
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
