package l7v1_test

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"google.golang.org/protobuf/reflect/protoreflect"

	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

var update = flag.Bool("update", false, "rewrite testdata/schema.txt")

const schemaPath = "testdata/schema.txt"

// schemaLines lists every field and enum value of package dsmil.l7.v1, one a
// line: "Message.field = N cardinality kind" or "Enum.VALUE = N".
func schemaLines() []string {
	fd := l7v1.File_dsmil_l7_v1_l7_proto
	var out []string
	var walk func(protoreflect.MessageDescriptors)
	walk = func(ms protoreflect.MessageDescriptors) {
		for i := range ms.Len() {
			m := ms.Get(i)
			fs := m.Fields()
			for j := range fs.Len() {
				f := fs.Get(j)
				kind := f.Kind().String()
				if f.Message() != nil {
					kind = string(f.Message().FullName())
				} else if f.Enum() != nil {
					kind = string(f.Enum().FullName())
				}
				out = append(out, fmt.Sprintf("%s.%s = %d %s %s", m.FullName(), f.Name(), f.Number(), f.Cardinality(), kind))
			}
			walk(m.Messages())
		}
	}
	walk(fd.Messages())
	es := fd.Enums()
	for i := range es.Len() {
		vs := es.Get(i).Values()
		for j := range vs.Len() {
			out = append(out, fmt.Sprintf("%s.%s = %d", es.Get(i).FullName(), vs.Get(j).Name(), vs.Get(j).Number()))
		}
	}
	slices.Sort(out)
	return out
}

// TestSchemaFrozen holds l7.proto to docs/dbe.md §5: every field and enum
// value in testdata/schema.txt keeps its number, cardinality and type (a
// field may only disappear with its number reserved). New fields and
// messages are allowed; -update adds them to the file, after which they are
// frozen too.
func TestSchemaFrozen(t *testing.T) {
	now := schemaLines()
	if *update {
		if err := os.WriteFile(schemaPath, []byte(strings.Join(now, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	have := map[string]bool{}
	for _, l := range now {
		have[l] = true
	}
	fd := l7v1.File_dsmil_l7_v1_l7_proto
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		line := sc.Text()
		if have[line] {
			continue
		}
		// A field may be removed only with its number reserved.
		var name string
		var num int
		if _, err := fmt.Sscanf(line, "%s = %d", &name, &num); err == nil {
			if i := strings.LastIndex(name, "."); i > 0 {
				if d, err := findMessage(fd, protoreflect.FullName(name[:i])); err == nil && d.ReservedRanges().Has(protoreflect.FieldNumber(num)) {
					if d.Fields().ByName(protoreflect.Name(name[i+1:])) == nil {
						continue
					}
				}
			}
		}
		t.Errorf("l7.proto changed a frozen field or enum value: %q no longer holds (docs/dbe.md §5: field numbers are fixed)", line)
	}
	if n < 100 {
		t.Fatalf("%s has only %d lines", schemaPath, n)
	}
}

func findMessage(fd protoreflect.FileDescriptor, name protoreflect.FullName) (protoreflect.MessageDescriptor, error) {
	var find func(protoreflect.MessageDescriptors) protoreflect.MessageDescriptor
	find = func(ms protoreflect.MessageDescriptors) protoreflect.MessageDescriptor {
		for i := range ms.Len() {
			if ms.Get(i).FullName() == name {
				return ms.Get(i)
			}
			if d := find(ms.Get(i).Messages()); d != nil {
				return d
			}
		}
		return nil
	}
	if d := find(fd.Messages()); d != nil {
		return d, nil
	}
	return nil, fmt.Errorf("no message %s", name)
}
