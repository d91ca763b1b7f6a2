package encoder

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Pooling modes.
const (
	PoolCLS       = "cls"
	PoolMean      = "mean"
	PoolLastToken = "lasttoken"
)

// ErrLayout reports a model directory that is not a sentence-transformers
// encoder this package can run; the message says what is missing or wrong.
var ErrLayout = errors.New("encoder: unsupported model directory")

// Config is what the model directory says about the encoder.
type Config struct {
	// Hidden is the vector size (config.json hidden_size, or the Pooling
	// module's word_embedding_dimension).
	Hidden int
	// MaxPositions is config.json's max_position_embeddings.
	MaxPositions int
	// MaxSeqLength is the longest input in tokens, special tokens included
	// (sentence_bert_config.json max_seq_length; default MaxPositions).
	MaxSeqLength int
	// Vocab is config.json's vocab_size.
	Vocab int
	// Pooling is PoolCLS, PoolMean or PoolLastToken.
	Pooling string
	// Normalize says whether modules.json has a Normalize module.
	Normalize bool
	// RandomWeights is set for models dsmil-mkmodel wrote.
	RandomWeights bool
}

type moduleJSON struct {
	Path string `json:"path"`
	Type string `json:"type"`
}

type poolingJSON struct {
	Dim       int  `json:"word_embedding_dimension"`
	CLS       bool `json:"pooling_mode_cls_token"`
	Mean      bool `json:"pooling_mode_mean_tokens"`
	Max       bool `json:"pooling_mode_max_tokens"`
	MeanSqrt  bool `json:"pooling_mode_mean_sqrt_len_tokens"`
	Weighted  bool `json:"pooling_mode_weightedmean_tokens"`
	LastToken bool `json:"pooling_mode_lasttoken"`
}

// LoadConfig reads config.json, modules.json, the Pooling module's
// config.json and sentence_bert_config.json from dir. A directory without
// modules.json is taken as a plain Transformer with mean pooling and no
// normalisation (what sentence-transformers does with one).
func LoadConfig(dir string) (*Config, error) {
	var cj struct {
		Hidden       int            `json:"hidden_size"`
		MaxPositions int            `json:"max_position_embeddings"`
		Vocab        int            `json:"vocab_size"`
		DSMIL        map[string]any `json:"dsmil"`
	}
	if err := readJSON(filepath.Join(dir, "config.json"), &cj, true); err != nil {
		return nil, err
	}
	c := &Config{Hidden: cj.Hidden, MaxPositions: cj.MaxPositions, Vocab: cj.Vocab, Pooling: PoolMean}
	c.RandomWeights, _ = cj.DSMIL["random_weights"].(bool)

	var modules []moduleJSON
	if err := readJSON(filepath.Join(dir, "modules.json"), &modules, false); err != nil {
		return nil, err
	}
	for _, m := range modules {
		switch m.Type {
		case "sentence_transformers.models.Transformer":
		case "sentence_transformers.models.Pooling":
			var p poolingJSON
			if err := readJSON(filepath.Join(dir, filepath.FromSlash(m.Path), "config.json"), &p, true); err != nil {
				return nil, err
			}
			pool, err := p.mode()
			if err != nil {
				return nil, err
			}
			c.Pooling = pool
			if p.Dim > 0 {
				if c.Hidden > 0 && c.Hidden != p.Dim {
					return nil, fmt.Errorf("%w: the Pooling module's word_embedding_dimension %d is not config.json's hidden_size %d", ErrLayout, p.Dim, c.Hidden)
				}
				c.Hidden = p.Dim
			}
		case "sentence_transformers.models.Normalize":
			c.Normalize = true
		default:
			return nil, fmt.Errorf("%w: modules.json module %q is not supported (Transformer, Pooling and Normalize are)", ErrLayout, m.Type)
		}
	}
	var sb struct {
		MaxSeqLength int `json:"max_seq_length"`
	}
	if err := readJSON(filepath.Join(dir, "sentence_bert_config.json"), &sb, false); err != nil {
		return nil, err
	}
	c.MaxSeqLength = sb.MaxSeqLength
	switch {
	case c.Hidden <= 0:
		return nil, fmt.Errorf("%w: config.json has no hidden_size", ErrLayout)
	case c.MaxPositions <= 0:
		return nil, fmt.Errorf("%w: config.json has no max_position_embeddings", ErrLayout)
	case c.MaxSeqLength <= 0:
		c.MaxSeqLength = c.MaxPositions
	case c.MaxSeqLength > c.MaxPositions:
		return nil, fmt.Errorf("%w: max_seq_length %d exceeds max_position_embeddings %d", ErrLayout, c.MaxSeqLength, c.MaxPositions)
	}
	return c, nil
}

// mode is the one pooling mode the config sets.
func (p poolingJSON) mode() (string, error) {
	var modes []string
	if p.CLS {
		modes = append(modes, PoolCLS)
	}
	if p.Mean {
		modes = append(modes, PoolMean)
	}
	if p.LastToken {
		modes = append(modes, PoolLastToken)
	}
	switch {
	case p.Max || p.MeanSqrt || p.Weighted:
		return "", fmt.Errorf("%w: 1_Pooling: max, mean_sqrt_len and weightedmean pooling are not supported (cls, mean and lasttoken are)", ErrLayout)
	case len(modes) != 1:
		return "", fmt.Errorf("%w: 1_Pooling sets %d of cls, mean and lasttoken; exactly one is supported", ErrLayout, len(modes))
	}
	return modes[0], nil
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
		return fmt.Errorf("%w: %s: %v", ErrLayout, path, err)
	}
	return nil
}
