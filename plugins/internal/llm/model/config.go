package model

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Config is the model's shape and special tokens, from config.json,
// generation_config.json and genai_config.json.
type Config struct {
	// ModelType is config.json's model_type ("qwen2", "llama", ...).
	ModelType string
	// Layers is num_hidden_layers.
	Layers int
	// Heads is num_attention_heads.
	Heads int
	// KVHeads is num_key_value_heads (default Heads).
	KVHeads int
	// Hidden is hidden_size.
	Hidden int
	// HeadDim is head_dim (default Hidden/Heads).
	HeadDim int
	// Vocab is vocab_size.
	Vocab int
	// MaxPositions is max_position_embeddings (genai: context_length).
	MaxPositions int
	// RopeTheta is rope_theta (default 10000).
	RopeTheta float64
	// BOS is bos_token_id, -1 if none.
	BOS int
	// EOS are the end-of-sequence ids: generation_config.json's
	// eos_token_id, else config.json's (genai: model.eos_token_id).
	EOS []int
	// Pad is pad_token_id, -1 if none.
	Pad int
	// RandomWeights is true for models dsmil-mkmodel wrote.
	RandomWeights bool
	// Names are the graph's I/O names.
	Names IONames
}

// IONames are the graph input and output names; the layer names are
// fmt patterns with one %d.
type IONames struct {
	InputIDs, AttentionMask, PositionIDs string
	PastKey, PastValue                   string
	Logits                               string
	PresentKey, PresentValue             string
}

// OptimumNames are the names Optimum and transformers.js exports use.
var OptimumNames = IONames{
	InputIDs: "input_ids", AttentionMask: "attention_mask", PositionIDs: "position_ids",
	PastKey: "past_key_values.%d.key", PastValue: "past_key_values.%d.value",
	Logits:     "logits",
	PresentKey: "present.%d.key", PresentValue: "present.%d.value",
}

// tokenIDs accepts an id or a list of ids.
type tokenIDs []int

func (t *tokenIDs) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = nil
		return nil
	}
	var one int
	if err := json.Unmarshal(b, &one); err == nil {
		*t = tokenIDs{one}
		return nil
	}
	var many []int
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a token id or a list of them, got %s", b)
	}
	*t = many
	return nil
}

type hfConfig struct {
	ModelType             string   `json:"model_type"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      int      `json:"num_key_value_heads"`
	HiddenSize            int      `json:"hidden_size"`
	HeadDim               int      `json:"head_dim"`
	VocabSize             int      `json:"vocab_size"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	RopeTheta             float64  `json:"rope_theta"`
	BOSTokenID            tokenIDs `json:"bos_token_id"`
	EOSTokenID            tokenIDs `json:"eos_token_id"`
	PadTokenID            tokenIDs `json:"pad_token_id"`
	DSMIL                 *struct {
		RandomWeights bool `json:"random_weights"`
	} `json:"dsmil"`
}

type genConfig struct {
	BOSTokenID tokenIDs `json:"bos_token_id"`
	EOSTokenID tokenIDs `json:"eos_token_id"`
	PadTokenID tokenIDs `json:"pad_token_id"`
}

type genAIConfig struct {
	Model struct {
		Type          string   `json:"type"`
		BOSTokenID    tokenIDs `json:"bos_token_id"`
		EOSTokenID    tokenIDs `json:"eos_token_id"`
		PadTokenID    tokenIDs `json:"pad_token_id"`
		ContextLength int      `json:"context_length"`
		VocabSize     int      `json:"vocab_size"`
		Decoder       struct {
			Filename          string `json:"filename"`
			HeadSize          int    `json:"head_size"`
			HiddenSize        int    `json:"hidden_size"`
			NumAttentionHeads int    `json:"num_attention_heads"`
			NumHiddenLayers   int    `json:"num_hidden_layers"`
			NumKeyValueHeads  int    `json:"num_key_value_heads"`
			Inputs            struct {
				InputIDs       string `json:"input_ids"`
				AttentionMask  string `json:"attention_mask"`
				PositionIDs    string `json:"position_ids"`
				PastKeyNames   string `json:"past_key_names"`
				PastValueNames string `json:"past_value_names"`
			} `json:"inputs"`
			Outputs struct {
				Logits            string `json:"logits"`
				PresentKeyNames   string `json:"present_key_names"`
				PresentValueNames string `json:"present_value_names"`
			} `json:"outputs"`
		} `json:"decoder"`
	} `json:"model"`
}

func firstOr(ids tokenIDs, def int) int {
	if len(ids) > 0 {
		return ids[0]
	}
	return def
}

// LoadConfig reads the configuration files Locate found and checks that
// the shape they describe is complete and consistent.
func LoadConfig(f *Files) (*Config, error) {
	c := &Config{BOS: -1, Pad: -1, Names: OptimumNames}
	var src []string // the files the values came from, for errors
	if f.Config != "" {
		var hc hfConfig
		if err := readJSON(f.Config, &hc); err != nil {
			return nil, err
		}
		src = append(src, "config.json")
		c.ModelType, c.Layers, c.Heads, c.KVHeads = hc.ModelType, hc.NumHiddenLayers, hc.NumAttentionHeads, hc.NumKeyValueHeads
		c.Hidden, c.HeadDim, c.Vocab, c.MaxPositions = hc.HiddenSize, hc.HeadDim, hc.VocabSize, hc.MaxPositionEmbeddings
		c.RopeTheta = hc.RopeTheta
		c.BOS, c.EOS, c.Pad = firstOr(hc.BOSTokenID, -1), hc.EOSTokenID, firstOr(hc.PadTokenID, -1)
		c.RandomWeights = hc.DSMIL != nil && hc.DSMIL.RandomWeights
	}
	if f.GenAIConfig != "" {
		var gc genAIConfig
		if err := readJSON(f.GenAIConfig, &gc); err != nil {
			return nil, err
		}
		src = append(src, "genai_config.json")
		m, d := &gc.Model, &gc.Model.Decoder
		// genai_config.json wins where both give a value: it describes the
		// graph the builder actually wrote.
		set := func(dst *int, v int) {
			if v != 0 {
				*dst = v
			}
		}
		set(&c.Layers, d.NumHiddenLayers)
		set(&c.Heads, d.NumAttentionHeads)
		set(&c.KVHeads, d.NumKeyValueHeads)
		set(&c.Hidden, d.HiddenSize)
		set(&c.HeadDim, d.HeadSize)
		set(&c.Vocab, m.VocabSize)
		set(&c.MaxPositions, m.ContextLength)
		if c.ModelType == "" {
			c.ModelType = m.Type
		}
		if len(m.EOSTokenID) > 0 {
			c.EOS = m.EOSTokenID
		}
		c.BOS, c.Pad = firstOr(m.BOSTokenID, c.BOS), firstOr(m.PadTokenID, c.Pad)
		str := func(dst *string, v string) {
			if v != "" {
				*dst = v
			}
		}
		str(&c.Names.InputIDs, d.Inputs.InputIDs)
		str(&c.Names.AttentionMask, d.Inputs.AttentionMask)
		str(&c.Names.PositionIDs, d.Inputs.PositionIDs)
		str(&c.Names.PastKey, d.Inputs.PastKeyNames)
		str(&c.Names.PastValue, d.Inputs.PastValueNames)
		str(&c.Names.Logits, d.Outputs.Logits)
		str(&c.Names.PresentKey, d.Outputs.PresentKeyNames)
		str(&c.Names.PresentValue, d.Outputs.PresentValueNames)
	}
	if f.GenerationConfig != "" {
		var gc genConfig
		if err := readJSON(f.GenerationConfig, &gc); err != nil {
			return nil, err
		}
		if len(gc.EOSTokenID) > 0 {
			c.EOS = gc.EOSTokenID
		}
		c.BOS, c.Pad = firstOr(gc.BOSTokenID, c.BOS), firstOr(gc.PadTokenID, c.Pad)
	}
	if c.KVHeads == 0 {
		c.KVHeads = c.Heads
	}
	if c.HeadDim == 0 && c.Heads > 0 {
		c.HeadDim = c.Hidden / c.Heads
	}
	if c.RopeTheta == 0 {
		c.RopeTheta = 10000
	}
	if err := c.validate(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, strings.Join(src, " + "), err)
	}
	return c, nil
}

func (c *Config) validate() error {
	var bad []string
	need := func(v int, name string) {
		if v <= 0 {
			bad = append(bad, name+" is missing or not positive")
		}
	}
	need(c.Layers, "num_hidden_layers")
	need(c.Heads, "num_attention_heads")
	need(c.KVHeads, "num_key_value_heads")
	need(c.HeadDim, "head_dim (or hidden_size)")
	need(c.Vocab, "vocab_size")
	need(c.MaxPositions, "max_position_embeddings")
	if c.Heads > 0 && c.KVHeads > 0 && c.Heads%c.KVHeads != 0 {
		bad = append(bad, fmt.Sprintf("num_key_value_heads %d does not divide num_attention_heads %d", c.KVHeads, c.Heads))
	}
	if len(c.EOS) == 0 {
		bad = append(bad, "no eos_token_id (generation_config.json or config.json)")
	}
	for _, id := range c.EOS {
		if id < 0 || (c.Vocab > 0 && id >= c.Vocab) {
			bad = append(bad, fmt.Sprintf("eos_token_id %d is outside the vocabulary (vocab_size %d)", id, c.Vocab))
		}
	}
	for _, p := range []string{c.Names.PastKey, c.Names.PastValue, c.Names.PresentKey, c.Names.PresentValue} {
		if strings.Count(p, "%d") != 1 {
			bad = append(bad, fmt.Sprintf("KV name pattern %q must contain %%d once", p))
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	return nil
}

// KVBytesPerToken is one token's KV cache at elemSize bytes per value:
// layers × kv_heads × head_dim × 2 (key and value) × elemSize.
func (c *Config) KVBytesPerToken(elemSize int) int64 {
	return int64(c.Layers) * int64(c.KVHeads) * int64(c.HeadDim) * 2 * int64(elemSize)
}
