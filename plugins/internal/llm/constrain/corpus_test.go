package constrain

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/bits"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"

	"github.com/dsmil/l7/plugins/internal/llm/schematest"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Schemas of the corpus whose outputs may grow without bound (unbounded
// strings, arrays, additional properties or recursion): a random walk may
// run out of budget before it can end. Every other schema must end.
var unbounded = map[string]bool{
	"unconstrained-strings": true, "any-value": true, "json-object": true, "additional-true": true,
	"additional-schema": true, "true-schema-items": true, "recursive-tree": true, "recursive-root": true,
	"definitions-linked-list": true, "number-unbounded": true,
}

const (
	corpusSeeds  = 10
	corpusBudget = 400 // tokens per generation
)

func corpusFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "schemas", "*.json"))
	if err != nil || len(files) < 30 {
		t.Fatalf("corpus: %d schemas, %v", len(files), err)
	}
	return files
}

func validator(t *testing.T, name string, schema []byte) *jsonschema.Schema {
	return schematest.Compile(t, name, schema)
}

// closingSets caches, per vocabulary, the tokens that hold a byte that
// closes a string or a container, or separates values.
var closingSets sync.Map // *Vocab → []uint64

func closingTokens(v *Vocab) []uint64 {
	if set, ok := closingSets.Load(v); ok {
		return set.([]uint64)
	}
	set := make([]uint64, v.words())
	for id := range v.Size() {
		if bytes.ContainsAny(v.Bytes(id), `"]},`) {
			set[id>>6] |= 1 << (id & 63)
		}
	}
	closingSets.Store(v, set)
	return set
}

// pickBit returns a uniformly random set bit of mask (-1 if none), where
// and, if not nil, is ANDed with mask first.
func pickBit(rng *rand.Rand, mask, and []uint64) int {
	n := 0
	for i, w := range mask {
		if and != nil {
			w &= and[i]
		}
		n += bits.OnesCount64(w)
	}
	if n == 0 {
		return -1
	}
	k := rng.IntN(n)
	for i, w := range mask {
		if and != nil {
			w &= and[i]
		}
		c := bits.OnesCount64(w)
		if k >= c {
			k -= c
			continue
		}
		for ; k > 0; k-- {
			w &= w - 1
		}
		return i*64 + bits.TrailingZeros64(w)
	}
	panic("unreachable")
}

// drawToken draws an allowed id: half the time among those that hold a
// closing byte, if any, else uniformly.
func drawToken(rng *rand.Rand, v *Vocab, mask []uint64) int {
	id := -1
	if rng.IntN(2) == 0 {
		id = pickBit(rng, mask, closingTokens(v))
	}
	if id < 0 {
		id = pickBit(rng, mask, nil)
	}
	return id
}

// randomWalk generates from g by drawing allowed tokens at random: half the
// time uniformly from the mask, half the time among the allowed tokens that
// hold a closing byte (so unbounded strings and containers end in a
// reasonable number of tokens); where the grammar can end it stops with
// probability 1/2. It returns the bytes and whether the walk ended.
func randomWalk(t testing.TB, g *Grammar, v *Vocab, rng *rand.Rand, budget int) ([]byte, bool) {
	t.Helper()
	out, ended, err := walk(g, v, rng, budget)
	if err != nil {
		t.Fatal(err)
	}
	return out, ended
}

// walk is randomWalk for any goroutine: a broken invariant is an error.
func walk(g *Grammar, v *Vocab, rng *rand.Rand, budget int) ([]byte, bool, error) {
	m, err := NewMatcher(g, v)
	if err != nil {
		return nil, false, err
	}
	mask := make([]uint64, (v.Size()+63)/64)
	var out []byte
	for range budget {
		if m.CanEnd() && (m.Done() || rng.IntN(2) == 0) {
			return out, true, nil
		}
		m.FillMask(mask)
		id := drawToken(rng, v, mask)
		if id < 0 {
			return out, false, fmt.Errorf("empty mask after %q", out)
		}
		if v.isEOS(id) {
			if !m.CanEnd() {
				return out, false, fmt.Errorf("EOS in the mask but not CanEnd after %q", out)
			}
			return out, true, nil
		}
		if err := m.Advance(id); err != nil {
			return out, false, fmt.Errorf("token %d (%q) in the mask but Advance: %v (after %q)", id, v.Bytes(id), err, out)
		}
		out = append(out, v.Bytes(id)...)
	}
	return out, m.CanEnd(), nil
}

// Every schema of the corpus × 10 seeds: random generations that end are
// JSON valid against the schema by an independent validator.
func TestCorpusGeneration(t *testing.T) {
	v := qwenVocab(t)
	for _, f := range corpusFiles(t) {
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			schema, g := corpusSchema(t, name)
			val := validator(t, name, schema)
			ended := 0
			for seed := range corpusSeeds {
				rng := rand.New(rand.NewPCG(uint64(seed), 11))
				out, ok := randomWalk(t, g, v, rng, corpusBudget)
				if !ok {
					if !unbounded[name] {
						t.Errorf("seed %d: no end within %d tokens: %q", seed, corpusBudget, out)
					}
					continue
				}
				ended++
				if !utf8.Valid(out) {
					t.Errorf("seed %d: invalid UTF-8 %q", seed, out)
					continue
				}
				inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
				if err != nil {
					t.Errorf("seed %d: not JSON: %v: %q", seed, err, out)
					continue
				}
				if err := val.Validate(inst); err != nil {
					t.Errorf("seed %d: %q does not validate: %v", seed, out, err)
				}
				if !json.Valid(out) {
					t.Errorf("seed %d: encoding/json rejects %q", seed, out)
				}
				if testing.Verbose() && seed < 2 {
					t.Logf("seed %d: %s", seed, out)
				}
			}
			if ended == 0 {
				t.Errorf("no generation ended")
			}
		})
	}
}

// The Llama-2 vocabulary (SentencePiece with byte fallback: ▁ for spaces,
// <0xNN> byte tokens that split characters) generates valid JSON too.
func TestLlama2Generation(t *testing.T) {
	v, err := llama2()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"person", "unicode-pattern", "unconstrained-strings", "formats"} {
		schema, g := corpusSchema(t, name)
		val := validator(t, name, schema)
		for seed := range 5 {
			out, ok := randomWalk(t, g, v, rand.New(rand.NewPCG(uint64(seed), 7)), corpusBudget)
			if !ok {
				continue
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(out))
			if err != nil {
				t.Fatalf("%s seed %d: not JSON: %v: %q", name, seed, err, out)
			}
			if err := val.Validate(inst); err != nil {
				t.Errorf("%s seed %d: %q does not validate: %v", name, seed, out, err)
			}
		}
	}
}
