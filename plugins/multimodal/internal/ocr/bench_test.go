package ocr

import (
	"context"
	"testing"

	"github.com/dsmil/l7/plugins/multimodal/internal/imagefile"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/corpus"
)

// BenchmarkReadScreenshot reads the 1280×720 screenshot of 20 lines
// (decoding included), the speed benchmark image.
func BenchmarkReadScreenshot(b *testing.B) {
	e := testEngine(b)
	file, want, err := corpus.Screenshot(1, 1280, 720, 20)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		img, err := imagefile.Decode(file, imagefile.DefaultLimits)
		if err != nil {
			b.Fatal(err)
		}
		lines, err := e.Read(context.Background(), img.Image)
		if err != nil {
			b.Fatal(err)
		}
		if len(lines) < len(want)-2 {
			b.Fatalf("%d lines, want about %d", len(lines), len(want))
		}
	}
}
