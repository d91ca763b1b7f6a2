package mkmodel

import (
	"regexp"
	"sort"
	"strconv"
)

// Special tokens of the generated tokenizer, after the byte tokens, the
// merges and the added tokens.
const (
	EndOfText = "<|endoftext|>"
	IMStart   = "<|im_start|>"
	IMEnd     = "<|im_end|>"
)

// Added (non-special) tokens, as in Qwen2.5's tokenizer: the tool-call
// envelope's tags are one token each, and decode as text.
const (
	ToolCallOpen  = "<tool_call>"
	ToolCallClose = "</tool_call>"
)

// ChatMLTemplate is the chat_template written to tokenizer_config.json:
// ChatML, with tools in the Hermes/Qwen2.5 style. Without tools it renders
// plain ChatML; with tools, the system turn lists them between <tools>
// tags and asks for <tool_call>{"name": …, "arguments": …}</tool_call>;
// assistant turns render their tool_calls that way and tool results go
// back in a user turn as <tool_response>, as Qwen2.5's template does.
const ChatMLTemplate = `{%- if tools %}{{ '<|im_start|>system\n' }}` +
	`{%- if messages[0].role == 'system' %}{{ messages[0].content + '\n\n' }}{% endif %}` +
	`{{ '# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' }}` +
	`{{ 'You are provided with function signatures within <tools></tools> XML tags:\n<tools>' }}` +
	`{%- for tool in tools %}{{ '\n' }}{{ tool | tojson }}{% endfor %}` +
	`{{ '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n' }}` +
	`{{ '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}{% endif %}` +
	`{%- for message in messages %}` +
	`{%- if message.role == 'system' and tools and loop.first %}` +
	`{%- elif message.role == 'assistant' and message.tool_calls %}{{ '<|im_start|>assistant\n' }}` +
	`{%- if message.content %}{{ message.content + '\n' }}{% endif %}` +
	`{%- for tc in message.tool_calls %}{% if not loop.first %}{{ '\n' }}{% endif %}` +
	`{{ '<tool_call>\n{"name": "' + tc.function.name + '", "arguments": ' + tc.function.arguments + '}\n</tool_call>' }}{% endfor %}` +
	`{{ '<|im_end|>\n' }}` +
	`{%- elif message.role == 'tool' %}` +
	`{%- if loop.first or messages[loop.index0 - 1].role != 'tool' %}{{ '<|im_start|>user' }}{% endif %}` +
	`{{ '\n<tool_response>\n' + message.content + '\n</tool_response>' }}` +
	`{%- if loop.last or messages[loop.index0 + 1].role != 'tool' %}{{ '<|im_end|>\n' }}{% endif %}` +
	`{%- else %}{{ '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}{% endif %}` +
	`{%- endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}`

// numMerges makes the vocabulary 256 bytes + 251 merges + 2 added tokens +
// 3 specials = 512.
const numMerges = 251

// preTokenizerRegex is Qwen2's pre-tokenizer pattern, written into
// tokenizer.json.
const preTokenizerRegex = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// trainSplit approximates preTokenizerRegex for training (Go's regexp has
// no lookahead); the merges it learns are valid for any split.
var trainSplit = regexp.MustCompile(`(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+`)

// trainingText is what the BPE merges are learned from.
const trainingText = `The local plane answers questions on the machine itself. A request comes in
over HTTP, is wrapped in a binary envelope, checked against the policy of its tenant and routed to a
worker that runs the model. The worker reads the prompt, turns it into tokens, runs the decoder one
step at a time and streams the text back as it is produced. Nothing leaves the host.

When the model starts, it reads its configuration: the number of layers, the number of attention
heads, the size of the hidden state and of the vocabulary. It checks that the graph has the inputs
and outputs that the configuration promises, and it refuses to start when they disagree. Every step
of the decoder takes the tokens of this step, their positions and the keys and values of the steps
before, and returns the logits of the next token and the keys and values of this step.

Hello, world! How are you today? I am fine, thank you. What is the weather like in the mountains?
It is cold and clear, with a little snow on the high passes; the rivers are running fast.

def forward(self, input_ids, attention_mask, past_key_values=None):
    hidden = self.embed_tokens(input_ids)
    for layer in self.layers:
        hidden = layer(hidden, attention_mask, past_key_values)
    return self.lm_head(self.norm(hidden))

func (s *Sequence) Step(tokens []int64) ([]float32, error) {
	if len(tokens) == 0 {
		return nil, errors.New("no tokens")
	}
	return s.run(tokens)
}

Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 128 256 512 1024 2048 4096 3.14159 2.71828 1e-6 100%.
The quick brown fox jumps over the lazy dog. The five boxing wizards jump quickly.
`

// bytesToUnicode is GPT-2's byte-to-character map: printable bytes map to
// themselves, the others to code points from U+0100 up. The byte tokens'
// ids follow the order of this list.
func bytesToUnicode() (order []byte, char [256]rune) {
	var bs []int
	for b := '!'; b <= '~'; b++ {
		bs = append(bs, int(b))
	}
	for b := 0xA1; b <= 0xAC; b++ {
		bs = append(bs, b)
	}
	for b := 0xAE; b <= 0xFF; b++ {
		bs = append(bs, b)
	}
	in := map[int]bool{}
	for _, b := range bs {
		in[b] = true
		char[b] = rune(b)
	}
	n := 0
	for b := 0; b < 256; b++ {
		if !in[b] {
			bs = append(bs, b)
			char[b] = rune(256 + n)
			n++
		}
	}
	for _, b := range bs {
		order = append(order, byte(b))
	}
	return order, char
}

// Tokenizer is a generated byte-level BPE vocabulary.
type Tokenizer struct {
	// Vocab maps token strings (byte-level characters) to ids.
	Vocab map[string]int
	// Merges are the BPE merges, in priority order, as "left right".
	Merges []string
	// Added are the added non-special tokens' ids (ToolCallOpen,
	// ToolCallClose).
	Added map[string]int
	// Specials are the special tokens' ids.
	Specials map[string]int
}

// Size is the number of tokens.
func (t *Tokenizer) Size() int { return len(t.Vocab) + len(t.Added) + len(t.Specials) }

// NewTokenizer trains the deterministic BPE tokenizer on trainingText.
func NewTokenizer() *Tokenizer {
	order, char := bytesToUnicode()
	t := &Tokenizer{Vocab: map[string]int{}, Added: map[string]int{}, Specials: map[string]int{}}
	for i, b := range order {
		t.Vocab[string(char[b])] = i
	}
	// Words as symbol sequences, with their counts.
	counts := map[string]int{}
	for _, w := range trainSplit.FindAllString(trainingText, -1) {
		counts[w]++
	}
	type word struct {
		syms []string
		n    int
	}
	var words []word
	keys := make([]string, 0, len(counts))
	for w := range counts {
		keys = append(keys, w)
	}
	sort.Strings(keys)
	for _, w := range keys {
		var syms []string
		for _, b := range []byte(w) {
			syms = append(syms, string(char[b]))
		}
		words = append(words, word{syms, counts[w]})
	}
	for len(t.Merges) < numMerges {
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
			break // the text is exhausted (does not happen with trainingText)
		}
		merged := best[0] + best[1]
		t.Merges = append(t.Merges, best[0]+" "+best[1])
		if _, ok := t.Vocab[merged]; !ok {
			t.Vocab[merged] = len(t.Vocab)
		}
		for wi := range words {
			syms := words[wi].syms
			var out []string
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
	for _, s := range []string{ToolCallOpen, ToolCallClose} {
		t.Added[s] = len(t.Vocab) + len(t.Added)
	}
	for _, s := range []string{EndOfText, IMStart, IMEnd} {
		t.Specials[s] = len(t.Vocab) + len(t.Added) + len(t.Specials)
	}
	return t
}

// id is an added or special token's id, and whether it is special.
func (t *Tokenizer) id(s string) (int, bool) {
	if id, ok := t.Added[s]; ok {
		return id, false
	}
	return t.Specials[s], true
}

// tokenizerJSON is tokenizer.json in the Hugging Face tokenizers format
// (Qwen2-style byte-level BPE).
func (t *Tokenizer) tokenizerJSON() map[string]any {
	byteLevel := map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}
	var added []map[string]any
	for _, s := range []string{ToolCallOpen, ToolCallClose, EndOfText, IMStart, IMEnd} {
		id, special := t.id(s)
		added = append(added, map[string]any{"id": id, "content": s, "single_word": false,
			"lstrip": false, "rstrip": false, "normalized": false, "special": special})
	}
	return map[string]any{
		"version":      "1.0",
		"truncation":   nil,
		"padding":      nil,
		"added_tokens": added,
		"normalizer":   map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": preTokenizerRegex},
				"behavior": "Isolated", "invert": false},
			byteLevel,
		}},
		"post_processor": byteLevel,
		"decoder":        byteLevel,
		"model": map[string]any{"type": "BPE", "dropout": nil, "unk_token": nil,
			"continuing_subword_prefix": "", "end_of_word_suffix": "", "fuse_unk": false,
			"byte_fallback": false, "ignore_merges": false, "vocab": t.Vocab, "merges": t.Merges},
	}
}

// tokenizerConfigJSON is tokenizer_config.json, with the ChatML template.
func (t *Tokenizer) tokenizerConfigJSON(maxLen int) map[string]any {
	decoder := map[string]any{}
	for _, s := range []string{ToolCallOpen, ToolCallClose, EndOfText, IMStart, IMEnd} {
		id, special := t.id(s)
		decoder[strconv.Itoa(id)] = map[string]any{"content": s, "lstrip": false, "normalized": false,
			"rstrip": false, "single_word": false, "special": special}
	}
	return map[string]any{
		"add_bos_token":                false,
		"add_prefix_space":             false,
		"added_tokens_decoder":         decoder,
		"additional_special_tokens":    []string{IMStart, IMEnd},
		"bos_token":                    nil,
		"chat_template":                ChatMLTemplate,
		"clean_up_tokenization_spaces": false,
		"eos_token":                    IMEnd,
		"errors":                       "replace",
		"model_max_length":             maxLen,
		"pad_token":                    EndOfText,
		"split_special_tokens":         false,
		"tokenizer_class":              "Qwen2Tokenizer",
		"unk_token":                    nil,
	}
}
