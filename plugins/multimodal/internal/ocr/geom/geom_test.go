package geom

import (
	"math"
	"testing"
)

func TestConvexHull(t *testing.T) {
	pts := []Point{{0, 0}, {2, 0}, {1, 1}, {2, 2}, {0, 2}, {1, 0}, {0, 0}}
	h := ConvexHull(pts)
	if len(h) != 4 {
		t.Fatalf("hull %v, want the 4 corners", h)
	}
	if a := Area(h); a != 4 {
		t.Errorf("hull area %v", a)
	}
}

func TestMinAreaRectAxisAligned(t *testing.T) {
	var pts []Point
	for y := 3; y <= 7; y++ {
		pts = append(pts, Point{10, float64(y)}, Point{30, float64(y)})
	}
	r := MinAreaRect(pts)
	if r.Short() != 4 || max(r.Width, r.Height) != 20 {
		t.Errorf("rect %+v, want 20×4", r)
	}
}

func TestMinAreaRectRotated(t *testing.T) {
	// A 40×10 rectangle turned by 30°.
	th := math.Pi / 6
	c, s := math.Cos(th), math.Sin(th)
	var pts []Point
	for _, p := range []Point{{0, 0}, {40, 0}, {40, 10}, {0, 10}, {20, 5}} {
		pts = append(pts, Point{100 + p.X*c - p.Y*s, 50 + p.X*s + p.Y*c})
	}
	r := MinAreaRect(pts)
	if math.Abs(r.Short()-10) > 1e-4 || math.Abs(max(r.Width, r.Height)-40) > 1e-4 {
		t.Errorf("rect %+v, want 40×10", r)
	}
	if math.Abs(Area(r.Corners[:])-400) > 1e-2 {
		t.Errorf("corner area %v", Area(r.Corners[:]))
	}
}

func TestAreaPerimeter(t *testing.T) {
	sq := []Point{{0, 0}, {3, 0}, {3, 4}, {0, 4}}
	if Area(sq) != 12 || Perimeter(sq) != 14 {
		t.Errorf("area %v perimeter %v", Area(sq), Perimeter(sq))
	}
}

func TestOffset(t *testing.T) {
	for _, sq := range [][]Point{
		{{10, 10}, {50, 10}, {50, 20}, {10, 20}}, // one orientation
		{{10, 20}, {50, 20}, {50, 10}, {10, 10}}, // the other
	} {
		d := Area(sq) * 1.5 / Perimeter(sq) // 6
		out := Offset(sq, d)
		r := MinAreaRect(out)
		// The offset of a rectangle by d is the rectangle grown by d on
		// every side, with round corners inside that.
		if math.Abs(r.Width*r.Height-52*22) > 1e-6 {
			t.Errorf("offset %v: min-area rect %v×%v, want 52×22", sq, r.Width, r.Height)
		}
		for _, p := range out {
			if p.X < 4 || p.X > 56 || p.Y < 4 || p.Y > 26 {
				t.Errorf("point %v outside the grown rectangle", p)
			}
		}
		if len(out) < 8 {
			t.Errorf("only %d points: no round joins", len(out))
		}
	}
	if Offset([]Point{{0, 0}, {0.5, 0.5}, {0.9, 0.2}}, 3) != nil {
		t.Error("a polygon that truncates to one point must give nil")
	}
}
