// Package schematest compiles JSON Schemas with an independent, maintained
// validator (github.com/santhosh-tekuri/jsonschema/v6, formats asserted),
// so that tests of constrained decoding check their outputs against
// something other than the compiler under test. It is imported by tests
// only.
package schematest

import (
	"bytes"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Compile compiles schema (named name) or fails the test.
func Compile(t testing.TB, name string, schema []byte) *jsonschema.Schema {
	t.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(name, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Validate reports whether out is JSON that schema accepts.
func Validate(t testing.TB, name string, schema []byte, out string) error {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(strings.NewReader(out))
	if err != nil {
		return err
	}
	return Compile(t, name, schema).Validate(inst)
}
