package toolcall

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Format is a model family's tool-call syntax.
type Format int

const (
	// None: the template cannot render tools.
	None Format = iota
	// Hermes: <tool_call>{"name": …, "arguments": …}</tool_call>.
	Hermes
	// Llama3JSON: the reply is {"name": …, "parameters": …}.
	Llama3JSON
)

func (f Format) String() string {
	switch f {
	case Hermes:
		return "hermes"
	case Llama3JSON:
		return "llama3-json"
	}
	return "none"
}

// Envelope markers.
const (
	HermesOpen  = "<tool_call>"
	HermesClose = "</tool_call>"
	PythonTag   = "<|python_tag|>"
)

// Detect names the tool-call format a chat template renders and expects:
// None when the template does not use the tools variable at all.
func Detect(template string) Format {
	if !strings.Contains(template, "tools") {
		return None
	}
	switch {
	case strings.Contains(template, HermesOpen):
		return Hermes
	case strings.Contains(template, `"parameters"`) || strings.Contains(template, PythonTag):
		return Llama3JSON
	}
	return None
}

// ErrMalformed reports a tool-call envelope that does not hold a call: bad
// JSON, no name, arguments that are not an object, or the end of the text
// inside an envelope.
var ErrMalformed = errors.New("toolcall: malformed tool call")

// Call is a complete tool call.
type Call struct {
	ID        string
	Name      string
	Arguments string // a JSON object
}

// Delta is one piece of a streamed reply: Content text, or a piece of the
// call at Index (its first piece carries ID and Name).
type Delta struct {
	Content   string
	Call      bool
	Index     int
	ID, Name  string
	Arguments string
}

// Parser splits streamed text into content and tool calls.
type Parser struct {
	f      Format
	newID  func() string
	open   string // the envelope opener being looked for
	close  string // its closer ("" for Llama3JSON: the text's end)
	argKey string

	pending string   // content held back: could start an envelope
	in      bool     // inside an envelope
	body    []byte   // the envelope's text so far
	scan    argsScan // streams the arguments out of body
	calls   []Call
	started bool // the reply has begun (Llama3JSON decides on its first non-space byte)
	str     bool // body ends inside a JSON string
	esc     bool // ... just after a backslash
	err     error
}

// NewParser returns a parser for format f; newID names each call (OpenAI
// ids look like "call_…").
func NewParser(f Format, newID func() string) *Parser {
	p := &Parser{f: f, newID: newID}
	switch f {
	case Hermes:
		p.open, p.close, p.argKey = HermesOpen, HermesClose, "arguments"
	case Llama3JSON:
		p.argKey = "parameters"
	}
	return p
}

// Push adds the next piece of generated text and returns what may be
// streamed now.
func (p *Parser) Push(text string) []Delta {
	if p.err != nil || text == "" {
		return nil
	}
	switch p.f {
	case Hermes:
		return p.pushHermes(text)
	case Llama3JSON:
		return p.pushLlama(text)
	}
	return []Delta{{Content: text}}
}

func (p *Parser) pushHermes(text string) []Delta {
	var out []Delta
	s := p.pending + text
	p.pending = ""
	for s != "" {
		if !p.in {
			i := strings.Index(s, p.open)
			if i < 0 {
				hold := partialSuffix(s, p.open)
				out = p.content(out, s[:len(s)-hold])
				p.pending = s[len(s)-hold:]
				return out
			}
			if i > 0 {
				out = p.content(out, s[:i])
			}
			p.beginCall()
			s = s[i+len(p.open):]
			continue
		}
		// Inside: look for the closer outside the call's JSON strings (an
		// argument may contain the closer's text), holding back a partial
		// one.
		i := p.closerIndex(s)
		chunk := s
		if i >= 0 {
			chunk = s[:i]
		} else if hold := partialSuffix(s, p.close); hold > 0 {
			chunk = s[:len(s)-hold]
			p.pending = s[len(s)-hold:]
		}
		out = p.feed(out, chunk)
		if i < 0 {
			return out
		}
		out = p.endCall(out)
		s = s[i+len(p.close):]
		if p.err != nil {
			return out
		}
	}
	return out
}

func (p *Parser) pushLlama(text string) []Delta {
	var out []Delta
	if !p.started {
		s := strings.TrimLeft(p.pending+text, " \t\r\n")
		switch {
		case s == "":
			p.pending += text
			return nil
		case strings.HasPrefix(s, PythonTag):
			s = s[len(PythonTag):]
		case strings.HasPrefix(PythonTag, s):
			p.pending += text
			return nil
		case s[0] != '{':
			p.started = true
			out = append(out, Delta{Content: p.pending + text})
			p.pending = ""
			return out
		}
		p.started, p.pending = true, ""
		p.beginCall()
		return p.feed(out, s)
	}
	if !p.in {
		return []Delta{{Content: text}}
	}
	return p.feed(out, text)
}

func (p *Parser) beginCall() {
	p.in = true
	p.body = p.body[:0]
	p.scan = argsScan{key: p.argKey}
	p.str, p.esc = false, false
}

// closerIndex is the index in s, the text after the envelope's body so
// far, of the first closer outside a JSON string, or -1.
func (p *Parser) closerIndex(s string) int {
	str, esc := p.str, p.esc
	for i := 0; i < len(s); i++ {
		if !str && strings.HasPrefix(s[i:], p.close) {
			return i
		}
		str, esc = jsonStringState(str, esc, s[i])
	}
	return -1
}

// jsonStringState advances whether JSON text is inside a string (and just
// after a backslash in it) by one byte.
func jsonStringState(str, esc bool, c byte) (bool, bool) {
	switch {
	case esc:
		return true, false
	case str && c == '\\':
		return true, true
	case c == '"':
		return !str, false
	}
	return str, false
}

// feed adds envelope text and streams what the scanner can tell.
func (p *Parser) feed(out []Delta, chunk string) []Delta {
	p.body = append(p.body, chunk...)
	for i := 0; i < len(chunk); i++ {
		p.str, p.esc = jsonStringState(p.str, p.esc, chunk[i])
	}
	idx := len(p.calls)
	r := scanTop(p.body, p.scan.key)
	if !p.scan.named && r.named {
		p.scan.named = true
		p.scan.id = p.newID()
		out = append(out, Delta{Call: true, Index: idx, ID: p.scan.id, Name: r.name})
	}
	if p.scan.named {
		if a := p.scan.newArgs(p.body, r); a != "" {
			out = append(out, Delta{Call: true, Index: idx, Arguments: a})
		}
	}
	return out
}

// endCall finishes the envelope: the whole body must be a call.
func (p *Parser) endCall(out []Delta) []Delta {
	p.in = false
	c, err := parseCall(p.body, p.argKey)
	if err != nil {
		p.err = err
		return out
	}
	idx := len(p.calls)
	if !p.scan.named {
		p.scan.id = p.newID()
		out = append(out, Delta{Call: true, Index: idx, ID: p.scan.id, Name: c.Name})
	}
	// Whatever the streaming scan did not release (arguments before the
	// name, or its tail) goes out now, so the pieces add up to Arguments.
	rest, ok := strings.CutPrefix(c.Arguments, p.scan.sent)
	if !ok {
		p.err = fmt.Errorf("%w: streamed arguments %q are not a prefix of %q", ErrMalformed, p.scan.sent, c.Arguments)
		return out
	}
	if rest != "" {
		out = append(out, Delta{Call: true, Index: idx, Arguments: rest})
	}
	c.ID = p.scan.id
	p.calls = append(p.calls, c)
	return out
}

// Close ends the text: it returns the last deltas (held-back content, the
// rest of a Llama3JSON call) and the complete calls.
func (p *Parser) Close() ([]Delta, []Call, error) {
	var out []Delta
	if p.err == nil {
		switch {
		case p.f == Llama3JSON && p.in:
			out = p.endCall(out)
		case p.in:
			p.err = fmt.Errorf("%w: the text ended inside %s", ErrMalformed, p.open)
		default:
			out = p.content(out, p.pending)
		}
		p.pending = ""
	}
	return out, p.calls, p.err
}

// content adds content text. Once a call has been seen, text that is only
// white space (the newlines between envelopes) is not content.
func (p *Parser) content(out []Delta, text string) []Delta {
	if text == "" || (len(p.calls) > 0 && strings.TrimSpace(text) == "") {
		return out
	}
	return append(out, Delta{Content: text})
}

// parseCall reads an envelope's body: {"name": …, argKey: {…}}.
func parseCall(body []byte, argKey string) (Call, error) {
	var raw map[string]json.RawMessage
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(&raw); err != nil {
		return Call{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if d.More() || strings.TrimSpace(string(body[d.InputOffset():])) != "" {
		return Call{}, fmt.Errorf("%w: text after the call's JSON object", ErrMalformed)
	}
	var name string
	if err := json.Unmarshal(raw["name"], &name); err != nil || name == "" {
		return Call{}, fmt.Errorf("%w: no function name", ErrMalformed)
	}
	args := bytes.TrimSpace(raw[argKey])
	if len(args) == 0 || args[0] != '{' {
		return Call{}, fmt.Errorf("%w: %s of %s is not a JSON object", ErrMalformed, argKey, name)
	}
	return Call{Name: name, Arguments: string(args)}, nil
}

// partialSuffix is the length of the longest suffix of s that is a proper
// prefix of marker.
func partialSuffix(s, marker string) int {
	for k := min(len(marker)-1, len(s)); k > 0; k-- {
		if strings.HasSuffix(s, marker[:k]) {
			return k
		}
	}
	return 0
}
