package constrain

import (
	"errors"
	"strings"
	"testing"
)

func TestSchemaErrors(t *testing.T) {
	for _, c := range []struct {
		schema, pointer, keyword, reason string
	}{
		{`{"type":"object","properties":{"a":{"patternProperties":{}}}}`, "/properties/a/patternProperties", "patternProperties", `unsupported keyword "patternProperties"`},
		{`{"properties":{"a/b":{"type":"string","uniqueItems":true}}}`, "/properties/a~1b/uniqueItems", "uniqueItems", "unsupported keyword"},
		{`{"type":"array","minItems":3,"maxItems":2}`, "/minItems", "minItems", "minItems 3 > maxItems 2"},
		{`{"enum":[]}`, "/enum", "enum", "no value"},
		{`{"type":"string","enum":[1,2]}`, "/enum", "enum", "no value of the allowed types"},
		{`{"type":"integer","minimum":5,"maximum":4}`, "", "minimum", "no integer is within the bounds"},
		{`{"type":"integer","exclusiveMinimum":4,"exclusiveMaximum":5}`, "", "minimum", "no integer"},
		{`{"type":"number","minimum":1e300}`, "/minimum", "minimum", "2^53"},
		{`{"type":"object","properties":{"a":{"type":"string"}},"required":["b"],"additionalProperties":false}`, "/required", "required", `required property "b" is not allowed`},
		{`{"type":"string","minLength":5,"maxLength":2}`, "/minLength", "minLength", "minLength 5 > maxLength 2"},
		{`{"type":"string","pattern":"^a$","maxLength":0}`, "", "pattern", "no string matches"},
		{`{"type":"string","pattern":"(a"}`, "/pattern", "pattern", "missing closing )"},
		{`{"type":"string","pattern":"a\\bc"}`, "/pattern", "pattern", "not supported"},
		{`{"type":"string","pattern":"a^b"}`, "/pattern", "pattern", "anchors"},
		{`{"type":"string","pattern":"(?i)abc"}`, "/pattern", "pattern", "case-insensitive"},
		{`{"type":"string","format":"uri"}`, "/format", "format", `unsupported format "uri"`},
		{`{"type":"strong"}`, "/type", "type", `unknown type "strong"`},
		{`{"$ref":"#/$defs/missing"}`, "/$ref", "$ref", "no \"$defs\""},
		{`{"$ref":"other.json#/a"}`, "/$ref", "$ref", "only local references"},
		{`{"$ref":"#"}`, "", "$ref", "derives no string"},
		{`{"anyOf":[{"$ref":"#"},{"type":"null"}]}`, "", "$ref", "left recursion"},
		{`{"$defs":{"n":{"type":"object","properties":{"c":{"$ref":"#/$defs/n"}},"required":["c"]}},"$ref":"#/$defs/n"}`, "", "$ref", "derives no string"},
		{`{"allOf":[{"type":"string"},{"type":"integer"}]}`, "/allOf/1/type", "type", "no type is in every branch"},
		{`{"allOf":[{"format":"date"},{"format":"time"}]}`, "/allOf/1/format", "format", "differs"},
		{`{"anyOf":[]}`, "/anyOf", "anyOf", "non-empty array"},
		{`{"anyOf":[false, false]}`, "/anyOf/0", "", "unsatisfiable"},
		{`false`, "", "", "admits no value"},
		{`{"type":"array","items":{"type":"string","maxLength":2000}}`, "/items/maxLength", "maxLength", "above 1000"},
		{`{"type":"array","prefixItems":[true],"items":false,"minItems":2}`, "/minItems", "minItems", "items is false"},
		{`[]`, "", "", "object or a boolean"},
		{`{"a":`, "", "", "not JSON"},
		{`{"type":"object","type":"string"}`, "", "", "duplicate key"},
		{`{"type":"integer","minimum":"1"}`, "/minimum", "minimum", "must be a number"},
		{`{"type":"string","pattern":"` + strings.Repeat("a", 5000) + `"}`, "/pattern", "pattern", "longer than 4096 bytes"},
	} {
		_, err := CompileSchema([]byte(c.schema))
		var se *SchemaError
		if !errors.As(err, &se) || !errors.Is(err, ErrSchema) {
			t.Errorf("%s: error %v, want a *SchemaError wrapping ErrSchema", c.schema, err)
			continue
		}
		if se.Pointer != c.pointer || se.Keyword != c.keyword || !strings.Contains(se.Reason, c.reason) {
			t.Errorf("%s:\n got pointer %q keyword %q reason %q\nwant pointer %q keyword %q reason ~%q", c.schema, se.Pointer, se.Keyword, se.Reason, c.pointer, c.keyword, c.reason)
		}
	}
	_, err := CompileSchema([]byte(`{"type":"object","properties":{"a":{"patternProperties":{}}}}`))
	if want := `constrain: schema: unsupported keyword "patternProperties" at /properties/a/patternProperties`; err.Error() != want {
		t.Errorf("message %q, want %q", err, want)
	}
}

// Integer ranges are exact: every integer in a window around the bounds is
// accepted exactly when it is in range.
func TestIntegerRanges(t *testing.T) {
	for _, b := range []struct{ lo, hi bound }{
		{bound{-1234, true}, bound{5678, true}}, {bound{0, true}, bound{0, true}}, {bound{7, true}, bound{}},
		{bound{}, bound{-7, true}}, {bound{-99, true}, bound{-10, true}}, {bound{99, true}, bound{1001, true}},
		{bound{}, bound{}}, {bound{1, true}, bound{9, true}}, {bound{10, true}, bound{19, true}},
	} {
		d, err := compileRx(intRangeRx(b.lo, b.hi))
		if err != nil {
			t.Fatal(err)
		}
		for n := int64(-2000); n <= 6000; n++ {
			want := (!b.lo.set || n >= b.lo.v) && (!b.hi.set || n <= b.hi.v)
			if got := d.matches([]byte(itoa(n))); got != want {
				t.Fatalf("[%v, %v]: %d accepted %v", b.lo, b.hi, n, got)
			}
		}
		for _, bad := range []string{"-0", "01", "+1", "", "-", "1.0"} {
			if d.matches([]byte(bad)) {
				t.Errorf("[%v, %v] accepts %q", b.lo, b.hi, bad)
			}
		}
	}
}

func itoa(n int64) string {
	if n < 0 {
		return "-" + itoa(-n)
	}
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

// Numbers with bounds accept exactly the in-range values they can spell.
func TestNumberBounds(t *testing.T) {
	b := numBounds{min: -1.5, max: 2, hasMin: true, hasMax: true, exclMax: true}
	d, err := compileRx(numberRx(b))
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{
		"-1": true, "0": true, "1": true, "2": false, "1.999": true, "0.5": true, "-0.5": true,
		"-1.5": false, "-1.2": false /* (−2, −1) is not inside */, "1.0": false, "2.0": false, "1e0": false, "-0": false,
	} {
		if got := d.matches([]byte(s)); got != want {
			t.Errorf("%s: %v, want %v", s, got, want)
		}
	}
}

// Large counted repetitions compile (each character class is its own
// automaton inside the pattern's, and lengths are counted automata) and
// mean what they say.
func TestLargeRepetitions(t *testing.T) {
	long := strings.Repeat("ab", 500)
	for _, c := range []struct {
		schema, text string
		ok, canEnd   bool
	}{
		{`{"type":"string","pattern":"^.{1000}$"}`, `"` + long + `"`, true, true},
		{`{"type":"string","pattern":"^.{1000}$"}`, `"` + long + `a"`, false, false},
		{`{"type":"string","pattern":"^.{0,200}$"}`, `"` + long[:200] + `"`, true, true},
		{`{"type":"string","pattern":"^\\p{L}{1,30}$"}`, `"Zoëπα"`, true, true},
		{`{"type":"string","pattern":"^\\p{L}{1,30}$"}`, `"Zoë1"`, false, false},
		{`{"type":"string","maxLength":1000,"minLength":1000}`, `"` + long + `"`, true, true},
		{`{"type":"string","pattern":"^[^@]+@[^@]+$","maxLength":100}`, `"a@b"`, true, true},
	} {
		// Advance only: masks for a thousand counted states would each
		// need their own analysis (mask = Advance is tested elsewhere).
		m, err := NewMatcher(mustSchema(t, c.schema), qwenVocab(t))
		if err != nil {
			t.Fatal(err)
		}
		ok := true
		for _, id := range qwenTok.Encode(c.text, false) {
			if m.Advance(id) != nil {
				ok = false
				break
			}
		}
		canEnd := ok && m.CanEnd()
		if ok != c.ok || canEnd != c.canEnd {
			t.Errorf("%s on %.40q: ok %v canEnd %v, want %v %v", c.schema, c.text, ok, canEnd, c.ok, c.canEnd)
		}
	}
}
