package embed

import "runtime"

// baseProcs is GOMAXPROCS as the process started: one P per CPU it may
// use (or the operator's GOMAXPROCS).
var baseProcs = runtime.GOMAXPROCS(0)

// runProcs gives the Go scheduler one P more per ONNX Runtime run that can
// be in flight at once, on top of baseProcs, unless the operator set
// GOMAXPROCS (getenv), and returns GOMAXPROCS as it is then.
//
// A goroutine inside a cgo call keeps its P until the runtime's monitor
// takes it back (sysmon, after 20 µs to 10 ms): with as many runs in flight
// as CPUs, every P is held by a run, and the plugin's own goroutines —
// reading the next request, tokenising it, writing a reply — wait for one.
// The runs' threads compute in ONNX Runtime, not in Go, so the extra Ps add
// no Go work beside them. Measured (bench/embed, q8, 2 CPUs, runs 2, pairs
// of runs): 32 concurrent one-input requests 8–15 % more embeddings/s,
// the other rows unchanged within the runs' noise (docs/performance.md).
func runProcs(runs int, getenv func(string) string) int {
	if getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(baseProcs + max(runs, 0))
	}
	return runtime.GOMAXPROCS(0)
}
