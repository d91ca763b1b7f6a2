package dbpost

import (
	"math"
	"testing"

	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/geom"
)

// rectMap is a w×h map with value v inside each rectangle [x0,x1)×[y0,y1).
func rectMap(w, h int, v float32, rects ...[4]int) Map {
	m := Map{W: w, H: h, Prob: make([]float32, w*h)}
	for _, r := range rects {
		for y := r[1]; y < r[3]; y++ {
			for x := r[0]; x < r[2]; x++ {
				m.Prob[y*w+x] = v
			}
		}
	}
	return m
}

func TestBoxesRectangles(t *testing.T) {
	// Two text-like blobs and a speck; the map is half the source's size.
	m := rectMap(100, 60, 0.9, [4]int{10, 10, 60, 20}, [4]int{20, 40, 90, 52}, [4]int{95, 2, 97, 4})
	boxes := Boxes(m, 200, 120, Defaults)
	if len(boxes) != 2 {
		t.Fatalf("got %d boxes: %+v", len(boxes), boxes)
	}
	for _, b := range boxes {
		if math.Abs(b.Score-0.9) > 1e-6 {
			t.Errorf("score %v, want 0.9 (the mean over the box)", b.Score)
		}
	}
	// The first blob spans x 10..59, y 10..19 of the map: its rectangle
	// (49×9 between pixel centres) grows by area·1.5/perimeter ≈ 5.7 on
	// each side, then scales by 2.
	b := boxes[0].Points
	if !(b[0].X < 10*2 && b[0].Y < 10*2 && b[2].X > 59*2 && b[2].Y > 19*2) {
		t.Errorf("box %v does not hold the blob", b)
	}
	if b[0].X < 2*(10-7) || b[2].X > 2*(59+7) {
		t.Errorf("box %v grew too much", b)
	}
	// Clockwise from the top-left.
	if !(b[0].X < b[1].X && b[1].Y < b[2].Y && b[2].X > b[3].X && b[3].Y > b[0].Y) {
		t.Errorf("corners %v are not clockwise from the top-left", b)
	}
}

func TestBoxThresh(t *testing.T) {
	// Above the binarization threshold, below the box threshold.
	m := rectMap(60, 30, 0.5, [4]int{5, 5, 50, 15})
	if boxes := Boxes(m, 60, 30, Defaults); len(boxes) != 0 {
		t.Errorf("a box of mean 0.5 < box_thresh 0.6 was kept: %+v", boxes)
	}
	p := Defaults
	p.BoxThresh = 0.4
	if boxes := Boxes(m, 60, 30, p); len(boxes) != 1 {
		t.Errorf("box_thresh 0.4: %d boxes", len(boxes))
	}
}

func TestMaxCandidates(t *testing.T) {
	var rects [][4]int
	for i := 0; i < 10; i++ {
		rects = append(rects, [4]int{5 + 12*i, 5, 13 + 12*i, 15})
	}
	m := rectMap(130, 20, 1, rects...)
	p := Defaults
	p.MaxCandidates = 3
	if n := len(Boxes(m, 130, 20, p)); n != 3 {
		t.Errorf("max_candidates 3: %d boxes", n)
	}
}

func TestOrderClockwise(t *testing.T) {
	in := [4]geom.Point{{X: 10, Y: 20}, {X: 0, Y: 0}, {X: 10, Y: 0}, {X: 0, Y: 20}}
	want := [4]geom.Point{{X: 0, Y: 0}, {X: 10, Y: 0}, {X: 10, Y: 20}, {X: 0, Y: 20}}
	if got := orderClockwise(in); got != want {
		t.Errorf("got %v", got)
	}
}

// FuzzBoxes: any probability map gives boxes inside the image, with
// finite corners and scores within the map's values; never a panic.
func FuzzBoxes(f *testing.F) {
	f.Add(uint8(20), uint8(10), uint16(40), uint16(20), []byte{0, 255, 255, 255, 0, 200, 200, 200})
	f.Add(uint8(3), uint8(3), uint16(3), uint16(3), []byte{255})
	f.Add(uint8(64), uint8(32), uint16(1000), uint16(7), []byte{0, 255, 0, 255, 255, 0})
	f.Fuzz(func(t *testing.T, w, h uint8, srcW, srcH uint16, pattern []byte) {
		if w == 0 || h == 0 || len(pattern) == 0 {
			return
		}
		m := Map{W: int(w), H: int(h), Prob: make([]float32, int(w)*int(h))}
		for i := range m.Prob {
			m.Prob[i] = float32(pattern[i%len(pattern)]) / 255
		}
		sw, sh := int(srcW)+1, int(srcH)+1
		for _, b := range Boxes(m, sw, sh, Defaults) {
			if b.Score < Defaults.BoxThresh || b.Score > 1+1e-6 || math.IsNaN(b.Score) {
				t.Fatalf("score %v", b.Score)
			}
			for _, p := range b.Points {
				if math.IsNaN(p.X) || math.IsNaN(p.Y) || p.X < 0 || p.Y < 0 || p.X > float64(sw-1) || p.Y > float64(sh-1) {
					t.Fatalf("corner %v outside %dx%d", p, sw, sh)
				}
			}
		}
	})
}
