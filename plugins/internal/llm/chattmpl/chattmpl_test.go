package chattmpl

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type refCase struct {
	Name                string           `json:"name"`
	Messages            []map[string]any `json:"messages"`
	AddGenerationPrompt bool             `json:"add_generation_prompt"`
	Kwargs              map[string]any   `json:"kwargs"`
	Tools               []any            `json:"tools"`
	Expected            *string          `json:"expected"`
	Error               *string          `json:"error"`
}

type refFamily struct {
	Name     string          `json:"name"`
	Fallback *string         `json:"fallback"`
	Config   json.RawMessage `json:"config"`
	Cases    []refCase       `json:"cases"`
}

func loadRef(t *testing.T) []refFamily {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "reference.json"))
	if err != nil {
		t.Fatal(err)
	}
	var fams []refFamily
	if err := json.Unmarshal(data, &fams); err != nil {
		t.Fatal(err)
	}
	return fams
}

func toMessages(in []map[string]any) []Message {
	out := make([]Message, len(in))
	for i, m := range in {
		out[i] = Message{Role: m["role"].(string), Content: m["content"].(string)}
		for k, v := range m {
			if k != "role" && k != "content" {
				if out[i].Extra == nil {
					out[i].Extra = map[string]any{}
				}
				out[i].Extra[k] = v
			}
		}
	}
	return out
}

// TestReference renders the conversations transformers.js rendered with the
// real templates of the testdata models (and the fallbacks for a model
// without one) and compares the text exactly.
func TestReference(t *testing.T) {
	for _, fam := range loadRef(t) {
		t.Run(fam.Name, func(t *testing.T) {
			var fb Fallback
			if fam.Fallback != nil {
				fb = Fallback(*fam.Fallback)
			}
			tpl, err := FromTokenizerConfig(fam.Config, fb)
			if err != nil {
				t.Fatal(err)
			}
			mismatches := 0
			for _, c := range fam.Cases {
				got, err := tpl.Render(toMessages(c.Messages), Options{AddGenerationPrompt: c.AddGenerationPrompt, Tools: c.Tools, Vars: c.Kwargs})
				if c.Error != nil {
					if !errors.Is(err, ErrRaised) || !strings.Contains(err.Error(), *c.Error) {
						mismatches++
						t.Errorf("%s: err = %v, want raised %q", c.Name, err, *c.Error)
					}
					continue
				}
				if err != nil {
					mismatches++
					t.Errorf("%s: %v", c.Name, err)
					continue
				}
				if got != *c.Expected {
					mismatches++
					t.Errorf("%s:\n got %q\nwant %q", c.Name, got, *c.Expected)
				}
			}
			t.Logf("%s: %d cases, %d mismatches", fam.Name, len(fam.Cases), mismatches)
		})
	}
}

func TestDefaultFallbackForLlama(t *testing.T) {
	tpl, err := FromTokenizerConfig([]byte(`{"tokenizer_class": "LlamaTokenizer", "bos_token": {"__type": "AddedToken", "content": "<s>"}, "eos_token": "</s>"}`), "")
	if err != nil {
		t.Fatal(err)
	}
	got, err := tpl.Render([]Message{{Role: "user", Content: " hi "}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "<s>[INST] hi [/INST]"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	tpl, err = FromTokenizerConfig([]byte(`{"tokenizer_class": "GPT2Tokenizer"}`), "")
	if err != nil {
		t.Fatal(err)
	}
	got, err = tpl.Render([]Message{{Role: "user", Content: "hi"}}, Options{AddGenerationPrompt: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestHelpers(t *testing.T) {
	now := func() time.Time { return time.Date(2024, 7, 5, 9, 3, 0, 0, time.UTC) }
	tests := []struct {
		name, src, want string
		opts            Options
	}{
		{"strftime", "{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%-d %B %y %H:%M %A %j %%') }}", "05 Jul 2024|5 July 24 09:03 Friday 187 %", Options{Now: now}},
		{"tojson", `{{ {"b": [1, 2.5, true, none], "a": "é\n\"x\""} | tojson }}`, `{"b": [1, 2.5, true, null], "a": "é\n\"x\""}`, Options{}},
		{"tojson sort_keys", `{{ {"b": 1, "a": 2} | tojson(sort_keys=true) }}`, `{"a": 2, "b": 1}`, Options{}},
		{"tojson map", `{{ tools[0] | tojson }}`, `{"function": {"name": "f"}, "type": "function"}`, Options{Tools: []any{map[string]any{"type": "function", "function": map[string]any{"name": "f"}}}}},
		{"tojson indent", `{{ {"a": [1, {"b": 2}]} | tojson(indent=2) }}`, "{\n  \"a\": [\n    1,\n    {\n      \"b\": 2\n    }\n  ]\n}", Options{}},
		{"tojson ascii", `{{ "é😀" | tojson(ensure_ascii=true) }}`, `"\u00e9\ud83d\ude00"`, Options{}},
		{"tools none", "{% if tools %}T{% else %}N{% endif %}{% if documents is none %}D{% endif %}", "ND", Options{}},
		{"vars", "{% if enable_thinking is defined and enable_thinking is false %}off{% endif %}", "off", Options{Vars: map[string]any{"enable_thinking": false}}},
		{"trim blocks", "{% for m in messages %}\n  {{ m.role }}\n{% endfor %}\n", "  user\n", Options{}},
		{"loop controls", "{% for i in [1,2,3] %}{% if i == 2 %}{% continue %}{% endif %}{{ i }}{% endfor %}", "13", Options{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tpl, err := New(tc.src, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := tpl.Render([]Message{{Role: "user", Content: "x"}}, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	if _, err := New("{% for %}", nil); !errors.Is(err, ErrTemplate) {
		t.Errorf("bad syntax: err = %v, want ErrTemplate", err)
	}
	for _, src := range []string{`{% include "/etc/passwd" %}`, `{% extends "base" %}`, `{% import "x" as y %}`} {
		tpl, err := New(src, nil)
		if err == nil {
			_, err = tpl.Render(nil, Options{})
		}
		if !errors.Is(err, ErrTemplate) {
			t.Errorf("%s: err = %v, want ErrTemplate", src, err)
		}
	}
	tpl, err := New("{{ raise_exception('nope') }}", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tpl.Render(nil, Options{}); !errors.Is(err, ErrRaised) || !strings.Contains(err.Error(), "nope") {
		t.Errorf("raise_exception: err = %v", err)
	}
	if _, err := FromTokenizerConfig([]byte(`{"chat_template": [{"name": "tool_use", "template": "x"}]}`), ""); !errors.Is(err, ErrTemplate) {
		t.Errorf("no default template: err = %v", err)
	}
	if _, err := FromTokenizerConfig([]byte(`{}`), "nonsense"); !errors.Is(err, ErrNoTemplate) {
		t.Errorf("unknown fallback: err = %v", err)
	}
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(`{"eos_token": "<e>", "chat_template": "old"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	tpl, err := LoadDir(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	if tpl.Source() != "old" {
		t.Errorf("source = %q", tpl.Source())
	}
	if err := os.WriteFile(filepath.Join(dir, "chat_template.jinja"), []byte("{{ eos_token }}{{ messages[0].content }}"), 0o644); err != nil {
		t.Fatal(err)
	}
	if tpl, err = LoadDir(dir, ""); err != nil {
		t.Fatal(err)
	}
	if got, err := tpl.Render([]Message{{Role: "user", Content: "c"}}, Options{}); err != nil || got != "<e>c" {
		t.Errorf("chat_template.jinja: got %q, %v", got, err)
	}
}

func TestConcurrentRender(t *testing.T) {
	fams := loadRef(t)
	tpl, err := FromTokenizerConfig(fams[0].Config, "")
	if err != nil {
		t.Fatal(err)
	}
	c := fams[0].Cases[0]
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				got, err := tpl.Render(toMessages(c.Messages), Options{AddGenerationPrompt: c.AddGenerationPrompt})
				if err != nil || got != *c.Expected {
					t.Errorf("concurrent render: %q, %v", got, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
