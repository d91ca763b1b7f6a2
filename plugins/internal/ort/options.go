package ort

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync/atomic"

	ortgo "github.com/yalue/onnxruntime_go"
)

// ErrOptions reports invalid session options.
var ErrOptions = errors.New("ort: invalid session options")

// Diagnostics, read from the environment by SessionOptions (for
// benchmarks and profiling, not settings):
//
//   - EnvProfile: a path prefix; every session then records ONNX
//     Runtime's per-node profile (SessionOptions.EnableProfiling) and
//     writes it as PREFIX_<pid>_<n>_<time>.json when it is destroyed
//     (n counts the sessions of the process, so two sessions never share
//     a file).
//   - EnvSaveOptimized: a path prefix; every session writes the graph ORT
//     runs after its optimizations to PREFIX_<pid>_<n>.onnx.
const (
	EnvProfile       = "DSMIL_ORT_PROFILE"
	EnvSaveOptimized = "DSMIL_ORT_SAVE_OPTIMIZED"
)

var sessionCount atomic.Int64

// Graph optimization levels accepted in Options.GraphOptimization.
const (
	OptDisable  = "disable"
	OptBasic    = "basic"
	OptExtended = "extended"
	OptAll      = "all"
)

// Options are the session options the plugin's configuration controls.
// The zero value is the default: one intra-op thread per core, sequential
// execution, every graph optimization.
type Options struct {
	// IntraOpThreads is how many threads one operator may use; 0 means
	// one per core this process may run on (runtime.NumCPU).
	IntraOpThreads int

	// InterOpThreads is how many operators may run at once in parallel
	// execution mode; 0 means sequential execution (the right choice for
	// a decoder, whose operators depend on one another).
	InterOpThreads int

	// GraphOptimization is "disable", "basic", "extended" or "all"; ""
	// means "all".
	GraphOptimization string

	// DisableSpinning stops idle intra-op threads from spin-waiting,
	// trading a little latency for idle CPU. Default false (ORT spins).
	DisableSpinning bool

	// StopSpinningAfterRun stops the intra-op threads' spinning as soon as
	// the last concurrent Run returns (ONNX Runtime's
	// session.force_spinning_stop); the next Run restarts it. Threads
	// still spin between the operators of a run, but not between runs:
	// the cores are idle between requests instead of spinning for ONNX
	// Runtime's spin budget, and the next run wakes the threads. Default
	// false.
	StopSpinningAfterRun bool

	// DisableArena turns off ONNX Runtime's CPU memory arena: every
	// tensor ORT allocates inside a run is malloc'd and freed, so the
	// working memory of a large run (a long prefill) goes back to the
	// system afterwards instead of staying in the arena for the life of
	// the session. Default false (the arena).
	DisableArena bool

	// Provider is an execution provider to run the graph on before the
	// CPU's, by the name ONNX Runtime's AppendExecutionProvider takes
	// ("OpenVINO", "QNN", "VitisAI"); nodes it cannot run fall back to
	// the CPU execution provider. "" means the CPU execution provider only.
	Provider string

	// ProviderOptions are Provider's options, such as {"device_type":
	// "NPU"} for OpenVINO.
	ProviderOptions map[string]string
}

// WithDefaults returns o with the defaults filled in.
func (o Options) WithDefaults() Options {
	if o.IntraOpThreads == 0 {
		o.IntraOpThreads = runtime.NumCPU()
	}
	if o.GraphOptimization == "" {
		o.GraphOptimization = OptAll
	}
	o.GraphOptimization = strings.ToLower(o.GraphOptimization)
	return o
}

// Validate checks o (after WithDefaults).
func (o Options) Validate() error {
	if o.IntraOpThreads < 0 {
		return fmt.Errorf("%w: intra-op threads %d < 0", ErrOptions, o.IntraOpThreads)
	}
	if o.InterOpThreads < 0 {
		return fmt.Errorf("%w: inter-op threads %d < 0", ErrOptions, o.InterOpThreads)
	}
	if _, ok := optLevels[strings.ToLower(o.GraphOptimization)]; !ok && o.GraphOptimization != "" {
		return fmt.Errorf("%w: graph optimization %q is not disable, basic, extended or all", ErrOptions, o.GraphOptimization)
	}
	return nil
}

var optLevels = map[string]ortgo.GraphOptimizationLevel{
	OptDisable:  ortgo.GraphOptimizationLevelDisableAll,
	OptBasic:    ortgo.GraphOptimizationLevelEnableBasic,
	OptExtended: ortgo.GraphOptimizationLevelEnableExtended,
	OptAll:      ortgo.GraphOptimizationLevelEnableAll,
}

// SessionOptions builds ONNX Runtime session options from o (defaults
// filled in). The caller destroys them once the session is created.
func (o Options) SessionOptions() (*ortgo.SessionOptions, error) {
	o = o.WithDefaults()
	if err := o.Validate(); err != nil {
		return nil, err
	}
	so, err := ortgo.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("ort: session options: %w", err)
	}
	set := []func() error{
		func() error { return so.SetIntraOpNumThreads(o.IntraOpThreads) },
		func() error { return so.SetGraphOptimizationLevel(optLevels[o.GraphOptimization]) },
	}
	if o.InterOpThreads > 0 {
		set = append(set,
			func() error { return so.SetExecutionMode(ortgo.ExecutionModeParallel) },
			func() error { return so.SetInterOpNumThreads(o.InterOpThreads) })
	}
	if o.DisableSpinning {
		set = append(set, func() error { return so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0") })
	}
	if o.StopSpinningAfterRun {
		set = append(set, func() error { return so.AddSessionConfigEntry("session.force_spinning_stop", "1") })
	}
	if o.DisableArena {
		set = append(set, func() error { return so.SetCpuMemArena(false) })
	}
	if o.Provider != "" {
		set = append(set, func() error { return so.AppendExecutionProvider(o.Provider, o.ProviderOptions) })
	}
	prof, opt := os.Getenv(EnvProfile), os.Getenv(EnvSaveOptimized)
	if prof != "" || opt != "" {
		n := fmt.Sprintf("_%d_%d", os.Getpid(), sessionCount.Add(1))
		if prof != "" {
			set = append(set, func() error { return so.EnableProfiling(prof + n) })
		}
		if opt != "" {
			set = append(set, func() error { return so.SetOptimizedModelFilePath(opt + n + ".onnx") })
		}
	}
	for _, f := range set {
		if err := f(); err != nil {
			so.Destroy()
			return nil, fmt.Errorf("ort: session options: %w", err)
		}
	}
	return so, nil
}
