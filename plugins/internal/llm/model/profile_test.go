package model

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/internal/ort"
)

// TestProfileEnv: with $DSMIL_ORT_PROFILE set, each session of a model
// writes ONNX Runtime's per-node profile when the model closes (one file
// per session: the prefill graph's apart from the main graph's), and with
// $DSMIL_ORT_SAVE_OPTIMIZED the optimized graphs.
func TestProfileEnv(t *testing.T) {
	initORT(t)
	res := tiny(t, "qwen2-int4-prefill", func(s *mkmodel.Spec) {
		s.Seed, s.DType, s.PrefillGraph = 7, mkmodel.Int4, true
	})
	dir := t.TempDir()
	t.Setenv(ort.EnvProfile, filepath.Join(dir, "prof"))
	t.Setenv(ort.EnvSaveOptimized, filepath.Join(dir, "opt"))
	o := testOptions
	o.AllLogits, o.PrefillGraph, o.PrefillMin = false, true, 8
	m, err := Open(res.Dir, o)
	if err != nil {
		t.Fatal(err)
	}
	s, err := m.NewSequence(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Step(context.Background(), testPrompt(9, 0)); err != nil { // the prefill graph
		t.Fatal(err)
	}
	if _, err := s.Step(context.Background(), []int64{17}); err != nil { // the main graph
		t.Fatal(err)
	}
	s.Close()
	m.Close()
	profiles, _ := filepath.Glob(filepath.Join(dir, "prof_*.json"))
	optimized, _ := filepath.Glob(filepath.Join(dir, "opt_*.onnx"))
	if len(profiles) != 2 || len(optimized) != 2 {
		t.Fatalf("profiles %v, optimized graphs %v: want two of each", profiles, optimized)
	}
	ops := map[string]int{}
	for _, p := range profiles {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var events []struct {
			Cat  string `json:"cat"`
			Args struct {
				Op string `json:"op_name"`
			} `json:"args"`
		}
		if err := json.Unmarshal(data, &events); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		for _, e := range events {
			if e.Cat == "Node" {
				ops[e.Args.Op]++
			}
		}
	}
	// The main graph's linears and the prefill graph's fused u8×s8 ones.
	if ops["MatMulNBits"] == 0 || ops["MatMulIntegerToFloat"]+ops["DynamicQuantizeMatMul"] == 0 {
		t.Fatalf("node events by operator: %v", ops)
	}
}
