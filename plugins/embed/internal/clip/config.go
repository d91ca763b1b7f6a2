package clip

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrLayout reports a model directory that is not a CLIP dual encoder this
// package can run; the message says what is missing or wrong.
var ErrLayout = errors.New("clip: unsupported model directory")

// Config is what the model directory says about the dual encoder.
type Config struct {
	// ProjectionDim is the shared embedding size (config.json
	// projection_dim).
	ProjectionDim int
	// MaxSeqLength is the longest text in tokens, <|startoftext|> and
	// <|endoftext|> included (text_config.max_position_embeddings: 77).
	MaxSeqLength int
	// Vocab is text_config.vocab_size.
	Vocab int
	// ImageSize is the side of the square image the vision model takes
	// (vision_config.image_size).
	ImageSize int
	// PatchSize is vision_config.patch_size.
	PatchSize int
	// Pre is the image preprocessing (preprocessor_config.json).
	Pre Preprocess
	// RandomWeights is set for models dsmil-mkmodel wrote.
	RandomWeights bool
}

// ImageTokens is the vision encoder's sequence length, its patches and
// class token: what an image counts in usage (50 for ViT-B/32).
func (c *Config) ImageTokens() int {
	g := c.ImageSize / c.PatchSize
	return g*g + 1
}

// IsCLIP reports whether config.json at dir says model_type "clip" (or
// has both a text_config and a vision_config).
func IsCLIP(dir string) bool {
	var cj struct {
		ModelType string          `json:"model_type"`
		Text      json.RawMessage `json:"text_config"`
		Vision    json.RawMessage `json:"vision_config"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil || json.Unmarshal(b, &cj) != nil {
		return false
	}
	return cj.ModelType == "clip" || len(cj.Text) > 0 && len(cj.Vision) > 0
}

// LoadConfig reads config.json and preprocessor_config.json from dir.
func LoadConfig(dir string) (*Config, error) {
	var cj struct {
		Projection int `json:"projection_dim"`
		Text       struct {
			MaxPositions int `json:"max_position_embeddings"`
			Vocab        int `json:"vocab_size"`
		} `json:"text_config"`
		Vision struct {
			ImageSize int `json:"image_size"`
			PatchSize int `json:"patch_size"`
		} `json:"vision_config"`
		DSMIL map[string]any `json:"dsmil"`
	}
	if err := readJSON(filepath.Join(dir, "config.json"), &cj, true); err != nil {
		return nil, err
	}
	c := &Config{ProjectionDim: cj.Projection, MaxSeqLength: cj.Text.MaxPositions, Vocab: cj.Text.Vocab, ImageSize: cj.Vision.ImageSize, PatchSize: cj.Vision.PatchSize}
	c.RandomWeights, _ = cj.DSMIL["random_weights"].(bool)
	// transformers' defaults for a CLIP config that leaves them out.
	if c.ProjectionDim == 0 {
		c.ProjectionDim = 512
	}
	if c.MaxSeqLength == 0 {
		c.MaxSeqLength = 77
	}
	if c.ImageSize == 0 {
		c.ImageSize = 224
	}
	if c.PatchSize <= 0 || c.PatchSize > c.ImageSize {
		c.PatchSize = 32
	}
	pre, err := loadPreprocess(filepath.Join(dir, "preprocessor_config.json"))
	if err != nil {
		return nil, err
	}
	c.Pre = *pre
	if c.Pre.CropW != c.ImageSize || c.Pre.CropH != c.ImageSize {
		return nil, fmt.Errorf("%w: preprocessor_config.json makes %dx%d images; the vision model takes %dx%d (vision_config.image_size)",
			ErrLayout, c.Pre.CropW, c.Pre.CropH, c.ImageSize, c.ImageSize)
	}
	return c, nil
}

// readJSON decodes path into v; a missing optional file leaves v alone.
func readJSON(path string, v any, required bool) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) && !required {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLayout, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrLayout, filepath.Base(path), err)
	}
	return nil
}
