package tokenizer

import (
	"encoding/json"
	"fmt"
)

// The tokenizer.json schema, as far as this package reads it. Polymorphic
// components (normalizers, pre-tokenizers, post-processors, decoders) share
// one struct holding the fields of every type; Type selects which apply.

type fileJSON struct {
	Version       string           `json:"version"`
	AddedTokens   []addedTokenJSON `json:"added_tokens"`
	Normalizer    *componentJSON   `json:"normalizer"`
	PreTokenizer  *componentJSON   `json:"pre_tokenizer"`
	Model         modelJSON        `json:"model"`
	PostProcessor *componentJSON   `json:"post_processor"`
	Decoder       *componentJSON   `json:"decoder"`
	Truncation    json.RawMessage  `json:"truncation"`
	Padding       json.RawMessage  `json:"padding"`
}

type addedTokenJSON struct {
	ID         int    `json:"id"`
	Content    string `json:"content"`
	SingleWord bool   `json:"single_word"`
	LStrip     bool   `json:"lstrip"`
	RStrip     bool   `json:"rstrip"`
	Normalized *bool  `json:"normalized"`
	Special    bool   `json:"special"`
}

type modelJSON struct {
	Type                    string          `json:"type"`
	Dropout                 *float64        `json:"dropout"`
	UnkToken                *string         `json:"unk_token"`
	ContinuingSubwordPrefix *string         `json:"continuing_subword_prefix"`
	EndOfWordSuffix         *string         `json:"end_of_word_suffix"`
	FuseUnk                 bool            `json:"fuse_unk"`
	ByteFallback            bool            `json:"byte_fallback"`
	IgnoreMerges            bool            `json:"ignore_merges"`
	MaxInputCharsPerWord    *int            `json:"max_input_chars_per_word"`
	Vocab                   json.RawMessage `json:"vocab"`
	Merges                  json.RawMessage `json:"merges"`
}

type patternJSON struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

type templateItemJSON struct {
	SpecialToken *struct {
		ID     string `json:"id"`
		TypeID int    `json:"type_id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID     string `json:"id"`
		TypeID int    `json:"type_id"`
	} `json:"Sequence"`
}

type specialTokenJSON struct {
	ID     string   `json:"id"`
	IDs    []int    `json:"ids"`
	Tokens []string `json:"tokens"`
}

type componentJSON struct {
	Type string `json:"type"`

	// Sequence members.
	Normalizers   []*componentJSON `json:"normalizers"`
	Pretokenizers []*componentJSON `json:"pretokenizers"`
	Processors    []*componentJSON `json:"processors"`
	Decoders      []*componentJSON `json:"decoders"`

	// Replace, Split.
	Pattern *patternJSON `json:"pattern"`
	// Replace (normalizer, decoder), Strip (decoder).
	Content string `json:"content"`
	// Prepend.
	Prepend string `json:"prepend"`
	// Split.
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
	// ByteLevel.
	AddPrefixSpace *bool `json:"add_prefix_space"`
	UseRegex       *bool `json:"use_regex"`
	TrimOffsets    *bool `json:"trim_offsets"`
	// Metaspace.
	Replacement   string `json:"replacement"`
	PrependScheme string `json:"prepend_scheme"`
	Split         *bool  `json:"split"`
	// Digits.
	IndividualDigits bool `json:"individual_digits"`
	// Strip (normalizer).
	StripLeft  bool `json:"strip_left"`
	StripRight bool `json:"strip_right"`
	// Strip (decoder).
	Start int `json:"start"`
	Stop  int `json:"stop"`
	// TemplateProcessing.
	Single        []templateItemJSON          `json:"single"`
	Pair          []templateItemJSON          `json:"pair"`
	SpecialTokens map[string]specialTokenJSON `json:"special_tokens"`
	// BertNormalizer.
	CleanText          *bool `json:"clean_text"`
	HandleChineseChars *bool `json:"handle_chinese_chars"`
	StripAccents       *bool `json:"strip_accents"`
	Lowercase          *bool `json:"lowercase"`
	// WordPiece decoder.
	Prefix  *string `json:"prefix"`
	Cleanup *bool   `json:"cleanup"`
	// BertProcessing, RobertaProcessing: [token, id].
	Sep []any `json:"sep"`
	Cls []any `json:"cls"`
}

// parseMerges accepts both merge encodings: "a b" strings (tokenizers < 0.20)
// and ["a", "b"] pairs.
func parseMerges(raw json.RawMessage) ([][2]string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var pairs [][2]string
	if err := json.Unmarshal(raw, &pairs); err == nil {
		return pairs, nil
	}
	var strs []string
	if err := json.Unmarshal(raw, &strs); err != nil {
		return nil, fmt.Errorf("%w: model.merges is neither a list of strings nor of pairs: %v", ErrInvalid, err)
	}
	pairs = make([][2]string, len(strs))
	for i, s := range strs {
		a, b, ok := cutSpace(s)
		if !ok {
			return nil, fmt.Errorf("%w: merge %d %q has no space", ErrInvalid, i, s)
		}
		pairs[i] = [2]string{a, b}
	}
	return pairs, nil
}

// cutSpace splits a legacy merge at its first space (as the Rust library
// does: "a b c" would be ["a", "b c"]).
func cutSpace(s string) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

// configJSON is the part of tokenizer_config.json this package reads.
type configJSON struct {
	BOSToken                  tokenRef   `json:"bos_token"`
	EOSToken                  tokenRef   `json:"eos_token"`
	UnkToken                  tokenRef   `json:"unk_token"`
	PadToken                  tokenRef   `json:"pad_token"`
	AddBOSToken               *bool      `json:"add_bos_token"`
	AddEOSToken               *bool      `json:"add_eos_token"`
	CleanUpTokenizationSpaces *bool      `json:"clean_up_tokenization_spaces"`
	AdditionalSpecialTokens   []tokenRef `json:"additional_special_tokens"`
	TokenizerClass            string     `json:"tokenizer_class"`
}

// tokenRef is a token named in tokenizer_config.json: either a string or an
// AddedToken object {"__type": "AddedToken", "content": …}.
type tokenRef struct {
	Content string
	Set     bool
}

func (t *tokenRef) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*t = tokenRef{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = tokenRef{Content: s, Set: s != ""}
		return nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(b, &obj); err != nil || obj.Content == nil {
		return fmt.Errorf("%w: token %s is neither a string nor an AddedToken object", ErrInvalid, b)
	}
	*t = tokenRef{Content: *obj.Content, Set: *obj.Content != ""}
	return nil
}
