package chattmpl

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/nikolalohinski/gonja/v2/exec"
)

// filterToJSON is Hugging Face's tojson filter: Python's json.dumps with
// ensure_ascii=False, separators ", " and ": " ("," and ": " with indent),
// optional indent, separators and sort_keys arguments. Jinja dict literals
// keep their key order; Go maps have none, so their keys are always sorted.
func filterToJSON(_ *exec.Evaluator, in *exec.Value, params *exec.VarArgs) *exec.Value {
	if in.IsError() {
		return in
	}
	var indent *exec.Value
	var ensureASCII, sortKeys bool
	var separators *exec.Value
	if err := params.Take(
		exec.KeywordArgument("indent", exec.AsValue(nil), func(v *exec.Value) error { indent = v; return nil }),
		exec.KeywordArgument("ensure_ascii", exec.AsValue(false), func(v *exec.Value) error { ensureASCII = v.IsTrue(); return nil }),
		exec.KeywordArgument("separators", exec.AsValue(nil), func(v *exec.Value) error { separators = v; return nil }),
		exec.KeywordArgument("sort_keys", exec.AsValue(false), func(v *exec.Value) error { sortKeys = v.IsTrue(); return nil }),
	); err != nil {
		return exec.AsValue(exec.ErrInvalidCall(err))
	}
	e := jsonEncoder{ascii: ensureASCII, sortKeys: sortKeys, item: ", ", key: ": "}
	if !indent.IsNil() {
		if !indent.IsInteger() {
			return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("tojson: indent must be an integer, got %s", indent.String())))
		}
		e.indent = strings.Repeat(" ", indent.Integer())
		e.item = ","
	}
	if !separators.IsNil() {
		if !separators.IsList() || separators.Len() != 2 {
			return exec.AsValue(exec.ErrInvalidCall(fmt.Errorf("tojson: separators must be a pair of strings")))
		}
		e.item, e.key = separators.Index(0).String(), separators.Index(1).String()
	}
	if err := e.encode(reflect.ValueOf(in.Interface()), 0); err != nil {
		return exec.AsValue(exec.ErrInvalidCall(err))
	}
	return exec.AsSafeValue(e.b.String())
}

type jsonEncoder struct {
	b         strings.Builder
	indent    string
	item, key string
	ascii     bool
	sortKeys  bool
}

func (e *jsonEncoder) newline(depth int) {
	if e.indent == "" {
		return
	}
	e.b.WriteByte('\n')
	for i := 0; i < depth; i++ {
		e.b.WriteString(e.indent)
	}
}

func (e *jsonEncoder) encode(v reflect.Value, depth int) error {
	for v.IsValid() && (v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer) {
		if v.IsNil() {
			e.b.WriteString("null")
			return nil
		}
		if ev, ok := v.Interface().(*exec.Value); ok {
			v = reflect.ValueOf(ev.Interface())
			continue
		}
		v = v.Elem()
	}
	if !v.IsValid() {
		e.b.WriteString("null")
		return nil
	}
	if d, ok := v.Interface().(exec.Dict); ok {
		return e.dict(&d, depth)
	}
	switch v.Kind() {
	case reflect.Bool:
		e.b.WriteString(strconv.FormatBool(v.Bool()))
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		e.b.WriteString(strconv.FormatInt(v.Int(), 10))
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		e.b.WriteString(strconv.FormatUint(v.Uint(), 10))
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		switch {
		case math.IsNaN(f):
			e.b.WriteString("NaN")
		case math.IsInf(f, 1):
			e.b.WriteString("Infinity")
		case math.IsInf(f, -1):
			e.b.WriteString("-Infinity")
		case f == math.Trunc(f) && math.Abs(f) < 1e16:
			// JSON numbers decoded into float64 were integers in the request.
			e.b.WriteString(strconv.FormatInt(int64(f), 10))
		default:
			e.b.WriteString(strconv.FormatFloat(f, 'g', -1, 64))
		}
	case reflect.String:
		e.str(v.String())
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			e.b.WriteString("[]")
			return nil
		}
		e.b.WriteByte('[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				e.b.WriteString(e.item)
			}
			e.newline(depth + 1)
			if err := e.encode(v.Index(i), depth+1); err != nil {
				return err
			}
		}
		e.newline(depth)
		e.b.WriteByte(']')
	case reflect.Map:
		if v.Len() == 0 {
			e.b.WriteString("{}")
			return nil
		}
		keys := v.MapKeys()
		names := make([]string, len(keys))
		for i, k := range keys {
			names[i] = fmt.Sprint(k.Interface())
		}
		order := make([]int, len(keys))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return strings.Compare(names[a], names[b]) })
		e.b.WriteByte('{')
		for n, i := range order {
			if n > 0 {
				e.b.WriteString(e.item)
			}
			e.newline(depth + 1)
			e.str(names[i])
			e.b.WriteString(e.key)
			if err := e.encode(v.MapIndex(keys[i]), depth+1); err != nil {
				return err
			}
		}
		e.newline(depth)
		e.b.WriteByte('}')
	default:
		return fmt.Errorf("tojson: cannot encode %s", v.Type())
	}
	return nil
}

// dict encodes a Jinja dict literal, whose keys keep their order (sorted
// with sort_keys).
func (e *jsonEncoder) dict(d *exec.Dict, depth int) error {
	pairs := d.Pairs
	if e.sortKeys {
		pairs = slices.Clone(pairs)
		slices.SortStableFunc(pairs, func(a, b *exec.Pair) int { return strings.Compare(a.Key.String(), b.Key.String()) })
	}
	if len(pairs) == 0 {
		e.b.WriteString("{}")
		return nil
	}
	e.b.WriteByte('{')
	for n, p := range pairs {
		if n > 0 {
			e.b.WriteString(e.item)
		}
		e.newline(depth + 1)
		e.str(p.Key.String())
		e.b.WriteString(e.key)
		if err := e.encode(reflect.ValueOf(p.Value), depth+1); err != nil {
			return err
		}
	}
	e.newline(depth)
	e.b.WriteByte('}')
	return nil
}

// str writes a JSON string as Python's json.dumps does.
func (e *jsonEncoder) str(s string) {
	e.b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			e.b.WriteString(`\"`)
		case '\\':
			e.b.WriteString(`\\`)
		case '\n':
			e.b.WriteString(`\n`)
		case '\r':
			e.b.WriteString(`\r`)
		case '\t':
			e.b.WriteString(`\t`)
		case '\b':
			e.b.WriteString(`\b`)
		case '\f':
			e.b.WriteString(`\f`)
		default:
			switch {
			case r < 0x20 || e.ascii && r == 0x7f:
				fmt.Fprintf(&e.b, `\u%04x`, r)
			case e.ascii && r > 0x7f:
				if r > 0xffff {
					r -= 0x10000
					fmt.Fprintf(&e.b, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
				} else {
					fmt.Fprintf(&e.b, `\u%04x`, r)
				}
			default:
				e.b.WriteRune(r)
			}
		}
	}
	e.b.WriteByte('"')
}
