package constrain

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// The schemas the benchmarks use, from the corpus.
var benchSchemas = []string{
	"tool-call-weather", "person", "nested-address", "array-of-objects", "formats",
	"unconstrained-strings", "json-object", "recursive-tree", "strings-length",
}

func benchGrammar(b *testing.B, name string) *Grammar {
	b.Helper()
	_, g := corpusSchema(b, name)
	return g
}

// walkTokens records the token ids of random walks (as the corpus test
// draws them) to replay.
func walkTokens(b *testing.B, g *Grammar, v *Vocab, walks int) [][]int {
	var out [][]int
	mask := make([]uint64, v.words())
	for seed := range walks {
		rng := rand.New(rand.NewPCG(uint64(seed), 99))
		m, err := NewMatcher(g, v)
		if err != nil {
			b.Fatal(err)
		}
		var ids []int
		for range 300 {
			if m.Done() {
				break
			}
			m.FillMask(mask)
			id := drawToken(rng, v, mask)
			if v.isEOS(id) {
				break
			}
			if err := m.Advance(id); err != nil {
				b.Fatal(err)
			}
			ids = append(ids, id)
		}
		out = append(out, ids)
	}
	return out
}

// BenchmarkMaskAdvance replays random generations over the Qwen3 vocabulary
// (151,669 ids) and times FillMask + Advance per token, with the per-state
// analyses already computed (a second request with the same kind of
// schema); it reports the median and p99 per token. ns/op is one replay of
// all walks.
func BenchmarkMaskAdvance(b *testing.B) {
	v := qwenVocab(b)
	for _, name := range benchSchemas {
		b.Run(name, func(b *testing.B) {
			g := benchGrammar(b, name)
			walks := walkTokens(b, g, v, 8) // also computes the analyses
			mask := make([]uint64, v.words())
			var times []time.Duration
			tokens := 0
			for b.Loop() {
				for _, ids := range walks {
					m, err := NewMatcher(g, v)
					if err != nil {
						b.Fatal(err)
					}
					for _, id := range ids {
						t0 := time.Now()
						m.FillMask(mask)
						if err := m.Advance(id); err != nil {
							b.Fatal(err)
						}
						times = append(times, time.Since(t0))
					}
					tokens += len(ids)
				}
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Nanoseconds())/1e3, "p50-µs/token")
			b.ReportMetric(float64(times[len(times)*99/100].Nanoseconds())/1e3, "p99-µs/token")
			b.ReportMetric(float64(tokens)/float64(b.N), "tokens/op")
		})
	}
}

// BenchmarkMaskCold is the first request's cost: every terminal state's
// analysis computed on first use (a fresh Vocab each iteration, its trie
// built outside the timer), replaying the Qwen3 tokens of a typical
// answer.
func BenchmarkMaskCold(b *testing.B) {
	v := qwenVocab(b)
	for name, text := range map[string]string{
		"tool-call-weather":     `{"name": "get_weather", "arguments": {"location": "Paris, France", "unit": "celsius", "days": 3}}`,
		"unconstrained-strings": `{"title": "Hello", "body": "The quick brown fox jumps over the lazy dog."}`,
	} {
		b.Run(name, func(b *testing.B) {
			g := benchGrammar(b, name)
			walks := [][]int{qwenTok.Encode(text, false)}
			mask := make([]uint64, v.words())
			var times []time.Duration
			for b.Loop() {
				b.StopTimer()
				fresh := freshVocab(b)
				b.StartTimer()
				m, err := NewMatcher(g, fresh)
				if err != nil {
					b.Fatal(err)
				}
				for _, id := range walks[0] {
					t0 := time.Now()
					m.FillMask(mask)
					if err := m.Advance(id); err != nil {
						b.Fatal(err)
					}
					times = append(times, time.Since(t0))
				}
			}
			slices.Sort(times)
			b.ReportMetric(float64(times[len(times)/2].Nanoseconds())/1e3, "p50-µs/token")
			b.ReportMetric(float64(times[len(times)*99/100].Nanoseconds())/1e3, "p99-µs/token")
			b.ReportMetric(float64(times[len(times)-1].Nanoseconds())/1e3, "max-µs/token")
		})
	}
}

// BenchmarkCompileSchema: CompileSchema, lowering included.
func BenchmarkCompileSchema(b *testing.B) {
	for _, name := range append(slices.Clone(benchSchemas), "pattern-strings", "bounded-integers") {
		data, err := os.ReadFile(filepath.Join("testdata", "schemas", name+".json"))
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				if _, err := CompileSchema(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkVocab: building the Qwen3 vocabulary's trie (once per tokenizer).
func BenchmarkVocab(b *testing.B) {
	toks, eos := qwenTokens(b), qwenVocab(b).eos
	for b.Loop() {
		if _, err := NewVocab(toks, eos); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAnalyze: one terminal state's analysis, the cost a process pays
// the first time it meets the state (inside an unconstrained string: the
// whole trie is live).
func BenchmarkAnalyze(b *testing.B) {
	v := qwenVocab(b)
	d, err := stringDFA(0, -1)
	if err != nil {
		b.Fatal(err)
	}
	body := d.step(0, '"')
	for b.Loop() {
		v.analyze(d, body)
	}
}

// BenchmarkLazyTrigger: finding the tokens that complete `<tool_call>` from
// each state of its automaton over the Qwen3 vocabulary (once per
// tokenizer and trigger, on the first tool_choice "auto" request).
func BenchmarkLazyTrigger(b *testing.B) {
	v := qwenVocab(b)
	for b.Loop() {
		newTrigger(v, []byte("<tool_call>"), false)
	}
}

// BenchmarkLazyFreeToken: FillMask + Advance per token of free text under a
// lazy grammar (tool_choice "auto" before the model opens a call), trigger
// states included; NewLazy (per request) is timed apart as ns/start.
func BenchmarkLazyFreeToken(b *testing.B) {
	v := qwenVocab(b)
	g := Seq(Literal("<tool_call>\n{\"name\": \"f\", \"arguments\": "), JSONObject(), Literal("}\n</tool_call>"))
	text := qwenTok.Encode("Let me think about <this> <tool and the <tool_call weather in Oslo, then answer.", false)
	mask := make([]uint64, v.words())
	var start, steps time.Duration
	for b.Loop() {
		t0 := time.Now()
		l, err := NewLazy(g, v, "<tool_call>", false)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		for _, id := range text {
			l.FillMask(mask)
			if err := l.Advance(id); err != nil {
				b.Fatal(err)
			}
		}
		start, steps = start+t1.Sub(t0), steps+time.Since(t1)
	}
	b.ReportMetric(float64(steps.Nanoseconds())/float64(b.N*len(text)), "ns/token")
	b.ReportMetric(float64(start.Nanoseconds())/float64(b.N), "ns/start")
}
