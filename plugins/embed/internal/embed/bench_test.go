package embed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/sdk"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
)

// BenchmarkWorkload measures the workload alone (no host, no DBE): one
// request of 32 texts of 16 tokens, and one of 1, on the encoder in
// $DSMIL_BENCH_ENCODER (a sentence-transformers directory, e.g.
// ~/.cache/dsmil/models/minilm-l6-512; $DSMIL_BENCH_ENCODER_FILE picks
// its graph), for threads × concurrent_runs of 2 × 1 and 1 × 2. It
// reports embeddings/s.
//
//	DSMIL_BENCH_ENCODER=~/.cache/dsmil/models/minilm-l6-512 \
//	DSMIL_BENCH_ENCODER_FILE=onnx/model_quantized.onnx \
//	go test ./plugins/embed/internal/embed -run '^$' -bench Workload
func BenchmarkWorkload(b *testing.B) {
	dir := os.Getenv("DSMIL_BENCH_ENCODER")
	lib := ort.ResolveLibrary(os.Getenv)
	if dir == "" || lib == "" {
		b.Skip("set DSMIL_BENCH_ENCODER to an encoder directory (and install ONNX Runtime: make ort)")
	}
	file := os.Getenv("DSMIL_BENCH_ENCODER_FILE")
	if file == "" {
		file = "onnx/model.onnx"
	}
	words := []string{"the", "model", "reads", "prompt", "and", "graph", "host", "plane", "local", "answers", "river", "stone"}
	texts := func(n int) []*l7v1.EmbedInput {
		in := make([]*l7v1.EmbedInput, n)
		for i := range in {
			w := make([]string, 14)
			for k := range w {
				w[k] = words[(i*7+k*3)%len(words)]
			}
			in[i] = &l7v1.EmbedInput{Input: &l7v1.EmbedInput_Text{Text: strings.Join(w, " ")}}
		}
		return in
	}
	for _, tc := range []struct{ threads, runs int }{{2, 1}, {1, 2}} {
		w := New()
		ctx := context.Background()
		if err := w.Configure(ctx, &sdk.Config{Name: "embed", DeviceID: 49, Profiles: []string{"embed"},
			Settings: map[string]any{"model": filepath.Clean(dir), "model_file": file, "ort_library": lib,
				"threads": float64(tc.threads), "concurrent_runs": float64(tc.runs)}}); err != nil {
			b.Fatal(err)
		}
		for _, n := range []int{1, 32} {
			req := &sdk.EmbedRequest{Params: &l7v1.L7EmbedRequest{Inputs: texts(n)}}
			b.Run(fmt.Sprintf("threads=%d/runs=%d/inputs=%d", tc.threads, tc.runs, n), func(b *testing.B) {
				for b.Loop() {
					if _, err := w.Embed(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "emb/s")
			})
		}
		w.Close(ctx)
	}
}
