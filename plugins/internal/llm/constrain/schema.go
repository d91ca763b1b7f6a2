package constrain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ErrSchema is wrapped by every *SchemaError.
var ErrSchema = errors.New("constrain: unsupported or unsatisfiable JSON schema")

// SchemaError says where a schema cannot be compiled.
type SchemaError struct {
	Pointer string // JSON pointer to the schema object ("" is the root)
	Keyword string // the keyword at fault, if one is
	Reason  string
}

func (e *SchemaError) Error() string {
	at := e.Pointer
	if at == "" {
		at = `"" (the root)`
	}
	return fmt.Sprintf("constrain: schema: %s at %s", e.Reason, at)
}

func (e *SchemaError) Unwrap() error { return ErrSchema }

// Limits on the schema document, so any input compiles in bounded time.
const (
	maxSchemaBytes = 1 << 20
	maxSchemaDepth = 64   // nesting of subschemas
	maxBoundedRep  = 1000 // maxItems, maxLength unrolled
	maxExprs       = 200_000
)

// obj is a JSON object with its keys in document order.
type obj struct {
	keys []string
	vals map[string]any
}

func (o *obj) get(k string) (any, bool) {
	v, ok := o.vals[k]
	return v, ok
}

// parseJSON reads JSON keeping key order; numbers stay json.Number.
func parseJSON(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := parseValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err == nil {
		return nil, errors.New("data after the schema")
	}
	return v, nil
}

func parseValue(dec *json.Decoder, depth int) (any, error) {
	if depth > 2*maxSchemaDepth {
		return nil, errors.New("nested too deeply")
	}
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := t.(type) {
	case json.Delim:
		switch t {
		case '{':
			o := &obj{vals: map[string]any{}}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, _ := kt.(string)
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				if _, dup := o.vals[k]; dup {
					return nil, fmt.Errorf("duplicate key %q", k)
				}
				o.keys = append(o.keys, k)
				o.vals[k] = v
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return o, nil
		case '[':
			a := []any{}
			for dec.More() {
				v, err := parseValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				a = append(a, v)
			}
			if _, err := dec.Token(); err != nil {
				return nil, err
			}
			return a, nil
		}
		return nil, fmt.Errorf("unexpected %v", t)
	}
	return t, nil
}

// CompileSchema compiles a JSON Schema (draft 2020-12 vocabulary, the subset
// in the package documentation) to the grammar of the compact JSON texts it
// accepts. Unsupported keywords and unsatisfiable schemas are *SchemaError
// errors wrapping ErrSchema.
func CompileSchema(schema []byte) (*Grammar, error) {
	if len(schema) > maxSchemaBytes {
		return nil, &SchemaError{Reason: fmt.Sprintf("schema larger than %d bytes", maxSchemaBytes)}
	}
	doc, err := parseJSON(schema)
	if err != nil {
		return nil, &SchemaError{Reason: "not JSON: " + err.Error()}
	}
	c := &compiler{root: doc, refs: map[string]*gRule{}}
	e, err := c.schema(doc, "", 0)
	if err != nil {
		return nil, err
	}
	g := &Grammar{e: e}
	if _, err := g.program(); err != nil {
		return nil, &SchemaError{Keyword: "$ref", Reason: err.Error()}
	}
	return g, nil
}

type compiler struct {
	root  any
	refs  map[string]*gRule
	exprs int
}

func errAt(ptr, kw, format string, args ...any) *SchemaError {
	return &SchemaError{Pointer: ptr, Keyword: kw, Reason: fmt.Sprintf(format, args...)}
}

func escPtr(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

var annotations = map[string]bool{
	"title": true, "description": true, "default": true, "examples": true,
	"$schema": true, "$id": true, "$comment": true, "deprecated": true, "readOnly": true, "writeOnly": true,
}

var known = map[string]bool{
	"type": true, "properties": true, "required": true, "additionalProperties": true,
	"items": true, "prefixItems": true, "minItems": true, "maxItems": true,
	"enum": true, "const": true, "anyOf": true, "oneOf": true, "allOf": true,
	"$ref": true, "$defs": true, "definitions": true,
	"minLength": true, "maxLength": true, "pattern": true, "format": true,
	"minimum": true, "maximum": true, "exclusiveMinimum": true, "exclusiveMaximum": true,
	"nullable": true,
}

// schema compiles the subschema s found at ptr.
func (c *compiler) schema(s any, ptr string, depth int) (*gexpr, error) {
	if depth > maxSchemaDepth {
		return nil, errAt(ptr, "", "schemas nested deeper than %d", maxSchemaDepth)
	}
	c.exprs++
	if c.exprs > maxExprs {
		return nil, errAt(ptr, "", "schema too large")
	}
	switch s := s.(type) {
	case bool:
		if s {
			return anyValue(), nil
		}
		return nil, errAt(ptr, "", unsatisfiable)
	case *obj:
		return c.object(s, ptr, depth)
	}
	return nil, errAt(ptr, "", "a schema must be an object or a boolean")
}

func (c *compiler) object(s *obj, ptr string, depth int) (*gexpr, error) {
	for _, k := range s.keys {
		if !known[k] && !annotations[k] {
			return nil, errAt(ptr+"/"+escPtr(k), k, "unsupported keyword %q", k)
		}
	}
	for _, kw := range []string{"$defs", "definitions"} {
		if v, ok := s.get(kw); ok {
			if _, isObj := v.(*obj); !isObj {
				return nil, errAt(ptr+"/"+kw, kw, "%s must be an object", kw)
			}
		}
	}
	// The constraining keywords besides the combinators.
	var siblings []string
	for _, k := range s.keys {
		if known[k] && k != "$defs" && k != "definitions" && k != "anyOf" && k != "oneOf" && k != "allOf" && k != "$ref" {
			siblings = append(siblings, k)
		}
	}
	if ref, ok := s.get("$ref"); ok {
		if len(siblings) > 0 || has(s, "anyOf") || has(s, "oneOf") || has(s, "allOf") {
			// $ref beside other keywords applies both: allOf.
			return c.allOf(s, ptr, depth)
		}
		r, ok := ref.(string)
		if !ok {
			return nil, errAt(ptr+"/$ref", "$ref", "$ref must be a string")
		}
		return c.ref(r, ptr+"/$ref", depth)
	}
	if has(s, "allOf") {
		return c.allOf(s, ptr, depth)
	}
	for _, kw := range []string{"anyOf", "oneOf"} {
		v, ok := s.get(kw)
		if !ok {
			continue
		}
		branches, ok := v.([]any)
		if !ok || len(branches) == 0 {
			return nil, errAt(ptr+"/"+kw, kw, "%s must be a non-empty array", kw)
		}
		other := "oneOf"
		if kw == "oneOf" {
			other = "anyOf"
		}
		if has(s, other) {
			return nil, errAt(ptr, other, "anyOf and oneOf together are not supported")
		}
		var alts []*gexpr
		var firstErr error
		for i, b := range branches {
			bp := fmt.Sprintf("%s/%s/%d", ptr, kw, i)
			var e *gexpr
			var err error
			if len(siblings) > 0 { // each branch with the siblings: allOf
				merged, merr := c.merge(ptr, depth, []any{without(s, kw), b}, []string{ptr, bp})
				if merr != nil {
					return nil, merr
				}
				e, err = c.object(merged, bp, depth+1)
			} else {
				e, err = c.schema(b, bp, depth+1)
			}
			var se *SchemaError
			if errors.As(err, &se) && se.Reason == unsatisfiable {
				if firstErr == nil {
					firstErr = err
				}
				continue // a branch that admits nothing adds nothing
			}
			if err != nil {
				return nil, err
			}
			alts = append(alts, e)
		}
		if len(alts) == 0 {
			return nil, firstErr
		}
		return eAlt(alts...), nil
	}
	return c.typed(s, ptr, depth)
}

const unsatisfiable = "unsatisfiable: the schema false admits no value"

func has(s *obj, k string) bool { _, ok := s.vals[k]; return ok }

func without(s *obj, k string) *obj {
	o := &obj{vals: map[string]any{}}
	for _, key := range s.keys {
		if key != k {
			o.keys = append(o.keys, key)
			o.vals[key] = s.vals[key]
		}
	}
	return o
}

// ref compiles a local reference (a JSON pointer into the document). Each
// target becomes one rule, so recursion works.
func (c *compiler) ref(r, ptr string, depth int) (*gexpr, error) {
	target, tptr, err := c.resolve(r, ptr)
	if err != nil {
		return nil, err
	}
	if rule, ok := c.refs[tptr]; ok {
		return &gexpr{kind: gRef, rule: rule}, nil
	}
	rule := &gRule{}
	c.refs[tptr] = rule
	body, err := c.schema(target, tptr, depth+1)
	if err != nil {
		return nil, err
	}
	rule.body = body
	return &gexpr{kind: gRef, rule: rule}, nil
}

func (c *compiler) resolve(r, ptr string) (any, string, error) {
	if !strings.HasPrefix(r, "#") {
		return nil, "", errAt(ptr, "$ref", "only local references (#/...) are supported, not %q", r)
	}
	frag, err := url.PathUnescape(r[1:])
	if err != nil {
		return nil, "", errAt(ptr, "$ref", "bad reference %q", r)
	}
	if frag != "" && !strings.HasPrefix(frag, "/") {
		return nil, "", errAt(ptr, "$ref", "anchors are not supported: %q", r)
	}
	cur := c.root
	if frag != "" {
		for _, tok := range strings.Split(frag[1:], "/") {
			tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
			switch v := cur.(type) {
			case *obj:
				next, ok := v.get(tok)
				if !ok {
					return nil, "", errAt(ptr, "$ref", "reference %q: no %q", r, tok)
				}
				cur = next
			case []any:
				i, err := strconv.Atoi(tok)
				if err != nil || i < 0 || i >= len(v) {
					return nil, "", errAt(ptr, "$ref", "reference %q: no %q", r, tok)
				}
				cur = v[i]
			default:
				return nil, "", errAt(ptr, "$ref", "reference %q: no %q", r, tok)
			}
		}
	}
	return cur, frag, nil
}

// allOf merges the branches (and the schema's own keywords) into one
// schema: properties are merged (a property in several branches gets an
// allOf of its schemas), required lists joined, types intersected, bounds
// tightened; any other keyword must agree.
func (c *compiler) allOf(s *obj, ptr string, depth int) (*gexpr, error) {
	parts := []any{}
	ptrs := []string{}
	rest := s
	if v, ok := s.get("allOf"); ok {
		branches, ok := v.([]any)
		if !ok || len(branches) == 0 {
			return nil, errAt(ptr+"/allOf", "allOf", "allOf must be a non-empty array")
		}
		for i, b := range branches {
			parts = append(parts, b)
			ptrs = append(ptrs, fmt.Sprintf("%s/allOf/%d", ptr, i))
		}
		rest = without(rest, "allOf")
	}
	if r, ok := rest.get("$ref"); ok {
		parts = append(parts, &obj{keys: []string{"$ref"}, vals: map[string]any{"$ref": r}})
		ptrs = append(ptrs, ptr)
		rest = without(rest, "$ref")
	}
	parts = append(parts, rest)
	ptrs = append(ptrs, ptr)
	merged, err := c.merge(ptr, depth, parts, ptrs)
	if err != nil {
		return nil, err
	}
	return c.object(merged, ptr, depth+1)
}

// merge joins schemas into one, inlining $refs (not recursively: a
// recursive reference inside allOf is refused).
func (c *compiler) merge(ptr string, depth int, parts []any, ptrs []string) (*obj, error) {
	out := &obj{vals: map[string]any{}}
	set := func(k string, v any) {
		if _, ok := out.vals[k]; !ok {
			out.keys = append(out.keys, k)
		}
		out.vals[k] = v
	}
	var flat []*obj
	var flatPtrs []string
	var add func(p any, pp string, d int) error
	add = func(p any, pp string, d int) error {
		if d > maxSchemaDepth {
			return errAt(pp, "allOf", "allOf and $ref nested deeper than %d", maxSchemaDepth)
		}
		switch p := p.(type) {
		case bool:
			if !p {
				return errAt(pp, "", unsatisfiable)
			}
			return nil
		case *obj:
			for _, k := range p.keys {
				if !known[k] && !annotations[k] {
					return errAt(pp+"/"+escPtr(k), k, "unsupported keyword %q", k)
				}
			}
			if r, ok := p.get("$ref"); ok {
				rs, ok := r.(string)
				if !ok {
					return errAt(pp+"/$ref", "$ref", "$ref must be a string")
				}
				target, tptr, err := c.resolve(rs, pp+"/$ref")
				if err != nil {
					return err
				}
				if err := add(target, tptr, d+1); err != nil {
					return err
				}
				p = without(p, "$ref")
			}
			if a, ok := p.get("allOf"); ok {
				branches, ok := a.([]any)
				if !ok {
					return errAt(pp+"/allOf", "allOf", "allOf must be an array")
				}
				for i, b := range branches {
					if err := add(b, fmt.Sprintf("%s/allOf/%d", pp, i), d+1); err != nil {
						return err
					}
				}
				p = without(p, "allOf")
			}
			flat = append(flat, p)
			flatPtrs = append(flatPtrs, pp)
			return nil
		}
		return errAt(pp, "", "a schema must be an object or a boolean")
	}
	for i, p := range parts {
		if err := add(p, ptrs[i], depth); err != nil {
			return nil, err
		}
	}
	for i, p := range flat {
		pp := flatPtrs[i]
		for _, k := range p.keys {
			v := p.vals[k]
			old, seen := out.vals[k]
			if !seen || annotations[k] || k == "$defs" || k == "definitions" {
				set(k, v)
				continue
			}
			switch k {
			case "properties":
				po, ok1 := old.(*obj)
				pn, ok2 := v.(*obj)
				if !ok1 || !ok2 {
					return nil, errAt(pp+"/properties", k, "properties must be an object")
				}
				m := &obj{keys: slices.Clone(po.keys), vals: map[string]any{}}
				for kk, vv := range po.vals {
					m.vals[kk] = vv
				}
				for _, name := range pn.keys {
					if prev, ok := m.vals[name]; ok {
						m.vals[name] = &obj{keys: []string{"allOf"}, vals: map[string]any{"allOf": []any{prev, pn.vals[name]}}}
						continue
					}
					m.keys = append(m.keys, name)
					m.vals[name] = pn.vals[name]
				}
				set(k, m)
			case "required":
				ro, ok1 := old.([]any)
				rn, ok2 := v.([]any)
				if !ok1 || !ok2 {
					return nil, errAt(pp+"/required", k, "required must be an array")
				}
				joined := slices.Clone(ro)
				for _, x := range rn {
					if !slices.Contains(joined, x) {
						joined = append(joined, x)
					}
				}
				set(k, joined)
			case "type":
				to, err := typeList(old, pp)
				if err != nil {
					return nil, err
				}
				tn, err := typeList(v, pp)
				if err != nil {
					return nil, err
				}
				var both []any
				for _, t := range to {
					if slices.Contains(tn, t) || t == "integer" && slices.Contains(tn, "number") {
						both = append(both, t)
					} else if t == "number" && slices.Contains(tn, "integer") {
						both = append(both, "integer")
					}
				}
				if len(both) == 0 {
					return nil, errAt(pp+"/type", k, "allOf: no type is in every branch")
				}
				set(k, both)
			case "minimum", "minLength", "minItems", "exclusiveMinimum":
				set(k, numMax(old, v))
			case "maximum", "maxLength", "maxItems", "exclusiveMaximum":
				set(k, numMin(old, v))
			default:
				if !sameJSON(old, v) {
					return nil, errAt(pp+"/"+escPtr(k), k, "allOf: %q differs between branches", k)
				}
			}
		}
	}
	return out, nil
}

func numMax(a, b any) any {
	fa, oka := num(a)
	fb, okb := num(b)
	if oka && okb && fb > fa {
		return b
	}
	if !oka {
		return b
	}
	return a
}

func numMin(a, b any) any {
	fa, oka := num(a)
	fb, okb := num(b)
	if oka && okb && fb < fa {
		return b
	}
	if !oka {
		return b
	}
	return a
}

func num(v any) (float64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	f, err := n.Float64()
	return f, err == nil
}

func sameJSON(a, b any) bool {
	return string(canonical(a)) == string(canonical(b))
}

// canonical encodes a parsed value as compact JSON (keys in document order,
// numbers as written, no HTML escaping).
func canonical(v any) []byte {
	var buf bytes.Buffer
	var enc func(v any)
	enc = func(v any) {
		switch v := v.(type) {
		case *obj:
			buf.WriteByte('{')
			for i, k := range v.keys {
				if i > 0 {
					buf.WriteByte(',')
				}
				buf.Write(jsonString(k))
				buf.WriteByte(':')
				enc(v.vals[k])
			}
			buf.WriteByte('}')
		case []any:
			buf.WriteByte('[')
			for i, x := range v {
				if i > 0 {
					buf.WriteByte(',')
				}
				enc(x)
			}
			buf.WriteByte(']')
		case string:
			buf.Write(jsonString(v))
		case json.Number:
			buf.WriteString(v.String())
		case bool:
			buf.WriteString(strconv.FormatBool(v))
		case nil:
			buf.WriteString("null")
		}
	}
	enc(v)
	return buf.Bytes()
}

func jsonString(s string) []byte {
	var buf bytes.Buffer
	e := json.NewEncoder(&buf)
	e.SetEscapeHTML(false)
	_ = e.Encode(s) // a string always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

var allTypes = []string{"null", "boolean", "object", "array", "number", "string", "integer"}

func typeList(v any, ptr string) ([]string, error) {
	var out []string
	switch v := v.(type) {
	case string:
		out = []string{v}
	case []any:
		for _, x := range v {
			s, ok := x.(string)
			if !ok {
				return nil, errAt(ptr+"/type", "type", "type must be a string or an array of strings")
			}
			if !slices.Contains(out, s) {
				out = append(out, s)
			}
		}
	default:
		return nil, errAt(ptr+"/type", "type", "type must be a string or an array of strings")
	}
	for _, t := range out {
		if !slices.Contains(allTypes, t) {
			return nil, errAt(ptr+"/type", "type", "unknown type %q", t)
		}
	}
	if len(out) == 0 {
		return nil, errAt(ptr+"/type", "type", "type must not be empty")
	}
	return out, nil
}

// typed compiles a schema without combinators: enum/const, or each type.
func (c *compiler) typed(s *obj, ptr string, depth int) (*gexpr, error) {
	var types []string
	if v, ok := s.get("type"); ok {
		var err error
		if types, err = typeList(v, ptr); err != nil {
			return nil, err
		}
	}
	nullable := false
	if n, ok := s.get("nullable"); ok {
		b, isBool := n.(bool)
		if !isBool {
			return nil, errAt(ptr+"/nullable", "nullable", "nullable must be a boolean")
		}
		nullable = b
	}
	if nullable && types != nil && !slices.Contains(types, "null") {
		types = append(types, "null")
	}
	for _, kw := range []string{"enum", "const"} {
		v, ok := s.get(kw)
		if !ok {
			continue
		}
		values := []any{v}
		if kw == "enum" {
			arr, ok := v.([]any)
			if !ok {
				return nil, errAt(ptr+"/enum", "enum", "enum must be an array")
			}
			values = arr
		}
		if kw == "enum" && has(s, "const") {
			return nil, errAt(ptr, "const", "enum and const together are not supported")
		}
		var alts []*gexpr
		seen := map[string]bool{}
		for _, x := range values {
			if types != nil && !slices.Contains(types, jsonType(x)) && !(jsonType(x) == "integer" && slices.Contains(types, "number")) {
				continue
			}
			lit := string(canonical(x))
			if seen[lit] {
				continue
			}
			seen[lit] = true
			alts = append(alts, eLit(lit))
		}
		if len(alts) == 0 {
			return nil, errAt(ptr+"/"+kw, kw, "%s: no value of the allowed types", kw)
		}
		return eAlt(alts...), nil
	}
	if types == nil {
		types = inferTypes(s)
		if nullable && !slices.Contains(types, "any") {
			types = append(types, "null")
		}
	}
	var alts []*gexpr
	for _, t := range types {
		if t == "integer" && slices.Contains(types, "number") {
			continue // integers are numbers
		}
		e, err := c.ofType(t, s, ptr, depth)
		if err != nil {
			return nil, err
		}
		alts = append(alts, e)
	}
	return eAlt(alts...), nil
}

func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case *obj:
		return "object"
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return "integer"
		}
		if f, err := v.Float64(); err == nil && f == math.Trunc(f) && !strings.ContainsAny(v.String(), ".eE") {
			return "integer"
		}
		return "number"
	}
	return ""
}

// inferTypes: without "type", the types whose keywords appear (generating
// only those is a subset of what the schema allows), else any value.
func inferTypes(s *obj) []string {
	var out []string
	add := func(t string, kws ...string) {
		for _, k := range kws {
			if has(s, k) {
				out = append(out, t)
				return
			}
		}
	}
	add("object", "properties", "required", "additionalProperties")
	add("array", "items", "prefixItems", "minItems", "maxItems")
	add("string", "minLength", "maxLength", "pattern", "format")
	add("number", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
	if out == nil {
		return []string{"any"}
	}
	return out
}

func (c *compiler) ofType(t string, s *obj, ptr string, depth int) (*gexpr, error) {
	switch t {
	case "any":
		return anyValue(), nil
	case "null":
		return eLit("null"), nil
	case "boolean":
		return eAlt(eLit("true"), eLit("false")), nil
	case "integer", "number":
		b, err := bounds(s, ptr)
		if err != nil {
			return nil, err
		}
		r := integerRx(b)
		if t == "number" {
			r = numberRx(b)
		}
		if r == nil {
			return nil, errAt(ptr, "minimum", "no %s is within the bounds", t)
		}
		e, err := eTerm(r)
		if err != nil {
			return nil, errAt(ptr, "", "%s bounds: %v", t, err)
		}
		return e, nil
	case "string":
		return c.str(s, ptr)
	case "array":
		return c.array(s, ptr, depth)
	case "object":
		return c.obj(s, ptr, depth)
	}
	panic("unreachable")
}

func bounds(s *obj, ptr string) (numBounds, error) {
	var b numBounds
	get := func(kw string) (float64, bool, error) {
		v, ok := s.get(kw)
		if !ok {
			return 0, false, nil
		}
		f, ok := num(v)
		if !ok || math.IsInf(f, 0) || math.IsNaN(f) {
			return 0, false, errAt(ptr+"/"+kw, kw, "%s must be a number", kw)
		}
		if math.Abs(f) > maxExactBound {
			return 0, false, errAt(ptr+"/"+kw, kw, "%s beyond ±2^53 is not supported", kw)
		}
		return f, true, nil
	}
	var err error
	if b.min, b.hasMin, err = get("minimum"); err != nil {
		return b, err
	}
	if b.max, b.hasMax, err = get("maximum"); err != nil {
		return b, err
	}
	if v, ok, err := get("exclusiveMinimum"); err != nil {
		return b, err
	} else if ok && (!b.hasMin || v >= b.min) {
		b.min, b.hasMin, b.exclMin = v, true, true
	}
	if v, ok, err := get("exclusiveMaximum"); err != nil {
		return b, err
	} else if ok && (!b.hasMax || v <= b.max) {
		b.max, b.hasMax, b.exclMax = v, true, true
	}
	return b, nil
}

func count(s *obj, ptr, kw string) (int, bool, error) {
	v, ok := s.get(kw)
	if !ok {
		return 0, false, nil
	}
	f, ok := num(v)
	if !ok || f < 0 || f != math.Trunc(f) {
		return 0, false, errAt(ptr+"/"+kw, kw, "%s must be a non-negative integer", kw)
	}
	if f > maxBoundedRep {
		return 0, false, errAt(ptr+"/"+kw, kw, "%s above %d is not supported", kw, maxBoundedRep)
	}
	return int(f), true, nil
}

// countRange reads a pair of count bounds (max -1 when absent).
func countRange(s *obj, ptr, minKw, maxKw string) (lo, hi int, hasMax bool, err error) {
	if lo, _, err = count(s, ptr, minKw); err != nil {
		return 0, 0, false, err
	}
	if hi, hasMax, err = count(s, ptr, maxKw); err != nil {
		return 0, 0, false, err
	}
	if !hasMax {
		hi = -1
	}
	if hasMax && lo > hi {
		return 0, 0, false, errAt(ptr+"/"+minKw, minKw, "%s %d > %s %d", minKw, lo, maxKw, hi)
	}
	return lo, hi, hasMax, nil
}

// str compiles a string schema: the quoted JSON string whose decoded
// contents satisfy the length bounds (in code points), the pattern and the
// format.
func (c *compiler) str(s *obj, ptr string) (*gexpr, error) {
	minL, maxL, hasMax, err := countRange(s, ptr, "minLength", "maxLength")
	if err != nil {
		return nil, err
	}
	quoted := func(body *rx) *rx { return rxSeqOf(rxLit(`"`), body, rxLit(`"`)) }
	var d *dfa
	if minL > 0 || hasMax || (!has(s, "pattern") && !has(s, "format")) {
		if d, err = stringDFA(minL, maxL); err != nil {
			return nil, errAt(ptr, "maxLength", "string length bounds: %v", err)
		}
	}
	var parts []*rx
	if v, ok := s.get("pattern"); ok {
		p, isStr := v.(string)
		if !isStr {
			return nil, errAt(ptr+"/pattern", "pattern", "pattern must be a string")
		}
		r, err := patternRx(p)
		if err != nil {
			return nil, errAt(ptr+"/pattern", "pattern", "%v", err)
		}
		parts = append(parts, quoted(r))
	}
	if v, ok := s.get("format"); ok {
		f, isStr := v.(string)
		if !isStr {
			return nil, errAt(ptr+"/format", "format", "format must be a string")
		}
		r, ok := formatRx(f)
		if !ok {
			return nil, errAt(ptr+"/format", "format", "unsupported format %q (supported: %s)", f, supportedFormats)
		}
		parts = append(parts, quoted(r))
	}
	for _, p := range parts {
		pd, err := compileRx(p)
		if err != nil {
			return nil, errAt(ptr, "", "string constraints too large: %v", err)
		}
		if pd == nil {
			return nil, errAt(ptr, "pattern", "no string matches the constraints")
		}
		if d == nil {
			d = pd
		} else if d, err = intersect(d, pd); err != nil {
			return nil, errAt(ptr, "", "string constraints too large: %v", err)
		}
		if d == nil {
			return nil, errAt(ptr, "pattern", "no string matches the constraints")
		}
	}
	return eDFA(d), nil
}

// jsonChar is the automaton of one character of a JSON string.
var jsonChar = sync.OnceValues(func() (*dfa, error) { return compileRx(jsonCharsRx(anyRune)) })

// stringDFA is the automaton of the JSON strings of min to max (< 0: any
// number of) characters.
func stringDFA(min, max int) (*dfa, error) {
	char, err := jsonChar()
	if err != nil {
		return nil, err
	}
	return quotedRepeat(char, min, max)
}

// Separators: compact JSON, except that one optional space may follow a
// comma or colon (json.dumps' default ", " and ": " style).
var (
	rxColon = rxSeqOf(rxLit(":"), rxOpt(rxLit(" ")))
	rxComma = rxSeqOf(rxLit(","), rxOpt(rxLit(" ")))
)

func eComma() *gexpr {
	e, _ := eTerm(rxComma) // tiny, cannot fail
	return e
}

func (c *compiler) array(s *obj, ptr string, depth int) (*gexpr, error) {
	minI, maxI, hasMax, err := countRange(s, ptr, "minItems", "maxItems")
	if err != nil {
		return nil, err
	}
	var prefix []*gexpr
	if v, ok := s.get("prefixItems"); ok {
		arr, isArr := v.([]any)
		if !isArr {
			return nil, errAt(ptr+"/prefixItems", "prefixItems", "prefixItems must be an array")
		}
		for i, it := range arr {
			if hasMax && i >= maxI {
				break
			}
			e, err := c.schema(it, fmt.Sprintf("%s/prefixItems/%d", ptr, i), depth+1)
			if err != nil {
				return nil, err
			}
			prefix = append(prefix, e)
		}
	}
	var item *gexpr // nil: no items beyond the prefix
	if v, ok := s.get("items"); !ok {
		item = anyValue()
	} else if b, isBool := v.(bool); !isBool || b {
		if item, err = c.schema(v, ptr+"/items", depth+1); err != nil {
			return nil, err
		}
	}
	if item == nil {
		if minI > len(prefix) {
			return nil, errAt(ptr+"/minItems", "minItems", "minItems %d but items is false after %d prefixItems", minI, len(prefix))
		}
		if !hasMax || maxI > len(prefix) {
			maxI, hasMax = len(prefix), true
		}
	}
	k := len(prefix)
	t := max(k, minI)
	elemAt := func(i int) *gexpr {
		if i < k {
			return prefix[i]
		}
		return item
	}
	comma := eComma()
	// tail: the elements after the first t, up to maxI.
	var a *gexpr
	if hasMax && maxI == t {
		a = eEmpty
	} else {
		more := -1
		if hasMax {
			more = maxI - t
		}
		if t == 0 {
			rest := -1
			if hasMax {
				rest = maxI - 1
			}
			a = eOpt(eSeq(item, eRep(eSeq(comma, item), 0, rest)))
		} else {
			a = eRep(eSeq(comma, item), 0, more)
		}
	}
	for i := t - 1; i >= 0; i-- {
		step := eSeq(elemAt(i), a)
		if i > 0 {
			step = eSeq(comma, elemAt(i), a)
		}
		if i >= minI {
			a = eAlt(step, eEmpty)
		} else {
			a = step
		}
	}
	return eSeq(eLit("["), a, eLit("]")), nil
}

type prop struct {
	name     string
	value    *gexpr
	required bool
}

func (c *compiler) obj(s *obj, ptr string, depth int) (*gexpr, error) {
	var props []prop
	index := map[string]int{}
	if v, ok := s.get("properties"); ok {
		po, isObj := v.(*obj)
		if !isObj {
			return nil, errAt(ptr+"/properties", "properties", "properties must be an object")
		}
		for _, name := range po.keys {
			e, err := c.schema(po.vals[name], ptr+"/properties/"+escPtr(name), depth+1)
			if err != nil {
				return nil, err
			}
			index[name] = len(props)
			props = append(props, prop{name: name, value: e})
		}
	}
	var additional *gexpr // nil: no additional properties
	if v, ok := s.get("additionalProperties"); ok {
		if b, isBool := v.(bool); !isBool || b {
			e, err := c.schema(v, ptr+"/additionalProperties", depth+1)
			if err != nil {
				return nil, err
			}
			additional = e
		}
	}
	if v, ok := s.get("required"); ok {
		arr, isArr := v.([]any)
		if !isArr {
			return nil, errAt(ptr+"/required", "required", "required must be an array of strings")
		}
		for _, x := range arr {
			name, isStr := x.(string)
			if !isStr {
				return nil, errAt(ptr+"/required", "required", "required must be an array of strings")
			}
			i, ok := index[name]
			if !ok {
				if additional == nil {
					return nil, errAt(ptr+"/required", "required", "required property %q is not allowed (not in properties, no additionalProperties)", name)
				}
				index[name] = len(props)
				props = append(props, prop{name: name, value: additional})
				i = len(props) - 1
			}
			props[i].required = true
		}
	}
	comma := eComma()
	colon, _ := eTerm(rxColon)
	pair := func(p prop) *gexpr { return eSeq(eLit(string(jsonString(p.name))), colon, p.value) }
	// After the declared properties: additional ones, keys other than the
	// declared names.
	restEnd, firstEnd := eEmpty, eEmpty
	if additional != nil {
		key, err := stringDFA(0, -1)
		if err != nil {
			return nil, errAt(ptr, "additionalProperties", "%v", err)
		}
		if len(props) > 0 {
			var names []*rx
			for _, p := range props {
				names = append(names, rxLit(string(jsonString(p.name))))
			}
			declared, err := compileRx(rxAltOf(names...))
			if err != nil {
				return nil, errAt(ptr, "properties", "%v", err)
			}
			if key, err = minus(key, declared); err != nil {
				return nil, errAt(ptr, "properties", "%v", err)
			}
		}
		extra := eSeq(eDFA(key), colon, additional)
		restEnd = eRep(eSeq(comma, extra), 0, -1)
		firstEnd = eOpt(eSeq(extra, restEnd))
	}
	rest, first := restEnd, firstEnd
	for i := len(props) - 1; i >= 0; i-- {
		p := pair(props[i])
		r := eSeq(comma, p, rest)
		f := eSeq(p, rest)
		if !props[i].required {
			r = eAlt(r, rest)
			f = eAlt(f, first)
		}
		rest, first = r, f
	}
	return eSeq(eLit("{"), first, eLit("}")), nil
}

// anyValue is the grammar of any JSON value (compact, with the optional
// space after commas and colons).
var anyValue = sync.OnceValue(func() *gexpr {
	value := &gRule{}
	ref := &gexpr{kind: gRef, rule: value}
	plain, err := stringDFA(0, -1)
	if err != nil {
		panic(err)
	}
	str := eDFA(plain)
	comma := eComma()
	colon := mustTerm(rxColon)
	pair := eSeq(str, colon, ref)
	object := eSeq(eLit("{"), eOpt(eSeq(pair, eRep(eSeq(comma, pair), 0, -1))), eLit("}"))
	array := eSeq(eLit("["), eOpt(eSeq(ref, eRep(eSeq(comma, ref), 0, -1))), eLit("]"))
	number := mustTerm(numberRx(numBounds{}))
	value.body = eAlt(object, array, str, number, eLit("true"), eLit("false"), eLit("null"))
	return ref
})

func mustTerm(r *rx) *gexpr {
	e, err := eTerm(r)
	if err != nil {
		panic(err)
	}
	return e
}

// JSONValue is the grammar of any JSON value.
func JSONValue() *Grammar { return &Grammar{e: anyValue()} }

// JSONObject is the grammar of any JSON object (response_format
// json_object).
var jsonObject = sync.OnceValue(func() *Grammar {
	g, err := CompileSchema([]byte(`{"type":"object","additionalProperties":true}`))
	if err != nil {
		panic(err)
	}
	return g
})

// JSONObject is the grammar of any JSON object (response_format
// json_object). It is one shared grammar.
func JSONObject() *Grammar { return jsonObject() }
