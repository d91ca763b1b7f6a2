package agent

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
)

func settingsJSON(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

const goodTask = `{"instructions": "Triage {{.alert}}.", "parameters": ["alert"], "profile": "llm", "tools": ["read_file", "write_report"]}`

func TestConfigure(t *testing.T) {
	w := New()
	dir := t.TempDir()
	err := w.Configure(context.Background(), &sdk.Config{DeviceID: 48, Profiles: []string{"agent"},
		Settings: settingsJSON(t, `{"tasks": {"triage": `+goodTask+`}, "workspaces": {"logs": "`+dir+`"}, "read_bytes": 100}`)})
	if err != nil {
		t.Fatal(err)
	}
	info, _ := w.Info(context.Background())
	if info.DeviceID != 48 || len(info.Models) != 1 || info.Models[0] != "triage" || !info.Has(sdk.CapAgent) {
		t.Errorf("info %+v", info)
	}
	if err := info.Validate(); err != nil {
		t.Error(err)
	}
	tt := w.cfg.Load().tasks["triage"]
	if tt.MaxSteps != DefaultMaxSteps || tt.ToolChoice != "auto" || tt.WallTime != DefaultWallTime || w.cfg.Load().limits.ReadBytes != 100 {
		t.Errorf("defaults: %+v", tt)
	}
	if err := New().Configure(context.Background(), &sdk.Config{Settings: settingsJSON(t,
		`{"tasks": {"shots": {"instructions": "x", "profile": "llm", "tools": ["read_image"], "ocr_profile": "ocr", "ocr_model": "dsmil-ocr-ppocrv4"}}, "image_bytes": 1000}`)}); err != nil {
		t.Errorf("read_image with ocr_profile: %v", err)
	}
	if err := tt.checkParams(map[string]string{"alert": "a"}); err != nil {
		t.Error(err)
	}
	for params, want := range map[string]string{`{}`: "needs parameters alert", `{"alert":"a","x":"y"}`: "takes no parameters x"} {
		var p map[string]string
		_ = json.Unmarshal([]byte(params), &p)
		if err := tt.checkParams(p); mux.CodeOf(err) != dbe.CodeInvalidRequest || !strings.Contains(err.Error(), want) {
			t.Errorf("params %s: %v, want %q", params, err, want)
		}
	}
}

func TestConfigureErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ settings, want string }{
		{`{}`, "want an object of task types"},
		{`{"tasks": {}}`, "no task type"},
		{`{"tasks": []}`, "want an object of task types"},
		{`{"tasks": {"t": {"instructions": "x", "profile": "llm", "tools": ["read_file"], "max_step": 3}}}`, `tasks.t: json: unknown field "max_step"`},
		{`{"tasks": {"t": {"instructions": "x", "profile": "llm", "tools": ["rm"]}}}`, `tasks.t: tools: no tool is called "rm"`},
		{`{"tasks": {"t": {"instructions": "x", "profile": "llm", "tools": []}}}`, "tasks.t: tools: list at least one"},
		{`{"tasks": {"t": {"instructions": "{{.alert}}", "profile": "llm", "tools": ["grep"]}}}`, "declare the parameters it uses"},
		{`{"tasks": {"t": {"instructions": "{{", "profile": "llm", "tools": ["grep"]}}}`, "tasks.t: instructions:"},
		{`{"tasks": {"t": {"instructions": "x", "profile": "LLM!", "tools": ["grep"]}}}`, "tasks.t: profile"},
		{`{"tasks": {"t": {"instructions": "x", "profile": "llm", "tools": ["grep"], "tool_choice": "always"}}}`, "tool_choice"},
		{`{"tasks": {"t": {"instructions": "x", "profile": "llm", "tools": ["grep"], "max_steps": 0}}}`, "max_steps"},
		{`{"tasks": {"t": {"instructions": "x", "profile": "llm", "tools": ["grep"], "wall_time": "-1s"}}}`, "wall_time"},
		{`{"tasks": {"Bad Name": ` + goodTask + `}}`, "task type name"},
		{`{"tasks": {"t": ` + goodTask + `}, "workspaces": {"logs": "` + dir + `/missing"}}`, "workspace root \"logs\""},
		{`{"tasks": {"t": ` + goodTask + `}, "colour": "red"}`, `unknown setting "colour"`},
		{`{"tasks": {"t": {"instructions": "x", "profile": "llm", "tools": ["read_image"]}}}`, "tasks.t: tools: read_image needs ocr_profile"},
		{`{"tasks": {"t": {"instructions": "x", "profile": "llm", "tools": ["read_image"], "ocr_profile": "OCR!"}}}`, "tasks.t: ocr_profile"},
		{`{"tasks": {"t": {"instructions": "x", "profile": "llm", "tools": ["grep"], "ocr_model": "m"}}}`, "tasks.t: ocr_model: needs ocr_profile"},
		{`{"tasks": {"t": ` + goodTask + `}, "image_bytes": 20000000}`, "image_bytes: 20000000 is over"},
	} {
		err := New().Configure(context.Background(), &sdk.Config{Settings: settingsJSON(t, tc.settings)})
		if mux.CodeOf(err) != dbe.CodeInvalidRequest || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want INVALID_REQUEST with %q", tc.settings, err, tc.want)
		}
	}
}
