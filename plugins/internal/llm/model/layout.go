package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

var (
	// ErrLayout reports a model directory with missing or unusable files.
	ErrLayout = errors.New("model: bad model directory")
	// ErrConfig reports a config file that is unreadable or inconsistent.
	ErrConfig = errors.New("model: bad model configuration")
	// ErrGraph reports an ONNX graph whose inputs or outputs do not match
	// its configuration or what the plugin can feed.
	ErrGraph = errors.New("model: ONNX graph does not match the configuration")
	// ErrPrefillGraph marks the errors of a model's prefill graph
	// (Options.PrefillGraph) besides ErrLayout or ErrGraph.
	ErrPrefillGraph = errors.New("prefill_graph")
	// ErrContextFull reports a Step that would exceed the sequence's
	// maximum length.
	ErrContextFull = errors.New("model: sequence is full")
)

// Format is a model directory layout.
type Format string

const (
	// FormatOptimum is the Hugging Face Optimum / transformers.js layout.
	FormatOptimum Format = "optimum"
	// FormatGenAI is the onnxruntime-genai layout (genai_config.json).
	FormatGenAI Format = "genai"
)

// DefaultVariants is the order in which Locate picks an Optimum model file
// when Options.Variant is empty: weight-quantized variants first (they are
// the fast ones on CPU), then full precision. "fp32" is model.onnx.
var DefaultVariants = []string{"q4", "int8", "quantized", "uint8", "fp32", "bnb4", "q4f16", "fp16"}

// Files are the files of a model directory.
type Files struct {
	// Dir is the model directory (absolute).
	Dir string
	// Format is its layout.
	Format Format
	// ONNX is the decoder model file.
	ONNX string
	// ExternalData are the external data files ONNX refers to.
	ExternalData []string
	// Config is config.json ("" if absent, which only FormatGenAI allows).
	Config string
	// GenerationConfig is generation_config.json ("" if absent).
	GenerationConfig string
	// GenAIConfig is genai_config.json (FormatGenAI only).
	GenAIConfig string
	// Tokenizer is tokenizer.json.
	Tokenizer string
	// TokenizerConfig is tokenizer_config.json ("" if absent).
	TokenizerConfig string
	// WeightBytes is the size of ONNX plus its external data, and with
	// Options.PrefillGraph the prefill graph's files but for the
	// embedding table it shares with ONNX (Model.SharedBytes).
	WeightBytes int64
}

// variantFile is an Optimum model file name for a variant.
func variantFile(v string) string {
	if v == "fp32" || v == "" {
		return "model.onnx"
	}
	return "model_" + v + ".onnx"
}

func exists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// Locate finds the files of the model in dir. variant selects the Optimum
// model file: "" tries DefaultVariants in order; a name such as "q4" or
// "fp32" asks for that one; a name ending in ".onnx" is a file path
// relative to dir (or absolute). A genai_config.json makes the directory
// FormatGenAI unless variant is set.
func Locate(dir, variant string) (*Files, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLayout, err)
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("%w: %s is not a directory", ErrLayout, dir)
	}
	f := &Files{Dir: abs, Format: FormatOptimum}
	opt := func(name string) string {
		if p := filepath.Join(abs, name); exists(p) {
			return p
		}
		return ""
	}
	f.Config, f.GenerationConfig = opt("config.json"), opt("generation_config.json")
	f.Tokenizer, f.TokenizerConfig = opt("tokenizer.json"), opt("tokenizer_config.json")
	var missing []string

	if g := opt("genai_config.json"); g != "" && variant == "" {
		f.Format, f.GenAIConfig = FormatGenAI, g
		var gc genAIConfig
		if err := readJSON(g, &gc); err != nil {
			return nil, err
		}
		name := gc.Model.Decoder.Filename
		if name == "" {
			return nil, fmt.Errorf("%w: %s: model.decoder.filename is empty", ErrConfig, g)
		}
		f.ONNX = filepath.Join(abs, filepath.FromSlash(name))
		if !exists(f.ONNX) {
			missing = append(missing, fmt.Sprintf("%s (model.decoder.filename in genai_config.json)", name))
		}
	} else {
		if f.Config == "" {
			missing = append(missing, "config.json")
		}
		f.ONNX, err = pickONNX(abs, variant)
		if err != nil {
			return nil, err
		}
	}
	if f.Tokenizer == "" {
		missing = append(missing, "tokenizer.json")
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s has no %s", ErrLayout, dir, strings.Join(missing, ", no "))
	}
	st, err := os.Stat(f.ONNX)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLayout, err)
	}
	f.WeightBytes = st.Size()
	return f, nil
}

// pickONNX finds the Optimum model file for variant.
func pickONNX(dir, variant string) (string, error) {
	if strings.HasSuffix(variant, ".onnx") {
		p := variant
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, filepath.FromSlash(p))
		}
		if !exists(p) {
			return "", fmt.Errorf("%w: model file %s does not exist", ErrLayout, p)
		}
		return p, nil
	}
	variants := DefaultVariants
	if variant != "" {
		variants = []string{variant}
	}
	for _, v := range variants {
		for _, sub := range []string{"", "onnx"} {
			if p := filepath.Join(dir, sub, variantFile(v)); exists(p) {
				return p, nil
			}
		}
	}
	var found []string
	for _, sub := range []string{"", "onnx"} {
		m, _ := filepath.Glob(filepath.Join(dir, sub, "*.onnx"))
		for _, p := range m {
			rel, _ := filepath.Rel(dir, p)
			found = append(found, rel)
		}
	}
	sort.Strings(found)
	want := "model.onnx or onnx/model*.onnx"
	if variant != "" {
		want = "onnx/" + variantFile(variant) + " or " + variantFile(variant)
	}
	if len(found) == 0 {
		return "", fmt.Errorf("%w: %s has no %s", ErrLayout, dir, want)
	}
	return "", fmt.Errorf("%w: %s has no %s (found %s; name one with a variant ending in .onnx)",
		ErrLayout, dir, want, strings.Join(found, ", "))
}

func readJSON(path string, v any) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	return nil
}
