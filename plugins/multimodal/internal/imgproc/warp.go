package imgproc

import (
	"errors"
	"fmt"
	"math"

	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/geom"
)

// Point is a point in pixel coordinates.
type Point = geom.Point

// Matrix is a 3×3 homography, row-major.
type Matrix [9]float64

// ErrSingular reports four points no homography maps (three collinear).
var ErrSingular = errors.New("imgproc: singular perspective transform")

// PerspectiveTransform returns the homography mapping src[i] to dst[i], as
// cv2.getPerspectiveTransform (M[2][2] = 1, an 8×8 linear system solved by
// Gaussian elimination with partial pivoting).
func PerspectiveTransform(src, dst [4]Point) (Matrix, error) {
	var a [8][9]float64
	for i := 0; i < 4; i++ {
		x, y, u, v := src[i].X, src[i].Y, dst[i].X, dst[i].Y
		a[i] = [9]float64{x, y, 1, 0, 0, 0, -x * u, -y * u, u}
		a[i+4] = [9]float64{0, 0, 0, x, y, 1, -x * v, -y * v, v}
	}
	for col := 0; col < 8; col++ {
		p := col
		for r := col + 1; r < 8; r++ {
			if math.Abs(a[r][col]) > math.Abs(a[p][col]) {
				p = r
			}
		}
		if math.Abs(a[p][col]) < 1e-12 {
			return Matrix{}, fmt.Errorf("%w: %v -> %v", ErrSingular, src, dst)
		}
		a[col], a[p] = a[p], a[col]
		for r := 0; r < 8; r++ {
			if r == col {
				continue
			}
			f := a[r][col] / a[col][col]
			for k := col; k < 9; k++ {
				a[r][k] -= f * a[col][k]
			}
		}
	}
	var m Matrix
	for i := 0; i < 8; i++ {
		m[i] = a[i][8] / a[i][i]
	}
	m[8] = 1
	return m, nil
}

// Invert returns the inverse of m.
func (m Matrix) Invert() (Matrix, error) {
	a, b, c, d, e, f, g, h, i := m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8]
	det := a*(e*i-f*h) - b*(d*i-f*g) + c*(d*h-e*g)
	if det == 0 || math.IsNaN(det) || math.IsInf(det, 0) {
		return Matrix{}, ErrSingular
	}
	return Matrix{
		(e*i - f*h) / det, (c*h - b*i) / det, (b*f - c*e) / det,
		(f*g - d*i) / det, (a*i - c*g) / det, (c*d - a*f) / det,
		(d*h - e*g) / det, (b*g - a*h) / det, (a*e - b*d) / det,
	}, nil
}

// OpenCV's remap tables: positions quantized to 1/32 pixel.
const (
	interBits    = 5
	interTabSize = 1 << interBits
)

// WarpPerspective returns the w×h image whose pixel (x, y) is m sampled at
// M⁻¹·(x, y), as cv2.warpPerspective(img, M, (w, h),
// flags=INTER_CUBIC, borderMode=BORDER_REPLICATE): source positions
// quantized to 1/32 pixel, bicubic weights with a = −0.75, edges
// replicated.
func WarpPerspective(m *Image, M Matrix, w, h int) (*Image, error) {
	if err := checkSize(m, w, h); err != nil {
		return nil, err
	}
	inv, err := M.Invert()
	if err != nil {
		return nil, err
	}
	var tab [interTabSize][4]float32
	for i := range tab {
		tab[i] = cubicCoeffs(float32(i) / interTabSize)
	}
	c := m.C
	out := New(w, h, c)
	var acc [4]float32
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			fx, fy := float64(x), float64(y)
			W := inv[6]*fx + inv[7]*fy + inv[8]
			if W != 0 {
				W = interTabSize / W
			}
			X := satInt((inv[0]*fx + inv[1]*fy + inv[2]) * W)
			Y := satInt((inv[3]*fx + inv[4]*fy + inv[5]) * W)
			sx, sy := X>>interBits, Y>>interBits
			wx, wy := tab[X&(interTabSize-1)], tab[Y&(interTabSize-1)]
			acc = [4]float32{}
			for j := 0; j < 4; j++ {
				yy := clamp(sy-1+j, m.H-1)
				row := m.Pix[yy*m.W*c:]
				for i := 0; i < 4; i++ {
					xx := clamp(sx-1+i, m.W-1)
					k := wy[j] * wx[i]
					for ch := 0; ch < c; ch++ {
						acc[ch] += k * float32(row[xx*c+ch])
					}
				}
			}
			p := out.Pix[(y*w+x)*c:]
			for ch := 0; ch < c; ch++ {
				p[ch] = sat8(math.RoundToEven(float64(acc[ch])))
			}
		}
	}
	return out, nil
}

// cubicCoeffs are OpenCV's interpolateCubic weights for the taps at −1, 0,
// 1, 2 around a fraction x.
func cubicCoeffs(x float32) [4]float32 {
	const A = -0.75
	var c [4]float32
	c[0] = ((A*(x+1)-5*A)*(x+1)+8*A)*(x+1) - 4*A
	c[1] = ((A+2)*x-(A+3))*x*x + 1
	c[2] = ((A+2)*(1-x)-(A+3))*(1-x)*(1-x) + 1
	c[3] = 1 - c[0] - c[1] - c[2]
	return c
}

func satInt(v float64) int {
	switch {
	case math.IsNaN(v):
		return 0
	case v > math.MaxInt32:
		return math.MaxInt32
	case v < math.MinInt32:
		return math.MinInt32
	}
	return int(math.RoundToEven(v))
}

func clamp(v, hi int) int {
	if v < 0 {
		return 0
	}
	if v > hi {
		return hi
	}
	return v
}
