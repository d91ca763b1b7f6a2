package tokenizer

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"
)

// tokenModel turns one pre-token into ids: BPE or WordPiece.
type tokenModel interface {
	tokenize(word string, out []int) []int
}

// buildModel builds the model tokenizer.json names, with its vocabulary
// (token -> id, and id -> token with "" for gaps).
func buildModel(m *modelJSON) (tokenModel, map[string]int, []string, error) {
	switch m.Type {
	case "BPE", "":
		b, err := buildBPE(m)
		if err != nil {
			return nil, nil, nil, err
		}
		return b, b.vocab, b.vocabR, nil
	case "WordPiece":
		w, err := buildWordPiece(m)
		if err != nil {
			return nil, nil, nil, err
		}
		return w, w.vocab, w.vocabR, nil
	}
	return nil, nil, nil, fmt.Errorf("%w: model type %q (supported: BPE, WordPiece)", ErrUnsupported, m.Type)
}

// defaultMaxInputCharsPerWord is the Rust library's default.
const defaultMaxInputCharsPerWord = 100

// wordPiece is BERT's model: each pre-token is split greedily into the
// longest vocabulary entries from the left, every piece after the first
// spelled with the continuing-subword prefix ("##"). A word with a part
// that matches nothing, or longer than maxChars characters, is the unk
// token as a whole.
type wordPiece struct {
	vocab    map[string]int
	vocabR   []string
	unkID    int
	prefix   string
	maxChars int
}

func buildWordPiece(m *modelJSON) (*wordPiece, error) {
	var vocab map[string]int
	if err := json.Unmarshal(m.Vocab, &vocab); err != nil {
		return nil, fmt.Errorf("%w: model.vocab: %v", ErrInvalid, err)
	}
	if len(vocab) == 0 {
		return nil, fmt.Errorf("%w: model.vocab is empty", ErrInvalid)
	}
	w := &wordPiece{vocab: vocab, prefix: "##", maxChars: defaultMaxInputCharsPerWord}
	if m.ContinuingSubwordPrefix != nil {
		w.prefix = *m.ContinuingSubwordPrefix
	}
	if m.MaxInputCharsPerWord != nil {
		if *m.MaxInputCharsPerWord <= 0 {
			return nil, fmt.Errorf("%w: WordPiece max_input_chars_per_word %d is not positive", ErrInvalid, *m.MaxInputCharsPerWord)
		}
		w.maxChars = *m.MaxInputCharsPerWord
	}
	// Unlike BPE, WordPiece cannot do without its unk token: a word it
	// cannot split has nothing else to become.
	if m.UnkToken == nil {
		return nil, fmt.Errorf("%w: WordPiece model has no unk_token", ErrInvalid)
	}
	id, ok := vocab[*m.UnkToken]
	if !ok {
		return nil, fmt.Errorf("%w: unk_token %q is not in the vocabulary", ErrInvalid, *m.UnkToken)
	}
	w.unkID = id
	maxID := 0
	for tok, id := range vocab {
		if id < 0 {
			return nil, fmt.Errorf("%w: negative token id %d for %q", ErrInvalid, id, tok)
		}
		maxID = max(maxID, id)
	}
	if maxID >= 1<<24 {
		return nil, fmt.Errorf("%w: token id %d is implausibly large", ErrInvalid, maxID)
	}
	w.vocabR = make([]string, maxID+1)
	for tok, id := range vocab {
		w.vocabR[id] = tok
	}
	return w, nil
}

func (w *wordPiece) tokenize(word string, out []int) []int {
	if word == "" {
		return out
	}
	if utf8.RuneCountInString(word) > w.maxChars {
		return append(out, w.unkID)
	}
	n := len(out)
	var buf []byte
	for start := 0; start < len(word); {
		end, id := len(word), -1
		for start < end {
			sub := word[start:end]
			var ok bool
			if start > 0 {
				buf = append(append(buf[:0], w.prefix...), sub...)
				id, ok = w.vocab[string(buf)]
			} else {
				id, ok = w.vocab[sub]
			}
			if ok {
				break
			}
			id = -1
			_, size := utf8.DecodeLastRuneInString(sub)
			end -= size
		}
		if id < 0 {
			return append(out[:n], w.unkID)
		}
		out = append(out, id)
		start = end
	}
	return out
}
