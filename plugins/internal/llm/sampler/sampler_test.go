package sampler

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

func logitsOf(v ...float32) []float32 { return slices.Clone(v) }

func TestGreedy(t *testing.T) {
	for _, tc := range []struct {
		name   string
		logits []float32
		want   int
	}{
		{"max", logitsOf(0.1, 3, -2, 2.9), 1},
		{"tie to lowest id", logitsOf(1, 5, 5, 0), 1},
		{"all -inf", logitsOf(float32(math.Inf(-1)), float32(math.Inf(-1))), 0},
		{"NaN skipped", logitsOf(float32(math.NaN()), 1, 2), 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := New(Params{}, len(tc.logits)).Sample(tc.logits); got != tc.want {
				t.Fatalf("greedy(%v) = %d, want %d", tc.logits, got, tc.want)
			}
		})
	}
}

func TestNaNNeverDrawn(t *testing.T) {
	l := logitsOf(float32(math.NaN()), 1, 2, float32(math.NaN()))
	for _, p := range []Params{{Temperature: 1, Seed: 1}, {Temperature: 1, TopP: 0.5, Seed: 1}, {Temperature: 1, TopK: 2, Seed: 1}} {
		got := drawn(p, l, 500)
		if got[0] || got[3] {
			t.Fatalf("%+v drew a NaN logit: %v", p, got)
		}
	}
}

func TestVocabLimit(t *testing.T) {
	// Logits wider than the tokenizer: padding ids are never drawn.
	l := logitsOf(0, 1, 2, 100, 100)
	if got := New(Params{}, 3).Sample(l); got != 2 {
		t.Fatalf("greedy over 3 of 5 = %d", got)
	}
	s := New(Params{Temperature: 1, Seed: 1}, 3)
	for i := 0; i < 200; i++ {
		if got := s.Sample(logitsOf(0, 1, 2, 100, 100)); got >= 3 {
			t.Fatalf("drew padding id %d", got)
		}
	}
}

func randomLogits(r *rand.Rand, n int) []float32 {
	l := make([]float32, n)
	for i := range l {
		l[i] = float32(r.NormFloat64() * 3)
	}
	return l
}

func TestSeedDeterminism(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	rows := make([][]float32, 50)
	for i := range rows {
		rows[i] = randomLogits(r, 1000)
	}
	p := Params{Temperature: 0.8, TopK: 50, TopP: 0.9, MinP: 0.01, RepetitionPenalty: 1.1, PresencePenalty: 0.5, FrequencyPenalty: 0.2, Seed: 42}
	run := func(p Params) []int {
		s := New(p, 1000)
		s.AddPrompt([]int{1, 2, 3})
		var out []int
		for _, row := range rows {
			out = append(out, s.Sample(slices.Clone(row)))
		}
		return out
	}
	a, b := run(p), run(p)
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different draws:\n%v\n%v", a, b)
	}
	p.Seed = 43
	if c := run(p); slices.Equal(a, c) {
		t.Fatalf("seeds 42 and 43 drew the same %d tokens", len(c))
	}
}

// TestDistribution: with temperature 1 and no truncation, draw
// frequencies follow softmax(logits).
func TestDistribution(t *testing.T) {
	l := logitsOf(0, 1, 2, 0.5, -1)
	want := softmax(l, 1)
	const n = 60000
	counts := make([]int, len(l))
	s := New(Params{Temperature: 1, Seed: 7}, len(l))
	for i := 0; i < n; i++ {
		counts[s.Sample(slices.Clone(l))]++
	}
	for i, c := range counts {
		got := float64(c) / n
		if math.Abs(got-want[i]) > 0.01 {
			t.Errorf("token %d: frequency %.4f, softmax %.4f", i, got, want[i])
		}
	}
	// Temperature 0.5 sharpens.
	want = softmax(l, 0.5)
	clear(counts)
	s = New(Params{Temperature: 0.5, Seed: 7}, len(l))
	for i := 0; i < n; i++ {
		counts[s.Sample(slices.Clone(l))]++
	}
	if got := float64(counts[2]) / n; math.Abs(got-want[2]) > 0.01 {
		t.Errorf("T=0.5: top token frequency %.4f, want %.4f", got, want[2])
	}
}

func softmax(l []float32, temp float64) []float64 {
	out := make([]float64, len(l))
	var sum float64
	for i, v := range l {
		out[i] = math.Exp(float64(v) / temp)
		sum += out[i]
	}
	for i := range out {
		out[i] /= sum
	}
	return out
}

// drawn returns the set of ids a sampler with p draws from l in many tries.
func drawn(p Params, l []float32, tries int) map[int]bool {
	set := map[int]bool{}
	s := New(p, len(l))
	for i := 0; i < tries; i++ {
		set[s.Sample(slices.Clone(l))] = true
	}
	return set
}

func TestTruncation(t *testing.T) {
	// softmax(l) ≈ 0.64, 0.24, 0.09, 0.03, ...
	l := logitsOf(3, 2, 1, 0, -1, -2)
	for _, tc := range []struct {
		name string
		p    Params
		want []int
	}{
		{"top_k 1", Params{TopK: 1}, []int{0}},
		{"top_k 2", Params{TopK: 2}, []int{0, 1}},
		{"top_p 0.5", Params{TopP: 0.5}, []int{0}},
		{"top_p 0.8", Params{TopP: 0.8}, []int{0, 1}},
		{"top_p 0.95", Params{TopP: 0.95}, []int{0, 1, 2}},
		{"top_p 0.96", Params{TopP: 0.96}, []int{0, 1, 2, 3}},
		{"min_p 0.3", Params{MinP: 0.3}, []int{0, 1}},
		{"min_p 0.1", Params{MinP: 0.1}, []int{0, 1, 2}},
		{"top_k 3 then top_p 0.7 of the rest", Params{TopK: 3, TopP: 0.7}, []int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Temperature, tc.p.Seed = 1, 3
			got := drawn(tc.p, l, 3000)
			var ids []int
			for id := range got {
				ids = append(ids, id)
			}
			sort.Ints(ids)
			if !slices.Equal(ids, tc.want) {
				t.Fatalf("drew %v, want %v", ids, tc.want)
			}
		})
	}
}

// TestNucleusMatchesSort compares the partition-based nucleus with the
// textbook one (sort descending, take until the mass is reached).
func TestNucleusMatchesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for trial := 0; trial < 300; trial++ {
		n := 1 + r.IntN(400)
		p := make([]float32, n)
		for i := range p {
			p[i] = float32(math.Exp(r.NormFloat64() * 2))
			if r.IntN(10) == 0 {
				p[i] = p[r.IntN(i+1)] // ties
			}
		}
		var sum float64
		for _, v := range p {
			sum += float64(v)
		}
		top := r.Float64()
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(i)
		}
		k := nucleus(idx, p, top*sum)

		sorted := slices.Clone(p)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] > sorted[j] })
		want, acc := 0, 0.0
		for want < n && (acc < top*sum || want == 0) {
			acc += float64(sorted[want])
			want++
		}
		if k != want {
			t.Fatalf("trial %d (n=%d, top_p=%.3f): nucleus size %d, want %d", trial, n, top, k, want)
		}
		// The chosen ones are the most probable.
		var minIn float32 = math.MaxFloat32
		for _, i := range idx[:k] {
			minIn = min(minIn, p[i])
		}
		for _, i := range idx[k:] {
			if p[i] > minIn {
				t.Fatalf("trial %d: left out %v while keeping %v", trial, p[i], minIn)
			}
		}
	}
}

func TestExpNeg(t *testing.T) {
	for x := float32(-90); x <= 0; x += 0.01 {
		got, want := float64(expNeg(x)), math.Exp(float64(x))
		if x < -87 {
			want = 0
		}
		if d := math.Abs(got - want); d > 3e-7*want+1e-38 {
			t.Fatalf("expNeg(%v) = %v, want %v", x, got, want)
		}
	}
	if v := expNeg(float32(math.NaN())); v == v {
		t.Fatalf("expNeg(NaN) = %v", v)
	}
}

// TestTailShortcut: a flat distribution (many tokens below tailProb
// would matter) and a peaked one give the textbook nucleus.
func TestTailShortcut(t *testing.T) {
	n := 20000
	flat := make([]float32, n)
	flat[0] = 12 // p(0) ≈ 0.89; the 19 999 others share the rest at e^-12 ≈ 6e-6 each, relative, below tailProb
	s := New(Params{Temperature: 1, TopP: 0.9, Seed: 1}, n)
	others := 0
	for i := 0; i < 300; i++ {
		if s.Sample(slices.Clone(flat)) != 0 {
			others++
		}
	}
	if others == 0 {
		t.Fatal("top_p 0.9 of a distribution whose top token has 0.89: never drew another token")
	}
	s = New(Params{Temperature: 1, TopP: 0.7, Seed: 1}, n)
	for i := 0; i < 300; i++ {
		if got := s.Sample(slices.Clone(flat)); got != 0 {
			t.Fatalf("top_p 0.7 drew %d", got)
		}
	}
}

func TestSelectTop(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 9))
	for trial := 0; trial < 200; trial++ {
		n := 1 + r.IntN(300)
		l := randomLogits(r, n)
		for i := range l {
			if r.IntN(8) == 0 {
				l[i] = l[r.IntN(i+1)]
			}
		}
		k := 1 + r.IntN(n)
		idx := make([]int32, n)
		for i := range idx {
			idx[i] = int32(i)
		}
		selectTop(idx, l, k)
		sorted := slices.Clone(l)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i] > sorted[j] })
		for _, i := range idx[:k] {
			if l[i] < sorted[k-1] {
				t.Fatalf("trial %d: kept %v below the k-th largest %v", trial, l[i], sorted[k-1])
			}
		}
	}
}

func TestPenalties(t *testing.T) {
	// Token 0 leads; penalties push it below token 1.
	base := logitsOf(2, 1.5, 0)
	for _, tc := range []struct {
		name   string
		p      Params
		prompt []int
		gen    int // times token 0 was generated before
		want   int
	}{
		{"none", Params{}, nil, 0, 0},
		{"repetition from the prompt", Params{RepetitionPenalty: 1.5}, []int{0}, 0, 1},
		{"repetition, token absent", Params{RepetitionPenalty: 1.5}, []int{2}, 0, 0},
		{"presence", Params{PresencePenalty: 1}, nil, 1, 1},
		{"presence ignores the prompt", Params{PresencePenalty: 1}, []int{0}, 0, 0},
		{"frequency once is not enough", Params{FrequencyPenalty: 0.4}, nil, 1, 0},
		{"frequency twice", Params{FrequencyPenalty: 0.4}, nil, 2, 1},
		{"negative presence encourages", Params{PresencePenalty: -2}, []int{1}, 0, 0},
		{"logit bias", Params{LogitBias: map[int]float32{2: 5}}, nil, 0, 2},
		{"logit bias -100 bans", Params{LogitBias: map[int]float32{0: -100}}, nil, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(tc.p, 3)
			s.AddPrompt(tc.prompt)
			for i := 0; i < tc.gen; i++ {
				s.accept(0)
			}
			if got := s.Sample(slices.Clone(base)); got != tc.want {
				t.Fatalf("got %d, want %d", got, tc.want)
			}
		})
	}
	// Negative logits are multiplied by the repetition penalty.
	s := New(Params{RepetitionPenalty: 2}, 2)
	s.AddPrompt([]int{0, 1})
	l := logitsOf(-1, 4)
	s.penalize(l)
	if l[0] != -2 || l[1] != 2 {
		t.Fatalf("repetition penalty 2 on (-1, 4) = %v, want (-2, 2)", l)
	}
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name  string
		p     Params
		param string // "" = valid
	}{
		{"zero", Params{}, ""},
		{"typical", Params{Temperature: 0.7, TopK: 40, TopP: 0.9, MinP: 0.05, RepetitionPenalty: 1.1}, ""},
		{"negative temperature", Params{Temperature: -1}, "temperature"},
		{"NaN temperature", Params{Temperature: math.NaN()}, "temperature"},
		{"top_p > 1", Params{TopP: 1.5}, "top_p"},
		{"min_p < 0", Params{MinP: -0.1}, "min_p"},
		{"negative top_k", Params{TopK: -1}, "top_k"},
		{"negative repetition penalty", Params{RepetitionPenalty: -1}, "repetition_penalty"},
		{"infinite presence penalty", Params{PresencePenalty: math.Inf(1)}, "presence_penalty"},
		{"bias outside vocab", Params{LogitBias: map[int]float32{10: 1}}, "logit_bias"},
		{"bias inside vocab", Params{LogitBias: map[int]float32{9: -100}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Validate(10)
			var pe *ParamError
			switch {
			case tc.param == "" && err != nil:
				t.Fatalf("Validate = %v", err)
			case tc.param != "" && (!errors.As(err, &pe) || pe.Param != tc.param || !errors.Is(err, ErrParams)):
				t.Fatalf("Validate = %v, want a ParamError for %s", err, tc.param)
			}
		})
	}
}

func BenchmarkSample(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	row := randomLogits(r, 151936)
	for _, bc := range []struct {
		name string
		p    Params
	}{
		{"greedy", Params{}},
		{"temperature", Params{Temperature: 1}},
		{"top_p", Params{Temperature: 0.7, TopP: 0.9}},
		{"top_k_top_p", Params{Temperature: 0.7, TopK: 20, TopP: 0.8, RepetitionPenalty: 1.05}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := New(bc.p, len(row))
			buf := make([]float32, len(row))
			for b.Loop() {
				copy(buf, row)
				s.Sample(buf)
			}
		})
	}
}
