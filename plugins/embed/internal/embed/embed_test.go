package embed

import (
	"bytes"
	"context"
	"errors"
	"image"
	"image/color"
	"image/png"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/embed/internal/encoder"
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
	if s.Session.StopSpinningAfterRun {
		t.Error("force_spinning_stop is on by default")
	}
	if s.CalibrateWait != DefaultCalibrateWait {
		t.Errorf("calibrate_wait_ms %v by default, want %v", s.CalibrateWait, DefaultCalibrateWait)
	}
	if s, err := parseSettings(map[string]any{"model": "x", "calibrate_wait_ms": float64(0)}, env); err != nil || s.CalibrateWait != 0 {
		t.Errorf("calibrate_wait_ms = 0: %v, %+v", err, s)
	}
	if s.ConcurrentRuns != AutoRuns || s.WideMinTokens != AutoRuns {
		t.Errorf("concurrent_runs %d, wide_min_tokens %d by default, want both auto (%d)", s.ConcurrentRuns, s.WideMinTokens, AutoRuns)
	}
	if s, err := parseSettings(map[string]any{"model": "x", "concurrent_runs": float64(2), "wide_min_tokens": float64(64)}, env); err != nil || s.ConcurrentRuns != 2 || s.WideMinTokens != 64 {
		t.Errorf("concurrent_runs = 2, wide_min_tokens = 64: %v, %+v", err, s)
	}
	if s, err := parseSettings(map[string]any{"model": "x", "concurrent_runs": float64(3), "wide_min_tokens": float64(9)}, env); err != nil {
		t.Error(err)
	} else if s, err = parseSettings(map[string]any{"model": "x", "concurrent_runs": "auto", "wide_min_tokens": "auto"}, env); err != nil || s.ConcurrentRuns != AutoRuns || s.WideMinTokens != AutoRuns {
		t.Errorf(`concurrent_runs = "auto", wide_min_tokens = "auto": %v, %+v`, err, s)
	}
	if s, err := parseSettings(map[string]any{"model": "x", "force_spinning_stop": true}, env); err != nil || !s.Session.StopSpinningAfterRun {
		t.Errorf("force_spinning_stop = true: %v, %+v", err, s)
	}
	for _, tc := range []struct {
		raw   map[string]any
		param string
	}{
		{map[string]any{}, "model"},
		{map[string]any{"model": "x", "max_batch": float64(0)}, "max_batch"},
		{map[string]any{"model": "x", "concurrent_runs": float64(0)}, "concurrent_runs"},
		{map[string]any{"model": "x", "concurrent_runs": float64(65)}, "concurrent_runs"},
		{map[string]any{"model": "x", "concurrent_runs": 1.5}, "concurrent_runs"},
		{map[string]any{"model": "x", "concurrent_runs": "max"}, "concurrent_runs"},
		{map[string]any{"model": "x", "concurrent_runs": true}, "concurrent_runs"},
		{map[string]any{"model": "x", "wide_min_tokens": float64(0)}, "wide_min_tokens"},
		{map[string]any{"model": "x", "wide_min_tokens": "short"}, "wide_min_tokens"},
		{map[string]any{"model": "x", "calibrate_wait_ms": float64(-1)}, "calibrate_wait_ms"},
		{map[string]any{"model": "x", "calibrate_wait_ms": "soon"}, "calibrate_wait_ms"},
		{map[string]any{"model": "x", "calibrate_wait_ms": float64(600001)}, "calibrate_wait_ms"},
		{map[string]any{"model": "x", "matryoshka": "yes"}, "matryoshka"},
		{map[string]any{"model": "x", "graph_optimization": "max"}, "graph_optimization"},
		{map[string]any{"model": "x", "variant": "q4"}, "variant"},
		{map[string]any{"model": "x", "force_spinning_stop": "1"}, "force_spinning_stop"},
		{map[string]any{"model": "x", "model_file": "../model.onnx"}, "model_file"},
		{map[string]any{"model": "x", "model_file": ""}, "model_file"},
	} {
		_, err := parseSettings(tc.raw, env)
		var me *mux.Error
		if !errors.As(err, &me) || me.Code != dbe.CodeInvalidRequest || me.Param != tc.param {
			t.Errorf("%v: %v, want INVALID_REQUEST on %s", tc.raw, err, tc.param)
		}
	}
}

// tinyEncoder writes the tiny random-weight text encoder (into a
// directory named "enc") and returns the workload configured on it with
// settings besides model, ort_library and threads = 1, closed when the test
// ends. It skips without ONNX Runtime.
func tinyEncoder(t *testing.T, settings map[string]any) *Workload {
	t.Helper()
	lib := ort.ResolveLibrary(os.Getenv)
	if lib == "" {
		t.Skip("ONNX Runtime is not installed: run make ort (make test does)")
	}
	s, _ := mkmodel.EncoderPreset("tiny-encoder")
	r, err := mkmodel.WriteEncoder(filepath.Join(t.TempDir(), "enc"), s)
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]any{"model": r.Dir, "ort_library": lib, "threads": float64(1)}
	maps.Copy(all, settings)
	w := New()
	if err := w.Configure(context.Background(), &sdk.Config{Name: "embed", DeviceID: 49, Profiles: []string{"embed"}, Settings: all}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close(context.Background()) })
	return w
}

// TestWorkload configures the workload on the tiny encoder and embeds
// directly: inputs sorted into batches of two come back in input order,
// the model name is checked, dimensions without matryoshka is refused.
func TestWorkload(t *testing.T) {
	w := tinyEncoder(t, map[string]any{"max_batch": float64(2)})
	ctx := context.Background()
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
	_, err = w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: append(in[:1:1], imageInput(pngImage(t, 8, 8)))}})
	if me := new(mux.Error); !errors.As(err, &me) || me.Param != "input" || !strings.Contains(me.Message, "input 1 is an image; model enc is a text encoder") {
		t.Errorf("an image to a text encoder: %v", err)
	}
}

// TestModelFile: model_file chooses the graph a text encoder runs. On the
// tiny encoder written with its quantized graph, the workload configured
// with model_file "onnx/model_quantized.onnx" answers with that graph's
// vectors (equal to encoder.Load of the file, within a cosine of 0.99 of
// the fp32 ones but not equal to them), and without it with the fp32
// graph's; a missing file, a path out of the directory and a CLIP model
// are INVALID_REQUEST on model_file.
func TestModelFile(t *testing.T) {
	lib := ort.ResolveLibrary(os.Getenv)
	if lib == "" {
		t.Skip("ONNX Runtime is not installed: run make ort (make test does)")
	}
	s, _ := mkmodel.EncoderPreset("tiny-encoder")
	s.Quantized = true
	r, err := mkmodel.WriteEncoder(filepath.Join(t.TempDir(), "enc"), s)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	texts := []string{"the model reads the prompt and the graph", "hi", "Hello, world: 42 tokens or fewer!"}
	in := make([]*l7v1.EmbedInput, len(texts))
	for i, s := range texts {
		in[i] = &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Text{Text: s}}
	}
	embed := func(file string) [][]float32 {
		t.Helper()
		set := map[string]any{"model": r.Dir, "ort_library": lib, "threads": float64(1)}
		if file != "" {
			set["model_file"] = file
		}
		w := New()
		if err := w.Configure(ctx, &sdk.Config{Name: "embed", DeviceID: 49, Profiles: []string{"embed"}, Settings: set}); err != nil {
			t.Fatal(err)
		}
		defer w.Close(ctx)
		res, err := w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: in}})
		if err != nil {
			t.Fatal(err)
		}
		return res.Vectors
	}
	if _, err := ort.Init(lib); err != nil {
		t.Fatal(err)
	}
	direct, err := encoder.Load(r.Dir, mkmodel.QuantizedEncoderFile, ort.Options{IntraOpThreads: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	var seqs []encoder.Sequence
	for _, s := range texts {
		seqs = append(seqs, direct.Encode(s))
	}
	wantQ, err := direct.Embed(ctx, seqs)
	if err != nil {
		t.Fatal(err)
	}
	fp, q := embed(""), embed(mkmodel.QuantizedEncoderFile)
	for i := range texts {
		var dot, diffQ, diffFP float64
		for k := range q[i] {
			dot += float64(q[i][k]) * float64(fp[i][k])
			diffQ = max(diffQ, math.Abs(float64(q[i][k]-wantQ[i][k])))
			diffFP = max(diffFP, math.Abs(float64(q[i][k]-fp[i][k])))
		}
		if diffQ > 1e-6 || diffFP < 1e-4 || dot < 0.99 {
			t.Errorf("input %d: model_file's vector differs from the quantized graph's by %g and from the fp32 one's by %g (cosine %.5f): want ≤ 1e-6, > 1e-4 and ≥ 0.99", i, diffQ, diffFP, dot)
		}
	}

	cs, _ := mkmodel.CLIPPreset("tiny-clip")
	rc, err := mkmodel.WriteCLIP(filepath.Join(t.TempDir(), "clip"), cs)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		dir, file, want string
	}{
		{r.Dir, "onnx/model_int8.onnx", "model_int8.onnx"},
		{r.Dir, "../enc/onnx/model.onnx", "not a path inside the model directory"},
		{rc.Dir, mkmodel.QuantizedEncoderFile, "CLIP dual encoder"},
	} {
		err := New().Configure(ctx, &sdk.Config{Name: "embed", Settings: map[string]any{"model": tc.dir, "ort_library": lib, "model_file": tc.file}})
		var me *mux.Error
		if !errors.As(err, &me) || me.Code != dbe.CodeInvalidRequest || me.Param != "model_file" || !strings.Contains(me.Message, tc.want) {
			t.Errorf("model_file %q in %s: %v, want INVALID_REQUEST on model_file naming %q", tc.file, filepath.Base(tc.dir), err, tc.want)
		}
	}
}

func imageInput(data []byte) *l7v1.EmbedInput {
	return &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Image{Image: &l7v1.ImageData{Data: data, MimeType: "image/png"}}}
}

// pngImage is a w×h PNG of a colour pattern.
func pngImage(t testing.TB, w, h int) []byte {
	t.Helper()
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Set(x, y, color.NRGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8((x ^ y) * 7), 255})
		}
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, m); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func norm(v []float32) float64 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	return math.Sqrt(s)
}

// TestWorkloadCLIP configures the workload on the tiny CLIP dual encoder:
// texts and images in one request (batched two at a time) come back in
// input order as unit vectors of the projection's size, the same as each
// alone; usage counts text tokens and 17 per image (16 patches and the
// class token); image limits and bad images are INVALID_REQUEST on input
// naming the input.
func TestWorkloadCLIP(t *testing.T) {
	lib := ort.ResolveLibrary(os.Getenv)
	if lib == "" {
		t.Skip("ONNX Runtime is not installed: run make ort (make test does)")
	}
	s, _ := mkmodel.CLIPPreset("tiny-clip")
	r, err := mkmodel.WriteCLIP(filepath.Join(t.TempDir(), "clip"), s)
	if err != nil {
		t.Fatal(err)
	}
	w := New()
	ctx := context.Background()
	if err := w.Configure(ctx, &sdk.Config{Name: "embed", DeviceID: 49, Profiles: []string{"embed"},
		Settings: map[string]any{"model": r.Dir, "max_batch": float64(2), "ort_library": lib, "threads": float64(1),
			"max_images": float64(3), "max_image_pixels": float64(10000)}}); err != nil {
		t.Fatal(err)
	}
	defer w.Close(ctx)
	in := []*l7v1.EmbedInput{
		{Input: &l7v1.EmbedInput_Text{Text: "a photo of a cat"}},
		imageInput(pngImage(t, 40, 30)),
		{Input: &l7v1.EmbedInput_Text{Text: "hello"}},
		imageInput(pngImage(t, 64, 64)),
	}
	all, err := w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: in}})
	if err != nil {
		t.Fatal(err)
	}
	// "a photo of a cat" and "hello": their tokens with the two specials.
	st := w.st.Load()
	want := uint32(len(st.clip.Encode("a photo of a cat")) + len(st.clip.Encode("hello")) + 2*17)
	if all.PromptTokens != want {
		t.Errorf("usage %d tokens, want %d", all.PromptTokens, want)
	}
	for i := range in {
		if len(all.Vectors[i]) != 24 || math.Abs(norm(all.Vectors[i])-1) > 1e-5 {
			t.Errorf("input %d: %d values, norm %v", i, len(all.Vectors[i]), norm(all.Vectors[i]))
		}
		one, err := w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: in[i : i+1]}})
		if err != nil {
			t.Fatal(err)
		}
		for j := range one.Vectors[0] {
			if math.Abs(float64(one.Vectors[0][j]-all.Vectors[i][j])) > 1e-5 {
				t.Fatalf("input %d: batched and alone differ at %d", i, j)
			}
		}
	}
	if d := math.Abs(float64(all.Vectors[1][0] - all.Vectors[3][0])); d == 0 {
		t.Error("two different images gave the same first value")
	}
	big := pngImage(t, 101, 100)
	for _, tc := range []struct {
		in   []*l7v1.EmbedInput
		want string
	}{
		{[]*l7v1.EmbedInput{in[0], imageInput(big)}, "input 1: image too large: 101x100 is 10100 pixels, more than the limit of 10000"},
		{[]*l7v1.EmbedInput{imageInput(pngImage(t, 8, 8)[:60])}, "input 0: corrupt image: png"},
		{[]*l7v1.EmbedInput{imageInput([]byte("%PDF-1.4"))}, "input 0: unsupported image format: not PNG, JPEG, GIF, BMP or WebP (it looks like pdf)"},
		{[]*l7v1.EmbedInput{in[1], in[1], in[1], in[1]}, "more than 3 images in one request (the plugin's max_images)"},
		{[]*l7v1.EmbedInput{{Input: &l7v1.EmbedInput_Text{Text: strings.Repeat("word ", 80)}}}, "tokens; the model takes at most 77"},
	} {
		_, err := w.Embed(ctx, &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: tc.in}})
		if me := new(mux.Error); !errors.As(err, &me) || me.Code != dbe.CodeInvalidRequest || me.Param != "input" || !strings.Contains(me.Message, tc.want) {
			t.Errorf("%v, want INVALID_REQUEST on input saying %q", err, tc.want)
		}
	}
}
