package mkmodel

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Graph I/O names and files of a CLIP dual encoder, as Optimum and
// transformers.js (Xenova/clip-*) export it.
const (
	PixelValues    = "pixel_values"
	TextEmbeds     = "text_embeds"
	ImageEmbeds    = "image_embeds"
	CLIPTextONNX   = "text_model.onnx"
	CLIPVisionONNX = "vision_model.onnx"
)

// CLIPImageMean and CLIPImageStd are CLIP's normalisation
// (preprocessor_config.json image_mean, image_std).
var (
	CLIPImageMean = [3]float64{0.48145466, 0.4578275, 0.40821073}
	CLIPImageStd  = [3]float64{0.26862954, 0.26130258, 0.27577711}
)

// CLIPTower is the shape of one of CLIP's two transformers: pre-norm
// layers, quick-GELU feed-forward.
type CLIPTower struct {
	Layers, Hidden, Heads, Intermediate int
}

// CLIPSpec is the shape of a CLIP dual encoder: a causal text transformer
// pooled at the <|endoftext|> token, a ViT pooled at its class token, each
// projected (no bias) to ProjectionDim, the shared space.
type CLIPSpec struct {
	// Name names the shape (config.json's _name_or_path).
	Name string
	// Text and Vision are the two towers.
	Text, Vision CLIPTower
	// Vocab is the token embedding's rows (≥ the generated tokenizer's
	// size; 0 means exactly that).
	Vocab int
	// MaxPositions is the text's max_position_embeddings (CLIP's 77).
	MaxPositions int
	// ImageSize and PatchSize are the vision tower's; ImageSize is also
	// the preprocessor's shortest edge and crop.
	ImageSize, PatchSize int
	// ProjectionDim is the shared embedding size.
	ProjectionDim int
	// LayerNormEps is layer_norm_eps; 0 means CLIP's 1e-5.
	LayerNormEps float64
	// Seed seeds the weights.
	Seed uint64
	// Combined writes one onnx/model.onnx (both towers, normalised
	// embeddings, as Optimum exports a CLIPModel) instead of
	// text_model.onnx and vision_model.onnx.
	Combined bool
}

var clipPresets = map[string]CLIPSpec{
	// openai/clip-vit-base-patch32's shape (151M parameters; its
	// vocabulary has 49 408 tokens, of which the generated tokenizer uses
	// the first).
	"clip-vit-b32": {Name: "clip-vit-b32", Text: CLIPTower{12, 512, 8, 2048}, Vision: CLIPTower{12, 768, 12, 3072},
		Vocab: 49408, MaxPositions: 77, ImageSize: 224, PatchSize: 32, ProjectionDim: 512},
	// A tiny shape for tests and the Go reference: 32×32 images in 8×8
	// patches, a 24-dimensional shared space.
	"tiny-clip": {Name: "tiny-clip", Text: CLIPTower{2, 32, 4, 64}, Vision: CLIPTower{2, 48, 4, 96},
		MaxPositions: 77, ImageSize: 32, PatchSize: 8, ProjectionDim: 24},
}

// CLIPPreset returns a named CLIP shape.
func CLIPPreset(name string) (CLIPSpec, error) {
	s, ok := clipPresets[name]
	if !ok {
		names := make([]string, 0, len(clipPresets))
		for n := range clipPresets {
			names = append(names, n)
		}
		sort.Strings(names)
		return CLIPSpec{}, fmt.Errorf("%w: unknown CLIP preset %q (have %s)", ErrSpec, name, strings.Join(names, ", "))
	}
	return s, nil
}

// IsCLIPPreset reports whether name is a CLIP preset.
func IsCLIPPreset(name string) bool { _, ok := clipPresets[name]; return ok }

// Patches is the number of image patches (the vision sequence is one more,
// the class token).
func (s *CLIPSpec) Patches() int { g := s.ImageSize / max(s.PatchSize, 1); return g * g }

// Params counts the weights.
func (s *CLIPSpec) Params() int64 {
	tower := func(t CLIPTower) int64 {
		H, I := int64(t.Hidden), int64(t.Intermediate)
		return int64(t.Layers) * (4*(H*H+H) + 2*H*I + I + H + 4*H)
	}
	T, V, P := int64(s.Text.Hidden), int64(s.Vision.Hidden), int64(s.ProjectionDim)
	text := tower(s.Text) + int64(s.Vocab)*T + int64(s.MaxPositions)*T + 2*T + T*P
	pp := int64(s.PatchSize)
	vision := tower(s.Vision) + V*3*pp*pp + V + int64(s.Patches()+1)*V + 4*V + V*P
	return text + vision
}

// Validate fills in the defaults and checks s; vocab is the tokenizer's
// size.
func (s *CLIPSpec) Validate(vocab int) error {
	if s.Vocab == 0 {
		s.Vocab = vocab
	}
	if s.LayerNormEps == 0 {
		s.LayerNormEps = 1e-5
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	for _, t := range []struct {
		name string
		t    CLIPTower
	}{{"text", s.Text}, {"vision", s.Vision}} {
		if t.t.Layers < 1 || t.t.Hidden < 1 || t.t.Heads < 1 || t.t.Intermediate < 1 {
			bad("%s: layers, hidden, heads and intermediate must be positive", t.name)
		} else if t.t.Hidden%t.t.Heads != 0 {
			bad("%s: heads (%d) must divide hidden (%d)", t.name, t.t.Heads, t.t.Hidden)
		}
	}
	if s.MaxPositions < 3 || s.ProjectionDim < 1 {
		bad("max positions must be at least 3 and the projection positive")
	}
	if s.PatchSize < 1 || s.ImageSize < s.PatchSize || s.ImageSize%s.PatchSize != 0 {
		bad("the patch size (%d) must divide the image size (%d)", s.PatchSize, s.ImageSize)
	}
	if s.Vocab < vocab {
		bad("vocab (%d) is smaller than the tokenizer's %d tokens", s.Vocab, vocab)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrSpec, errors.Join(errs...))
	}
	return nil
}

// CLIPResult describes a written CLIP directory.
type CLIPResult struct {
	// Dir is the model directory; TextONNX and VisionONNX its
	// onnx/text_model.onnx and onnx/vision_model.onnx (both onnx/model.onnx
	// when Spec.Combined).
	Dir, TextONNX, VisionONNX string
	// Spec is the spec with its defaults filled in.
	Spec CLIPSpec
	// Tokenizer is the generated tokenizer.
	Tokenizer *CLIPTokenizer
}

// WriteCLIP writes a CLIP dual encoder with random weights in the
// transformers.js / Optimum layout: config.json, preprocessor_config.json,
// tokenizer.json, tokenizer_config.json, onnx/text_model.onnx (input_ids,
// attention_mask → text_embeds, last_hidden_state) and
// onnx/vision_model.onnx (pixel_values → image_embeds, last_hidden_state).
// The embeddings are projected but not normalised, as
// CLIPTextModelWithProjection and CLIPVisionModelWithProjection give them.
func WriteCLIP(dir string, s CLIPSpec) (*CLIPResult, error) {
	tok := NewCLIPTokenizer()
	if err := s.Validate(len(tok.Vocab)); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "onnx"), 0o755); err != nil {
		return nil, err
	}
	sot, eot := tok.ID(StartOfText), tok.ID(EndOfText)
	tower := func(t CLIPTower) map[string]any {
		return map[string]any{"hidden_size": t.Hidden, "intermediate_size": t.Intermediate, "num_attention_heads": t.Heads,
			"num_hidden_layers": t.Layers, "hidden_act": "quick_gelu", "layer_norm_eps": s.LayerNormEps, "projection_dim": s.ProjectionDim}
	}
	text, vision := tower(s.Text), tower(s.Vision)
	text["max_position_embeddings"], text["vocab_size"] = s.MaxPositions, s.Vocab
	text["bos_token_id"], text["eos_token_id"], text["pad_token_id"] = sot, eot, eot
	vision["image_size"], vision["patch_size"], vision["num_channels"] = s.ImageSize, s.PatchSize, 3
	files := []struct {
		name string
		v    any
	}{
		{"config.json", map[string]any{
			"_name_or_path": "dsmil-random/" + s.Name, "architectures": []string{"CLIPModel"}, "model_type": "clip",
			"projection_dim": s.ProjectionDim, "logit_scale_init_value": 2.6592, "torch_dtype": "float32",
			"text_config": text, "vision_config": vision,
			"dsmil": map[string]any{"generator": "dsmil-mkmodel", "random_weights": true, "preset": s.Name, "seed": s.Seed},
		}},
		{"preprocessor_config.json", map[string]any{
			"image_processor_type": "CLIPImageProcessor", "feature_extractor_type": "CLIPFeatureExtractor",
			"do_resize": true, "size": map[string]any{"shortest_edge": s.ImageSize}, "resample": 3,
			"do_center_crop": true, "crop_size": map[string]any{"height": s.ImageSize, "width": s.ImageSize},
			"do_rescale": true, "rescale_factor": 1.0 / 255, "do_normalize": true,
			"image_mean": CLIPImageMean[:], "image_std": CLIPImageStd[:], "do_convert_rgb": true,
		}},
		{"tokenizer.json", tok.tokenizerJSON()},
		{"tokenizer_config.json", tok.tokenizerConfigJSON(s.MaxPositions)},
	}
	for _, f := range files {
		if err := writeJSON(filepath.Join(dir, f.name), f.v); err != nil {
			return nil, err
		}
	}
	r := &CLIPResult{Dir: dir, TextONNX: filepath.Join(dir, "onnx", CLIPTextONNX),
		VisionONNX: filepath.Join(dir, "onnx", CLIPVisionONNX), Spec: s, Tokenizer: tok}
	if s.Combined {
		r.TextONNX = filepath.Join(dir, "onnx", "model.onnx")
		r.VisionONNX = r.TextONNX
		if err := writeCLIPCombined(r.TextONNX, &r.Spec, int64(eot)); err != nil {
			return nil, fmt.Errorf("mkmodel: writing the CLIP model: %w", err)
		}
		return r, nil
	}
	if err := writeCLIPText(r.TextONNX, &r.Spec, int64(eot)); err != nil {
		return nil, fmt.Errorf("mkmodel: writing the CLIP text model: %w", err)
	}
	if err := writeCLIPVision(r.VisionONNX, &r.Spec); err != nil {
		return nil, fmt.Errorf("mkmodel: writing the CLIP vision model: %w", err)
	}
	return r, nil
}

// clipWeights are the dual encoder's deterministic weights, by Hugging
// Face parameter name.
type clipWeights struct{ s *CLIPSpec }

func (w clipWeights) linear(name string, out, in int) []float32 {
	return gen(w.s.Seed, name+".weight", out, in, 1/math.Sqrt(float64(in)))
}

func (w clipWeights) bias(name string, n int) []float32 {
	return gen(w.s.Seed, name+".bias", 1, n, 0.1/math.Sqrt(3))
}

// layerNorm is a LayerNorm's weight (1 ± 0.1) and bias (± 0.1).
func (w clipWeights) layerNorm(name string, n int) (gamma, beta []float32) {
	gamma = gen(w.s.Seed, name+".weight", 1, n, 0.1/math.Sqrt(3))
	for i := range gamma {
		gamma[i]++
	}
	return gamma, w.bias(name, n)
}

func (w clipWeights) table(name string, rows, cols int) []float32 {
	return gen(w.s.Seed, name, rows, cols, 1)
}

// patch is the patch embedding's convolution weight [hidden, 3, P, P].
func (w clipWeights) patch() []float32 {
	P := w.s.PatchSize
	return gen(w.s.Seed, "vision_model.embeddings.patch_embedding.weight", w.s.Vision.Hidden, 3*P*P, 1/math.Sqrt(float64(3*P*P)))
}

func clipLayer(tower string, l int, rest string) string {
	return tower + ".encoder.layers." + strconv.Itoa(l) + "." + rest
}
