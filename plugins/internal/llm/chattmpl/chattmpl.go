package chattmpl

import (
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nikolalohinski/gonja/v2/builtins"
	"github.com/nikolalohinski/gonja/v2/config"
	"github.com/nikolalohinski/gonja/v2/exec"
	"github.com/nikolalohinski/gonja/v2/loaders"
	"github.com/nikolalohinski/gonja/v2/nodes"
	"github.com/nikolalohinski/gonja/v2/parser"
)

var (
	// ErrNoTemplate: the model ships no chat template and no fallback was
	// chosen.
	ErrNoTemplate = errors.New("chattmpl: no chat template")
	// ErrTemplate marks a template that does not parse or fails to render.
	ErrTemplate = errors.New("chattmpl: template error")
	// ErrRaised is returned when the template calls raise_exception (for
	// example for roles that do not alternate); the error text is the
	// template's message.
	ErrRaised = errors.New("chattmpl: template raised")
)

// The built-in fallbacks for models without a chat_template, as
// transformers used to provide them.
var (
	//go:embed templates/llama2.jinja
	llama2Template string
	//go:embed templates/chatml.jinja
	chatMLTemplate string
)

// Fallback names a built-in template.
type Fallback string

const (
	// FallbackLlama2 is Llama-2-chat's "<s>[INST] <<SYS>>…<</SYS>> … [/INST]"
	// format.
	FallbackLlama2 Fallback = "llama2"
	// FallbackChatML is "<|im_start|>role\n…<|im_end|>\n".
	FallbackChatML Fallback = "chatml"
)

// Source returns the Jinja source of a built-in template.
func (f Fallback) Source() (string, bool) {
	switch f {
	case FallbackLlama2:
		return llama2Template, true
	case FallbackChatML:
		return chatMLTemplate, true
	}
	return "", false
}

// Message is one chat turn. Extra carries any other keys the template may
// read (tool_calls, tool_call_id, name, reasoning_content, …).
type Message struct {
	Role    string
	Content string
	Extra   map[string]any
}

// Options are the per-render variables.
type Options struct {
	// AddGenerationPrompt appends the header of the assistant's reply.
	AddGenerationPrompt bool
	// Tools are JSON-schema tool definitions (nil renders as None). JSON
	// objects given as map[string]any are rendered with sorted keys by tojson.
	Tools []any
	// Documents for retrieval-augmented templates (nil renders as None).
	Documents []any
	// Vars are extra template variables (chat_template_kwargs such as
	// enable_thinking); they override nothing HF itself passes.
	Vars map[string]any
	// Now is the clock strftime_now reads; nil means time.Now.
	Now func() time.Time
}

// Template is a compiled chat template with the special-token variables of
// its model. It is safe for concurrent use.
type Template struct {
	source  string
	tpl     *exec.Template
	special map[string]string
}

// Source is the Jinja source of the template.
func (t *Template) Source() string { return t.source }

// New compiles a template. special maps variable names to special tokens
// (bos_token, eos_token, unk_token, pad_token, …), as Hugging Face passes
// them from tokenizer_config.json.
func New(source string, special map[string]string) (*Template, error) {
	cfg := config.New()
	cfg.TrimBlocks = true
	cfg.LeftStripBlocks = true
	const name = "chat_template"
	tpl, err := exec.NewTemplate(name, cfg, sourceLoader{name: name, src: source}, environment())
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	sp := make(map[string]string, len(special))
	for k, v := range special {
		sp[k] = v
	}
	return &Template{source: source, tpl: tpl, special: sp}, nil
}

// specialTokenKeys are the tokenizer_config.json entries passed to templates.
var specialTokenKeys = []string{"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}

// FromTokenizerConfig builds the template of a model from its
// tokenizer_config.json: its chat_template (a string, or a list of named
// templates of which "default" is used) and its special tokens. A model
// without one gets fallback; an empty fallback picks Llama-2 for Llama
// tokenizer classes and ChatML otherwise.
func FromTokenizerConfig(data []byte, fallback Fallback) (*Template, error) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: tokenizer_config.json: %v", ErrTemplate, err)
	}
	special := map[string]string{}
	for _, k := range specialTokenKeys {
		if v, ok := raw[k]; ok {
			if s := tokenContent(v); s != "" {
				special[k] = s
			}
		}
	}
	source, err := chatTemplateField(raw["chat_template"])
	if err != nil {
		return nil, err
	}
	if source == "" {
		if fallback == "" {
			var class string
			_ = json.Unmarshal(raw["tokenizer_class"], &class)
			fallback = DefaultFallback(class)
		}
		src, ok := fallback.Source()
		if !ok {
			return nil, fmt.Errorf("%w: unknown fallback %q", ErrNoTemplate, fallback)
		}
		source = src
	}
	return New(source, special)
}

// DefaultFallback is the fallback for a tokenizer class without a template:
// Llama-2's format for Llama and CodeLlama tokenizers, ChatML otherwise.
func DefaultFallback(tokenizerClass string) Fallback {
	switch strings.TrimSuffix(tokenizerClass, "Fast") {
	case "LlamaTokenizer", "CodeLlamaTokenizer":
		return FallbackLlama2
	}
	return FallbackChatML
}

// LoadDir reads the chat template of a model directory: chat_template.jinja
// when present (the layout newer transformers save), else the chat_template
// of tokenizer_config.json, else fallback (see FromTokenizerConfig).
func LoadDir(dir string, fallback Fallback) (*Template, error) {
	cfg, err := os.ReadFile(filepath.Join(dir, "tokenizer_config.json"))
	if errors.Is(err, fs.ErrNotExist) {
		cfg = []byte("{}")
	} else if err != nil {
		return nil, fmt.Errorf("chattmpl: %w", err)
	}
	jinja, err := os.ReadFile(filepath.Join(dir, "chat_template.jinja"))
	if err == nil {
		var raw map[string]any
		if err := json.Unmarshal(cfg, &raw); err != nil {
			return nil, fmt.Errorf("%w: tokenizer_config.json: %v", ErrTemplate, err)
		}
		raw["chat_template"] = string(jinja)
		if cfg, err = json.Marshal(raw); err != nil {
			return nil, fmt.Errorf("chattmpl: %w", err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("chattmpl: %w", err)
	}
	t, err := FromTokenizerConfig(cfg, fallback)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	return t, nil
}

func tokenContent(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		Content string `json:"content"`
	}
	if json.Unmarshal(raw, &obj) == nil {
		return obj.Content
	}
	return ""
}

func chatTemplateField(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var named []struct {
		Name     string `json:"name"`
		Template string `json:"template"`
	}
	if err := json.Unmarshal(raw, &named); err != nil {
		return "", fmt.Errorf("%w: chat_template is neither a string nor a list of named templates", ErrTemplate)
	}
	for _, n := range named {
		if n.Name == "default" {
			return n.Template, nil
		}
	}
	return "", fmt.Errorf("%w: chat_template has several templates and none named \"default\"", ErrTemplate)
}

// Render renders a conversation with the variables Hugging Face's
// apply_chat_template passes: messages, add_generation_prompt, tools,
// documents, the special tokens, raise_exception and strftime_now, plus
// opts.Vars.
func (t *Template) Render(messages []Message, opts Options) (string, error) {
	msgs := make([]any, len(messages))
	for i, m := range messages {
		mm := make(map[string]any, len(m.Extra)+2)
		for k, v := range m.Extra {
			mm[k] = v
		}
		mm["role"] = m.Role
		mm["content"] = m.Content
		msgs[i] = mm
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	var raised error
	vars := map[string]any{
		"messages":              msgs,
		"add_generation_prompt": opts.AddGenerationPrompt,
		"tools":                 nilIfEmpty(opts.Tools),
		"documents":             nilIfEmpty(opts.Documents),
		"raise_exception": func(msg string) (string, error) {
			raised = fmt.Errorf("%w: %s", ErrRaised, msg)
			return "", raised
		},
		"strftime_now": func(format string) string { return strftime(now(), format) },
	}
	for k, v := range t.special {
		vars[k] = v
	}
	for k, v := range opts.Vars {
		vars[k] = v
	}
	out, err := t.tpl.ExecuteToString(exec.NewContext(vars))
	if raised != nil {
		return "", raised
	}
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrTemplate, err)
	}
	return out, nil
}

func nilIfEmpty(v []any) any {
	if v == nil {
		return nil
	}
	return v
}

// environment is gonja's builtins with Hugging Face's tojson, and without
// the statements that would read other files (include, import, extends).
func environment() *exec.Environment {
	filters := exec.NewFilterSet(map[string]exec.FilterFunction{})
	filters.Update(builtins.Filters)
	_ = filters.Replace("tojson", filterToJSON)
	stmts := exec.NewControlStructureSet(map[string]parser.ControlStructureParser{})
	stmts.Update(builtins.ControlStructures)
	for _, name := range []string{"include", "import", "from", "extends"} {
		_ = stmts.Replace(name, refuseStatement(name))
	}
	return &exec.Environment{
		Context:           exec.EmptyContext().Update(builtins.GlobalFunctions).Update(builtins.GlobalVariables),
		Filters:           filters,
		Tests:             builtins.Tests,
		ControlStructures: stmts,
		Methods:           builtins.Methods,
	}
}

func refuseStatement(name string) parser.ControlStructureParser {
	return func(p *parser.Parser, _ *parser.Parser) (nodes.ControlStructure, error) {
		return nil, p.Error(fmt.Sprintf("chat templates cannot use {%% %s %%}", name), p.Current())
	}
}

// sourceLoader serves the one template and nothing else.
type sourceLoader struct{ name, src string }

func (l sourceLoader) Read(path string) (io.Reader, error) {
	if path != l.name {
		return nil, fmt.Errorf("chat templates cannot load %q", path)
	}
	return strings.NewReader(l.src), nil
}

func (l sourceLoader) Resolve(path string) (string, error) { return path, nil }

func (l sourceLoader) Inherit(string) (loaders.Loader, error) { return l, nil }
