package ort

import "testing"

// TestModelSettingsSpinning: allow_spinning and force_spinning_stop, shared
// by every plugin that runs an ONNX model here, reach the session options,
// and a value of the wrong type is an error naming nothing else.
func TestModelSettingsSpinning(t *testing.T) {
	var m ModelSettings
	if m.Session.DisableSpinning || m.Session.StopSpinningAfterRun {
		t.Fatalf("defaults: %+v, want ONNX Runtime's (spinning, not stopped after a run)", m.Session)
	}
	for name, v := range map[string]any{"allow_spinning": false, "force_spinning_stop": true} {
		if handled, err := m.Set(name, v); !handled || err != nil {
			t.Fatalf("%s = %v: handled %v, %v", name, v, handled, err)
		}
	}
	if !m.Session.DisableSpinning || !m.Session.StopSpinningAfterRun {
		t.Errorf("after allow_spinning = false, force_spinning_stop = true: %+v", m.Session)
	}
	if _, err := m.Set("force_spinning_stop", "yes"); err == nil {
		t.Error(`force_spinning_stop = "yes" accepted`)
	}
	names := map[string]bool{}
	for _, s := range ModelSettingSpecs("m") {
		names[s.Name] = true
	}
	if !names["force_spinning_stop"] || !names["allow_spinning"] {
		t.Errorf("specs %v lack a spinning setting", names)
	}
}
