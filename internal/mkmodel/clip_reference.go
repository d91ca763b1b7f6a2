package mkmodel

import (
	"fmt"
	"math"
)

// CLIPReference is a plain-Go forward pass of a generated CLIP dual
// encoder, written from CLIP's definition (Hugging Face CLIPTextModel-
// WithProjection and CLIPVisionModelWithProjection) rather than from the
// ONNX graphs, for tests to compare ONNX Runtime's text_embeds and
// image_embeds with. It holds every weight as float32: use it on small
// shapes only.
type CLIPReference struct {
	s                      CLIPSpec
	eos                    int64
	tok, pos               []float32
	text                   []clipRefLayer
	finalGamma, finalBeta  []float32
	textProj               []float32 // ProjectionDim × text hidden
	patch, cls, vpos       []float32
	preGamma, preBeta      []float32
	vision                 []clipRefLayer
	postGamma, postBeta    []float32
	visionProj             []float32
	textHeads, visionHeads int
}

type clipRefLayer struct {
	ln1g, ln1b, ln2g, ln2b      []float32
	q, k, v, o, fc1, fc2        []float32 // out×in
	qb, kb, vb, ob, fc1b, fc2b  []float32
	hidden, intermediate, heads int
}

// NewCLIPReference builds the reference for s, which must have been
// validated (use CLIPResult.Spec); eos is the <|endoftext|> id the text is
// pooled at.
func NewCLIPReference(s CLIPSpec, eos int) (*CLIPReference, error) {
	if s.Vocab == 0 || s.LayerNormEps == 0 {
		return nil, fmt.Errorf("%w: NewCLIPReference needs a validated spec (CLIPResult.Spec)", ErrSpec)
	}
	w := clipWeights{&s}
	T, V, P := s.Text.Hidden, s.Vision.Hidden, s.ProjectionDim
	r := &CLIPReference{s: s, eos: int64(eos),
		tok:  w.table("text_model.embeddings.token_embedding.weight", s.Vocab, T),
		pos:  w.table("text_model.embeddings.position_embedding.weight", s.MaxPositions, T),
		cls:  w.table("vision_model.embeddings.class_embedding", 1, V),
		vpos: w.table("vision_model.embeddings.position_embedding.weight", s.Patches()+1, V),
	}
	r.patch = w.patch()
	r.finalGamma, r.finalBeta = w.layerNorm("text_model.final_layer_norm", T)
	r.preGamma, r.preBeta = w.layerNorm("vision_model.pre_layrnorm", V)
	r.postGamma, r.postBeta = w.layerNorm("vision_model.post_layernorm", V)
	r.textProj = w.linear("text_projection", P, T)
	r.visionProj = w.linear("visual_projection", P, V)
	layers := func(tower string, t CLIPTower) []clipRefLayer {
		var out []clipRefLayer
		H, I := t.Hidden, t.Intermediate
		for l := 0; l < t.Layers; l++ {
			n := func(rest string) string { return clipLayer(tower, l, rest) }
			L := clipRefLayer{hidden: H, intermediate: I, heads: t.Heads,
				q: w.linear(n("self_attn.q_proj"), H, H), qb: w.bias(n("self_attn.q_proj"), H),
				k: w.linear(n("self_attn.k_proj"), H, H), kb: w.bias(n("self_attn.k_proj"), H),
				v: w.linear(n("self_attn.v_proj"), H, H), vb: w.bias(n("self_attn.v_proj"), H),
				o: w.linear(n("self_attn.out_proj"), H, H), ob: w.bias(n("self_attn.out_proj"), H),
				fc1: w.linear(n("mlp.fc1"), I, H), fc1b: w.bias(n("mlp.fc1"), I),
				fc2: w.linear(n("mlp.fc2"), H, I), fc2b: w.bias(n("mlp.fc2"), H),
			}
			L.ln1g, L.ln1b = w.layerNorm(n("layer_norm1"), H)
			L.ln2g, L.ln2b = w.layerNorm(n("layer_norm2"), H)
			out = append(out, L)
		}
		return out
	}
	r.text, r.vision = layers("text_model", s.Text), layers("vision_model", s.Vision)
	return r, nil
}

// forward runs pre-norm layers on h (one row per position), causal or not.
func (r *CLIPReference) forward(h [][]float32, layers []clipRefLayer, causal bool) [][]float32 {
	eps := r.s.LayerNormEps
	S := len(h)
	for _, L := range layers {
		H, hd := L.hidden, L.hidden/L.heads
		scale := 1 / math.Sqrt(float64(hd))
		q, k, v := make([][]float32, S), make([][]float32, S), make([][]float32, S)
		for p := range h {
			x := layerNorm(h[p], L.ln1g, L.ln1b, eps)
			q[p], k[p], v[p] = matVec(L.q, x, H, L.qb), matVec(L.k, x, H, L.kb), matVec(L.v, x, H, L.vb)
		}
		next := make([][]float32, S)
		for p := range h {
			span := S
			if causal {
				span = p + 1
			}
			ctx := attend(q[p], k[:span], v[:span], L.heads, scale)
			x := matVec(L.o, ctx, H, L.ob)
			add(x, h[p])
			up := matVec(L.fc1, layerNorm(x, L.ln2g, L.ln2b, eps), L.intermediate, L.fc1b)
			for i, u := range up {
				up[i] = float32(float64(u) / (1 + math.Exp(-1.702*float64(u))))
			}
			down := matVec(L.fc2, up, H, L.fc2b)
			add(down, x)
			next[p] = down
		}
		h = next
	}
	return h
}

// TextEmbeds returns text_embeds for one unpadded token sequence: the
// final hidden state at the first eos token (the first token when there is
// none), projected; not normalised.
func (r *CLIPReference) TextEmbeds(ids []int64) ([]float32, error) {
	s := &r.s
	T, S := s.Text.Hidden, len(ids)
	if S == 0 || S > s.MaxPositions {
		return nil, fmt.Errorf("mkmodel: %d tokens, the text model takes 1 to %d", S, s.MaxPositions)
	}
	h := make([][]float32, S)
	at := -1
	for p, id := range ids {
		if id < 0 || int(id) >= s.Vocab {
			return nil, fmt.Errorf("mkmodel: token %d out of range", id)
		}
		if id == r.eos && at < 0 {
			at = p
		}
		h[p] = make([]float32, T)
		for i := range h[p] {
			h[p][i] = r.tok[int(id)*T+i] + r.pos[p*T+i]
		}
	}
	at = max(at, 0)
	h = r.forward(h, r.text, true)
	pooled := layerNorm(h[at], r.finalGamma, r.finalBeta, s.LayerNormEps)
	return matVec(r.textProj, pooled, s.ProjectionDim, nil), nil
}

// ImageEmbeds returns image_embeds for one image's pixel values, [3,
// ImageSize, ImageSize] channel-major: the class token after the layers
// and post_layernorm, projected; not normalised.
func (r *CLIPReference) ImageEmbeds(pixels []float32) ([]float32, error) {
	s := &r.s
	V, P, I := s.Vision.Hidden, s.PatchSize, s.ImageSize
	if len(pixels) != 3*I*I {
		return nil, fmt.Errorf("mkmodel: %d pixel values, want 3×%d×%d", len(pixels), I, I)
	}
	G := I / P
	h := [][]float32{make([]float32, V)}
	copy(h[0], r.cls)
	for gy := 0; gy < G; gy++ {
		for gx := 0; gx < G; gx++ {
			x := make([]float32, V)
			for o := range x {
				var acc float64
				for c := 0; c < 3; c++ {
					for ky := 0; ky < P; ky++ {
						for kx := 0; kx < P; kx++ {
							acc += float64(r.patch[((o*3+c)*P+ky)*P+kx]) * float64(pixels[(c*I+gy*P+ky)*I+gx*P+kx])
						}
					}
				}
				x[o] = float32(acc)
			}
			h = append(h, x)
		}
	}
	for p := range h {
		add(h[p], r.vpos[p*V:(p+1)*V])
		h[p] = layerNorm(h[p], r.preGamma, r.preBeta, s.LayerNormEps)
	}
	h = r.forward(h, r.vision, false)
	pooled := layerNorm(h[0], r.postGamma, r.postBeta, s.LayerNormEps)
	return matVec(r.visionProj, pooled, s.ProjectionDim, nil), nil
}
