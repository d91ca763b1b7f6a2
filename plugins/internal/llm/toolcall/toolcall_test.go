package toolcall

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
)

func templateOf(t *testing.T, family string) string {
	t.Helper()
	b, err := os.ReadFile("../../../internal/tokenizer/testdata/" + family + "/tokenizer_config.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		ChatTemplate string `json:"chat_template"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg.ChatTemplate
}

// llama31 is the part of Llama 3.1's template that defines its JSON tool
// calls (the real template is longer).
const llama31 = `{%- if tools is not none %}{{- 'Given the following functions, please respond with a JSON for a function call with its proper arguments that best answers the given prompt.\n\n' }}{{- 'Respond in the format {"name": function name, "parameters": dictionary of argument name and its value}.' }}{%- endif %}{{- "<|python_tag|>" }}`

func TestDetect(t *testing.T) {
	for name, c := range map[string]struct {
		tmpl string
		want Format
	}{
		"qwen3":             {templateOf(t, "qwen3"), Hermes},
		"llama3 (no tools)": {templateOf(t, "llama3"), None},
		"llama3.1":          {llama31, Llama3JSON},
		"chatml":            {"{% for message in messages %}{{ '<|im_start|>' + message['role'] }}{% endfor %}", None},
	} {
		if got := Detect(c.tmpl); got != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}

// result is what a parser made of a text: content, per-call streamed
// pieces, the calls and the error.
type result struct {
	Content string
	Names   []string
	Args    []string // the streamed argument pieces of each call, joined
	Calls   []Call
	Err     string
}

func parse(f Format, pieces []string) result {
	n := 0
	p := NewParser(f, func() string { n++; return fmt.Sprintf("call_%d", n) })
	var r result
	add := func(ds []Delta) {
		for _, d := range ds {
			if !d.Call {
				r.Content += d.Content
				continue
			}
			for len(r.Args) <= d.Index {
				r.Args = append(r.Args, "")
				r.Names = append(r.Names, "")
			}
			if d.Name != "" {
				r.Names[d.Index] = d.Name
			}
			r.Args[d.Index] += d.Arguments
		}
	}
	for _, s := range pieces {
		add(p.Push(s))
	}
	ds, calls, err := p.Close()
	add(ds)
	r.Calls = calls
	if err != nil {
		r.Err = err.Error()
	}
	return r
}

// splits cuts s into random pieces.
func splits(s string, rng *rand.Rand) []string {
	var out []string
	for s != "" {
		n := min(1+rng.IntN(6), len(s))
		out = append(out, s[:n])
		s = s[n:]
	}
	return out
}

func TestHermes(t *testing.T) {
	text := "Let me check both.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris \\\"FR\\\"\", \"days\": [1, 2]}}\n</tool_call>\n" +
		"<tool_call>\n{\"arguments\": {\"q\": \"}{\"}, \"name\": \"search\"}\n</tool_call>"
	want := result{
		Content: "Let me check both.\n",
		Names:   []string{"get_weather", "search"},
		Args:    []string{`{"city": "Paris \"FR\"", "days": [1, 2]}`, `{"q": "}{"}`},
		Calls: []Call{{ID: "call_1", Name: "get_weather", Arguments: `{"city": "Paris \"FR\"", "days": [1, 2]}`},
			{ID: "call_2", Name: "search", Arguments: `{"q": "}{"}`}},
	}
	if got := parse(Hermes, []string{text}); !reflect.DeepEqual(got, want) {
		t.Fatalf("one piece:\n got %+v\nwant %+v", got, want)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		pieces := splits(text, rng)
		if got := parse(Hermes, pieces); !reflect.DeepEqual(got, want) {
			t.Fatalf("pieces %q:\n got %+v\nwant %+v", pieces, got, want)
		}
	}
	// Plain text, and text that only looks like the start of an envelope.
	for _, s := range []string{"no calls here", "a <tool_ca b", "ends with <tool_c"} {
		if got := parse(Hermes, splits(s, rng)); got.Content != s || got.Err != "" || len(got.Calls) != 0 {
			t.Errorf("%q: %+v", s, got)
		}
	}
}

// TestHermesCloserInString: the closer's text inside an argument string
// (a random-weight model writes one sooner or later) does not end the
// envelope, in whatever pieces it arrives.
func TestHermesCloserInString(t *testing.T) {
	args := `{"path": "a</tool_call>b \"</tool_call>\\", "n": 1}`
	text := "<tool_call>\n{\"name\": \"read_file\", \"arguments\": " + args + "}\n</tool_call>"
	want := result{Names: []string{"read_file"}, Args: []string{args}, Calls: []Call{{ID: "call_1", Name: "read_file", Arguments: args}}}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		pieces := []string{text}
		if i > 0 {
			pieces = splits(text, rng)
		}
		if got := parse(Hermes, pieces); !reflect.DeepEqual(got, want) {
			t.Fatalf("pieces %q:\n got %+v\nwant %+v", pieces, got, want)
		}
	}
}

// TestStreamingOrder: the name delta comes before any argument piece, and
// argument pieces arrive before the envelope closes.
func TestStreamingOrder(t *testing.T) {
	p := NewParser(Hermes, func() string { return "call_x" })
	var ds []Delta
	for _, s := range []string{"<tool_call>\n{\"name\": \"f\", ", "\"arguments\": {\"a\": ", "1, \"b\": 2", "}}\n</tool_call>"} {
		ds = append(ds, p.Push(s)...)
	}
	if len(ds) < 3 || ds[0].ID != "call_x" || ds[0].Name != "f" || ds[1].Arguments != `{"a": ` {
		t.Fatalf("deltas %+v", ds)
	}
}

func TestMalformed(t *testing.T) {
	for _, s := range []string{
		"<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1",         // unfinished
		"<tool_call>{\"name\": \"f\", \"arguments\": \"{}\"}</tool_call>", // arguments a string
		"<tool_call>{\"arguments\": {}}</tool_call>",                      // no name
		"<tool_call>not json</tool_call>",
		"<tool_call>{\"name\": \"f\", \"arguments\": {}} trailing</tool_call>",
	} {
		if got := parse(Hermes, []string{s}); !strings.Contains(got.Err, ErrMalformed.Error()) {
			t.Errorf("%q: %+v", s, got)
		}
	}
	p := NewParser(Hermes, func() string { return "" })
	p.Push("<tool_call>{}</tool_call>")
	if _, _, err := p.Close(); !errors.Is(err, ErrMalformed) {
		t.Fatalf("err %v", err)
	}
}

func TestLlama3JSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	call := `{"name": "get_weather", "parameters": {"city": "Oslo"}}`
	for _, text := range []string{call, "  " + call, PythonTag + call} {
		for range 50 {
			got := parse(Llama3JSON, splits(text, rng))
			if got.Content != "" || got.Err != "" || len(got.Calls) != 1 || got.Calls[0].Name != "get_weather" ||
				got.Calls[0].Arguments != `{"city": "Oslo"}` || got.Args[0] != `{"city": "Oslo"}` {
				t.Fatalf("%q: %+v", text, got)
			}
		}
	}
	if got := parse(Llama3JSON, splits("It is sunny.", rng)); got.Content != "It is sunny." || len(got.Calls) != 0 {
		t.Fatalf("text: %+v", got)
	}
}

// FuzzParser: any text, cut anywhere, gives what the whole text gives, and
// never panics.
func FuzzParser(f *testing.F) {
	f.Add("hi <tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>", uint64(1), true)
	f.Add(`{"name": "f", "parameters": {"x": [1, {"y": "}"}]}}`, uint64(2), false)
	f.Add("<tool_call><tool_call></tool_call>", uint64(3), true)
	f.Fuzz(func(t *testing.T, text string, seed uint64, hermes bool) {
		fm := Llama3JSON
		if hermes {
			fm = Hermes
		}
		whole := parse(fm, []string{text})
		cut := parse(fm, splits(text, rand.New(rand.NewPCG(seed, seed))))
		if !reflect.DeepEqual(whole, cut) {
			t.Fatalf("%q: whole %+v, cut %+v", text, whole, cut)
		}
		for i, c := range whole.Calls {
			if whole.Args[i] != c.Arguments || !json.Valid([]byte(c.Arguments)) {
				t.Fatalf("%q: call %d streamed %q, arguments %q", text, i, whole.Args[i], c.Arguments)
			}
		}
	})
}
