package constrain

import (
	"errors"
	"math/rand/v2"
	"testing"
)

// hermesCalls is the lazy grammar of tool_choice "auto" for two tools in the
// Hermes/Qwen format: one or more calls, a newline between them.
func hermesCalls(t *testing.T) *Grammar {
	t.Helper()
	weather := mustSchema(t, `{"type":"object","properties":{"city":{"type":"string","maxLength":20}},"required":["city"],"additionalProperties":false}`)
	clock := mustSchema(t, `{"type":"object","properties":{"tz":{"enum":["UTC","CET"]}}}`)
	call := func(name string, args *Grammar) *Grammar {
		return Seq(Literal("<tool_call>\n{\"name\": \""+name+"\", \"arguments\": "), args, Literal("}\n</tool_call>"))
	}
	one := Alt(call("get_weather", weather), call("get_time", clock))
	return Seq(one, Repeat(Seq(Literal("\n"), one), 0, 3))
}

func (l *Lazy) clone() *Lazy {
	c := *l
	if l.m != nil {
		c.m = l.m.Clone()
	}
	return &c
}

// bruteLazyMask is the mask by definition: the ids whose Advance succeeds
// on a copy.
func bruteLazyMask(l *Lazy) []uint64 {
	return bruteMaskOf(l.v, func(id int) error { return l.clone().Advance(id) })
}

func feedText(t *testing.T, l *Lazy, text string) {
	t.Helper()
	for _, id := range qwenTok.Encode(text, false) {
		if err := l.Advance(id); err != nil {
			t.Fatalf("after %q: %v", text, err)
		}
	}
}

func checkLazyMask(t *testing.T, l *Lazy, at string) {
	t.Helper()
	mask := make([]uint64, l.v.words())
	l.FillMask(mask)
	want := bruteLazyMask(l)
	for w := range mask {
		if mask[w] != want[w] {
			t.Fatalf("after %q: mask word %d = %x, trying every token gives %x", at, w, mask[w], want[w])
		}
	}
}

// The mask is exact in free text, with the trigger partly written (a token
// that finishes it must go on as the grammar does), and under the grammar.
func TestLazyMaskIsExhaustive(t *testing.T) {
	v := qwenVocab(t)
	g := hermesCalls(t)
	for _, prefix := range []string{
		"",
		"Let me check the weather. <",
		"Let me check the weather. <tool",
		"I will call <tool_call",
		"<tool_call>\n{\"name\": \"get_",
		"<tool_call>\n{\"name\": \"get_time\", \"arguments\": {}}\n</tool_call>",
	} {
		l, err := NewLazy(g, v, "<tool_call>", false)
		if err != nil {
			t.Fatal(err)
		}
		// Byte by byte, so that the trigger is split across tokens.
		for _, c := range []byte(prefix) {
			id := singleByteID(t, v, c)
			if err := l.Advance(id); err != nil {
				t.Fatalf("%q: %v", prefix, err)
			}
		}
		checkLazyMask(t, l, prefix)
	}
}

// singleByteID is the id of the one-byte token c.
func singleByteID(t *testing.T, v *Vocab, c byte) int {
	t.Helper()
	for id := range v.Size() {
		if b := v.Bytes(id); len(b) == 1 && b[0] == c && !v.isEOS(id) {
			return id
		}
	}
	t.Fatalf("no one-byte token %q", c)
	return -1
}

// Free text, then a call the grammar constrains, tokenized as the model's
// tokenizer would (<tool_call> is one added token in Qwen): the constraint
// switches at the trigger, refuses arguments of another tool, and ends with
// the calls.
func TestLazyFreeTextThenCall(t *testing.T) {
	v := qwenVocab(t)
	g := hermesCalls(t)
	l, err := NewLazy(g, v, "<tool_call>", false)
	if err != nil {
		t.Fatal(err)
	}
	feedText(t, l, "Sure, <tool call> is not the opener; checking Oslo now.\n")
	if l.Triggered() || !l.CanEnd() || l.Done() {
		t.Fatalf("free text: triggered %v canEnd %v done %v", l.Triggered(), l.CanEnd(), l.Done())
	}
	feedText(t, l, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Oslo\"}}\n</tool_call>")
	if !l.Triggered() || !l.CanEnd() {
		t.Fatalf("after a call: triggered %v canEnd %v", l.Triggered(), l.CanEnd())
	}
	// More prose is not a call: refused.
	bad := l.clone()
	if err := bad.Advance(qwenTok.Encode("Done", false)[0]); !errors.Is(err, ErrRejected) {
		t.Fatalf("prose after a call: %v", err)
	}
	feedText(t, l, "\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}\n</tool_call>")
	if !l.CanEnd() {
		t.Fatal("two calls cannot end")
	}

	l, err = NewLazy(g, v, "<tool_call>", false)
	if err != nil {
		t.Fatal(err)
	}
	feedText(t, l, "ok <tool_call>\n{\"name\": \"get_weather\", \"arguments\": ")
	ids := qwenTok.Encode(`{"tz"`, false)
	if err := l.Advance(ids[0]); err != nil {
		t.Fatal(err) // `{` opens the arguments
	}
	if err := l.Advance(ids[1]); !errors.Is(err, ErrRejected) {
		t.Fatalf("a property of get_time in get_weather's arguments: %v", err)
	}
}

// With atStart (Llama 3.1 JSON calls) only leading whitespace may precede
// the trigger; prose first means the reply stays free.
func TestLazyAtStart(t *testing.T) {
	v := qwenVocab(t)
	args := mustSchema(t, `{"type":"object","properties":{"q":{"type":"string","maxLength":8}},"required":["q"],"additionalProperties":false}`)
	g := Seq(Literal(`{"name": "search", "parameters": `), args, Literal("}"))
	if _, err := NewLazy(g, v, " {", true); !errors.Is(err, ErrGrammar) {
		t.Fatalf("trigger starting with whitespace: %v", err)
	}
	if _, err := NewLazy(g, v, "<tool_call>", true); !errors.Is(err, ErrGrammar) {
		t.Fatalf("a grammar that does not start with its trigger: %v", err)
	}
	l, err := NewLazy(g, v, "{", true)
	if err != nil {
		t.Fatal(err)
	}
	feedText(t, l, "Answer: {\"x\": 1} and more")
	if l.Triggered() {
		t.Fatal("a brace after prose triggered the grammar")
	}
	checkLazyMask(t, l, "prose")

	l, err = NewLazy(g, v, "{", true)
	if err != nil {
		t.Fatal(err)
	}
	feedText(t, l, "\n  ")
	checkLazyMask(t, l, "leading whitespace")
	feedText(t, l, `{"name": "search", "parameters": {"q": "dns"}}`)
	if !l.Triggered() || !l.Done() {
		t.Fatalf("a whole call: triggered %v done %v", l.Triggered(), l.Done())
	}
}

// Random walks over the lazy grammar, drawing allowed tokens and now and
// then forcing the trigger's bytes: every drawn token is accepted, and the
// text from the trigger on is a sentence prefix of the grammar.
func TestLazyRandomWalks(t *testing.T) {
	v := qwenVocab(t)
	g := hermesCalls(t)
	trig := []byte("<tool_call>")
	triggered := 0
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 11))
		l, err := NewLazy(g, v, "<tool_call>", false)
		if err != nil {
			t.Fatal(err)
		}
		mask := make([]uint64, v.words())
		var out []byte
		for step := 0; step < 120 && !l.Done(); step++ {
			l.FillMask(mask)
			var id int
			if !l.Triggered() && (l.state > 0 || l.state == 0 && rng.IntN(10) == 0) {
				id = singleByteID(t, v, trig[l.state]) // the trigger's next byte
				if mask[id>>6]&(1<<(id&63)) == 0 {
					continue
				}
			} else {
				id = drawToken(rng, v, mask)
			}
			if v.isEOS(id) {
				if !l.CanEnd() {
					t.Fatalf("seed %d: EOS allowed but not CanEnd after %q", seed, out)
				}
				break
			}
			if err := l.Advance(id); err != nil {
				t.Fatalf("seed %d: token %d (%q) in the mask but Advance: %v (after %q)", seed, id, v.Bytes(id), err, out)
			}
			out = append(out, v.Bytes(id)...)
		}
		if l.Triggered() {
			triggered++
		}
	}
	if triggered < 5 {
		t.Errorf("only %d of 20 walks reached the grammar", triggered)
	}
}
