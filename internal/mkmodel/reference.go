package mkmodel

import (
	"fmt"
	"math"

	"github.com/dsmil/l7/internal/quant"
)

// Reference is a plain-Go forward pass of a generated model, written from
// the architecture's definition rather than from the ONNX graph, for tests
// to compare ONNX Runtime's logits with. Quantized weights are dequantized
// exactly as MatMulNBits does; activations stay float32 (so it matches ORT
// closely at accuracy_level 0 and approximately at 4). It holds every
// weight as float32: use it on small shapes only.
type Reference struct {
	s      Spec
	embed  []float32 // Vocab×Hidden
	head   []float32 // Vocab×Hidden
	norm   []float32
	layers []refLayer
	cos    []float32
	sin    []float32
}

type refLayer struct {
	inNorm, postNorm []float32
	q, k, v, o       []float32 // out×in
	qb, kb, vb       []float32 // nil for Llama
	gate, up, down   []float32
}

// NewReference builds the reference model for s, which must have been
// validated (use Result.Spec).
func NewReference(s Spec) (*Reference, error) {
	if s.Vocab == 0 || s.BlockSize == 0 {
		return nil, fmt.Errorf("%w: NewReference needs a validated spec (Result.Spec)", ErrSpec)
	}
	w := weights{&s}
	// lin returns what the graph computes with: the weight, or its
	// quantize-dequantize round trip.
	lin := func(name string, out, in int) []float32 {
		m := w.linear(name, out, in)
		if bits := s.DType.Bits(); bits > 0 {
			m = quant.Quantize(m, out, in, bits, s.BlockSize).Dequantize()
		}
		return m
	}
	r := &Reference{s: s, embed: w.embed(), norm: w.norm("model.norm.weight")}
	switch {
	case !s.TieEmbeddings:
		r.head = lin("lm_head.weight", s.Vocab, s.Hidden)
	case s.DType.Bits() > 0:
		r.head = quant.Quantize(r.embed, s.Vocab, s.Hidden, s.DType.Bits(), s.BlockSize).Dequantize()
	default:
		r.head = r.embed
	}
	hq, hkv := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim
	for l := 0; l < s.Layers; l++ {
		n := func(rest string) string { return layerName(l, rest) }
		L := refLayer{
			inNorm:   w.norm(n("input_layernorm.weight")),
			postNorm: w.norm(n("post_attention_layernorm.weight")),
			q:        lin(n("self_attn.q_proj.weight"), hq, s.Hidden),
			k:        lin(n("self_attn.k_proj.weight"), hkv, s.Hidden),
			v:        lin(n("self_attn.v_proj.weight"), hkv, s.Hidden),
			o:        lin(n("self_attn.o_proj.weight"), s.Hidden, hq),
			gate:     lin(n("mlp.gate_proj.weight"), s.Intermediate, s.Hidden),
			up:       lin(n("mlp.up_proj.weight"), s.Intermediate, s.Hidden),
			down:     lin(n("mlp.down_proj.weight"), s.Hidden, s.Intermediate),
		}
		if s.Arch == ArchQwen2 {
			L.qb = w.bias(n("self_attn.q_proj.bias"), hq)
			L.kb = w.bias(n("self_attn.k_proj.bias"), hkv)
			L.vb = w.bias(n("self_attn.v_proj.bias"), hkv)
		}
		r.layers = append(r.layers, L)
	}
	r.cos, r.sin = ropeCache(&s)
	return r, nil
}

// Forward runs the prompt ids at positions 0..len(ids)-1 and returns the
// logits of every position, [len(ids)][Vocab].
func (r *Reference) Forward(ids []int64) ([][]float32, error) {
	s := &r.s
	n := len(ids)
	if n == 0 || n > s.MaxPositions {
		return nil, fmt.Errorf("mkmodel: reference: %d tokens (want 1-%d)", n, s.MaxPositions)
	}
	hq, hkv, d := s.Heads*s.HeadDim, s.KVHeads*s.HeadDim, s.HeadDim
	h := make([][]float32, n)
	for t, id := range ids {
		if id < 0 || int(id) >= s.Vocab {
			return nil, fmt.Errorf("mkmodel: reference: token id %d out of range", id)
		}
		h[t] = append([]float32(nil), r.embed[int(id)*s.Hidden:(int(id)+1)*s.Hidden]...)
	}
	group := s.Heads / s.KVHeads
	for _, L := range r.layers {
		q, k, v := make([][]float32, n), make([][]float32, n), make([][]float32, n)
		for t := 0; t < n; t++ {
			x := rmsNorm(h[t], L.inNorm, s.RMSEps)
			q[t], k[t], v[t] = matVec(L.q, x, hq, L.qb), matVec(L.k, x, hkv, L.kb), matVec(L.v, x, hkv, L.vb)
			r.rope(q[t], t)
			r.rope(k[t], t)
		}
		for t := 0; t < n; t++ {
			attn := make([]float32, hq)
			scores := make([]float64, t+1)
			for head := 0; head < s.Heads; head++ {
				kvh := head / group
				qh := q[t][head*d : (head+1)*d]
				mx := math.Inf(-1)
				for u := 0; u <= t; u++ {
					scores[u] = dot(qh, k[u][kvh*d:(kvh+1)*d]) / math.Sqrt(float64(d))
					mx = math.Max(mx, scores[u])
				}
				var sum float64
				for u := range scores {
					scores[u] = math.Exp(scores[u] - mx)
					sum += scores[u]
				}
				for i := 0; i < d; i++ {
					var acc float64
					for u := 0; u <= t; u++ {
						acc += scores[u] / sum * float64(v[u][kvh*d+i])
					}
					attn[head*d+i] = float32(acc)
				}
			}
			add(h[t], matVec(L.o, attn, s.Hidden, nil))
		}
		for t := 0; t < n; t++ {
			x := rmsNorm(h[t], L.postNorm, s.RMSEps)
			g, u := matVec(L.gate, x, s.Intermediate, nil), matVec(L.up, x, s.Intermediate, nil)
			for i := range g {
				g[i] = float32(float64(g[i])/(1+math.Exp(-float64(g[i])))) * u[i]
			}
			add(h[t], matVec(L.down, g, s.Hidden, nil))
		}
	}
	logits := make([][]float32, n)
	for t := 0; t < n; t++ {
		logits[t] = matVec(r.head, rmsNorm(h[t], r.norm, s.RMSEps), s.Vocab, nil)
	}
	return logits, nil
}

// rope rotates every head of x (non-interleaved halves, as HF's
// rotate_half) by position p.
func (r *Reference) rope(x []float32, p int) {
	d, half := r.s.HeadDim, r.s.HeadDim/2
	c, sn := r.cos[p*half:(p+1)*half], r.sin[p*half:(p+1)*half]
	for h := 0; h+d <= len(x); h += d {
		for i := 0; i < half; i++ {
			x1, x2 := x[h+i], x[h+i+half]
			x[h+i] = x1*c[i] - x2*sn[i]
			x[h+i+half] = x2*c[i] + x1*sn[i]
		}
	}
}

func rmsNorm(x, w []float32, eps float64) []float32 {
	var ss float64
	for _, v := range x {
		ss += float64(v) * float64(v)
	}
	inv := 1 / math.Sqrt(ss/float64(len(x))+eps)
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32(float64(v)*inv) * w[i]
	}
	return out
}

// matVec is W·x (+ b) for an out×len(x) matrix W.
func matVec(w, x []float32, out int, b []float32) []float32 {
	y := make([]float32, out)
	in := len(x)
	for o := 0; o < out; o++ {
		acc := dot(w[o*in:(o+1)*in], x)
		if b != nil {
			acc += float64(b[o])
		}
		y[o] = float32(acc)
	}
	return y
}

func dot(a, b []float32) float64 {
	var acc float64
	for i := range a {
		acc += float64(a[i]) * float64(b[i])
	}
	return acc
}

func add(dst, x []float32) {
	for i := range dst {
		dst[i] += x[i]
	}
}
