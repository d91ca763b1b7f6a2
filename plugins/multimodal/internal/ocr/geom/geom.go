// Package geom is the plane geometry of text detection, written to give
// what PaddleOCR's DB post-process gets from OpenCV, Shapely and
// pyclipper: convex hulls, minimum-area rectangles (cv2.minAreaRect,
// cv2.boxPoints), polygon area and perimeter (Shapely), and the outward
// offset of a polygon with round joins (pyclipper's PyclipperOffset with
// JT_ROUND, ET_CLOSEDPOLYGON and its default arc tolerance).
//
// The offset is written out rather than taken from a Go port of Clipper:
// the DB post-process only ever offsets a convex quadrilateral, where
// Clipper's offset is its vertex-by-vertex construction with no clipping
// to do, and the Go ports of Clipper are unmaintained.
package geom

import (
	"math"
	"slices"
)

// Point is a point in pixel coordinates (x right, y down).
type Point struct{ X, Y float64 }

func (p Point) sub(q Point) Point { return Point{p.X - q.X, p.Y - q.Y} }

// Dist is the Euclidean distance between p and q.
func Dist(p, q Point) float64 { return math.Hypot(p.X-q.X, p.Y-q.Y) }

func cross(o, a, b Point) float64 { return (a.X-o.X)*(b.Y-o.Y) - (a.Y-o.Y)*(b.X-o.X) }

// ConvexHull returns the convex hull of pts (Andrew's monotone chain), in
// counter-clockwise order in y-up terms, without collinear points. Fewer
// than three distinct points give those points.
func ConvexHull(pts []Point) []Point {
	p := slices.Clone(pts)
	slices.SortFunc(p, func(a, b Point) int {
		if a.X != b.X {
			if a.X < b.X {
				return -1
			}
			return 1
		}
		switch {
		case a.Y < b.Y:
			return -1
		case a.Y > b.Y:
			return 1
		}
		return 0
	})
	p = slices.Compact(p)
	if len(p) < 3 {
		return p
	}
	hull := make([]Point, 0, 2*len(p))
	for _, q := range p { // lower
		for len(hull) >= 2 && cross(hull[len(hull)-2], hull[len(hull)-1], q) <= 0 {
			hull = hull[:len(hull)-1]
		}
		hull = append(hull, q)
	}
	lo := len(hull) + 1
	for i := len(p) - 2; i >= 0; i-- { // upper
		q := p[i]
		for len(hull) >= lo && cross(hull[len(hull)-2], hull[len(hull)-1], q) <= 0 {
			hull = hull[:len(hull)-1]
		}
		hull = append(hull, q)
	}
	return hull[:len(hull)-1]
}

// Rect is a rotated rectangle: its four corners in order around it, and
// the lengths of its sides.
type Rect struct {
	Corners       [4]Point
	Width, Height float64 // Corners[0]→[1] and Corners[1]→[2]
}

// Short is the shorter side (min(cv2.minAreaRect(...)[1])).
func (r Rect) Short() float64 { return min(r.Width, r.Height) }

// MinAreaRect returns the smallest-area rectangle enclosing pts, by
// rotating calipers over the convex hull's edges as cv2.minAreaRect does
// (the first edge direction reaching the minimum wins). One point gives a
// zero rectangle at it; collinear points a zero-height one along them.
func MinAreaRect(pts []Point) Rect {
	h := ConvexHull(pts)
	switch len(h) {
	case 0:
		return Rect{}
	case 1:
		return Rect{Corners: [4]Point{h[0], h[0], h[0], h[0]}}
	case 2:
		return Rect{Corners: [4]Point{h[0], h[1], h[1], h[0]}, Width: Dist(h[0], h[1])}
	}
	best := math.Inf(1)
	var out Rect
	for i := range h {
		e := h[(i+1)%len(h)].sub(h[i])
		l := math.Hypot(e.X, e.Y)
		if l == 0 {
			continue
		}
		u := Point{e.X / l, e.Y / l} // along the edge
		v := Point{-u.Y, u.X}        // across it
		minU, maxU, minV, maxV := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
		for _, p := range h {
			d := p.sub(h[i])
			a, b := d.X*u.X+d.Y*u.Y, d.X*v.X+d.Y*v.Y
			minU, maxU = min(minU, a), max(maxU, a)
			minV, maxV = min(minV, b), max(maxV, b)
		}
		if area := (maxU - minU) * (maxV - minV); area < best {
			best = area
			at := func(a, b float64) Point {
				return Point{h[i].X + a*u.X + b*v.X, h[i].Y + a*u.Y + b*v.Y}
			}
			out = Rect{
				Corners: [4]Point{at(minU, minV), at(maxU, minV), at(maxU, maxV), at(minU, maxV)},
				Width:   maxU - minU, Height: maxV - minV,
			}
		}
	}
	// cv2.boxPoints gives float32 corners.
	for i, c := range out.Corners {
		out.Corners[i] = Point{float64(float32(c.X)), float64(float32(c.Y))}
	}
	return out
}

// Area is the polygon's area (Shapely's Polygon.area: unsigned).
func Area(poly []Point) float64 { return math.Abs(signedArea(poly)) }

// signedArea is positive for counter-clockwise polygons in y-up terms.
func signedArea(poly []Point) float64 {
	var a float64
	for i := range poly {
		p, q := poly[i], poly[(i+1)%len(poly)]
		a += p.X*q.Y - q.X*p.Y
	}
	return a / 2
}

// Perimeter is the length of the polygon's boundary (Shapely's
// Polygon.length).
func Perimeter(poly []Point) float64 {
	var l float64
	for i := range poly {
		l += Dist(poly[i], poly[(i+1)%len(poly)])
	}
	return l
}

// arcTolerance is pyclipper's default ArcTolerance.
const arcTolerance = 0.25

// Offset returns poly (convex, at least three points) moved outward by
// delta > 0 with round joins, as pyclipper's PyclipperOffset.AddPath(poly,
// JT_ROUND, ET_CLOSEDPOLYGON) then Execute(delta): the input coordinates
// truncated to integers, each vertex's arc drawn with Clipper's step count
// for an arc tolerance of 0.25, the output rounded to integers. A
// polygon that collapses to fewer than three points gives nil.
func Offset(poly []Point, delta float64) []Point {
	src := make([]Point, 0, len(poly))
	for _, p := range poly {
		q := Point{math.Trunc(p.X), math.Trunc(p.Y)}
		if len(src) == 0 || q != src[len(src)-1] {
			src = append(src, q)
		}
	}
	for len(src) > 1 && src[0] == src[len(src)-1] {
		src = src[:len(src)-1]
	}
	if len(src) < 3 || delta <= 0 || math.IsNaN(delta) || math.IsInf(delta, 0) {
		return nil
	}
	if signedArea(src) < 0 {
		slices.Reverse(src)
	}
	n := len(src)
	normals := make([]Point, n)
	for j := range src {
		d := src[(j+1)%n].sub(src[j])
		f := 1 / math.Hypot(d.X, d.Y)
		normals[j] = Point{d.Y * f, -d.X * f}
	}
	y := arcTolerance
	if y > delta*arcTolerance {
		y = delta * arcTolerance
	}
	steps := math.Pi / math.Acos(1-y/delta)
	if steps > delta*math.Pi {
		steps = delta * math.Pi
	}
	sin, cos := math.Sin(2*math.Pi/steps), math.Cos(2*math.Pi/steps)
	perRad := steps / (2 * math.Pi)
	// As Clipper: a polygon of positive signed area, normals (dy, −dx),
	// and a positive delta moves every edge outward.
	var out []Point
	round := func(p Point) Point { return Point{math.Round(p.X), math.Round(p.Y)} }
	push := func(p Point) { out = append(out, round(p)) }
	k := n - 1
	for j := 0; j < n; j++ {
		nk, nj := normals[k], normals[j]
		sinA := nk.X*nj.Y - nj.X*nk.Y
		cosA := nk.X*nj.X + nk.Y*nj.Y
		s := src[j]
		if math.Abs(sinA*delta) < 1 {
			if cosA > 0 { // nearly straight on
				push(Point{s.X + nk.X*delta, s.Y + nk.Y*delta})
				k = j
				continue
			}
		} else {
			sinA = max(-1, min(1, sinA))
		}
		if sinA*delta < 0 { // concave
			push(Point{s.X + nk.X*delta, s.Y + nk.Y*delta})
			push(s)
			push(Point{s.X + nj.X*delta, s.Y + nj.Y*delta})
			k = j
			continue
		}
		a := math.Atan2(sinA, cosA)
		st := max(int(math.Round(perRad*math.Abs(a))), 1)
		x, yy := nk.X, nk.Y
		for i := 0; i < st; i++ {
			push(Point{s.X + x*delta, s.Y + yy*delta})
			x, yy = x*cos-sin*yy, x*sin+yy*cos
		}
		push(Point{s.X + nj.X*delta, s.Y + nj.Y*delta})
		k = j
	}
	return out
}
