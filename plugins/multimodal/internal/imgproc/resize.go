package imgproc

import "math"

// OpenCV's fixed-point bilinear weights: 11 fractional bits.
const (
	coefBits  = 11
	coefScale = 1 << coefBits
)

// Resize scales m to w×h as cv2.resize(img, (w, h)) with its default
// INTER_LINEAR on an 8-bit image: source position (d + 0.5)·scale − 0.5,
// clamped at the edges, weights rounded to 1/2048, the sum rounded to 8
// bits. A resize to exactly half of both sides is a 2×2 average, as
// OpenCV switches to INTER_AREA there.
func Resize(m *Image, w, h int) (*Image, error) {
	if err := checkSize(m, w, h); err != nil {
		return nil, err
	}
	if w == m.W && h == m.H {
		out := New(w, h, m.C)
		copy(out.Pix, m.Pix)
		return out, nil
	}
	if m.W == 2*w && m.H == 2*h {
		return halve(m), nil
	}
	xs, xa := linearTaps(m.W, w, true)
	ys, ya := linearTaps(m.H, h, false)
	c := m.C
	out := New(w, h, c)
	// Horizontal pass per source row that is needed, cached for two rows.
	rowA, rowB := make([]int32, w*c), make([]int32, w*c)
	rowIdxA, rowIdxB := -1, -1
	hpass := func(sy int, dst []int32) {
		src := m.Pix[sy*m.W*c:]
		for dx := 0; dx < w; dx++ {
			sx := xs[dx]
			a0, a1 := xa[2*dx], xa[2*dx+1]
			sx1 := min(sx+1, m.W-1)
			for ch := 0; ch < c; ch++ {
				dst[dx*c+ch] = int32(src[sx*c+ch])*a0 + int32(src[sx1*c+ch])*a1
			}
		}
	}
	for dy := 0; dy < h; dy++ {
		// Rows outside the image are its edge rows, with the weights
		// unchanged (OpenCV clamps the row index, not the fraction).
		sy0 := max(ys[dy], 0)
		sy1 := min(ys[dy]+1, m.H-1)
		// rowA holds sy0, rowB holds sy1.
		switch {
		case rowIdxA == sy0:
		case rowIdxB == sy0:
			rowA, rowB = rowB, rowA
			rowIdxA, rowIdxB = rowIdxB, rowIdxA
		default:
			hpass(sy0, rowA)
			rowIdxA = sy0
		}
		if rowIdxB != sy1 {
			hpass(sy1, rowB)
			rowIdxB = sy1
		}
		b0, b1 := ya[2*dy], ya[2*dy+1]
		dst := out.Pix[dy*w*c : (dy+1)*w*c]
		// OpenCV's vertical pass keeps 16 bits of each product:
		// ((b0·(S0>>4))>>16 + (b1·(S1>>4))>>16 + 2)>>2.
		for i := range dst {
			v := ((b0*(rowA[i]>>4))>>16 + (b1*(rowB[i]>>4))>>16 + 2) >> 2
			dst[i] = sat8(v)
		}
	}
	return out, nil
}

// linearTaps returns, for each of n destination positions over a source
// of size src, the first source index and the two fixed-point weights.
// With clampFrac (columns), a position before the first or past the last
// source index takes that index with weight 1, as OpenCV's horizontal
// pass; without (rows), the index may be −1 or src−1 with both weights
// kept, as its vertical pass.
func linearTaps(src, n int, clampFrac bool) ([]int, []int32) {
	scale := 1 / (float64(n) / float64(src)) // OpenCV: 1 / inv_scale
	idx := make([]int, n)
	wts := make([]int32, 2*n)
	for d := 0; d < n; d++ {
		f := float32((float64(d)+0.5)*scale - 0.5)
		s := int(math.Floor(float64(f)))
		f -= float32(s)
		if clampFrac && s < 0 {
			f, s = 0, 0
		}
		if clampFrac && s >= src-1 {
			f, s = 0, src-1
		}
		idx[d] = s
		wts[2*d] = int32(math.RoundToEven(float64((1 - f) * coefScale)))
		wts[2*d+1] = int32(math.RoundToEven(float64(f * coefScale)))
	}
	return idx, wts
}

// halve averages 2×2 blocks, rounding half up (OpenCV's INTER_AREA for an
// integer factor of 2).
func halve(m *Image) *Image {
	w, h, c := m.W/2, m.H/2, m.C
	out := New(w, h, c)
	for y := 0; y < h; y++ {
		r0 := m.Pix[(2*y)*m.W*c:]
		r1 := m.Pix[(2*y+1)*m.W*c:]
		for x := 0; x < w; x++ {
			for ch := 0; ch < c; ch++ {
				i, j := 2*x*c+ch, (2*x+1)*c+ch
				out.Pix[(y*w+x)*c+ch] = uint8((int(r0[i]) + int(r0[j]) + int(r1[i]) + int(r1[j]) + 2) >> 2)
			}
		}
	}
	return out
}

func sat8[T int64 | int32 | int | float32 | float64](v T) uint8 {
	switch {
	case v < 0:
		return 0
	case v > 255:
		return 255
	}
	return uint8(v)
}
