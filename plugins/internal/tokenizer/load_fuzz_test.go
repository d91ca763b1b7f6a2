package tokenizer

import (
	"errors"
	"testing"
	"unicode/utf8"
)

// Seeds: a byte-level BPE (GPT-2 / Qwen2 style) and a SentencePiece-style
// BPE with byte fallback (Llama-2 style), each as small as a valid file gets.
const (
	fuzzByteLevel = `{"version":"1.0","added_tokens":[{"id":4,"content":"<|end|>","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true}],
"normalizer":null,"pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":true},
"post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,"use_regex":true},
"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,
"vocab":{"a":0,"b":1,"ab":2,"Ġ":3},"merges":["a b"]}}`
	fuzzSentencePiece = `{"version":"1.0","added_tokens":[{"id":0,"content":"<unk>","special":true},{"id":1,"content":"<s>","special":true},{"id":2,"content":"</s>","special":true}],
"normalizer":{"type":"Sequence","normalizers":[{"type":"Prepend","prepend":"▁"},{"type":"Replace","pattern":{"String":" "},"content":"▁"}]},
"pre_tokenizer":null,"post_processor":{"type":"TemplateProcessing","single":[{"SpecialToken":{"id":"<s>","type_id":0}},{"Sequence":{"id":"A","type_id":0}}],"pair":[],"special_tokens":{"<s>":{"id":"<s>","ids":[1],"tokens":["<s>"]}}},
"decoder":{"type":"Sequence","decoders":[{"type":"Replace","pattern":{"String":"▁"},"content":" "},{"type":"ByteFallback"},{"type":"Fuse"},{"type":"Strip","content":" ","start":1,"stop":0}]},
"model":{"type":"BPE","dropout":null,"unk_token":"<unk>","continuing_subword_prefix":null,"end_of_word_suffix":null,"fuse_unk":true,"byte_fallback":true,
"vocab":{"<unk>":0,"<s>":1,"</s>":2,"<0x41>":3,"<0xF0>":4,"▁":5,"h":6,"i":7,"▁h":8,"▁hi":9},"merges":["▁ h","▁h i"]}}`
	fuzzWordPiece = `{"version":"1.0","added_tokens":[{"id":0,"content":"[UNK]","normalized":false,"special":true},{"id":1,"content":"[CLS]","normalized":false,"special":true},{"id":2,"content":"[SEP]","normalized":false,"special":true}],
"normalizer":{"type":"BertNormalizer","clean_text":true,"handle_chinese_chars":true,"strip_accents":null,"lowercase":true},"pre_tokenizer":{"type":"BertPreTokenizer"},
"post_processor":{"type":"BertProcessing","sep":["[SEP]",2],"cls":["[CLS]",1]},"decoder":{"type":"WordPiece","prefix":"##","cleanup":true},
"model":{"type":"WordPiece","unk_token":"[UNK]","continuing_subword_prefix":"##","max_input_chars_per_word":8,"vocab":{"[UNK]":0,"[CLS]":1,"[SEP]":2,"h":3,"##i":4,"hi":5,",":6,"##ll":7,"he":8,"##o":9}}}`
	fuzzConfig = `{"bos_token":"<s>","eos_token":"</s>","add_bos_token":true,"clean_up_tokenization_spaces":false,"model_max_length":2048,
"added_tokens_decoder":{"2":{"content":"</s>","special":true}},"chat_template":"{{ messages }}"}`
)

// FuzzLoad feeds arbitrary tokenizer.json and tokenizer_config.json
// contents to the loader. It must never panic: a bad file is an ErrInvalid;
// a file it accepts must encode and decode without panicking, give ids
// inside the vocabulary, and stream only whole UTF-8 sequences.
func FuzzLoad(f *testing.F) {
	for _, tok := range []string{fuzzByteLevel, fuzzSentencePiece, fuzzWordPiece, `{}`, `{"model":{"type":"WordPiece"}}`, ``} {
		f.Add([]byte(tok), []byte(nil))
		f.Add([]byte(tok), []byte(fuzzConfig))
	}
	// The seeds must load, or the fuzzer would start from nothing valid.
	for _, seed := range [][2]string{{fuzzByteLevel, ""}, {fuzzSentencePiece, fuzzConfig}, {fuzzWordPiece, ""}} {
		var cfg []byte
		if seed[1] != "" {
			cfg = []byte(seed[1])
		}
		if _, err := FromFiles([]byte(seed[0]), cfg); err != nil {
			f.Fatalf("seed does not load: %v", err)
		}
	}
	inputs := []string{"", "hi ab", "hello, world 123", " \n\t ", "😀 é\u0301", "<|end|>a<s>", "\xff\xfe"}
	f.Fuzz(func(t *testing.T, tokJSON, cfgJSON []byte) {
		if len(cfgJSON) == 0 {
			cfgJSON = nil
		}
		tk, err := FromFiles(tokJSON, cfgJSON)
		if err != nil {
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnsupported) {
				t.Fatalf("error without ErrInvalid or ErrUnsupported: %v", err)
			}
			return
		}
		size := tk.VocabSize()
		for _, s := range inputs {
			ids := tk.Encode(s, true)
			for _, id := range ids {
				if id < 0 || id >= size {
					t.Fatalf("Encode(%q) gave id %d outside a vocabulary of %d", s, id, size)
				}
			}
			typed, types := tk.EncodeTyped(s)
			if len(typed) != len(types) {
				t.Fatalf("EncodeTyped(%q): %d ids, %d type ids", s, len(typed), len(types))
			}
			_ = tk.Decode(ids, false)
			sd := tk.NewStreamDecoder()
			for _, id := range append(ids, 0, size-1) {
				if out := sd.Add(id); !utf8.ValidString(out) {
					t.Fatalf("stream decoder emitted invalid UTF-8 %q", out)
				}
			}
			if out := sd.Flush(); !utf8.ValidString(out) {
				t.Fatalf("stream decoder flushed invalid UTF-8 %q", out)
			}
		}
	})
}
