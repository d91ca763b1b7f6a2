package mkmodel

import (
	"regexp"
	"sort"
	"strings"
)

// StartOfText is CLIP's beginning-of-text token (EndOfText ends the text
// and pads it).
const StartOfText = "<|startoftext|>"

// clipSplit is CLIP's pre-tokenizer pattern (openai/CLIP simple_tokenizer,
// and the Split pre-tokenizer of transformers' CLIPTokenizerFast export).
const clipSplit = `'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+`

var clipSplitRE = regexp.MustCompile(clipSplit)

// clipMaxMerges bounds the generated CLIP tokenizer's merges: with the 512
// byte tokens (bare and with "</w>") and the two specials the vocabulary
// is at most 1024 tokens.
const clipMaxMerges = 510

// CLIPTokenizer is a generated CLIP-style BPE vocabulary: byte-level
// symbols, "</w>" marking the end of a word, merges learned from the
// built-in text after CLIP's normalisation (whitespace collapsed, lower
// case).
type CLIPTokenizer struct {
	// Vocab is the tokens by id: the 256 byte characters in GPT-2's order,
	// the same with "</w>", the merge results, StartOfText, EndOfText (the
	// order of openai/CLIP's vocabulary).
	Vocab []string
	// Merges are the merges in priority order.
	Merges [][2]string
}

// ID is a token's id (-1 when absent).
func (t *CLIPTokenizer) ID(tok string) int {
	for i, v := range t.Vocab {
		if v == tok {
			return i
		}
	}
	return -1
}

// clipNormalize is CLIP's normaliser without NFC (the training text is
// ASCII): whitespace runs become one space, then lower case.
func clipNormalize(s string) string {
	return strings.ToLower(strings.Join(strings.Fields(s), " "))
}

// NewCLIPTokenizer learns the deterministic CLIP-style tokenizer from the
// built-in text.
func NewCLIPTokenizer() *CLIPTokenizer {
	order, char := bytesToUnicode()
	t := &CLIPTokenizer{}
	for _, b := range order {
		t.Vocab = append(t.Vocab, string(char[b]))
	}
	for _, b := range order {
		t.Vocab = append(t.Vocab, string(char[b])+"</w>")
	}
	counts := map[string]int{}
	for _, w := range clipSplitRE.FindAllString(clipNormalize(trainingText), -1) {
		counts[w]++
	}
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	sort.Strings(keys)
	type word struct {
		syms []string
		n    int
	}
	words := make([]word, 0, len(keys))
	for _, w := range keys {
		var syms []string
		for _, b := range []byte(w) {
			syms = append(syms, string(char[b]))
		}
		syms[len(syms)-1] += "</w>"
		words = append(words, word{syms, counts[w]})
	}
	have := map[string]bool{}
	for _, v := range t.Vocab {
		have[v] = true
	}
	for len(t.Merges) < clipMaxMerges {
		pairs := map[[2]string]int{}
		for _, w := range words {
			for i := 0; i+1 < len(w.syms); i++ {
				pairs[[2]string{w.syms[i], w.syms[i+1]}] += w.n
			}
		}
		var best [2]string
		bestN := 0
		for p, n := range pairs {
			if n > bestN || n == bestN && (p[0] < best[0] || p[0] == best[0] && p[1] < best[1]) {
				best, bestN = p, n
			}
		}
		if bestN == 0 {
			break // every word is one symbol
		}
		merged := best[0] + best[1]
		t.Merges = append(t.Merges, best)
		if !have[merged] {
			have[merged] = true
			t.Vocab = append(t.Vocab, merged)
		}
		for wi := range words {
			syms := words[wi].syms
			out := syms[:0:0]
			for i := 0; i < len(syms); i++ {
				if i+1 < len(syms) && syms[i] == best[0] && syms[i+1] == best[1] {
					out = append(out, merged)
					i++
				} else {
					out = append(out, syms[i])
				}
			}
			words[wi].syms = out
		}
	}
	t.Vocab = append(t.Vocab, StartOfText, EndOfText)
	return t
}

// tokenizerJSON is tokenizer.json as transformers' CLIPTokenizerFast
// export writes it (convert_slow_tokenizer.CLIPConverter): NFC, whitespace
// runs to one space and lower case; CLIP's Split (the matches kept) and a
// ByteLevel pre-tokenizer; BPE with "</w>" and <|endoftext|> as unk;
// <|startoftext|> … <|endoftext|> around the text.
func (t *CLIPTokenizer) tokenizerJSON() map[string]any {
	vocab := make(map[string]int, len(t.Vocab))
	for i, v := range t.Vocab {
		vocab[v] = i
	}
	merges := make([]string, len(t.Merges))
	for i, m := range t.Merges {
		merges[i] = m[0] + " " + m[1]
	}
	sot, eot := vocab[StartOfText], vocab[EndOfText]
	added := []map[string]any{
		{"id": sot, "content": StartOfText, "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": true},
		{"id": eot, "content": EndOfText, "single_word": false, "lstrip": false, "rstrip": false, "normalized": true, "special": true},
	}
	return map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil, "added_tokens": added,
		"normalizer": map[string]any{"type": "Sequence", "normalizers": []any{
			map[string]any{"type": "NFC"},
			map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": `\s+`}, "content": " "},
			map[string]any{"type": "Lowercase"},
		}},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": clipSplit}, "behavior": "Removed", "invert": true},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
		}},
		"post_processor": map[string]any{"type": "RobertaProcessing", "sep": []any{EndOfText, eot}, "cls": []any{StartOfText, sot},
			"trim_offsets": false, "add_prefix_space": false},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": EndOfText, "continuing_subword_prefix": "",
			"end_of_word_suffix": "</w>", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
			"vocab": vocab, "merges": merges},
	}
}

// tokenizerConfigJSON is CLIP's tokenizer_config.json: <|endoftext|> ends,
// pads and stands for unknown text; 77 tokens at most.
func (t *CLIPTokenizer) tokenizerConfigJSON(maxLen int) map[string]any {
	return map[string]any{
		"tokenizer_class": "CLIPTokenizer", "bos_token": StartOfText, "eos_token": EndOfText,
		"unk_token": EndOfText, "pad_token": EndOfText, "model_max_length": maxLen,
		"do_lower_case": true, "errors": "replace", "add_prefix_space": false, "clean_up_tokenization_spaces": true,
	}
}
