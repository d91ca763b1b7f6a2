package config

import (
	"bytes"
	"encoding"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dsmil/l7/host/config/configtest"
	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/hashicorp/hcl/v2"
)

var update = flag.Bool("update", false, "rewrite the *.golden files under testdata/")

// testEnv is the environment every test load sees.
var testEnv = map[string]string{
	"DSMIL_OPENAI_API_KEY": "test-key-0001",
	"DSMIL_SOC_KEY":        "test-key-soc",
}

func testGetenv(k string) string { return testEnv[k] }

// TestValid loads each testdata/valid/*.hcl and compares a JSON dump of the
// resolved Config with the .golden file next to it.
func TestValid(t *testing.T) {
	files, err := filepath.Glob("testdata/valid/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no valid fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".hcl"), func(t *testing.T) {
			cfg, diags := Load(f, WithGetenv(testGetenv))
			if diags.HasErrors() {
				var buf bytes.Buffer
				_ = WriteDiagnostics(&buf, cfg.Files(), diags)
				t.Fatalf("unexpected errors:\n%s", buf.String())
			}
			checkGolden(t, strings.TrimSuffix(f, ".hcl")+".golden", dumpConfig(t, cfg))
		})
	}
}

// TestInvalid loads each testdata/invalid/*.hcl and compares the printed
// diagnostics with the .golden file next to it.
func TestInvalid(t *testing.T) {
	files, err := filepath.Glob("testdata/invalid/*.hcl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no invalid fixtures: %v", err)
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".hcl"), func(t *testing.T) {
			cfg, diags := Load(f, WithGetenv(testGetenv))
			if !diags.HasErrors() {
				t.Fatalf("no errors; diagnostics: %v", diags)
			}
			if cfg == nil {
				t.Fatal("nil Config")
			}
			var buf bytes.Buffer
			if err := WriteDiagnostics(&buf, cfg.Files(), diags); err != nil {
				t.Fatal(err)
			}
			for _, d := range diags {
				if d.Subject == nil {
					t.Errorf("diagnostic without a position: %s: %s", d.Summary, d.Detail)
				}
			}
			checkGolden(t, strings.TrimSuffix(f, ".hcl")+".golden", buf.String())
		})
	}
}

func checkGolden(t *testing.T, path, got string) {
	t.Helper()
	testutil.Golden(t, path, got, *update)
}

// dumpConfig renders cfg as stable, machine-independent JSON: fields in
// declaration order, durations and modes as text, ranges as file:line:col,
// bodies as their attribute names, and cfg.Dir replaced by $CONFIG_DIR.
func dumpConfig(t *testing.T, cfg *Config) string {
	t.Helper()
	b, err := json.MarshalIndent(dumpValue(reflect.ValueOf(cfg)), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(string(b), cfg.Dir, "$CONFIG_DIR") + "\n"
}

type field struct {
	name  string
	value any
}

// object is a JSON object that keeps its field order.
type object []field

func (o object) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, f := range o {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(f.name)
		v, err := json.Marshal(f.value)
		if err != nil {
			return nil, err
		}
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(v)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

var (
	durationType = reflect.TypeFor[time.Duration]()
	modeType     = reflect.TypeFor[fs.FileMode]()
	rangeType    = reflect.TypeFor[hcl.Range]()
	bodyType     = reflect.TypeFor[hcl.Body]()
	diagsType    = reflect.TypeFor[hcl.Diagnostics]()

	classificationType = reflect.TypeFor[dbe.Classification]()
	roeType            = reflect.TypeFor[dbe.ROELevel]()
	compartmentType    = reflect.TypeFor[dbe.Compartment]()
)

func dumpValue(v reflect.Value) any {
	switch v.Type() {
	case durationType:
		return time.Duration(v.Int()).String()
	case modeType:
		return fmt.Sprintf("%#o", v.Uint())
	case rangeType:
		return pos(v.Interface().(hcl.Range))
	case bodyType:
		return bodyAttrNames(v)
	case classificationType, roeType, compartmentType:
		return v.Interface().(fmt.Stringer).String()
	case diagsType:
		out := []string{}
		for _, d := range v.Interface().(hcl.Diagnostics) {
			out = append(out, fmt.Sprintf("%s: %s: %s", pos(*d.Subject), d.Summary, d.Detail))
		}
		return out
	}
	if m, ok := v.Interface().(encoding.TextMarshaler); ok && v.Kind() != reflect.Pointer {
		b, _ := m.MarshalText()
		return string(b)
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return dumpValue(v.Elem())
	case reflect.Struct:
		var o object
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				o = append(o, field{f.Name, dumpValue(v.Field(i))})
			}
		}
		return o
	case reflect.Slice:
		out := make([]any, v.Len())
		for i := range out {
			out[i] = dumpValue(v.Index(i))
		}
		return out
	case reflect.Map:
		out := map[string]any{}
		for it := v.MapRange(); it.Next(); {
			out[fmt.Sprint(it.Key().Interface())] = dumpValue(it.Value())
		}
		return out
	}
	return v.Interface()
}

// bodyAttrNames lists the attributes and block types left in a body.
func bodyAttrNames(v reflect.Value) any {
	if v.IsNil() {
		return nil
	}
	body := v.Interface().(hcl.Body)
	attrs, _ := body.JustAttributes()
	names := []string{}
	for n := range attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func TestDefaults(t *testing.T) {
	cfg, diags := Parse("/etc/dsmil/dsmil.hcl", []byte("# nothing set\n"))
	if len(diags) > 0 {
		t.Fatalf("diagnostics: %v", diags)
	}
	want := Config{
		Dir:      "/etc/dsmil",
		Includes: []string{},
		Shim: ShimConfig{
			Listen:            "127.0.0.1:8001",
			MaxBodyBytes:      4 << 20,
			AllowedHosts:      []string{"127.0.0.1:8001", "localhost:8001"},
			CORSOrigins:       []string{},
			RequestTimeout:    120 * time.Second,
			KeepaliveInterval: 15 * time.Second,
		},
		Router: RouterConfig{
			Socket:                   "/etc/dsmil/run/router.sock",
			SocketMode:               0o660,
			RequestTimeout:           60 * time.Second,
			AgentTimeout:             10 * time.Minute,
			MaxFrameBytes:            16 << 20,
			LoadThreshold:            0.9,
			MaxInFlightPerConnection: 1024,
		},
		Admin:    AdminConfig{Socket: "/etc/dsmil/run/admin.sock"},
		Metrics:  MetricsConfig{Listen: "127.0.0.1:9108"},
		Security: SecurityConfig{Group: "x25519", ClaimTTL: time.Hour, PluginIdentityTTL: 24 * time.Hour},
		Plugins:  []*Plugin{},
		Models:   []*Model{},
		Tenants:  []*Tenant{},
		Policies: []*Policy{},
		Peers:    []*Peer{},
	}
	got := *cfg
	got.files = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", got, want)
	}

	// Block-level defaults.
	src := configtest.EchoPlane("/opt/p", configtest.Tenant{KeySHA256: HashKey("k"), Compartments: []string{"LAB"}})
	cfg, diags = Parse("/etc/dsmil/dsmil.hcl", []byte(src))
	if diags.HasErrors() {
		t.Fatalf("diagnostics: %v", diags)
	}
	p := cfg.Plugins[0]
	if p.Replicas != 1 || p.HealthInterval != 5*time.Second || p.MaxRestarts != 5 ||
		p.RestartBackoff != 250*time.Millisecond || p.StartTimeout != 30*time.Second || p.MemoryBudget != 0 || p.SHA256 != "" || p.Path != "/opt/p" {
		t.Errorf("plugin defaults: %+v", p)
	}
	if m := cfg.ModelByID("dsmil-echo"); m == nil || m.OwnedBy != "dsmil" {
		t.Errorf("model defaults: %+v", m)
	}
	tn := cfg.TenantByName("T")
	if tn == nil || tn.Classification != dbe.Unclas || tn.ROE != dbe.AnalysisOnly ||
		tn.RateLimit != (RateLimit{}) || tn.CompartmentMask() != 0x04 {
		t.Errorf("tenant defaults: %+v", tn)
	}
}

func TestDefaultAllowedHosts(t *testing.T) {
	tests := []struct {
		listen string
		want   []string
	}{
		{"127.0.0.1:8001", []string{"127.0.0.1:8001", "localhost:8001"}},
		{"localhost:9000", []string{"localhost:9000", "127.0.0.1:9000", "[::1]:9000"}},
		{"[::1]:8001", []string{"[::1]:8001", "localhost:8001"}},
		{"10.1.2.3:8001", []string{"10.1.2.3:8001"}},
		{":8001", []string{"127.0.0.1:8001", "localhost:8001", "[::1]:8001"}},
	}
	for _, tt := range tests {
		if got := defaultAllowedHosts(tt.listen); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("defaultAllowedHosts(%q) = %q, want %q", tt.listen, got, tt.want)
		}
	}
}

// TestEnumNames: the names diagnostics offer are the names dbe parses.
func TestEnumNames(t *testing.T) {
	for _, n := range classificationNames {
		if _, ok := dbe.ClassificationByName(n); !ok {
			t.Errorf("classification %q", n)
		}
	}
	for _, n := range roeNames {
		if _, ok := dbe.ROELevelByName(n); !ok {
			t.Errorf("roe %q", n)
		}
	}
	for _, n := range compartmentNames {
		if _, ok := dbe.CompartmentByName(n); !ok {
			t.Errorf("compartment %q", n)
		}
	}
	if len(classificationNames) != 5 || len(roeNames) != 3 || len(compartmentNames) != 5 {
		t.Errorf("names: %q %q %q", classificationNames, roeNames, compartmentNames)
	}
	tn := &Tenant{Compartments: []dbe.Compartment{dbe.CompartmentSOC, dbe.CompartmentDEV, dbe.CompartmentCRYPTO}}
	if got := tn.CompartmentMask(); got != 0x0b {
		t.Errorf("CompartmentMask = %#x, want 0x0b", got)
	}
}

func TestLoadMissingFile(t *testing.T) {
	cfg, diags := Load(filepath.Join(t.TempDir(), "nope.hcl"))
	if !diags.HasErrors() || cfg == nil || cfg.Files() == nil {
		t.Fatalf("want an error and a usable Config, got %v, %v", cfg, diags)
	}
	if !strings.Contains(diags[0].Summary, "Failed to read") {
		t.Errorf("summary %q", diags[0].Summary)
	}
}

func TestLookups(t *testing.T) {
	cfg, diags := Load("testdata/valid/full.hcl", WithGetenv(testGetenv))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if cfg.ModelByID("nope") != nil || cfg.TenantByName("nope") != nil || cfg.PluginByName("nope") != nil {
		t.Error("lookup of unknown name returned non-nil")
	}
	if got := cfg.PluginsForProfile("chat"); len(got) != 2 {
		t.Errorf("PluginsForProfile(chat) = %d plugins, want 2", len(got))
	}
	if tn := cfg.TenantByKey("test-key-soc"); tn == nil || tn.Name != "SOC_TEAM_ALPHA" {
		t.Errorf("TenantByKey(soc) = %v", tn)
	}
	if tn := cfg.TenantByKey("wrong"); tn != nil {
		t.Errorf("TenantByKey(wrong) = %v", tn.Name)
	}
	if tn := cfg.TenantByName("SOC_TEAM_ALPHA"); !tn.AllowsModel("dsmil/chat:7b-q8.0_v2") || tn.AllowsModel("dsmil-echo") {
		t.Error("AllowsModel")
	}
}

// TestHermeticOptions checks that includes go through WithReadFile and
// WithGlob.
func TestHermeticOptions(t *testing.T) {
	fsys := map[string]string{
		"/cfg/plugins.d/a.hcl": `plugin "a" {
  path      = "a"
  device_id = 1
  profiles  = ["a"]
}`,
		"/cfg/models.hcl": `model "m" { profile = "a" }`,
	}
	read := func(p string) ([]byte, error) {
		if s, ok := fsys[p]; ok {
			return []byte(s), nil
		}
		return nil, fs.ErrNotExist
	}
	glob := func(p string) ([]string, error) {
		var out []string
		for name := range fsys {
			if ok, _ := filepath.Match(p, name); ok {
				out = append(out, name)
			}
		}
		return out, nil
	}
	src := []byte(`include = ["plugins.d/*.hcl", "models.hcl"]`)
	cfg, diags := Parse("/cfg/dsmil.hcl", src, WithReadFile(read), WithGlob(glob))
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if len(cfg.Plugins) != 1 || cfg.Plugins[0].Path != "/cfg/a" || len(cfg.Models) != 1 {
		t.Errorf("got %+v %+v", cfg.Plugins, cfg.Models)
	}
	if want := []string{"/cfg/plugins.d/a.hcl", "/cfg/models.hcl"}; !reflect.DeepEqual(cfg.Includes, want) {
		t.Errorf("Includes = %q, want %q", cfg.Includes, want)
	}
	if len(cfg.Files()) != 3 {
		t.Errorf("Files() has %d files, want 3", len(cfg.Files()))
	}
}
