package mkmodel

import (
	"fmt"
	"math"
)

// EncoderReference is a plain-Go forward pass of a generated encoder,
// written from BERT's definition rather than from the ONNX graph, for
// tests to compare ONNX Runtime's last_hidden_state with. It holds every
// weight as float32: use it on small shapes only.
type EncoderReference struct {
	s                 EncoderSpec
	word, pos, typ    []float32
	embGamma, embBeta []float32
	layers            []encRefLayer
}

type encRefLayer struct {
	q, k, v, o, up, down                   []float32 // out×in
	qb, kb, vb, ob, upb, downb             []float32
	attnGamma, attnBeta, outGamma, outBeta []float32
}

// NewEncoderReference builds the reference for s, which must have been
// validated (use EncoderResult.Spec).
func NewEncoderReference(s EncoderSpec) (*EncoderReference, error) {
	if s.Vocab == 0 || s.LayerNormEps == 0 {
		return nil, fmt.Errorf("%w: NewEncoderReference needs a validated spec (EncoderResult.Spec)", ErrSpec)
	}
	w := encoderWeights{&s}
	r := &EncoderReference{s: s,
		word: w.table("embeddings.word_embeddings.weight", s.Vocab),
		pos:  w.table("embeddings.position_embeddings.weight", s.MaxPositions),
		typ:  w.table("embeddings.token_type_embeddings.weight", s.TypeVocab),
	}
	r.embGamma, r.embBeta = w.layerNorm("embeddings.LayerNorm")
	H, I := s.Hidden, s.Intermediate
	for l := 0; l < s.Layers; l++ {
		n := func(rest string) string { return encLayer(l, rest) }
		L := encRefLayer{
			q: w.linear(n("attention.self.query"), H, H), qb: w.bias(n("attention.self.query"), H),
			k: w.linear(n("attention.self.key"), H, H), kb: w.bias(n("attention.self.key"), H),
			v: w.linear(n("attention.self.value"), H, H), vb: w.bias(n("attention.self.value"), H),
			o: w.linear(n("attention.output.dense"), H, H), ob: w.bias(n("attention.output.dense"), H),
			up: w.linear(n("intermediate.dense"), I, H), upb: w.bias(n("intermediate.dense"), I),
			down: w.linear(n("output.dense"), H, I), downb: w.bias(n("output.dense"), H),
		}
		L.attnGamma, L.attnBeta = w.layerNorm(n("attention.output.LayerNorm"))
		L.outGamma, L.outBeta = w.layerNorm(n("output.LayerNorm"))
		r.layers = append(r.layers, L)
	}
	return r, nil
}

// Forward returns the last hidden state of one unpadded sequence: one
// Hidden-long row per token. typeIDs may be nil (all 0).
func (r *EncoderReference) Forward(ids, typeIDs []int64) ([][]float32, error) {
	s := &r.s
	H, S := s.Hidden, len(ids)
	if S == 0 || S > s.MaxPositions {
		return nil, fmt.Errorf("mkmodel: %d tokens, the encoder takes 1 to %d", S, s.MaxPositions)
	}
	h := make([][]float32, S)
	for p, id := range ids {
		t := int64(0)
		if typeIDs != nil {
			t = typeIDs[p]
		}
		if id < 0 || int(id) >= s.Vocab || t < 0 || int(t) >= s.TypeVocab {
			return nil, fmt.Errorf("mkmodel: token %d or type %d out of range", id, t)
		}
		x := make([]float32, H)
		for i := range x {
			x[i] = r.word[int(id)*H+i] + r.pos[p*H+i] + r.typ[int(t)*H+i]
		}
		h[p] = layerNorm(x, r.embGamma, r.embBeta, s.LayerNormEps)
	}
	hd := H / s.Heads
	scale := 1 / math.Sqrt(float64(hd))
	for _, L := range r.layers {
		q, k, v := make([][]float32, S), make([][]float32, S), make([][]float32, S)
		for p := range h {
			q[p], k[p], v[p] = matVec(L.q, h[p], H, L.qb), matVec(L.k, h[p], H, L.kb), matVec(L.v, h[p], H, L.vb)
		}
		next := make([][]float32, S)
		for p := range h {
			ctx := attend(q[p], k, v, s.Heads, scale)
			attn := matVec(L.o, ctx, H, L.ob)
			add(attn, h[p])
			x := layerNorm(attn, L.attnGamma, L.attnBeta, s.LayerNormEps)
			up := matVec(L.up, x, s.Intermediate, L.upb)
			for i, u := range up {
				up[i] = float32(0.5 * float64(u) * (1 + math.Erf(float64(u)/math.Sqrt2)))
			}
			down := matVec(L.down, up, H, L.downb)
			add(down, x)
			next[p] = layerNorm(down, L.outGamma, L.outBeta, s.LayerNormEps)
		}
		h = next
	}
	return h, nil
}

// layerNorm is LayerNorm over one row, in float64.
func layerNorm(x, gamma, beta []float32, eps float64) []float32 {
	var mean, vr float64
	for _, v := range x {
		mean += float64(v)
	}
	mean /= float64(len(x))
	for _, v := range x {
		d := float64(v) - mean
		vr += d * d
	}
	inv := 1 / math.Sqrt(vr/float64(len(x))+eps)
	out := make([]float32, len(x))
	for i, v := range x {
		out[i] = float32((float64(v)-mean)*inv)*gamma[i] + beta[i]
	}
	return out
}

// attend is multi-head scaled dot-product attention of one query over the
// keys and values given (the positions it may see), heads heads of
// len(q)/heads dimensions each, softmax in float64: the context vector.
func attend(q []float32, k, v [][]float32, heads int, scale float64) []float32 {
	hd := len(q) / heads
	ctx := make([]float32, len(q))
	scores := make([]float64, len(k))
	for hh := 0; hh < heads; hh++ {
		lo := hh * hd
		maxS := math.Inf(-1)
		for j := range scores {
			scores[j] = dot(q[lo:lo+hd], k[j][lo:lo+hd]) * scale
			maxS = math.Max(maxS, scores[j])
		}
		var sum float64
		for j := range scores {
			scores[j] = math.Exp(scores[j] - maxS)
			sum += scores[j]
		}
		for j := range scores {
			pj := scores[j] / sum
			for i := 0; i < hd; i++ {
				ctx[lo+i] += float32(pj * float64(v[j][lo+i]))
			}
		}
	}
	return ctx
}
