package accel

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Errors of Select.
var (
	// ErrNoAccelerator reports that an accelerator is required but none
	// can be used; the error says what is missing.
	ErrNoAccelerator = errors.New("accel: no usable accelerator")

	// ErrUnknownProvider reports a provider setting that names no
	// provider the plugin knows.
	ErrUnknownProvider = errors.New("accel: unknown execution provider")
)

// CPU is the Setting and Choice.Provider of the CPU execution provider.
const CPU = "cpu"

// Provider is an ONNX Runtime execution provider that runs models on an NPU.
type Provider struct {
	// Setting is the provider's name in the plugin's settings: "openvino".
	Setting string
	// ORTName is the name ONNX Runtime lists it by (GetAvailableProviders):
	// "OpenVINOExecutionProvider".
	ORTName string
	// AppendName is the name ONNX Runtime's AppendExecutionProvider takes:
	// "OpenVINO".
	AppendName string
	// Options are the provider options that select the NPU.
	Options map[string]string
	// Drivers are the kernel drivers of the devices it runs on (Device.Driver).
	Drivers []string
	// Accelerator is the name reported in PluginInfo, /v1/models and the
	// metrics when it is used: "npu".
	Accelerator string
}

// NPUProviders are the NPU execution providers, in order of preference.
//
//   - OpenVINO with device_type NPU: Intel NPUs (Core Ultra "AI Boost"), whose
//     driver intel_vpu makes /dev/accel/accel*.
//   - QNN with the HTP backend: Qualcomm Hexagon NPUs, reached through the
//     fastrpc driver's /dev/fastrpc-cdsp.
//   - VitisAI: AMD Ryzen AI NPUs, whose driver amdxdna makes /dev/accel/accel*.
var NPUProviders = []Provider{
	{Setting: "openvino", ORTName: "OpenVINOExecutionProvider", AppendName: "OpenVINO",
		Options: map[string]string{"device_type": "NPU"}, Drivers: []string{"intel_vpu"}, Accelerator: "npu"},
	{Setting: "qnn", ORTName: "QNNExecutionProvider", AppendName: "QNN",
		Options: map[string]string{"backend_path": "libQnnHtp.so"}, Drivers: []string{"fastrpc"}, Accelerator: "npu"},
	{Setting: "vitisai", ORTName: "VitisAIExecutionProvider", AppendName: "VitisAI",
		Drivers: []string{"amdxdna"}, Accelerator: "npu"},
}

// Device is an accelerator device node.
type Device struct {
	// Path is the device node: "/dev/accel/accel0".
	Path string
	// Driver is its kernel driver: "intel_vpu", "amdxdna", "fastrpc".
	Driver string
}

// Want is what the plugin's settings ask for.
type Want struct {
	// Provider is a Provider.Setting, CPU, or "" (or "auto"): the first of
	// the providers that is built in and has a device.
	Provider string
	// Require refuses the CPU: Select fails instead of falling back.
	Require bool
}

// Choice is where to compute.
type Choice struct {
	// Provider is the provider to use; nil: the CPU execution provider.
	Provider *Provider
	// Device is the device it runs on (zero for the CPU).
	Device Device
	// Fallback says why the CPU was chosen when an NPU was not ruled out
	// by the settings ("" when the settings asked for the CPU or an NPU
	// is used): what the start-up warning says.
	Fallback string
}

// OnCPU reports whether c is the CPU execution provider.
func (c Choice) OnCPU() bool { return c.Provider == nil }

// Select chooses among providers (NPUProviders) from the execution
// providers ONNX Runtime reports (available), the devices found (devices)
// and the settings (want). An NPU provider is chosen only when it is in
// available and a device of one of its drivers is in devices.
func Select(providers []Provider, available []string, devices []Device, want Want) (Choice, error) {
	name := strings.ToLower(strings.TrimSpace(want.Provider))
	if name == "auto" {
		name = ""
	}
	if name == CPU {
		if want.Require {
			return Choice{}, fmt.Errorf("%w: require_accelerator is true but execution_provider is %q", ErrNoAccelerator, CPU)
		}
		return Choice{}, nil
	}
	candidates := providers
	if name != "" {
		i := slices.IndexFunc(providers, func(p Provider) bool { return p.Setting == name })
		if i < 0 {
			names := []string{CPU}
			for _, p := range providers {
				names = append(names, p.Setting)
			}
			return Choice{}, fmt.Errorf("%w %q (known: %s)", ErrUnknownProvider, want.Provider, strings.Join(names, ", "))
		}
		candidates = providers[i : i+1]
	}
	var why []string
	for i := range candidates {
		p := &candidates[i]
		built := slices.Contains(available, p.ORTName)
		j := slices.IndexFunc(devices, func(d Device) bool { return slices.Contains(p.Drivers, d.Driver) })
		switch {
		case built && j >= 0:
			return Choice{Provider: p, Device: devices[j]}, nil
		case !built && j < 0:
			why = append(why, fmt.Sprintf("%s: ONNX Runtime is built without %s and no %s device is present",
				p.Setting, p.ORTName, strings.Join(p.Drivers, "/")))
		case !built:
			why = append(why, fmt.Sprintf("%s: the %s device %s is present but ONNX Runtime is built without %s",
				p.Setting, devices[j].Driver, devices[j].Path, p.ORTName))
		default:
			why = append(why, fmt.Sprintf("%s: ONNX Runtime has %s but no %s device is present",
				p.Setting, p.ORTName, strings.Join(p.Drivers, "/")))
		}
	}
	reason := fmt.Sprintf("no NPU execution provider can run (ONNX Runtime's providers: %s; devices: %s): %s",
		listOr(available), deviceList(devices), strings.Join(why, "; "))
	if want.Require {
		return Choice{}, fmt.Errorf("%w: require_accelerator is true and %s", ErrNoAccelerator, reason)
	}
	return Choice{Fallback: reason}, nil
}

func listOr(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func deviceList(ds []Device) string {
	if len(ds) == 0 {
		return "none"
	}
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.Path + " (" + d.Driver + ")"
	}
	return strings.Join(out, ", ")
}

// Devices lists the accelerator device nodes under root ("/" on a real
// system; a test's directory otherwise): /dev/accel/accel* (the kernel's
// compute-accelerator class: Intel NPUs, AMD NPUs), each with the driver
// that /sys/class/accel/<name>/device/driver links to, and /dev/fastrpc-cdsp
// (Qualcomm's Hexagon NPU) with the driver "fastrpc".
func Devices(root string) []Device {
	var out []Device
	nodes, _ := filepath.Glob(filepath.Join(root, "dev", "accel", "accel*"))
	slices.Sort(nodes)
	for _, n := range nodes {
		d := Device{Path: "/" + mustRel(root, n), Driver: "unknown"}
		if t, err := os.Readlink(filepath.Join(root, "sys", "class", "accel", filepath.Base(n), "device", "driver")); err == nil {
			d.Driver = filepath.Base(t)
		}
		out = append(out, d)
	}
	if _, err := os.Stat(filepath.Join(root, "dev", "fastrpc-cdsp")); err == nil {
		out = append(out, Device{Path: "/dev/fastrpc-cdsp", Driver: "fastrpc"})
	}
	return out
}

func mustRel(root, path string) string {
	r, err := filepath.Rel(root, path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(r)
}
