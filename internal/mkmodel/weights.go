package mkmodel

import (
	"hash/fnv"
	"math"
	"strconv"

	"github.com/dsmil/l7/internal/quant"
)

// splitmix64 is a tiny, fast, well-mixed PRNG (Steele et al.).
type splitmix64 uint64

func (s *splitmix64) next() uint64 {
	*s += 0x9e3779b97f4a7c15
	z := uint64(*s)
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// tensorSeed derives a tensor's seed from the model seed and its name, so
// every tensor is independent of the order tensors are generated in.
func tensorSeed(seed uint64, name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	s := splitmix64(seed ^ h.Sum64())
	return s.next()
}

// gen returns a rows×cols row-major matrix of uniform values with mean 0
// and standard deviation std. Each row has its own stream, so rows are
// generated in parallel and the result does not depend on GOMAXPROCS.
func gen(seed uint64, name string, rows, cols int, std float64) []float32 {
	out := make([]float32, rows*cols)
	ts := tensorSeed(seed, name)
	a := float32(std * math.Sqrt(3)) // uniform(-a, a) has variance a²/3
	fill := func(r0, r1 int) {
		for r := r0; r < r1; r++ {
			s := splitmix64(ts ^ (uint64(r)+1)*0xd1b54a32d192ed03)
			row := out[r*cols : (r+1)*cols]
			for i := range row {
				u := float32(s.next()>>40) * (1.0 / (1 << 24)) // [0, 1)
				row[i] = (2*u - 1) * a
			}
		}
	}
	quant.Parallel(rows, cols, fill)
	return out
}

// transpose returns the cols×rows transpose of a rows×cols matrix.
func transpose(w []float32, rows, cols int) []float32 {
	out := make([]float32, len(w))
	quant.Parallel(cols, rows, func(c0, c1 int) {
		for c := c0; c < c1; c++ {
			for r := 0; r < rows; r++ {
				out[c*rows+r] = w[r*cols+c]
			}
		}
	})
	return out
}

// ropeCache returns the cos and sin caches, [MaxPositions][HeadDim/2]:
// angle(p, i) = p × theta^(-2i/HeadDim), computed in float64.
func ropeCache(s *Spec) (cos, sin []float32) {
	half := s.HeadDim / 2
	cos = make([]float32, s.MaxPositions*half)
	sin = make([]float32, s.MaxPositions*half)
	for p := 0; p < s.MaxPositions; p++ {
		for i := 0; i < half; i++ {
			inv := math.Pow(s.RopeTheta, -float64(2*i)/float64(s.HeadDim))
			a := float64(p) * inv
			cos[p*half+i] = float32(math.Cos(a))
			sin[p*half+i] = float32(math.Sin(a))
		}
	}
	return cos, sin
}

// weights yields the model's tensors by HF name, in PyTorch layout
// (Linear weights out×in), generated on demand so that big models never
// hold more than one tensor at a time.
type weights struct {
	s *Spec
}

// linear is a Linear layer's weight, out×in, std 1/sqrt(in).
func (w weights) linear(name string, out, in int) []float32 {
	return gen(w.s.Seed, name, out, in, 1/math.Sqrt(float64(in)))
}

// norm is an RMSNorm weight: 1 ± 0.1.
func (w weights) norm(name string) []float32 {
	v := gen(w.s.Seed, name, 1, w.s.Hidden, 0.1/math.Sqrt(3))
	for i := range v {
		v[i]++
	}
	return v
}

// bias is a projection bias: ± 0.1.
func (w weights) bias(name string, n int) []float32 {
	return gen(w.s.Seed, name, 1, n, 0.1/math.Sqrt(3))
}

// embed is the embedding table, Vocab×Hidden, std 1/sqrt(Hidden) (so that
// a tied LM head gives unit-variance logits).
func (w weights) embed() []float32 {
	return gen(w.s.Seed, "model.embed_tokens.weight", w.s.Vocab, w.s.Hidden, 1/math.Sqrt(float64(w.s.Hidden)))
}

// lmHead is the untied LM head, Vocab×Hidden.
func (w weights) lmHead() []float32 {
	return w.linear("lm_head.weight", w.s.Vocab, w.s.Hidden)
}

func layerName(l int, rest string) string {
	return "model.layers." + strconv.Itoa(l) + "." + rest
}
