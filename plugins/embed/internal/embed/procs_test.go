package embed

import (
	"os"
	"runtime"
	"testing"
)

// TestRunProcs: GOMAXPROCS becomes one P per CPU (as the process started)
// plus one per run in flight, however often it is called, unless the
// operator set GOMAXPROCS.
func TestRunProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	unset := func(string) string { return "" }
	for range 2 {
		if got := runProcs(3, unset); got != baseProcs+3 || runtime.GOMAXPROCS(0) != baseProcs+3 {
			t.Fatalf("runProcs(3) = %d, GOMAXPROCS %d, want %d", got, runtime.GOMAXPROCS(0), baseProcs+3)
		}
	}
	runtime.GOMAXPROCS(baseProcs)
	set := func(k string) string {
		if k == "GOMAXPROCS" {
			return "1"
		}
		return ""
	}
	if got := runProcs(3, set); got != baseProcs {
		t.Errorf("with GOMAXPROCS set, runProcs(3) = %d, want it left at %d", got, baseProcs)
	}
}

// TestConfigureProcs: a workload configured with two concurrent runs
// leaves GOMAXPROCS at one P per CPU plus two.
func TestConfigureProcs(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS is set: the plugin leaves it")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	tinyEncoder(t, map[string]any{"concurrent_runs": float64(2)})
	if got := runtime.GOMAXPROCS(0); got != baseProcs+2 {
		t.Errorf("GOMAXPROCS %d after Configure, want %d", got, baseProcs+2)
	}
}
