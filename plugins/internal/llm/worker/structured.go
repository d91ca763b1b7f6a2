package worker

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/dsmil/l7/plugins/internal/llm/constrain"
	"github.com/dsmil/l7/plugins/internal/llm/engine"
	"github.com/dsmil/l7/plugins/internal/llm/toolcall"
	"github.com/dsmil/l7/sdk"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// maxParallelCalls bounds the tool calls one reply may make when
// parallel_tool_calls allows several.
const maxParallelCalls = 8

// constraint is the grammar a request's output must follow, as an engine
// constraint for one generation; nil for free text. response_format
// json_object or json_schema constrains the whole reply; tool_choice
// "required" or a named function constrains it to tool-call envelopes in
// the template's format, each call's arguments by its tool's parameters;
// tool_choice "auto" (the default with tools) leaves the reply free until
// the model opens an envelope and constrains it from there (a lazy
// grammar).
func (st *state) constraint(p *l7v1.L7ChatRequest, tools toolUse) (engine.Constraint, error) {
	g, lazy, err := st.cachedGrammar(p, tools)
	if g == nil || err != nil {
		return nil, err
	}
	var c engine.Constraint
	if lazy {
		trigger, atStart := toolcall.HermesOpen, false
		if tools.format == toolcall.Llama3JSON {
			trigger, atStart = "{", true // the call is the whole reply
		}
		c, err = constrain.NewLazy(g, st.vocab, trigger, atStart)
	} else {
		c, err = constrain.NewMatcher(g, st.vocab)
	}
	if err != nil {
		param := "tools" // the grammar is the tool-call envelopes unless a JSON format was asked for
		if t := p.GetResponseFormat().GetType(); t != "" && t != "text" {
			param = "response_format"
		}
		return nil, sdk.InvalidParam(param, "the output grammar cannot be matched: %v", err)
	}
	return c, nil
}

// cachedGrammar is grammar, from st.grammars when a recent request asked
// for the same output (the same schema, or the same tools and choice): a
// compiled grammar is immutable and shared, so a client that sends its
// schema or its tools with every request compiles them once.
func (st *state) cachedGrammar(p *l7v1.L7ChatRequest, tools toolUse) (*constrain.Grammar, bool, error) {
	key := grammarKey(p, tools)
	if e, ok := st.grammars.get(key); ok {
		return e.g, e.lazy, nil
	}
	g, lazy, err := st.grammar(p, tools)
	if err == nil && g != nil {
		st.grammars.put(key, cachedGrammar{g, lazy})
	}
	return g, lazy, err
}

// grammarKey is a digest of everything grammar reads from a request.
func grammarKey(p *l7v1.L7ChatRequest, tools toolUse) [32]byte {
	h := sha256.New()
	field := func(s string) { fmt.Fprintf(h, "%d:%s", len(s), s) }
	rf := p.GetResponseFormat()
	field(rf.GetType())
	field(rf.GetSchemaJson())
	field(fmt.Sprint(tools.call, tools.format, p.GetToolChoice().GetMode(), p.ParallelToolCalls == nil || p.GetParallelToolCalls()))
	field(p.GetToolChoice().GetFunctionName())
	for _, t := range p.GetTools() {
		field(t.GetFunction().GetName())
		field(t.GetFunction().GetParametersJson())
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

type cachedGrammar struct {
	g    *constrain.Grammar
	lazy bool
}

// grammarCacheSize bounds the grammars a plugin keeps (least recently used
// out first).
const grammarCacheSize = 64

// grammarCache is a small LRU of compiled grammars; the zero value is ready.
type grammarCache struct {
	mu    sync.Mutex
	order [][32]byte // least recently used first
	m     map[[32]byte]cachedGrammar
}

func (c *grammarCache) get(k [32]byte) (cachedGrammar, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if ok {
		c.touch(k)
	}
	return e, ok
}

func (c *grammarCache) put(k [32]byte, e cachedGrammar) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[[32]byte]cachedGrammar{}
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= grammarCacheSize {
		delete(c.m, c.order[0])
		c.order = c.order[1:]
	}
	c.m[k] = e
	c.touch(k)
}

// touch makes k the most recently used. Called with mu held.
func (c *grammarCache) touch(k [32]byte) {
	if i := slices.Index(c.order, k); i >= 0 {
		c.order = slices.Delete(c.order, i, i+1)
	}
	c.order = append(c.order, k)
}

// grammar is the request's output grammar (nil: free text) and whether it
// applies lazily, from the first tool-call envelope on.
func (st *state) grammar(p *l7v1.L7ChatRequest, tools toolUse) (g *constrain.Grammar, lazy bool, err error) {
	switch rf := p.GetResponseFormat(); rf.GetType() {
	case "json_object":
		return constrain.JSONObject(), false, nil
	case "json_schema":
		g, err := constrain.CompileSchema([]byte(rf.GetSchemaJson()))
		if err != nil {
			return nil, false, schemaParam("response_format", "response_format.json_schema.schema", err)
		}
		return g, false, nil
	case "", "text":
	default:
		return nil, false, sdk.InvalidParam("response_format", "response_format %q is not supported", rf.GetType())
	}
	if !tools.call {
		return nil, false, nil
	}
	mode := p.GetToolChoice().GetMode()
	lazy = mode != l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_REQUIRED && mode != l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_FUNCTION
	var calls []*constrain.Grammar
	for i, t := range p.GetTools() {
		fn := t.GetFunction()
		if mode == l7v1.ToolChoiceMode_TOOL_CHOICE_MODE_FUNCTION && fn.GetName() != p.GetToolChoice().GetFunctionName() {
			continue
		}
		args := constrain.JSONObject()
		if s := fn.GetParametersJson(); s != "" {
			var err error
			if args, err = constrain.CompileSchema([]byte(s)); err != nil {
				return nil, false, schemaParam("tools", fmt.Sprintf("tools[%d].function.parameters", i), err)
			}
		}
		calls = append(calls, envelope(tools.format, fn.GetName(), args))
	}
	if len(calls) == 0 {
		return nil, false, sdk.InvalidParam("tool_choice", "tool_choice names function %q, which is not in tools", p.GetToolChoice().GetFunctionName())
	}
	call := constrain.Alt(calls...)
	if tools.format == toolcall.Hermes && (p.ParallelToolCalls == nil || p.GetParallelToolCalls()) {
		return constrain.Seq(call, constrain.Repeat(constrain.Seq(constrain.Literal("\n"), call), 0, maxParallelCalls-1)), lazy, nil
	}
	return call, lazy, nil
}

// envelope is one call of function name in format f, its arguments
// following args: the text toolcall.Parser reads back.
func envelope(f toolcall.Format, name string, args *constrain.Grammar) *constrain.Grammar {
	n, _ := json.Marshal(name)
	if f == toolcall.Llama3JSON {
		return constrain.Seq(constrain.Literal(`{"name": `+string(n)+`, "parameters": `), args, constrain.Literal("}"))
	}
	return constrain.Seq(constrain.Literal(toolcall.HermesOpen+"\n"+`{"name": `+string(n)+`, "arguments": `), args,
		constrain.Literal("}\n"+toolcall.HermesClose))
}

// schemaParam is the 400 for a schema the compiler refused, naming the
// keyword and its JSON pointer under the request field at.
func schemaParam(param, at string, err error) error {
	var se *constrain.SchemaError
	if errors.As(err, &se) {
		kw := ""
		if se.Keyword != "" {
			kw = fmt.Sprintf(" (keyword %q)", se.Keyword)
		}
		return sdk.InvalidParam(param, "%s%s at JSON pointer %q: %s", at, kw, se.Pointer, se.Reason)
	}
	return sdk.InvalidParam(param, "%s: %v", at, err)
}
