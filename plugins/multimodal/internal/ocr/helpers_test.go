package ocr

import "image/color"

var (
	black = color.RGBA{0, 0, 0, 255}
	white = color.RGBA{255, 255, 255, 255}
)

// The accuracy bounds TestAccuracy asserts on the default corpus (seed 1,
// 40 lines + 5 blocks, 71 lines), a little looser than what was measured
// when they were set: CER 0.0796 (244/3064), exact lines 0.380 (27/71),
// ONNX Runtime 1.30.0 on an AVX-512 Xeon. Most errors are the model's:
// word spaces dropped (the Chinese PP-OCRv4 recognizer is trained on
// text without them) and O read as 0 in Go Mono.
const (
	maxCER   = 0.09
	minExact = 0.35
)
