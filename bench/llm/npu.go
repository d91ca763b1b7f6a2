package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dsmil/l7/bench/internal/benchhost"
	"github.com/dsmil/l7/host/server"
	"github.com/dsmil/l7/internal/mkmodel"
)

// npuModelID is the llm-npu model of -npu.
const npuModelID = "bench-random-tinyllama-1.1b-int4"

// ensureNPUModel writes -npu's model, TinyLlama-1.1B's shape with int4
// weights (block 128), as `make demo-model` does for llm-npu, into dir
// unless it is there.
func ensureNPUModel(dir string) error {
	spec, err := mkmodel.Preset("tinyllama-1.1b")
	if err != nil {
		return err
	}
	spec.DType, spec.BlockSize = mkmodel.Int4, 128
	if _, err := os.Stat(filepath.Join(dir, spec.ONNXFile())); err == nil {
		return nil
	}
	fmt.Printf("generating %s int4 into %s ...\n", spec.Name, dir)
	_, err = mkmodel.Write(dir, spec)
	return err
}

// startBothHost starts dsmil-host in process with llm-amx (Device 47, the
// qwen2.5-0.5b model of dtype, threads and spinning from the flags) and
// llm-npu (Device 44, npuDir, its own defaults: a quarter of the cores, no
// spinning, so the run shows the split `make run` has), both ignoring EOS.
func startBothHost(tmp, amxBin, npuBin, amxDir, npuDir, addr, dtype string, o options) (*server.Host, error) {
	base, err := benchhost.Base(addr, apiKey)
	if err != nil {
		return nil, err
	}
	return benchhost.Start(tmp, base+fmt.Sprintf(`
plugin "llm-amx" {
  path           = %[1]q
  device_id      = 47
  profiles       = ["llm-7b-amx"]
  model          = %[2]q
  variant        = %[3]q
  model_name     = %[4]q
  threads        = %[5]d
  allow_spinning = %[6]v
  ignore_eos     = true
  pass_env       = ["DSMIL_ORT_LIB"]
  %[10]s
}
plugin "llm-npu" {
  path          = %[7]q
  device_id     = 44
  profiles      = ["llm-1b-npu"]
  memory_budget = "2GiB"
  model         = %[8]q
  model_name    = %[9]q
  ignore_eos    = true
  pass_env      = ["DSMIL_ORT_LIB"]
}
model %[4]q { profile = "llm-7b-amx" }
model %[9]q { profile = "llm-1b-npu" }
`, amxBin, amxDir, dtypes[dtype].variant, modelID(dtype), o.threads, o.spin,
		npuBin, npuDir, npuModelID, pluginFlagLines()))
}

// sideBySide is -npu (issue 16): llm-amx and llm-npu in one host, each
// plugin's streamed /v1/completions decode alone, then one stream on each
// started together, in -stream-rounds interleaved rounds; it prints the
// medians and the together/alone ratios.
func sideBySide(tmp, amxBin, npuBin, amxDir, npuDir, dtype, prompt string, o options) error {
	if err := ensureNPUModel(npuDir); err != nil {
		return err
	}
	addr, err := benchhost.FreeAddr()
	if err != nil {
		return err
	}
	host, err := startBothHost(tmp, amxBin, npuBin, amxDir, npuDir, addr, dtype, o)
	if err != nil {
		return err
	}
	defer host.Shutdown()
	accel := map[string]string{}
	for _, s := range host.Manager.Snapshots() {
		accel[s.Name] = s.Accelerator
	}
	models := []string{modelID(dtype), npuModelID}
	for _, m := range models { // warm-up
		if _, err := completionRun(addr, m, prompt, 8); err != nil {
			return fmt.Errorf("-npu warm-up %s: %w", m, err)
		}
	}
	alone := map[string][]float64{}
	together := map[string][]float64{}
	var sum []float64
	for round := range max(o.streamRounds, 1) {
		// alone, in an order that alternates between rounds
		for k := range models {
			m := models[(round+k)%len(models)]
			s, err := completionRun(addr, m, prompt, o.tokens)
			if err != nil {
				return fmt.Errorf("-npu %s alone: %w", m, err)
			}
			alone[m] = append(alone[m], s.tps)
		}
		// together: one stream on each, started at once
		type res struct {
			model string
			s     sample
			err   error
		}
		ch := make(chan res, len(models))
		for _, m := range models {
			go func() {
				s, err := completionRun(addr, m, prompt, o.tokens)
				ch <- res{m, s, err}
			}()
		}
		total := 0.0
		for range models {
			r := <-ch
			if r.err != nil {
				return fmt.Errorf("-npu %s together: %w", r.model, r.err)
			}
			together[r.model] = append(together[r.model], r.s.tps)
			total += r.s.tps
		}
		sum = append(sum, total)
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("\nllm-amx and llm-npu side by side (issue 16): one host, prompt %d tokens, %d generated, %d rounds; streamed /v1/completions\n",
		o.promptLen, o.tokens, max(o.streamRounds, 1))
	fmt.Printf("%-8s %-36s %-12s %16s %19s %16s\n", "plugin", "model", "accelerator", "alone tok/s", "together tok/s", "together/alone")
	for i, name := range []string{"llm-amx", "llm-npu"} {
		m := models[i]
		a, t := benchhost.Median(alone[m]), benchhost.Median(together[m])
		fmt.Printf("%-8s %-36s %-12s %16.1f %19.1f %15.2f×\n", name, m, accel[name], a, t, t/a)
	}
	fmt.Printf("%-8s %-36s %-12s %16s %19.1f\n", "both", "(sum of the two streams)", "", "", benchhost.Median(sum))
	return nil
}
