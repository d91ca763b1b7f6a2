package server

import (
	"testing"

	"github.com/dsmil/l7/host/router/routertest"
)

// TestServesHealthy: a profile counts as served here only while one of its
// local instances is healthy, so an agent step for a profile whose
// instances are all down goes back to the router host.
func TestServesHealthy(t *testing.T) {
	a, b := &routertest.Worker{Name: "llm#0"}, &routertest.Worker{Name: "llm#1"}
	serves := servesHealthy(routertest.Registry{"llm": {a, b}, "none": nil})
	if !serves("llm") {
		t.Error("two healthy instances: not served")
	}
	a.SetHealthy(false)
	if !serves("llm") {
		t.Error("one healthy instance left: not served")
	}
	b.SetHealthy(false)
	if serves("llm") {
		t.Error("every instance down: still counted as served")
	}
	b.SetHealthy(true)
	if !serves("llm") {
		t.Error("an instance back up: not served")
	}
	if serves("none") || serves("unknown") {
		t.Error("a profile without instances counted as served")
	}
}
