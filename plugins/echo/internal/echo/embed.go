package echo

import (
	"context"
	"encoding/binary"
	"hash/fnv"
	"math"

	"github.com/dsmil/l7/sdk"
)

// EmbedDims is the size of echo's vectors.
const EmbedDims = 8

var _ sdk.Embedder = (*Workload)(nil)

// Embed implements sdk.Embedder with a stand-in model for tests of the
// plane: each input's vector is EmbedDims values drawn from an FNV-1a hash
// of its text (or its token ids), L2-normalised, so equal inputs get equal
// vectors and different ones almost surely different ones. It counts a
// text's words, or a token sequence's ids, as its tokens. dimensions up to
// EmbedDims truncates and re-normalises (echo claims Matryoshka training);
// more is a 400, and so is an image input (echo embeds no images).
func (w *Workload) Embed(ctx context.Context, req *sdk.EmbedRequest) (*sdk.EmbedResult, error) {
	if w.cfg.Load() == nil {
		return nil, sdk.ErrNotConfigured
	}
	dims := int(req.Params.GetDimensions())
	switch {
	case dims > EmbedDims:
		return nil, sdk.InvalidParam("dimensions", "model %s has %d dimensions; dimensions=%d is more", Model, EmbedDims, dims)
	case dims == 0:
		dims = EmbedDims
	}
	for i, in := range req.Params.GetInputs() {
		if in.GetImage() != nil {
			return nil, sdk.InvalidParam("input", "input %d is an image; model %s embeds texts and token ids only", i, Model)
		}
	}
	res := &sdk.EmbedResult{Model: Model, Vectors: make([][]float32, len(req.Params.GetInputs()))}
	for i, in := range req.Params.GetInputs() {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h := fnv.New64a()
		if toks := in.GetTokens(); toks != nil {
			for _, id := range toks.GetIds() {
				_ = binary.Write(h, binary.LittleEndian, id)
			}
			res.PromptTokens += uint32(len(toks.GetIds()))
		} else {
			_, _ = h.Write([]byte(in.GetText()))
			res.PromptTokens += uint32(words(in.GetText()))
		}
		res.Vectors[i] = hashVector(h.Sum64(), dims)
	}
	return res, nil
}

// hashVector expands seed into EmbedDims values in [-1, 1) with a
// SplitMix64 sequence, keeps the first dims and normalises them to unit
// length.
func hashVector(seed uint64, dims int) []float32 {
	v := make([]float32, dims)
	var norm float64
	for i := range v {
		seed += 0x9e3779b97f4a7c15
		z := seed
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		x := float64(z>>11)/(1<<52) - 1
		v[i] = float32(x)
		norm += x * x
	}
	if norm = math.Sqrt(norm); norm > 0 {
		for i := range v {
			v[i] = float32(float64(v[i]) / norm)
		}
	}
	return v
}
