// Package clip runs CLIP-style dual encoders on ONNX Runtime: texts through
// the text encoder and images through the vision encoder, both projected
// into one space and normalised, so that a text and an image can be
// compared by their dot product.
//
// Model directories are the transformers.js / Optimum export of a
// CLIPModel: config.json (model_type "clip", projection_dim, text_config,
// vision_config), preprocessor_config.json (CLIPImageProcessor),
// tokenizer.json and tokenizer_config.json (CLIP's BPE), and either two
// graphs, text_model.onnx (input_ids[, attention_mask] → text_embeds) and
// vision_model.onnx (pixel_values → image_embeds), or one model.onnx
// taking input_ids, pixel_values[, attention_mask] and giving both
// text_embeds and image_embeds; each at the directory's root or under
// onnx/.
//
// Image preprocessing follows transformers.js's CLIPImageProcessor in Node
// (see Preprocess.Pixels and Bicubic).
package clip

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"

	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/plugins/internal/tokenizer"
	ortgo "github.com/yalue/onnxruntime_go"
)

// Graph I/O names, as Optimum exports CLIP.
const (
	inputIDs      = "input_ids"
	attentionMask = "attention_mask"
	pixelValues   = "pixel_values"
	textEmbeds    = "text_embeds"
	imageEmbeds   = "image_embeds"
)

// Layouts.
const (
	// LayoutSplit is text_model.onnx + vision_model.onnx.
	LayoutSplit = "split"
	// LayoutCombined is one model.onnx giving text_embeds and image_embeds.
	LayoutCombined = "combined"
)

// ErrNotInitialized reports a Load before ort.Init.
var ErrNotInitialized = errors.New("clip: ONNX Runtime is not initialized (ort.Init)")

// Model is a loaded dual encoder. It is safe for concurrent use.
type Model struct {
	// Dir is the model directory.
	Dir string
	// Config is what the directory says about the model.
	Config *Config
	// Tokenizer is the text encoder's tokenizer.
	Tokenizer *tokenizer.Tokenizer
	// Layout is LayoutSplit or LayoutCombined.
	Layout string

	text, vision *ortgo.DynamicAdvancedSession // the same session when combined
	textFeed     []string                      // the text session's inputs, in order
	visionFeed   []string                      // the vision session's inputs, in order
	textOuts     []string                      // the text session's outputs
	visionOuts   []string                      // the vision session's outputs
	textMask     bool                          // the text graph takes attention_mask
	padID, eosID int64
}

// findGraph returns the first of names that exists under dir or dir/onnx.
func findGraph(dir, name string) string {
	for _, p := range []string{filepath.Join(dir, "onnx", name), filepath.Join(dir, name)} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	return ""
}

type graphIO struct {
	path     string
	ins, out []string
}

func readIO(path string) (*graphIO, error) {
	ins, outs, err := ortgo.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrLayout, path, err)
	}
	g := &graphIO{path: path}
	for _, i := range ins {
		g.ins = append(g.ins, i.Name)
	}
	for _, o := range outs {
		g.out = append(g.out, o.Name)
	}
	return g, nil
}

// check reports the inputs g lacks or cannot be fed and the outputs it
// lacks.
func (g *graphIO) check(needIn, optIn, needOut []string) error {
	for _, n := range needIn {
		if !slices.Contains(g.ins, n) {
			return fmt.Errorf("%w: %s has no input %s (it has %v)", ErrLayout, g.path, n, g.ins)
		}
	}
	for _, n := range g.ins {
		if !slices.Contains(needIn, n) && !slices.Contains(optIn, n) {
			return fmt.Errorf("%w: %s has input %s, which a CLIP encoder does not take", ErrLayout, g.path, n)
		}
	}
	for _, n := range needOut {
		if !slices.Contains(g.out, n) {
			return fmt.Errorf("%w: %s has no output %s (it has %v)", ErrLayout, g.path, n, g.out)
		}
	}
	return nil
}

// Load opens the dual encoder in dir. ort.Init must have been called.
func Load(dir string, opts ort.Options) (*Model, error) {
	if ort.Loaded() == nil {
		return nil, ErrNotInitialized
	}
	c, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.LoadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrLayout, err)
	}
	m := &Model{Dir: dir, Config: c, Tokenizer: tok}
	eos, ok := tok.EOS()
	if !ok {
		return nil, fmt.Errorf("%w: tokenizer_config.json names no eos_token (CLIP's <|endoftext|>)", ErrLayout)
	}
	m.eosID, m.padID = int64(eos.ID), int64(eos.ID)
	if p, ok := tok.Pad(); ok {
		m.padID = int64(p.ID)
	}
	so, err := opts.SessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	textPath, visionPath := findGraph(dir, "text_model.onnx"), findGraph(dir, "vision_model.onnx")
	switch {
	case textPath != "" && visionPath != "":
		m.Layout = LayoutSplit
		tg, err := readIO(textPath)
		if err != nil {
			return nil, err
		}
		if err := tg.check([]string{inputIDs}, []string{attentionMask}, []string{textEmbeds}); err != nil {
			return nil, err
		}
		vg, err := readIO(visionPath)
		if err != nil {
			return nil, err
		}
		if err := vg.check([]string{pixelValues}, nil, []string{imageEmbeds}); err != nil {
			return nil, err
		}
		m.textMask = slices.Contains(tg.ins, attentionMask)
		feed := []string{inputIDs}
		if m.textMask {
			feed = append(feed, attentionMask)
		}
		m.textFeed, m.visionFeed = feed, []string{pixelValues}
		m.textOuts, m.visionOuts = []string{textEmbeds}, []string{imageEmbeds}
		if m.text, err = ortgo.NewDynamicAdvancedSession(textPath, feed, []string{textEmbeds}, so); err != nil {
			return nil, fmt.Errorf("clip: ONNX Runtime cannot load %s: %w", textPath, err)
		}
		if m.vision, err = ortgo.NewDynamicAdvancedSession(visionPath, []string{pixelValues}, []string{imageEmbeds}, so); err != nil {
			m.Close()
			return nil, fmt.Errorf("clip: ONNX Runtime cannot load %s: %w", visionPath, err)
		}
	case findGraph(dir, "model.onnx") != "":
		m.Layout = LayoutCombined
		g, err := readIO(findGraph(dir, "model.onnx"))
		if err != nil {
			return nil, err
		}
		if err := g.check([]string{inputIDs, pixelValues}, []string{attentionMask}, []string{textEmbeds, imageEmbeds}); err != nil {
			return nil, err
		}
		m.textMask = slices.Contains(g.ins, attentionMask)
		feed := []string{inputIDs, pixelValues}
		if m.textMask {
			feed = append(feed, attentionMask)
		}
		m.textFeed, m.visionFeed = feed, feed
		m.textOuts, m.visionOuts = []string{textEmbeds, imageEmbeds}, []string{textEmbeds, imageEmbeds}
		if m.text, err = ortgo.NewDynamicAdvancedSession(g.path, feed, []string{textEmbeds, imageEmbeds}, so); err != nil {
			return nil, fmt.Errorf("clip: ONNX Runtime cannot load %s: %w", g.path, err)
		}
		m.vision = m.text
	default:
		return nil, fmt.Errorf("%w: %s has neither text_model.onnx and vision_model.onnx nor model.onnx (at its root or under onnx/)", ErrLayout, dir)
	}
	return m, nil
}

// Close releases the ONNX Runtime sessions.
func (m *Model) Close() error {
	var errs []error
	if m.text != nil {
		errs = append(errs, m.text.Destroy())
	}
	if m.vision != nil && m.vision != m.text {
		errs = append(errs, m.vision.Destroy())
	}
	m.text, m.vision = nil, nil
	return errors.Join(errs...)
}

// Encode tokenizes text with <|startoftext|> and <|endoftext|>.
func (m *Model) Encode(text string) []int64 {
	ids := m.Tokenizer.Encode(text, true)
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}

// CheckSequence reports why the text encoder cannot take ids, or nil.
func (m *Model) CheckSequence(ids []int64) error {
	switch {
	case len(ids) == 0:
		return errors.New("no tokens")
	case len(ids) > m.Config.MaxSeqLength:
		return fmt.Errorf("%d tokens; the model takes at most %d", len(ids), m.Config.MaxSeqLength)
	}
	vocab := m.Config.Vocab
	if vocab <= 0 {
		vocab = m.Tokenizer.VocabSize()
	}
	for i, id := range ids {
		if id < 0 || id >= int64(vocab) {
			return fmt.Errorf("token %d is id %d, outside the vocabulary of %d", i, id, vocab)
		}
	}
	return nil
}

// EmbedText runs seqs as one batch, padded to the longest, and returns one
// unit-length vector per sequence.
func (m *Model) EmbedText(ctx context.Context, seqs [][]int64) ([][]float32, error) {
	if len(seqs) == 0 {
		return nil, nil
	}
	longest := 0
	for i, s := range seqs {
		if err := m.CheckSequence(s); err != nil {
			return nil, fmt.Errorf("sequence %d: %w", i, err)
		}
		longest = max(longest, len(s))
	}
	B, S := len(seqs), longest
	ids, mask := make([]int64, B*S), make([]int64, B*S)
	for b, s := range seqs {
		row := ids[b*S : (b+1)*S]
		copy(row, s)
		for i := len(s); i < S; i++ {
			row[i] = m.padID
		}
		for i := range s {
			mask[b*S+i] = 1
		}
	}
	in := map[string]ortgo.Value{}
	defer func() {
		for _, v := range in {
			_ = v.Destroy()
		}
	}()
	var err error
	if in[inputIDs], err = ortgo.NewTensor(ortgo.NewShape(int64(B), int64(S)), ids); err != nil {
		return nil, fmt.Errorf("clip: input tensor: %w", err)
	}
	if m.textMask {
		if in[attentionMask], err = ortgo.NewTensor(ortgo.NewShape(int64(B), int64(S)), mask); err != nil {
			return nil, fmt.Errorf("clip: input tensor: %w", err)
		}
	}
	if m.Layout == LayoutCombined {
		// The combined graph needs an image too: one black one.
		I := int64(m.Config.ImageSize)
		if in[pixelValues], err = ortgo.NewEmptyTensor[float32](ortgo.NewShape(1, 3, I, I)); err != nil {
			return nil, fmt.Errorf("clip: input tensor: %w", err)
		}
	}
	return m.run(ctx, m.text, m.textFeed, m.textOuts, in, textEmbeds, B)
}

// EmbedImages runs images (each the pixel values Preprocess.Pixels gives)
// as one batch and returns one unit-length vector per image.
func (m *Model) EmbedImages(ctx context.Context, images [][]float32) ([][]float32, error) {
	if len(images) == 0 {
		return nil, nil
	}
	I := m.Config.ImageSize
	n := 3 * I * I
	pix := make([]float32, 0, len(images)*n)
	for i, im := range images {
		if len(im) != n {
			return nil, fmt.Errorf("clip: image %d has %d pixel values, the model takes 3×%d×%d", i, len(im), I, I)
		}
		pix = append(pix, im...)
	}
	in := map[string]ortgo.Value{}
	defer func() {
		for _, v := range in {
			_ = v.Destroy()
		}
	}()
	var err error
	if in[pixelValues], err = ortgo.NewTensor(ortgo.NewShape(int64(len(images)), 3, int64(I), int64(I)), pix); err != nil {
		return nil, fmt.Errorf("clip: input tensor: %w", err)
	}
	if m.Layout == LayoutCombined {
		// The combined graph needs a text too: <|endoftext|> alone.
		if in[inputIDs], err = ortgo.NewTensor(ortgo.NewShape(1, 1), []int64{m.eosID}); err != nil {
			return nil, fmt.Errorf("clip: input tensor: %w", err)
		}
		if m.textMask {
			if in[attentionMask], err = ortgo.NewTensor(ortgo.NewShape(1, 1), []int64{1}); err != nil {
				return nil, fmt.Errorf("clip: input tensor: %w", err)
			}
		}
	}
	return m.run(ctx, m.vision, m.visionFeed, m.visionOuts, in, imageEmbeds, len(images))
}

// run runs sess on the inputs named by feed and returns output's B rows,
// normalised.
func (m *Model) run(ctx context.Context, sess *ortgo.DynamicAdvancedSession, feed, outNames []string, in map[string]ortgo.Value, output string, B int) ([][]float32, error) {
	ins := make([]ortgo.Value, len(feed))
	for i, n := range feed {
		ins[i] = in[n]
	}
	outs := make([]ortgo.Value, len(outNames)) // nil: ONNX Runtime allocates
	ro, err := ortgo.NewRunOptions()
	if err != nil {
		return nil, fmt.Errorf("clip: run options: %w", err)
	}
	defer ro.Destroy()
	done := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(done)
		_ = ro.Terminate()
	})
	err = sess.RunWithOptions(ins, outs, ro)
	if !stop() {
		<-done
	}
	defer func() {
		for _, o := range outs {
			if o != nil {
				_ = o.Destroy()
			}
		}
	}()
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, fmt.Errorf("clip: cancelled: %w", cerr)
		}
		return nil, fmt.Errorf("clip: run: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, ok := outs[slices.Index(outNames, output)].(*ortgo.Tensor[float32])
	if !ok {
		return nil, fmt.Errorf("clip: %s is not a float32 tensor", output)
	}
	shape, data := t.GetShape(), t.GetData()
	P := m.Config.ProjectionDim
	if len(shape) != 2 || shape[0] != int64(B) || shape[1] != int64(P) {
		return nil, fmt.Errorf("clip: %s has shape %v, want [%d %d] (projection_dim)", output, shape, B, P)
	}
	vecs := make([][]float32, B)
	for b := range vecs {
		vecs[b] = normalize(slices.Clone(data[b*P : (b+1)*P]))
	}
	return vecs, nil
}

// normalize scales v to unit length in place (torch's F.normalize, with
// its 1e-12 floor on the norm) and returns it.
func normalize(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	n := max(math.Sqrt(sum), 1e-12)
	for i := range v {
		v[i] = float32(float64(v[i]) / n)
	}
	return v
}
