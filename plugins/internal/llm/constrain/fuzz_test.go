package constrain

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// byteVocab is a small vocabulary for fuzzing: every single byte, some
// JSON-ish multi-byte tokens, a split UTF-8 character, an empty (never
// allowed) id and EOS.
var byteVocab = sync.OnceValue(func() *Vocab {
	var toks [][]byte
	for b := range 256 {
		toks = append(toks, []byte{byte(b)})
	}
	for _, s := range []string{`{"`, `":`, `", "`, `"}`, `true`, `null`, `12`, `-0.`, `e+`, "\xce", "\xb1\"", `\u00`, `\n`, `"]`, "", "<eos>"} {
		toks = append(toks, []byte(s))
	}
	v, err := NewVocab(toks, []int{len(toks) - 1})
	if err != nil {
		panic(err)
	}
	return v
})

// FuzzCompileSchema: any bytes compile to a grammar, or fail with a
// *SchemaError wrapping ErrSchema; never a panic or a hang. A grammar that
// compiles can be matched: a few steps over a small vocabulary keep mask
// and Advance consistent.
func FuzzCompileSchema(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "schemas", "*.json"))
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, schema []byte) {
		g, err := CompileSchema(schema)
		if err != nil {
			var se *SchemaError
			if !errors.As(err, &se) || !errors.Is(err, ErrSchema) {
				t.Fatalf("error %v is not a *SchemaError wrapping ErrSchema", err)
			}
			return
		}
		v := byteVocab()
		m, err := NewMatcher(g, v)
		if err != nil {
			t.Fatalf("compiled grammar: NewMatcher: %v", err)
		}
		mask := make([]uint64, v.words())
		for step := range 8 {
			m.FillMask(mask)
			id := -1
			for i := range v.Size() { // the first allowed id after a step-dependent offset
				j := (i + step*37) % v.Size()
				if mask[j>>6]&(1<<(j&63)) != 0 {
					id = j
					break
				}
			}
			if id < 0 {
				if !m.Done() && !m.CanEnd() {
					t.Fatal("empty mask before the end")
				}
				return
			}
			if err := m.Advance(id); err != nil {
				t.Fatalf("id %d in the mask: %v", id, err)
			}
		}
	})
}

// fuzzGrammars are the grammars FuzzMatcher walks: corpus schemas and a
// tool-call composition.
var fuzzGrammars = sync.OnceValue(func() []*Grammar {
	var gs []*Grammar
	for _, name := range []string{"person", "recursive-tree", "formats", "unicode-pattern", "any-value", "bounded-numbers"} {
		data, err := os.ReadFile(filepath.Join("testdata", "schemas", name+".json"))
		if err != nil {
			panic(err)
		}
		g, err := CompileSchema(data)
		if err != nil {
			panic(err)
		}
		gs = append(gs, g)
	}
	call := Seq(Literal("<tool_call>\n"), gs[0], Literal("\n</tool_call>"))
	return append(gs, Repeat(Alt(call, Literal("ok")), 1, 3))
})

// FuzzMatcher drives a matcher over the Qwen3 vocabulary with the input's
// choices: each two bytes pick either the k-th allowed token or a raw id.
// Every token in the mask advances; every other token is rejected with
// ErrRejected and leaves the mask as it was.
func FuzzMatcher(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0x80, 1, 0x80, 7, 0x81, 2, 0x80, 0})
	f.Add([]byte{2, 0x83, 0x10, 0x80, 0x01, 0x12, 0x34, 0x80, 0x05})
	f.Add([]byte{6, 0x80, 0, 0x80, 0, 0x7f, 0xff, 0x80, 3})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || len(in) > 200 {
			return
		}
		v := qwenVocab(t)
		gs := fuzzGrammars()
		m, err := NewMatcher(gs[int(in[0])%len(gs)], v)
		if err != nil {
			t.Fatal(err)
		}
		mask := make([]uint64, v.words())
		after := make([]uint64, v.words())
		for in = in[1:]; len(in) >= 2; in = in[2:] {
			m.FillMask(mask)
			x := binary.BigEndian.Uint16(in)
			var id int
			if x&0x8000 != 0 {
				allowed := countBits(mask)
				if allowed == 0 {
					return
				}
				id = nthBit(mask, int(x&0x7fff)%allowed)
			} else {
				id = int(x) * 5 % v.Size()
			}
			inMask := mask[id>>6]&(1<<(id&63)) != 0
			err := m.Advance(id)
			switch {
			case inMask && err != nil:
				t.Fatalf("id %d (%q) in the mask: Advance: %v", id, v.Bytes(id), err)
			case !inMask && err == nil:
				t.Fatalf("id %d (%q) not in the mask but Advance accepted it", id, v.Bytes(id))
			case !inMask:
				if !errors.Is(err, ErrRejected) {
					t.Fatalf("rejection %v does not wrap ErrRejected", err)
				}
				m.FillMask(after)
				for i := range mask {
					if mask[i] != after[i] {
						t.Fatal("a rejected token changed the state")
					}
				}
			}
		}
	})
}

func nthBit(mask []uint64, k int) int {
	for i, w := range mask {
		for ; w != 0; w &= w - 1 {
			if k == 0 {
				return i*64 + bitIndex(w)
			}
			k--
		}
	}
	return -1
}

func bitIndex(w uint64) int {
	n := 0
	for w&1 == 0 {
		w >>= 1
		n++
	}
	return n
}
