package worker

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/testutil"
	"github.com/dsmil/l7/plugins/internal/accel"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	"github.com/hashicorp/go-hclog"
)

// npuPlugin is a plugin with NPU providers (llm-npu's identity and
// defaults), whose device scan finds devices.
func npuPlugin(devices ...accel.Device) Plugin {
	return Plugin{Name: "llm-npu", Version: "0.1.0", DeviceID: 44, Profile: "llm-1b-npu", NPUs: accel.NPUProviders,
		Defaults: Defaults{Threads: func(n int) int { return n / 4 }, NoSpinning: true, MaxContext: 1024, Parallelism: 4, Queue: 8},
		devices:  func() []accel.Device { return devices }}
}

// configureNPU configures p on the tiny model with settings (threads
// unset: the plugin's default), and returns the workload, Configure's
// error and the log.
func configureNPU(t *testing.T, p Plugin, settings map[string]any) (*Workload, error, *testutil.SyncBuffer) {
	t.Helper()
	needORT(t)
	s := map[string]any{"model": tiny(t).Dir, "model_name": "tiny-npu"}
	for k, v := range settings {
		s[k] = v
	}
	logs := &testutil.SyncBuffer{}
	w := New(p)
	err := w.Configure(context.Background(), &sdk.Config{Name: p.Name, DeviceID: 44, Profiles: []string{"llm-1b-npu"}, Settings: s,
		Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Info, JSONFormat: true})})
	if err == nil {
		t.Cleanup(func() { w.Close(context.Background()) })
	}
	return w, err, logs
}

// TestNPUFallback runs an NPU plugin on this machine's real ONNX Runtime,
// which is built without any NPU provider: with no device and with an Intel
// NPU's device node listed, it runs on the CPU, says so in PluginInfo and in
// one warning with the reason, and still generates.
func TestNPUFallback(t *testing.T) {
	for _, tc := range []struct {
		name    string
		devices []accel.Device
		reason  string
	}{
		{"no device", nil, "built without OpenVINOExecutionProvider and no intel_vpu device"},
		{"an Intel NPU device", []accel.Device{{Path: "/dev/accel/accel0", Driver: "intel_vpu"}},
			"the intel_vpu device /dev/accel/accel0 is present but ONNX Runtime is built without OpenVINOExecutionProvider"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err, logs := configureNPU(t, npuPlugin(tc.devices...), nil)
			if err != nil {
				t.Fatal(err)
			}
			info, _ := w.Info(context.Background())
			if info.Accelerator != w.cpuAccelerator() || strings.Contains(info.Accelerator, "npu") {
				t.Errorf("Accelerator %q, want %q", info.Accelerator, w.cpuAccelerator())
			}
			if info.DeviceID != 44 || !slices.ContainsFunc(info.Settings, func(s sdk.SettingSpec) bool { return s.Name == "require_accelerator" }) {
				t.Errorf("info %+v", info)
			}
			var warns []string
			for _, l := range strings.Split(logs.String(), "\n") {
				if strings.Contains(l, `"@level":"warn"`) && strings.Contains(l, "NPU") {
					warns = append(warns, l)
				}
			}
			if len(warns) != 1 || !strings.Contains(warns[0], "running on the CPU, not an NPU") ||
				!strings.Contains(warns[0], tc.reason) || !strings.Contains(warns[0], "CPUExecutionProvider") {
				t.Errorf("want one warning saying %q, got %q", tc.reason, warns)
			}
			// the defaults of the plugin: a quarter of the cores, no spinning, the context cap
			st := w.st.Load()
			if want := max(1, runtime.NumCPU()/4); st.set.Session.IntraOpThreads != want || !st.set.Session.DisableSpinning {
				t.Errorf("threads %d spinning %v, want %d and no spinning", st.set.Session.IntraOpThreads, !st.set.Session.DisableSpinning, want)
			}
			if st.eng.MaxContext() != 1024 || st.set.Parallelism != 4 || st.set.Queue != 8 {
				t.Errorf("max_context %d parallelism %d queue %d, want 1024, 4, 8", st.eng.MaxContext(), st.set.Parallelism, st.set.Queue)
			}
			q := user("hello")
			q.MaxTokens = 4
			_, res, err := chat(t, w, q)
			if err != nil || res.Usage.CompletionTokens == 0 {
				t.Fatalf("chat on the CPU fallback: %v %+v", err, res)
			}
		})
	}
}

// TestNPURefusals: require_accelerator without an NPU, an unknown
// provider, and the NPU settings on a CPU-only plugin are INVALID_REQUEST
// naming the setting; execution_provider "cpu" runs on the CPU with no
// warning.
func TestNPURefusals(t *testing.T) {
	for _, tc := range []struct {
		name     string
		p        Plugin
		settings map[string]any
		param    string
		want     []string
	}{
		{"required, nothing there", npuPlugin(), map[string]any{"require_accelerator": true}, "require_accelerator",
			[]string{"llm-npu", "require_accelerator is true", "ONNX Runtime's providers:", "CPUExecutionProvider", "devices: none"}},
		{"required, device but no provider", npuPlugin(accel.Device{Path: "/dev/accel/accel0", Driver: "intel_vpu"}),
			map[string]any{"require_accelerator": true, "execution_provider": "openvino"}, "require_accelerator",
			[]string{"built without OpenVINOExecutionProvider"}},
		{"required but cpu asked for", npuPlugin(), map[string]any{"require_accelerator": true, "execution_provider": "cpu"},
			"require_accelerator", []string{`execution_provider is "cpu"`}},
		{"unknown provider", npuPlugin(), map[string]any{"execution_provider": "tpu"}, "execution_provider",
			[]string{`unknown execution provider "tpu"`}},
		{"not a bool", npuPlugin(), map[string]any{"require_accelerator": "yes"}, "require_accelerator", []string{"bool"}},
		{"NPU setting on llm-amx", testPlugin, map[string]any{"execution_provider": "openvino"}, "execution_provider",
			[]string{`llm-amx has no setting "execution_provider"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err, _ := configureNPU(t, tc.p, tc.settings)
			var e *mux.Error
			if !errors.As(err, &e) || e.Code != dbe.CodeInvalidRequest || e.Param != tc.param {
				t.Fatalf("err = %v, want INVALID_REQUEST on %s", err, tc.param)
			}
			for _, w := range tc.want {
				if !strings.Contains(e.Message, w) {
					t.Errorf("%q does not say %q", e.Message, w)
				}
			}
		})
	}
	w, err, logs := configureNPU(t, npuPlugin(), map[string]any{"execution_provider": "cpu"})
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := w.Info(context.Background()); info.Accelerator != w.cpuAccelerator() || strings.Contains(logs.String(), "not an NPU") {
		t.Errorf("execution_provider cpu: accelerator %q, logs %s", info.Accelerator, logs.String())
	}
}

// TestPluginIdentity: before Configure, Info is the Plugin's: name, device,
// profile (none when it sets none), the CPU as accelerator, and the NPU
// settings only for a plugin with NPU providers.
func TestPluginIdentity(t *testing.T) {
	for _, tc := range []struct {
		p        Plugin
		device   uint8
		profiles string
		npu      bool
	}{
		{npuPlugin(), 44, "llm-1b-npu", true},
		{testPlugin, 47, "llm-7b-amx", false},
		{Plugin{Name: "llm-x", Version: "0.0.1"}, 0, "", false},
	} {
		info, err := New(tc.p).Info(context.Background())
		if err != nil || info.Validate() != nil {
			t.Fatalf("%s: %+v %v %v", tc.p.Name, info, err, info.Validate())
		}
		hasNPU := slices.ContainsFunc(info.Settings, func(s sdk.SettingSpec) bool { return s.Name == "execution_provider" })
		if info.Name != tc.p.Name || info.DeviceID != tc.device || strings.Join(info.Profiles, ",") != tc.profiles ||
			!strings.HasPrefix(info.Accelerator, "cpu") || hasNPU != tc.npu {
			t.Errorf("%s: %+v", tc.p.Name, info)
		}
	}
}

// TestProviderCannotLoad: a provider that ONNX Runtime lists and whose
// device is present, but with which the session cannot be created, falls
// back to the CPU (or, required, refuses to start). No NPU provider is
// built into this machine's ONNX Runtime, so the test uses one it lists
// (CUDA, without a GPU or its provider library) as the provider.
func TestProviderCannotLoad(t *testing.T) {
	needORT(t)
	cuda := accel.Provider{Setting: "cuda", ORTName: "CUDAExecutionProvider", AppendName: "CUDA", Drivers: []string{"nvidia"}, Accelerator: "gpu"}
	p := npuPlugin(accel.Device{Path: "/dev/nvidia0", Driver: "nvidia"})
	p.NPUs = []accel.Provider{cuda}
	w, err, logs := configureNPU(t, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := w.Info(context.Background())
	if info.Accelerator != w.cpuAccelerator() || !strings.Contains(logs.String(), "running on the CPU, not an NPU") ||
		!strings.Contains(logs.String(), "CUDAExecutionProvider on /dev/nvidia0 could not load the model") {
		t.Fatalf("accelerator %q, logs:\n%s", info.Accelerator, logs.String())
	}
	_, err, _ = configureNPU(t, p, map[string]any{"require_accelerator": true})
	var e *mux.Error
	if !errors.As(err, &e) || e.Param != "require_accelerator" || !strings.Contains(e.Message, "could not load the model on CUDAExecutionProvider") {
		t.Fatalf("required: %v", err)
	}
	t.Logf("required: %s", e.Message)
}
