package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// Tokenizer encodes text to token ids and decodes them back. It is immutable
// after loading and safe for concurrent use.
type Tokenizer struct {
	model     tokenModel
	vocab     map[string]int // the model's vocabulary
	vocabR    []string       // id -> token ("" for gaps)
	normalize normalizer     // nil: none
	pre       preTokenizer   // nil: none
	post      postProcessor
	dec       decoder // nil: tokens joined with spaces

	added          []*AddedToken // in tokenizer.json order
	addedByID      map[int]*AddedToken
	addedByContent map[string]*AddedToken
	rawMatch       *addedMatcher // non-normalized added tokens, matched on raw text
	normMatch      *addedMatcher // normalized added tokens, matched on normalized text
	specialIDs     map[int]bool
	vocabSize      int
	cleanUp        bool
	eowSuffix      string // BPE end_of_word_suffix, which Decode turns into spaces (CLIP)
	bos, eos       SpecialToken
	unk, pad       SpecialToken
	hasBOS         bool
	hasEOS         bool
	hasUnk         bool
	hasPad         bool
	streamPlan     streamPlan
}

// SpecialToken is a role token (BOS, EOS, …) with its id.
type SpecialToken struct {
	Content string
	ID      int
}

// Load reads a tokenizer.json file.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := FromJSON(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// LoadDir reads tokenizer.json and, when present, tokenizer_config.json from
// a model directory. The config supplies the BOS/EOS/PAD/UNK tokens,
// additional special tokens, add_bos_token/add_eos_token (for Llama-family
// tokenizer classes) and clean_up_tokenization_spaces.
func LoadDir(dir string) (*Tokenizer, error) {
	data, err := os.ReadFile(filepath.Join(dir, "tokenizer.json"))
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		cfg = nil
	} else if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := FromFiles(data, cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return t, nil
}

// FromJSON builds a tokenizer from the contents of a tokenizer.json file.
func FromJSON(data []byte) (*Tokenizer, error) { return FromFiles(data, nil) }

// FromFiles builds a tokenizer from the contents of tokenizer.json and of
// tokenizer_config.json (nil when there is none).
func FromFiles(tokenizerJSON, configJSONData []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(tokenizerJSON, &f); err != nil {
		return nil, fmt.Errorf("%w: tokenizer.json: %v", ErrInvalid, err)
	}
	var cfg configJSON
	if configJSONData != nil {
		if err := json.Unmarshal(configJSONData, &cfg); err != nil {
			return nil, fmt.Errorf("%w: tokenizer_config.json: %v", ErrInvalid, err)
		}
	}
	t := &Tokenizer{addedByID: map[int]*AddedToken{}, addedByContent: map[string]*AddedToken{}, specialIDs: map[int]bool{}}
	var err error
	if t.model, t.vocab, t.vocabR, err = buildModel(&f.Model); err != nil {
		return nil, err
	}
	if t.normalize, err = buildNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if t.pre, err = buildPreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	t.vocabSize = len(t.vocabR)

	var rawTokens, normTokens []*AddedToken
	for _, a := range f.AddedTokens {
		if a.ID < 0 {
			return nil, fmt.Errorf("%w: added token %q has negative id", ErrInvalid, a.Content)
		}
		tok := &AddedToken{
			ID: a.ID, Content: a.Content, Special: a.Special, SingleWord: a.SingleWord,
			LStrip: a.LStrip, RStrip: a.RStrip, Normalized: boolOr(a.Normalized, !a.Special),
		}
		t.added = append(t.added, tok)
		t.addedByID[tok.ID] = tok
		if _, dup := t.addedByContent[tok.Content]; !dup {
			t.addedByContent[tok.Content] = tok
		}
		if tok.Special {
			t.specialIDs[tok.ID] = true
		}
		if tok.Normalized && t.normalize != nil {
			normTokens = append(normTokens, tok)
		} else {
			rawTokens = append(rawTokens, tok)
		}
		t.vocabSize = max(t.vocabSize, tok.ID+1)
	}
	addedSet := make(map[string]bool, len(t.added))
	for _, a := range t.added {
		addedSet[a.Content] = true
	}
	if t.dec, err = buildDecoder(f.Decoder, addedSet); err != nil {
		return nil, err
	}
	t.rawMatch = newAddedMatcher(rawTokens)
	t.normMatch = newAddedMatcher(normTokens)

	if t.post, err = buildPostProcessor(f.PostProcessor, t); err != nil {
		return nil, err
	}
	if err := t.applyConfig(&cfg); err != nil {
		return nil, err
	}
	if b, ok := t.model.(*bpe); ok && t.dec != nil {
		t.eowSuffix = b.suffix
	}
	t.streamPlan = planStream(t.dec)
	if t.eowSuffix != "" {
		suffix := t.eowSuffix
		t.streamPlan.steps = append(t.streamPlan.steps, func(tok string, _ bool) string { return strings.ReplaceAll(tok, suffix, " ") })
	}
	return t, nil
}

func (t *Tokenizer) applyConfig(cfg *configJSON) error {
	resolve := func(ref tokenRef, dst *SpecialToken, has *bool, role string) error {
		if !ref.Set {
			return nil
		}
		id, ok := t.TokenID(ref.Content)
		if !ok {
			return fmt.Errorf("%w: tokenizer_config.json %s %q is not a token", ErrInvalid, role, ref.Content)
		}
		*dst, *has = SpecialToken{Content: ref.Content, ID: id}, true
		return nil
	}
	if err := resolve(cfg.BOSToken, &t.bos, &t.hasBOS, "bos_token"); err != nil {
		return err
	}
	if err := resolve(cfg.EOSToken, &t.eos, &t.hasEOS, "eos_token"); err != nil {
		return err
	}
	if err := resolve(cfg.UnkToken, &t.unk, &t.hasUnk, "unk_token"); err != nil {
		return err
	}
	if err := resolve(cfg.PadToken, &t.pad, &t.hasPad, "pad_token"); err != nil {
		return err
	}
	for _, ref := range cfg.AdditionalSpecialTokens {
		if id, ok := t.TokenID(ref.Content); ok {
			t.specialIDs[id] = true
		}
	}
	t.cleanUp = boolOr(cfg.CleanUpTokenizationSpaces, false)
	// transformers' Llama tokenizers rebuild their post-processor from
	// add_bos_token / add_eos_token (LlamaTokenizerFast.update_post_processor).
	switch cfg.TokenizerClass {
	case "LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer", "CodeLlamaTokenizerFast", "GemmaTokenizer", "GemmaTokenizerFast":
		if cfg.AddBOSToken == nil && cfg.AddEOSToken == nil {
			break
		}
		var tp templatePost
		if boolOr(cfg.AddBOSToken, true) {
			if !t.hasBOS {
				return fmt.Errorf("%w: add_bos_token is set but there is no bos_token", ErrInvalid)
			}
			tp.before = []int{t.bos.ID}
		}
		if boolOr(cfg.AddEOSToken, false) {
			if !t.hasEOS {
				return fmt.Errorf("%w: add_eos_token is set but there is no eos_token", ErrInvalid)
			}
			tp.after = []int{t.eos.ID}
		}
		t.post = tp
	}
	return nil
}

// VocabSize is the number of ids: the model vocabulary and the added tokens
// (one past the largest id).
func (t *Tokenizer) VocabSize() int { return t.vocabSize }

// TokenID looks up the id of a token string (an added token or a vocabulary
// entry, in the model's own spelling such as "Ġthe" or "▁the").
func (t *Tokenizer) TokenID(token string) (int, bool) {
	if a, ok := t.addedByContent[token]; ok {
		return a.ID, true
	}
	id, ok := t.vocab[token]
	return id, ok
}

// Token returns the string of an id, as TokenID spells it.
func (t *Tokenizer) Token(id int) (string, bool) {
	if a, ok := t.addedByID[id]; ok {
		return a.Content, true
	}
	if id >= 0 && id < len(t.vocabR) && t.vocabR[id] != "" {
		return t.vocabR[id], true
	}
	return "", false
}

// BOS is the beginning-of-sequence token named by tokenizer_config.json.
func (t *Tokenizer) BOS() (SpecialToken, bool) { return t.bos, t.hasBOS }

// EOS is the end-of-sequence token named by tokenizer_config.json.
func (t *Tokenizer) EOS() (SpecialToken, bool) { return t.eos, t.hasEOS }

// Pad is the padding token named by tokenizer_config.json.
func (t *Tokenizer) Pad() (SpecialToken, bool) { return t.pad, t.hasPad }

// Unk is the unknown token named by tokenizer_config.json.
func (t *Tokenizer) Unk() (SpecialToken, bool) { return t.unk, t.hasUnk }

// IsSpecial reports whether id is a special token (dropped by Decode with
// skipSpecial).
func (t *Tokenizer) IsSpecial(id int) bool { return t.specialIDs[id] }

// AddedTokens lists the added tokens in tokenizer.json order.
func (t *Tokenizer) AddedTokens() []AddedToken {
	out := make([]AddedToken, len(t.added))
	for i, a := range t.added {
		out[i] = *a
	}
	return out
}

// Encode tokenizes text. With addSpecial the post-processor adds the model's
// special tokens (for example Llama-2's BOS). Added tokens written in the text
// (such as "<|im_start|>") are always recognized. Invalid UTF-8 in text is
// read as U+FFFD.
func (t *Tokenizer) Encode(text string, addSpecial bool) []int {
	text = strings.ToValidUTF8(text, "\uFFFD")
	ids := make([]int, 0, len(text)/3+4)
	var segs []segment
	segs = t.rawMatch.split(text, 0, segs)
	var sub []segment
	for _, s := range segs {
		if s.token != nil {
			ids = append(ids, s.token.ID)
			continue
		}
		txt := s.text
		if t.normalize != nil {
			txt = t.normalize.normalize(txt)
		}
		sub = t.normMatch.split(txt, s.offset, sub[:0])
		for _, ss := range sub {
			if ss.token != nil {
				ids = append(ids, ss.token.ID)
				continue
			}
			ids = t.encodeSection(ss.text, ss.offset == 0, ids)
		}
	}
	if addSpecial && t.post != nil {
		ids = t.post.process(ids)
	}
	return ids
}

// EncodeTyped encodes text for an encoder model: the ids with the special
// tokens of the post-processor (BERT's [CLS] … [SEP]) and the token type id
// (segment id, BERT's token_type_ids) of each.
func (t *Tokenizer) EncodeTyped(text string) (ids, typeIDs []int) {
	ids = t.Encode(text, true)
	if t.post == nil {
		return ids, zeroTypes(len(ids), make([]int, 0, len(ids)))
	}
	return ids, t.post.typeIDs(len(ids), make([]int, 0, len(ids)))
}

func (t *Tokenizer) encodeSection(text string, atStart bool, ids []int) []int {
	if text == "" {
		return ids
	}
	pieces := []piece{{text: text, atStart: atStart}}
	if t.pre != nil {
		pieces = t.pre.preTokenize(pieces)
	}
	for _, p := range pieces {
		ids = t.model.tokenize(p.text, ids)
	}
	return ids
}

// Decode turns ids back into text as Hugging Face's decode does: the decoder
// chain, then, if tokenizer_config.json sets clean_up_tokenization_spaces
// (Llama-3 does; the default without a config is off), the removal of spaces
// before punctuation and contractions. With skipSpecial, special tokens are
// dropped. Unknown ids are skipped.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	return t.decode(ids, skipSpecial, t.cleanUp)
}

func (t *Tokenizer) decode(ids []int, skipSpecial, cleanUp bool) string {
	tokens := t.idsToTokens(ids, skipSpecial)
	var s string
	if t.dec == nil {
		s = strings.Join(tokens, " ")
	} else {
		s = strings.Join(t.dec.decodeChain(tokens), "")
	}
	// A BPE end-of-word suffix ("</w>", CLIP's) becomes a space, and the
	// text is trimmed when special tokens are skipped, as transformers.js
	// decodes.
	if t.eowSuffix != "" {
		s = strings.ReplaceAll(s, t.eowSuffix, " ")
		if skipSpecial {
			s = strings.TrimFunc(s, isJSSpace)
		}
	}
	if cleanUp {
		s = cleanUpTokenization(s)
	}
	return s
}

func (t *Tokenizer) idsToTokens(ids []int, skipSpecial bool) []string {
	tokens := make([]string, 0, len(ids))
	for _, id := range ids {
		if skipSpecial && t.specialIDs[id] {
			continue
		}
		if tok, ok := t.Token(id); ok {
			tokens = append(tokens, tok)
		}
	}
	return tokens
}

// isJSSpace is what JavaScript's trim removes: Unicode White_Space and
// U+FEFF.
func isJSSpace(r rune) bool { return unicode.IsSpace(r) || r == '\uFEFF' }

// cleanUpTokenization is transformers' clean_up_tokenization: it removes the
// space before punctuation and some English contractions.
func cleanUpTokenization(s string) string {
	// Applied one replacement at a time, in order, as transformers does.
	for _, p := range [][2]string{
		{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
		{" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"},
	} {
		s = strings.ReplaceAll(s, p[0], p[1])
	}
	return s
}
