package worker

import (
	"errors"
	"runtime"

	"github.com/dsmil/l7/plugins/internal/accel"
	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/sdk"
)

// Plugin is what one LLM plugin binary sets: its identity, where it may
// compute and its defaults. Everything else (the engine, settings,
// admission, chat) is the same for every LLM plugin.
type Plugin struct {
	// Name is the plugin's name ("llm-amx"); errors and messages say it.
	Name string
	// Version is the plugin's version.
	Version string
	// DeviceID is the device reported before Configure (then the plugin
	// block's device_id).
	DeviceID uint8
	// Profile is the profile the plugin is meant for ("llm-7b-amx"),
	// reported before Configure (then the plugin block's profiles).
	Profile string
	// NPUs are the NPU execution providers the plugin may use, in order of
	// preference (accel.NPUProviders); with any, the plugin has the
	// execution_provider and require_accelerator settings. Empty: the CPU
	// execution provider only.
	NPUs []accel.Provider
	// Defaults are the defaults of the settings a plugin block leaves out.
	Defaults Defaults

	// devices lists the accelerator devices (accel.Devices("/") when nil).
	devices func() []accel.Device
}

// Defaults are per-plugin defaults of settings. Zero fields take the
// shared defaults.
type Defaults struct {
	// Threads is the ONNX Runtime intra-op threads for a machine of numCPU
	// cores; nil: one per core.
	Threads func(numCPU int) int
	// MaxContext caps max_context when the plugin block sets none (the
	// model's max_position_embeddings when lower); 0: the model's.
	MaxContext int
	// Parallelism is the parallelism default; 0: DefaultParallelism.
	Parallelism int
	// Queue is the queue default; 0: DefaultQueue.
	Queue int
	// NoSpinning makes allow_spinning default to false: idle ONNX Runtime
	// threads sleep instead of spin-waiting, leaving the cores to other
	// plugins between steps.
	NoSpinning bool
}

// threads is the default of the threads setting.
func (d Defaults) threads() int {
	if d.Threads == nil {
		return 0 // one per core (ort.Options)
	}
	return max(1, d.Threads(runtime.NumCPU()))
}

// selectProvider chooses the execution provider (accel.Select) for a
// plugin with NPUs: from ONNX Runtime's providers and the devices present.
func (w *Workload) selectProvider(set *settings) (accel.Choice, error) {
	if len(w.p.NPUs) == 0 {
		return accel.Choice{}, nil
	}
	avail, err := ort.AvailableProviders()
	if err != nil {
		avail = nil // then no NPU provider is built in, as far as we can tell
	}
	c, err := accel.Select(w.p.NPUs, avail, w.p.devices(), set.Accel)
	switch {
	case errors.Is(err, accel.ErrUnknownProvider):
		return c, sdk.InvalidParam("execution_provider", "%v", err)
	case err != nil:
		return c, sdk.InvalidParam("require_accelerator", "%s: %v", w.p.Name, err)
	}
	return c, nil
}
