package chattmpl

import (
	"errors"
	"testing"
	"time"
)

// FuzzTemplate compiles and renders arbitrary chat templates (they come
// from a model directory's tokenizer_config.json) with arbitrary message
// text (it comes from requests). Neither may panic: a template that does
// not compile or render is an ErrTemplate (or ErrRaised from
// raise_exception).
func FuzzTemplate(f *testing.F) {
	for _, src := range []string{
		chatMLTemplate, llama2Template,
		`{% for m in messages %}{{ m.role }}: {{ m.content | trim }}{% endfor %}`,
		`{{ messages[0]['content'].split('x')[1] }}`,
		`{% if messages|length > 1 %}{{ raise_exception('too many') }}{% endif %}{{ bos_token }}`,
		`{{ tools | tojson(indent=2) }}{{ strftime_now('%Y') }}`,
		`{% set ns = namespace(a=1) %}{% for m in messages %}{% set ns.a = ns.a + 1 %}{% endfor %}{{ ns.a }}`,
		`{{`, `{% for %}`, `{{ 1/0 }}`, `{{ messages[9] }}`,
	} {
		f.Add(src, "hello")
		f.Add(src, "{{ x }} {% if %}")
	}
	now := func() time.Time { return time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC) }
	f.Fuzz(func(t *testing.T, src, text string) {
		tpl, err := New(src, map[string]string{"bos_token": "<s>", "eos_token": "</s>"})
		if err != nil {
			if !errors.Is(err, ErrTemplate) {
				t.Fatalf("compile error without ErrTemplate: %v", err)
			}
			return
		}
		_, err = tpl.Render([]Message{{Role: "system", Content: "s"}, {Role: "user", Content: text}},
			Options{AddGenerationPrompt: true, Now: now})
		if err != nil && !errors.Is(err, ErrTemplate) && !errors.Is(err, ErrRaised) {
			t.Fatalf("render error without ErrTemplate or ErrRaised: %v", err)
		}
	})
}
