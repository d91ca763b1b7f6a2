package embed

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/dsmil/l7/sdk/mux"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

func TestSettings(t *testing.T) {
	env := func(string) string { return "/opt/ort/libonnxruntime.so" }
	s, err := parseSettings(map[string]any{"model": "models/x", "max_batch": float64(4), "matryoshka": true, "threads": float64(2)}, env)
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(s.Model) || s.ModelName != "x" || s.MaxBatch != 4 || !s.Matryoshka || s.Session.IntraOpThreads != 2 || s.ORTLibrary != "/opt/ort/libonnxruntime.so" {
		t.Errorf("settings %+v", s)
	}
	for _, tc := range []struct {
		raw   map[string]any
		param string
	}{
		{map[string]any{}, "model"},
		{map[string]any{"model": "x", "max_batch": float64(0)}, "max_batch"},
		{map[string]any{"model": "x", "matryoshka": "yes"}, "matryoshka"},
		{map[string]any{"model": "x", "graph_optimization": "max"}, "graph_optimization"},
		{map[string]any{"model": "x", "variant": "q4"}, "variant"},
	} {
		_, err := parseSettings(tc.raw, env)
		var me *mux.Error
		if !errors.As(err, &me) || me.Code != dbe.CodeInvalidRequest || me.Param != tc.param {
			t.Errorf("%v: %v, want INVALID_REQUEST on %s", tc.raw, err, tc.param)
		}
	}
}

// TestWorkload configures the workload on the tiny encoder and embeds
// directly: inputs sorted into batches of two come back in input order,
// the model name is checked, dimensions without matryoshka is refused.
func TestWorkload(t *testing.T) {
	lib := ort.ResolveLibrary(os.Getenv)
	if lib == "" {
		t.Skip("ONNX Runtime is not installed: run make ort (make test does)")
	}
	s, _ := mkmodel.EncoderPreset("tiny-encoder")
	r, err := mkmodel.WriteEncoder(filepath.Join(t.TempDir(), "enc"), s)
	if err != nil {
		t.Fatal(err)
	}
	w := New()
	ctx := context.Background()
	if err := w.Configure(ctx, &sdk.Config{Name: "embed", DeviceID: 49, Profiles: []string{"embed"},
		Settings: map[string]any{"model": r.Dir, "max_batch": float64(2), "ort_library": lib, "threads": float64(1)}}); err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	if err := w.Configure(ctx, &sdk.Config{}); !errors.Is(err, ErrConfigured) {
		t.Errorf("second Configure: %v", err)
	}
	info, _ := w.Info(ctx)
	if info.DeviceID != 49 || len(info.Models) != 1 || info.Models[0] != "enc" || !info.Has(sdk.CapEmbed) || info.Has(sdk.CapChat) {
		t.Errorf("info %+v", info)
	}
	texts := []string{"the model reads the prompt and the graph", "hi", "hello world", "the host"}
	in := make([]*l7v1.EmbedInput, len(texts))
	for i, s := range texts {
		in[i] = &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Text{Text: s}}
	}
	all, err := w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: in}})
	if err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		one, err := w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: in[i : i+1]}})
		if err != nil {
			t.Fatal(err)
		}
		for j := range one.Vectors[0] {
			if math.Abs(float64(one.Vectors[0][j]-all.Vectors[i][j])) > 1e-5 {
				t.Fatalf("input %d: batched and alone differ at %d: the vectors are out of order", i, j)
			}
		}
	}
	_, err = w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Model: "other", Inputs: in}})
	if me := new(mux.Error); !errors.As(err, &me) || me.Code != dbe.CodeNotFound {
		t.Errorf("wrong model: %v", err)
	}
	_, err = w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: in, Dimensions: 8}})
	if me := new(mux.Error); !errors.As(err, &me) || me.Param != "dimensions" || !strings.Contains(me.Message, "matryoshka") {
		t.Errorf("dimensions without matryoshka: %v", err)
	}
	res, err := w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: in[:1], Dimensions: 32}})
	if err != nil || len(res.Vectors[0]) != 32 {
		t.Errorf("dimensions equal to the model's: %v", err)
	}
}
