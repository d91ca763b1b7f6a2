package accel

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSelect(t *testing.T) {
	cpuOnly := []string{"CPUExecutionProvider"}
	withOV := []string{"OpenVINOExecutionProvider", "CPUExecutionProvider"}
	withQNN := []string{"QNNExecutionProvider", "CPUExecutionProvider"}
	intel := []Device{{Path: "/dev/accel/accel0", Driver: "intel_vpu"}}
	amd := []Device{{Path: "/dev/accel/accel0", Driver: "amdxdna"}}
	qcom := []Device{{Path: "/dev/fastrpc-cdsp", Driver: "fastrpc"}}
	for _, tc := range []struct {
		name      string
		available []string
		devices   []Device
		want      Want
		provider  string   // chosen provider's Setting; "" = CPU
		fallback  []string // substrings of Choice.Fallback; nil: Fallback must be ""
		err       error
		errHas    string
	}{
		// provider built in × device present, automatic choice
		{name: "provider and device", available: withOV, devices: intel, provider: "openvino"},
		{name: "provider, no device", available: withOV, fallback: []string{"openvino: ONNX Runtime has OpenVINOExecutionProvider but no intel_vpu device"}},
		{name: "device, no provider", available: cpuOnly, devices: intel,
			fallback: []string{"the intel_vpu device /dev/accel/accel0 is present but ONNX Runtime is built without OpenVINOExecutionProvider"}},
		{name: "neither", available: cpuOnly,
			fallback: []string{"ONNX Runtime's providers: CPUExecutionProvider; devices: none", "built without OpenVINOExecutionProvider and no intel_vpu device"}},
		// the same four, required
		{name: "required: provider and device", available: withOV, devices: intel, want: Want{Require: true}, provider: "openvino"},
		{name: "required: provider, no device", available: withOV, want: Want{Require: true}, err: ErrNoAccelerator, errHas: "no intel_vpu device"},
		{name: "required: device, no provider", available: cpuOnly, devices: intel, want: Want{Require: true}, err: ErrNoAccelerator, errHas: "built without OpenVINOExecutionProvider"},
		{name: "required: neither", available: cpuOnly, want: Want{Require: true}, err: ErrNoAccelerator, errHas: "require_accelerator is true"},
		// a device of another vendor's driver is not the provider's
		{name: "OpenVINO build, AMD device", available: withOV, devices: amd, fallback: []string{"no intel_vpu device"}},
		{name: "QNN build, Qualcomm device", available: withQNN, devices: qcom, provider: "qnn"},
		// named providers
		{name: "named and present", available: withOV, devices: intel, want: Want{Provider: "OpenVINO"}, provider: "openvino"},
		{name: "named, another present", available: withOV, devices: intel, want: Want{Provider: "qnn"},
			fallback: []string{"qnn: ONNX Runtime is built without QNNExecutionProvider"}},
		{name: "named, another present, required", available: withOV, devices: intel, want: Want{Provider: "qnn", Require: true}, err: ErrNoAccelerator},
		{name: "auto", available: withOV, devices: intel, want: Want{Provider: "auto"}, provider: "openvino"},
		{name: "cpu asked for", available: withOV, devices: intel, want: Want{Provider: "cpu"}},
		{name: "cpu asked for, required", available: withOV, devices: intel, want: Want{Provider: "cpu", Require: true}, err: ErrNoAccelerator},
		{name: "unknown name", available: withOV, devices: intel, want: Want{Provider: "cuda"}, err: ErrUnknownProvider, errHas: "known: cpu, openvino, qnn, vitisai"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Select(NPUProviders, tc.available, tc.devices, tc.want)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.errHas) {
					t.Fatalf("err = %v, want %v containing %q", err, tc.err, tc.errHas)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			if !c.OnCPU() {
				got = c.Provider.Setting
				if c.Device.Path == "" || !slices.Contains(c.Provider.Drivers, c.Device.Driver) {
					t.Errorf("device %+v for %s", c.Device, got)
				}
			}
			if got != tc.provider {
				t.Errorf("provider %q, want %q", got, tc.provider)
			}
			if tc.fallback == nil && c.Fallback != "" {
				t.Errorf("fallback %q, want none", c.Fallback)
			}
			for _, f := range tc.fallback {
				if !strings.Contains(c.Fallback, f) {
					t.Errorf("fallback %q does not say %q", c.Fallback, f)
				}
			}
		})
	}
}

func TestDevices(t *testing.T) {
	root := t.TempDir()
	mk := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := Devices(root); len(got) != 0 {
		t.Fatalf("empty root: %v", got)
	}
	mk("dev/accel/accel1")
	mk("dev/accel/accel0")
	mk("dev/fastrpc-cdsp")
	drv := filepath.Join(root, "sys/bus/pci/drivers/intel_vpu")
	os.MkdirAll(drv, 0o755)
	os.MkdirAll(filepath.Join(root, "sys/class/accel/accel0/device"), 0o755)
	if err := os.Symlink(drv, filepath.Join(root, "sys/class/accel/accel0/device/driver")); err != nil {
		t.Fatal(err)
	}
	want := []Device{{"/dev/accel/accel0", "intel_vpu"}, {"/dev/accel/accel1", "unknown"}, {"/dev/fastrpc-cdsp", "fastrpc"}}
	if got := Devices(root); !slices.Equal(got, want) {
		t.Errorf("Devices = %v, want %v", got, want)
	}
}
