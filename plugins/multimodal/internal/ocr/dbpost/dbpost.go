// Package dbpost turns a DB (Differentiable Binarization) text detector's
// probability map into text boxes, as PaddleOCR's DBPostProcess with
// PP-OCRv4's settings (thresh 0.3, box_thresh 0.6, unclip_ratio 1.5,
// max_candidates 1000, score_mode "fast", box_type "quad", no dilation),
// followed by predict_det's filter_tag_det_res.
//
// Where PaddleOCR takes cv2.findContours(RETR_LIST) of the bitmap, Boxes
// takes each 8-connected region's pixels: the minimum-area rectangle of a
// region's outer contour is that of its pixels (both have the same convex
// hull), and the contours of holes, which RETR_LIST also lists, are left
// out (their rectangles lie over the region's own low-probability
// interior and fail the box score).
package dbpost

import (
	"math"
	"sort"

	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/geom"
)

// Params are DBPostProcess's settings.
type Params struct {
	// Thresh binarizes the probability map (pixels > Thresh are text).
	Thresh float32
	// BoxThresh drops boxes whose mean probability is lower.
	BoxThresh float64
	// UnclipRatio sets how far a box grows: area × ratio / perimeter.
	UnclipRatio float64
	// MaxCandidates bounds the regions considered.
	MaxCandidates int
	// MinSize drops boxes whose short side is smaller (+2 after unclip).
	MinSize float64
}

// Defaults are PaddleOCR's settings for PP-OCRv4 detection.
var Defaults = Params{Thresh: 0.3, BoxThresh: 0.6, UnclipRatio: 1.5, MaxCandidates: 1000, MinSize: 3}

// Box is one detected text box in source-image pixels: its corners
// clockwise on screen from the top-left, and its mean probability.
type Box struct {
	Points [4]geom.Point
	Score  float64
}

// Map is a probability map of W×H values, row-major.
type Map struct {
	W, H int
	Prob []float32
}

// Boxes finds the text boxes in m, scaled to a source image of srcW×srcH
// (boxes_from_bitmap), then ordered, clipped and filtered as
// filter_tag_det_res. A map whose size does not match its values gives
// nothing.
func Boxes(m Map, srcW, srcH int, p Params) []Box {
	if m.W <= 0 || m.H <= 0 || len(m.Prob) != m.W*m.H || srcW <= 0 || srcH <= 0 {
		return nil
	}
	var out []Box
	for _, region := range regions(m, p.Thresh, p.MaxCandidates) {
		r := geom.MinAreaRect(region)
		if r.Short() < p.MinSize {
			continue
		}
		box := miniBox(r)
		score := scoreFast(m, box)
		if p.BoxThresh > score {
			continue
		}
		d := geom.Area(box[:]) * p.UnclipRatio / geom.Perimeter(box[:])
		grown := geom.Offset(box[:], d)
		if len(grown) < 3 {
			continue
		}
		r2 := geom.MinAreaRect(grown)
		if r2.Short() < p.MinSize+2 {
			continue
		}
		b := miniBox(r2)
		var scaled [4]geom.Point
		for i, c := range b {
			// np.round(box / width * dest_width) in float32, clipped, int32.
			x := math.RoundToEven(float64(float32(c.X) / float32(m.W) * float32(srcW)))
			y := math.RoundToEven(float64(float32(c.Y) / float32(m.H) * float32(srcH)))
			scaled[i] = geom.Point{X: max(0, min(x, float64(srcW))), Y: max(0, min(y, float64(srcH)))}
		}
		out = append(out, Box{Points: scaled, Score: score})
	}
	return filter(out, srcW, srcH)
}

// regions returns the pixels that matter for the convex hull of each
// 8-connected region of prob > thresh: each row's leftmost and rightmost
// pixel. Regions come in raster order of their first pixel, at most max.
func regions(m Map, thresh float32, maxRegions int) [][]geom.Point {
	w, h := m.W, m.H
	label := make([]int32, w*h) // 0: not visited or background
	var out [][]geom.Point
	var stack []int
	for i, v := range m.Prob {
		if !(v > thresh) || label[i] != 0 {
			continue
		}
		if len(out) == maxRegions {
			break
		}
		id := int32(len(out) + 1)
		// Row extremes of this region, by row.
		rowMin := map[int]int{}
		rowMax := map[int]int{}
		label[i] = id
		stack = append(stack[:0], i)
		for len(stack) > 0 {
			q := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			x, y := q%w, q/w
			if mn, ok := rowMin[y]; !ok || x < mn {
				rowMin[y] = x
			}
			if mx, ok := rowMax[y]; !ok || x > mx {
				rowMax[y] = x
			}
			for dy := -1; dy <= 1; dy++ {
				ny := y + dy
				if ny < 0 || ny >= h {
					continue
				}
				for dx := -1; dx <= 1; dx++ {
					nx := x + dx
					if nx < 0 || nx >= w || (dx == 0 && dy == 0) {
						continue
					}
					n := ny*w + nx
					if label[n] == 0 && m.Prob[n] > thresh {
						label[n] = id
						stack = append(stack, n)
					}
				}
			}
		}
		pts := make([]geom.Point, 0, 2*len(rowMin))
		for y, x := range rowMin {
			pts = append(pts, geom.Point{X: float64(x), Y: float64(y)}, geom.Point{X: float64(rowMax[y]), Y: float64(y)})
		}
		out = append(out, pts)
	}
	return out
}

// miniBox orders a rectangle's corners as get_mini_boxes: sorted by x
// (stably), the left pair top then bottom, the right pair likewise, and
// returned as top-left, top-right, bottom-right, bottom-left.
func miniBox(r geom.Rect) [4]geom.Point {
	p := r.Corners
	sort.SliceStable(p[:], func(i, j int) bool { return p[i].X < p[j].X })
	i1, i4 := 1, 0
	if p[1].Y > p[0].Y {
		i1, i4 = 0, 1
	}
	i2, i3 := 3, 2
	if p[3].Y > p[2].Y {
		i2, i3 = 2, 3
	}
	return [4]geom.Point{p[i1], p[i2], p[i3], p[i4]}
}

// scoreFast is box_score_fast: the mean probability over the pixels of
// the box's bounding rectangle that the box, with its corners truncated
// to integers, covers (edges included, as cv2.fillPoly).
func scoreFast(m Map, box [4]geom.Point) float64 {
	xmin, xmax := math.Inf(1), math.Inf(-1)
	ymin, ymax := math.Inf(1), math.Inf(-1)
	for _, c := range box {
		xmin, xmax = min(xmin, c.X), max(xmax, c.X)
		ymin, ymax = min(ymin, c.Y), max(ymax, c.Y)
	}
	x0 := clampInt(int(math.Floor(xmin)), 0, m.W-1)
	x1 := clampInt(int(math.Ceil(xmax)), 0, m.W-1)
	y0 := clampInt(int(math.Floor(ymin)), 0, m.H-1)
	y1 := clampInt(int(math.Ceil(ymax)), 0, m.H-1)
	var poly [4]geom.Point
	for i, c := range box {
		poly[i] = geom.Point{X: math.Trunc(c.X - float64(x0)), Y: math.Trunc(c.Y - float64(y0))}
	}
	mw, mh := x1-x0+1, y1-y0+1
	mask := fillMask(poly, mw, mh)
	var sum float64
	n := 0
	for y := 0; y < mh; y++ {
		for x := 0; x < mw; x++ {
			if mask[y*mw+x] {
				sum += float64(m.Prob[(y0+y)*m.W+x0+x])
				n++
			}
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// fillMask is cv2.fillPoly of the convex quadrilateral poly (integer
// corners) on a w×h mask: every edge drawn as an 8-connected line, then
// the rows filled between the edges.
func fillMask(poly [4]geom.Point, mw, mh int) []bool {
	mask := make([]bool, mw*mh)
	set := func(x, y int) {
		if x >= 0 && y >= 0 && x < mw && y < mh {
			mask[y*mw+x] = true
		}
	}
	// cv2.fillPoly (non-antialiased) draws every edge as an 8-connected
	// line, then fills between the edges.
	for i := range poly {
		line(int(poly[i].X), int(poly[i].Y), int(poly[(i+1)%4].X), int(poly[(i+1)%4].Y), mw, mh, set)
	}
	for y := 0; y < mh; y++ {
		lo, hi, ok := span(poly, float64(y))
		if !ok {
			continue
		}
		for x := max(0, int(math.Ceil(lo-1e-9))); x <= min(mw-1, int(math.Floor(hi+1e-9))); x++ {
			mask[y*mw+x] = true
		}
	}
	return mask
}

// line visits the pixels of the 8-connected line between (xa, ya) and
// (xb, yb) inside a w×h image as cv2.line with LINE_8 (OpenCV's
// LineIterator: the line clipped to the image first, as cv::clipLine,
// then drawn left to right, every step moving along the major axis, and
// along the minor one while the error term is negative).
func line(xa, ya, xb, yb, w, h int, set func(x, y int)) {
	var ok bool
	if xa, ya, xb, yb, ok = clipLine(xa, ya, xb, yb, w, h); !ok {
		return
	}
	if xa > xb {
		xa, ya, xb, yb = xb, yb, xa, ya
	}
	dx, dy := xb-xa, abs(yb-ya)
	sy := 1
	if yb < ya {
		sy = -1
	}
	steep := dy > dx
	if steep {
		dx, dy = dy, dx
	}
	err := dx - 2*dy
	x, y := xa, ya
	for i := 0; i <= dx; i++ {
		set(x, y)
		minor := err < 0
		err -= 2 * dy
		if minor {
			err += 2 * dx
		}
		if steep {
			y += sy
			if minor {
				x++
			}
		} else {
			x++
			if minor {
				y += sy
			}
		}
	}
}

// clipLine is cv::clipLine: the segment cut to [0, w−1]×[0, h−1] with
// OpenCV's integer arithmetic; ok is false when none of it is inside.
func clipLine(x1, y1, x2, y2, w, h int) (int, int, int, int, bool) {
	right, bottom := w-1, h-1
	code := func(x, y int) int {
		c := 0
		if x < 0 {
			c |= 1
		}
		if x > right {
			c |= 2
		}
		if y < 0 {
			c |= 4
		}
		if y > bottom {
			c |= 8
		}
		return c
	}
	c1, c2 := code(x1, y1), code(x2, y2)
	if c1&c2 == 0 && c1|c2 != 0 {
		if c1&12 != 0 {
			a := 0
			if c1 >= 8 {
				a = bottom
			}
			x1 += int(float64(a-y1) * float64(x2-x1) / float64(y2-y1))
			y1 = a
			c1 = code(x1, 0) & 3
		}
		if c2&12 != 0 {
			a := 0
			if c2 >= 8 {
				a = bottom
			}
			x2 += int(float64(a-y2) * float64(x2-x1) / float64(y2-y1))
			y2 = a
			c2 = code(x2, 0) & 3
		}
		if c1&c2 == 0 && c1|c2 != 0 {
			if c1 != 0 {
				a := 0
				if c1 != 1 {
					a = right
				}
				y1 += int(float64(a-x1) * float64(y2-y1) / float64(x2-x1))
				x1 = a
				c1 = 0
			}
			if c2 != 0 {
				a := 0
				if c2 != 1 {
					a = right
				}
				y2 += int(float64(a-x2) * float64(y2-y1) / float64(x2-x1))
				x2 = a
				c2 = 0
			}
		}
	}
	return x1, y1, x2, y2, c1|c2 == 0
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

// span is where the horizontal line at y crosses the convex polygon.
func span(poly [4]geom.Point, y float64) (lo, hi float64, ok bool) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for i := range poly {
		p, q := poly[i], poly[(i+1)%4]
		if (y < p.Y && y < q.Y) || (y > p.Y && y > q.Y) {
			continue
		}
		if p.Y == q.Y {
			lo, hi = min(lo, p.X, q.X), max(hi, p.X, q.X)
			continue
		}
		x := p.X + (y-p.Y)*(q.X-p.X)/(q.Y-p.Y)
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi, lo <= hi
}

func clampInt(v, lo, hi int) int { return max(lo, min(v, hi)) }

// filter is filter_tag_det_res: corners ordered clockwise from the
// top-left (order_points_clockwise), clipped to the image (truncated to
// integers), and boxes 3 pixels or less wide or high dropped.
func filter(boxes []Box, w, h int) []Box {
	out := boxes[:0]
	for _, b := range boxes {
		p := orderClockwise(b.Points)
		for i := range p {
			p[i].X = math.Trunc(min(max(p[i].X, 0), float64(w-1)))
			p[i].Y = math.Trunc(min(max(p[i].Y, 0), float64(h-1)))
		}
		if int(geom.Dist(p[0], p[1])) <= 3 || int(geom.Dist(p[0], p[3])) <= 3 {
			continue
		}
		b.Points = p
		out = append(out, b)
	}
	return out
}

// orderClockwise is order_points_clockwise: the corner with the smallest
// x+y first, the largest third, and of the other two the one with the
// smaller y−x second.
func orderClockwise(pts [4]geom.Point) [4]geom.Point {
	argmin, argmax := 0, 0
	for i, p := range pts {
		if p.X+p.Y < pts[argmin].X+pts[argmin].Y {
			argmin = i
		}
		if p.X+p.Y > pts[argmax].X+pts[argmax].Y {
			argmax = i
		}
	}
	var rest []geom.Point // np.delete(pts, (argmin, argmax))
	for i, p := range pts {
		if i != argmin && i != argmax {
			rest = append(rest, p)
		}
	}
	lo, hi := 0, 0 // np.argmin, np.argmax of y − x: first occurrences
	for i, p := range rest {
		if p.Y-p.X < rest[lo].Y-rest[lo].X {
			lo = i
		}
		if p.Y-p.X > rest[hi].Y-rest[hi].X {
			hi = i
		}
	}
	a, b := rest[lo], rest[hi]
	return [4]geom.Point{pts[argmin], a, pts[argmax], b}
}
