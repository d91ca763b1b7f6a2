package config

import (
	"bytes"
	"strings"
	"testing"

	"github.com/dsmil/l7/sdk"
	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

var testSettingsSchema = []sdk.SettingSpec{
	{Name: "model_path", Type: "string", Required: true, Description: "model file"},
	{Name: "threads", Type: "number"},
	{Name: "use_amx", Type: "bool"},
	{Name: "stop", Type: "list(string)"},
	{Name: "labels", Type: "map(string)"},
}

// pluginSettings parses a config with one plugin block holding body and
// returns the plugin's settings body and the parsed files.
func pluginSettings(t *testing.T, body string) (hcl.Body, map[string]*hcl.File) {
	t.Helper()
	src := "plugin \"p\" {\n  path      = \"p\"\n  device_id = 1\n  profiles  = [\"p\"]\n" + body + "}\n"
	cfg, diags := Parse("dsmil.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatalf("parse: %v", diags)
	}
	return cfg.Plugins[0].Settings, cfg.Files()
}

func TestDecodePluginSettings(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		schema  []sdk.SettingSpec
		want    map[string]cty.Value
		wantErr []string // substrings of the printed diagnostics
	}{
		{
			name: "all types",
			body: `  model_path = "m.onnx"
  threads    = 8
  use_amx    = true
  stop       = ["</s>", "\n\n"]
  labels     = { tier = "gold" }
`,
			schema: testSettingsSchema,
			want: map[string]cty.Value{
				"model_path": cty.StringVal("m.onnx"),
				"threads":    cty.NumberIntVal(8),
				"use_amx":    cty.True,
				"stop":       cty.ListVal([]cty.Value{cty.StringVal("</s>"), cty.StringVal("\n\n")}),
				"labels":     cty.MapVal(map[string]cty.Value{"tier": cty.StringVal("gold")}),
			},
		},
		{
			name:   "optional settings absent",
			body:   "  model_path = \"m.onnx\"\n",
			schema: testSettingsSchema,
			want:   map[string]cty.Value{"model_path": cty.StringVal("m.onnx")},
		},
		{
			name:   "number converts to string",
			body:   "  model_path = 42\n",
			schema: testSettingsSchema,
			want:   map[string]cty.Value{"model_path": cty.StringVal("42")},
		},
		{
			name:    "unknown attribute",
			body:    "  model_path = \"m\"\n  thread = 4\n",
			schema:  testSettingsSchema,
			wantErr: []string{"dsmil.hcl:6:3: Error: Unsupported argument", `Did you mean "threads"?`, "6:   thread = 4"},
		},
		{
			name:    "unknown block",
			body:    "  model_path = \"m\"\n  tuning {}\n",
			schema:  testSettingsSchema,
			wantErr: []string{"dsmil.hcl:6:3: Error: Unsupported block type"},
		},
		{
			name:    "missing required",
			body:    "",
			schema:  testSettingsSchema,
			wantErr: []string{"Missing required argument", `"model_path" is required`},
		},
		{
			name:    "null required",
			body:    "  model_path = null\n",
			schema:  testSettingsSchema,
			wantErr: []string{"dsmil.hcl:5:16: Error: Missing required setting"},
		},
		{
			name:    "wrong type",
			body:    "  model_path = \"m\"\n  threads = \"many\"\n",
			schema:  testSettingsSchema,
			wantErr: []string{"dsmil.hcl:6:13: Error: Incorrect setting type", `Setting "threads" must be number`},
		},
		{
			name:    "list of wrong type",
			body:    "  model_path = \"m\"\n  stop = [[1]]\n",
			schema:  testSettingsSchema,
			wantErr: []string{"Incorrect setting type", "list(string)"},
		},
		{
			name:    "null list element",
			body:    "  model_path = \"m\"\n  stop = [null]\n",
			schema:  testSettingsSchema,
			wantErr: []string{"must not contain null elements"},
		},
		{
			name:    "variables not allowed",
			body:    "  model_path = var.x\n",
			schema:  testSettingsSchema,
			wantErr: []string{"Variables not allowed"},
		},
		{
			name:    "bad schema type",
			body:    "",
			schema:  []sdk.SettingSpec{{Name: "x", Type: "list(number)"}},
			wantErr: []string{"Invalid plugin settings schema", `type "list(number)"`},
		},
		{
			name:    "duplicate schema name",
			body:    "",
			schema:  []sdk.SettingSpec{{Name: "x", Type: "bool"}, {Name: "x", Type: "string"}},
			wantErr: []string{`reported setting "x" twice`},
		},
		{
			name: "any takes structured values",
			body: `  tasks = { triage = { tools = ["grep"], max_steps = 4 } }
`,
			schema: []sdk.SettingSpec{{Name: "tasks", Type: "any"}},
			want: map[string]cty.Value{
				"tasks": cty.ObjectVal(map[string]cty.Value{"triage": cty.ObjectVal(map[string]cty.Value{
					"tools": cty.TupleVal([]cty.Value{cty.StringVal("grep")}), "max_steps": cty.NumberIntVal(4)})}),
			},
		},
		{
			name:   "empty schema, empty settings",
			body:   "",
			schema: nil,
			want:   map[string]cty.Value{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, files := pluginSettings(t, tt.body)
			got, diags := DecodePluginSettings(body, tt.schema)
			var buf bytes.Buffer
			if err := WriteDiagnostics(&buf, files, diags); err != nil {
				t.Fatal(err)
			}
			if tt.wantErr == nil {
				if diags.HasErrors() {
					t.Fatalf("unexpected errors:\n%s", buf.String())
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d settings %v, want %d", len(got), got, len(tt.want))
				}
				for k, w := range tt.want {
					if g, ok := got[k]; !ok || !g.RawEquals(w) {
						t.Errorf("%s = %#v, want %#v", k, g, w)
					}
				}
				return
			}
			if !diags.HasErrors() {
				t.Fatalf("no errors; got %v", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("diagnostics lack %q:\n%s", w, buf.String())
				}
			}
		})
	}
}

func TestDecodePluginSettingsNilBody(t *testing.T) {
	got, diags := DecodePluginSettings(nil, []sdk.SettingSpec{{Name: "x", Type: "string"}})
	if diags.HasErrors() || len(got) != 0 {
		t.Errorf("nil body: %v %v", got, diags)
	}
	_, diags = DecodePluginSettings(nil, []sdk.SettingSpec{{Name: "x", Type: "string", Required: true}})
	if !diags.HasErrors() {
		t.Error("nil body with a required setting: no error")
	}
}
