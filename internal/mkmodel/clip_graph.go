package mkmodel

import (
	"fmt"
	"math"
	"os"

	"github.com/dsmil/l7/internal/onnx"
	"google.golang.org/protobuf/proto"
)

// clipGraph builds one of the two CLIP graphs with standard ONNX operators
// (opset 17).
type clipGraph struct {
	*graphBuilder
	s *CLIPSpec
	w clipWeights
}

func newCLIPGraph(s *CLIPSpec) *clipGraph {
	g := &onnx.GraphProto{Name: proto.String("main_graph")}
	c := &clipGraph{graphBuilder: &graphBuilder{g: g, sink: &initSink{}}, s: s, w: clipWeights{s}}
	c.initF32("const.onef", nil, []float32{1})
	c.initF32("const.zerof", nil, []float32{0})
	c.initF32("const.minf", nil, []float32{-math.MaxFloat32})
	c.initF32("const.gelu", nil, []float32{1.702})
	c.initI64("const.zero", nil, 0)
	c.initI64("const.one", nil, 1)
	return c
}

// lin is x·Wᵀ (+ b): MatMul with the transposed weight of the out×in
// PyTorch Linear name.
func (c *clipGraph) lin(x, name string, out, in int, bias bool) string {
	c.initF32(name+".weight_t", []int64{int64(in), int64(out)}, transpose(c.w.linear(name, out, in), out, in))
	y := c.tmp(name + "/mm")
	c.node("MatMul", "", []string{x, name + ".weight_t"}, []string{y})
	if !bias {
		return y
	}
	c.initF32(name+".bias", []int64{int64(out)}, c.w.bias(name, out))
	return c.add(y, name+".bias")
}

func (c *clipGraph) ln(x, name string, n int) string {
	gamma, beta := c.w.layerNorm(name, n)
	c.initF32(name+".weight", []int64{int64(n)}, gamma)
	c.initF32(name+".bias", []int64{int64(n)}, beta)
	y := c.tmp(name + "/out")
	c.node("LayerNormalization", "", []string{x, name + ".weight", name + ".bias"}, []string{y},
		attrI("axis", -1), attrF("epsilon", float32(c.s.LayerNormEps)))
	return y
}

// tower runs the pre-norm layers of tower (text_model or vision_model) on
// h [B, S, H]; bias, when not "", is added to the attention scores.
func (c *clipGraph) tower(tower string, t CLIPTower, h, bias string) string {
	H, hd := t.Hidden, t.Hidden/t.Heads
	headsShape, hiddenShape, scale := tower+".const.heads_shape", tower+".const.hidden_shape", tower+".const.scale"
	c.initI64(headsShape, []int64{4}, 0, 0, int64(t.Heads), int64(hd))
	c.initI64(hiddenShape, []int64{3}, 0, 0, int64(H))
	c.initF32(scale, nil, []float32{float32(1 / math.Sqrt(float64(hd)))})
	heads := func(x string, perm ...int64) string {
		r, tr := c.tmp("heads/r"), c.tmp("heads/t")
		c.node("Reshape", "", []string{x, headsShape}, []string{r})
		c.node("Transpose", "", []string{r}, []string{tr}, attrInts("perm", perm...))
		return tr
	}
	for l := 0; l < t.Layers; l++ {
		n := func(rest string) string { return clipLayer(tower, l, rest) }
		x := c.ln(h, n("layer_norm1"), H)
		q := heads(c.mul(c.lin(x, n("self_attn.q_proj"), H, H, true), scale), 0, 2, 1, 3)
		k := heads(c.lin(x, n("self_attn.k_proj"), H, H, true), 0, 2, 3, 1)
		v := heads(c.lin(x, n("self_attn.v_proj"), H, H, true), 0, 2, 1, 3)
		scores := c.tmp(n("scores"))
		c.node("MatMul", "", []string{q, k}, []string{scores})
		if bias != "" {
			scores = c.add(scores, bias)
		}
		probs := c.tmp(n("probs"))
		c.node("Softmax", "", []string{scores}, []string{probs}, attrI("axis", -1))
		ctx, ctxT, ctxR := c.tmp(n("ctx")), c.tmp(n("ctx/t")), c.tmp(n("ctx/r"))
		c.node("MatMul", "", []string{probs, v}, []string{ctx})
		c.node("Transpose", "", []string{ctx}, []string{ctxT}, attrInts("perm", 0, 2, 1, 3))
		c.node("Reshape", "", []string{ctxT, hiddenShape}, []string{ctxR})
		h = c.add(h, c.lin(ctxR, n("self_attn.out_proj"), H, H, true))

		x = c.ln(h, n("layer_norm2"), H)
		up := c.lin(x, n("mlp.fc1"), t.Intermediate, H, true)
		sig := c.tmp(n("gelu/sig"))
		c.node("Sigmoid", "", []string{c.mul(up, "const.gelu")}, []string{sig})
		h = c.add(h, c.lin(c.mul(up, sig), n("mlp.fc2"), H, t.Intermediate, true))
	}
	return h
}

func (c *clipGraph) write(path string) error {
	if c.err != nil {
		return c.err
	}
	m := &onnx.ModelProto{
		IrVersion: proto.Int64(8), ProducerName: proto.String("dsmil-mkmodel"), ProducerVersion: proto.String("1"),
		OpsetImport: []*onnx.OperatorSetIdProto{{Domain: proto.String(""), Version: proto.Int64(17)}},
		Graph:       c.g,
		MetadataProps: []*onnx.StringStringEntryProto{
			{Key: proto.String("dsmil.random_weights"), Value: proto.String("true")},
			{Key: proto.String("dsmil.preset"), Value: proto.String(c.s.Name)},
		},
	}
	data, err := proto.Marshal(m)
	if err != nil {
		return fmt.Errorf("mkmodel: encoding %s: %w", path, err)
	}
	return os.WriteFile(path, data, 0o644)
}

// writeCLIPText writes text_model.onnx: token and position embeddings,
// causal attention (with the attention mask's padding masked too), the
// final LayerNorm, the hidden state at the first eos token (HF CLIP's
// pooling for an eos_token_id other than 2) projected without bias.
func writeCLIPText(path string, s *CLIPSpec, eos int64) error {
	c := newCLIPGraph(s)
	c.text(eos, TextEmbeds, true)
	return c.write(path)
}

// text adds the text tower to the graph: its inputs, the projected pooled
// state as output embeds, and last_hidden_state when lastHidden.
func (c *clipGraph) text(eos int64, embeds string, lastHidden bool) {
	s := c.s
	T := s.Text.Hidden
	c.g.Input = append(c.g.Input,
		valueInfo(InputIDs, elemInt64, dimParam("text_batch_size"), dimParam("sequence_length")),
		valueInfo(AttentionMask, elemInt64, dimParam("text_batch_size"), dimParam("sequence_length")))
	c.g.Output = append(c.g.Output, valueInfo(TextEmbeds, elemFloat, dimParam("text_batch_size"), dimValue(s.ProjectionDim)))
	if lastHidden {
		c.g.Output = append(c.g.Output, valueInfo(LastHiddenState, elemFloat, dimParam("text_batch_size"), dimParam("sequence_length"), dimValue(T)))
	}

	tokEmb, posEmb := "text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight"
	c.initF32(tokEmb, []int64{int64(s.Vocab), int64(T)}, c.w.table(tokEmb, s.Vocab, T))
	c.initF32(posEmb, []int64{int64(s.MaxPositions), int64(T)}, c.w.table(posEmb, s.MaxPositions, T))
	c.initI64("const.axes0", []int64{1}, 0)
	c.initI64("const.axes1", []int64{1}, 1)
	c.initI64("const.axes12", []int64{2}, 1, 2)
	c.initI64("const.eos", nil, eos)
	c.node("Gather", "", []string{tokEmb, InputIDs}, []string{"emb/tok"}, attrI("axis", 0))
	c.node("Shape", "", []string{InputIDs}, []string{"ids/shape"})
	c.node("Gather", "", []string{"ids/shape", "const.one"}, []string{"ids/seq"}, attrI("axis", 0))
	c.node("Range", "", []string{"const.zero", "ids/seq", "const.one"}, []string{"pos"})
	c.node("Gather", "", []string{posEmb, "pos"}, []string{"emb/pos"}, attrI("axis", 0))
	h := c.add("emb/tok", "emb/pos")

	// Causal bias [S, S]: the float32 minimum above the diagonal; padding
	// bias [B, 1, 1, S]: the minimum at masked positions.
	c.node("Unsqueeze", "", []string{"pos", "const.axes1"}, []string{"pos/rows"})
	c.node("Unsqueeze", "", []string{"pos", "const.axes0"}, []string{"pos/cols"})
	c.node("Greater", "", []string{"pos/cols", "pos/rows"}, []string{"mask/future"})
	c.node("Where", "", []string{"mask/future", "const.minf", "const.zerof"}, []string{"mask/causal"})
	c.node("Cast", "", []string{AttentionMask}, []string{"mask/f"}, attrI("to", int64(elemFloat)))
	c.node("Unsqueeze", "", []string{"mask/f", "const.axes12"}, []string{"mask/4d"})
	c.node("Sub", "", []string{"const.onef", "mask/4d"}, []string{"mask/inv"})
	c.node("Mul", "", []string{"mask/inv", "const.minf"}, []string{"mask/pad"})
	bias := c.add("mask/causal", "mask/pad")

	h = c.ln(c.tower("text_model", s.Text, h, bias), "text_model.final_layer_norm", T)
	if lastHidden {
		c.node("Identity", "", []string{h}, []string{LastHiddenState})
	}

	c.node("Equal", "", []string{InputIDs, "const.eos"}, []string{"pool/is_eos"})
	c.node("Cast", "", []string{"pool/is_eos"}, []string{"pool/is_eos_f"}, attrI("to", int64(elemFloat)))
	c.node("ArgMax", "", []string{"pool/is_eos_f"}, []string{"pool/index"}, attrI("axis", 1), attrI("keepdims", 1))
	c.node("GatherND", "", []string{h, "pool/index"}, []string{"pool/out"}, attrI("batch_dims", 1))
	c.node("Identity", "", []string{c.lin("pool/out", "text_projection", s.ProjectionDim, T, false)}, []string{embeds})
}

// writeCLIPVision writes vision_model.onnx: the patch convolution, the
// class token, position embeddings, pre_layrnorm (sic, HF's name), the
// layers, post_layernorm of the class token projected without bias.
func writeCLIPVision(path string, s *CLIPSpec) error {
	c := newCLIPGraph(s)
	c.vision(ImageEmbeds, true)
	return c.write(path)
}

// vision adds the vision tower to the graph: its input, the projected class
// token as output embeds, and last_hidden_state when lastHidden.
func (c *clipGraph) vision(embeds string, lastHidden bool) {
	s := c.s
	V, P, N := s.Vision.Hidden, s.PatchSize, s.Patches()
	c.g.Input = append(c.g.Input,
		valueInfo(PixelValues, elemFloat, dimParam("image_batch_size"), dimValue(3), dimValue(s.ImageSize), dimValue(s.ImageSize)))
	c.g.Output = append(c.g.Output, valueInfo(ImageEmbeds, elemFloat, dimParam("image_batch_size"), dimValue(s.ProjectionDim)))
	if lastHidden {
		c.g.Output = append(c.g.Output, valueInfo(LastHiddenState, elemFloat, dimParam("image_batch_size"), dimValue(N+1), dimValue(V)))
	}

	patchW, cls, posEmb := "vision_model.embeddings.patch_embedding.weight", "vision_model.embeddings.class_embedding", "vision_model.embeddings.position_embedding.weight"
	c.initF32(patchW, []int64{int64(V), 3, int64(P), int64(P)}, c.w.patch())
	c.initF32(cls, []int64{1, 1, int64(V)}, c.w.table(cls, 1, V))
	c.initF32(posEmb, []int64{int64(N + 1), int64(V)}, c.w.table(posEmb, N+1, V))
	c.initI64("const.patches_shape", []int64{3}, 0, int64(V), -1)
	c.initI64("const.cls_tail", []int64{2}, 1, int64(V))
	c.initI64("const.start0", []int64{1}, 0)
	c.initI64("const.end1", []int64{1}, 1)
	c.node("Conv", "", []string{PixelValues, patchW}, []string{"patch/conv"},
		attrInts("kernel_shape", int64(P), int64(P)), attrInts("strides", int64(P), int64(P)))
	c.node("Reshape", "", []string{"patch/conv", "const.patches_shape"}, []string{"patch/flat"})
	c.node("Transpose", "", []string{"patch/flat"}, []string{"patch/seq"}, attrInts("perm", 0, 2, 1))
	c.node("Shape", "", []string{PixelValues}, []string{"pv/shape"})
	c.node("Slice", "", []string{"pv/shape", "const.start0", "const.end1"}, []string{"pv/batch"})
	c.node("Concat", "", []string{"pv/batch", "const.cls_tail"}, []string{"cls/shape"}, attrI("axis", 0))
	c.node("Expand", "", []string{cls, "cls/shape"}, []string{"cls/batch"})
	c.node("Concat", "", []string{"cls/batch", "patch/seq"}, []string{"emb/seq"}, attrI("axis", 1))
	h := c.ln(c.add("emb/seq", posEmb), "vision_model.pre_layrnorm", V)
	h = c.tower("vision_model", s.Vision, h, "")
	if lastHidden {
		c.node("Identity", "", []string{h}, []string{LastHiddenState})
	}
	c.node("Gather", "", []string{h, "const.zero"}, []string{"pool/cls"}, attrI("axis", 1))
	pooled := c.ln("pool/cls", "vision_model.post_layernorm", V)
	c.node("Identity", "", []string{c.lin(pooled, "visual_projection", s.ProjectionDim, V, false)}, []string{embeds})
}

// writeCLIPCombined writes model.onnx as Optimum exports a whole CLIPModel:
// both towers in one graph (input_ids, attention_mask, pixel_values →
// text_embeds, image_embeds), each embedding divided by its L2 norm, as
// CLIPModel returns them.
func writeCLIPCombined(path string, s *CLIPSpec, eos int64) error {
	c := newCLIPGraph(s)
	c.text(eos, "text_embeds/raw", false)
	c.vision("image_embeds/raw", false)
	for _, o := range [][2]string{{"text_embeds/raw", TextEmbeds}, {"image_embeds/raw", ImageEmbeds}} {
		n := c.tmp(o[1] + "/norm")
		c.node("ReduceL2", "", []string{o[0]}, []string{n}, attrInts("axes", 1), attrI("keepdims", 1))
		c.node("Div", "", []string{o[0], n}, []string{o[1]})
	}
	return c.write(path)
}
