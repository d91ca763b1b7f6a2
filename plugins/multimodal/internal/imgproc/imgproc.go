// Package imgproc is the image arithmetic of the OCR pipeline, written to
// give what PaddleOCR's OpenCV calls give: bilinear resizing as
// cv2.resize(INTER_LINEAR) on 8-bit images (half-pixel centres, 11-bit
// fixed-point weights, and INTER_AREA for an exact halving), perspective
// warping as cv2.warpPerspective(INTER_CUBIC, BORDER_REPLICATE) with
// cv2.getPerspectiveTransform, and the rotations np.rot90 and
// cv2.rotate(ROTATE_180).
//
// golang.org/x/image/draw is not used for resampling: its BiLinear and
// CatmullRom kernels widen with the scale factor when shrinking (an
// anti-aliasing filter) and its Transform is affine only, so they would
// not give the pixels PaddleOCR's models were tuned on.
package imgproc

import (
	"errors"
	"fmt"
	"image"
	"image/color"
)

// Image is an 8-bit image with C interleaved channels per pixel, rows top
// to bottom. The OCR pipeline keeps colour images as RGB (C = 3).
type Image struct {
	W, H, C int
	Pix     []uint8 // len W*H*C
}

// New returns a black image.
func New(w, h, c int) *Image {
	return &Image{W: w, H: h, C: c, Pix: make([]uint8, w*h*c)}
}

// At returns channel ch of pixel (x, y).
func (m *Image) At(x, y, ch int) uint8 { return m.Pix[(y*m.W+x)*m.C+ch] }

// ErrSize reports an image or target size that is not positive.
var ErrSize = errors.New("imgproc: empty image")

// FromImage converts any decoded image to RGB, compositing transparent
// pixels onto white (as PaddleOCR's alpha_to_color does before OCR).
func FromImage(src image.Image) *Image {
	b := src.Bounds()
	m := New(b.Dx(), b.Dy(), 3)
	i := 0
	switch s := src.(type) {
	case *image.NRGBA:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := s.Pix[(y-b.Min.Y)*s.Stride:]
			for x := 0; x < b.Dx(); x++ {
				p := row[4*x : 4*x+4]
				a := uint32(p[3])
				for c := 0; c < 3; c++ {
					m.Pix[i+c] = uint8((uint32(p[c])*a + 255*(255-a) + 127) / 255)
				}
				i += 3
			}
		}
	case *image.YCbCr:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				yi, ci := s.YOffset(x, y), s.COffset(x, y)
				r, g, bb := color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
				m.Pix[i], m.Pix[i+1], m.Pix[i+2] = r, g, bb
				i += 3
			}
		}
	case *image.Gray:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			row := s.Pix[(y-b.Min.Y)*s.Stride:]
			for x := 0; x < b.Dx(); x++ {
				m.Pix[i], m.Pix[i+1], m.Pix[i+2] = row[x], row[x], row[x]
				i += 3
			}
		}
	default:
		// Premultiplied 16-bit RGBA: c + (1 - a) * white.
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				r, g, bb, a := src.At(x, y).RGBA()
				w := 0xffff - a
				m.Pix[i] = uint8((r + w) >> 8)
				m.Pix[i+1] = uint8((g + w) >> 8)
				m.Pix[i+2] = uint8((bb + w) >> 8)
				i += 3
			}
		}
	}
	return m
}

// ToRGBA returns m (C = 3) as an image.Image, for tests and debugging.
func (m *Image) ToRGBA() *image.RGBA {
	out := image.NewRGBA(image.Rect(0, 0, m.W, m.H))
	for i, j := 0, 0; i < len(m.Pix); i, j = i+m.C, j+4 {
		out.Pix[j], out.Pix[j+1], out.Pix[j+2], out.Pix[j+3] = m.Pix[i], m.Pix[i+1], m.Pix[i+2], 255
	}
	return out
}

// Rotate180 returns m turned by 180° (cv2.rotate(img, cv2.ROTATE_180)).
func Rotate180(m *Image) *Image {
	out := New(m.W, m.H, m.C)
	n := m.W * m.H
	for p := 0; p < n; p++ {
		copy(out.Pix[(n-1-p)*m.C:(n-p)*m.C], m.Pix[p*m.C:(p+1)*m.C])
	}
	return out
}

// Rot90 returns m turned 90° counter-clockwise (np.rot90(img)): the
// output is H wide and W high, its row i is m's column W-1-i.
func Rot90(m *Image) *Image {
	out := New(m.H, m.W, m.C)
	for i := 0; i < m.W; i++ { // output row
		for j := 0; j < m.H; j++ { // output column
			src := (j*m.W + (m.W - 1 - i)) * m.C
			dst := (i*out.W + j) * m.C
			copy(out.Pix[dst:dst+m.C], m.Pix[src:src+m.C])
		}
	}
	return out
}

func checkSize(m *Image, w, h int) error {
	if m == nil || m.W <= 0 || m.H <= 0 || w <= 0 || h <= 0 {
		return fmt.Errorf("%w: %v to %dx%d", ErrSize, dims(m), w, h)
	}
	return nil
}

func dims(m *Image) string {
	if m == nil {
		return "nil"
	}
	return fmt.Sprintf("%dx%d", m.W, m.H)
}
