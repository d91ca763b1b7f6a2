package ocr

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"os"
	"testing"

	"github.com/dsmil/l7/plugins/multimodal/internal/imgproc"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/dbpost"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/geom"
)

// reference is testdata/reference.json: PaddleOCR's pre- and
// post-processing run with OpenCV 4.6, Shapely and pyclipper on small
// inputs (testdata/reference.py writes it).
type reference struct {
	Resize []struct {
		W, H, DW, DH int
		Src, Want    string
	}
	Crop []struct {
		Pts  [4][2]float64
		W, H int
		Want string
	}
	CropSrc struct {
		W, H int
		Src  string
	} `json:"crop_src"`
	DB []struct {
		W, H, SW, SH int
		Map          string
		Boxes        [][4][2]float64
		Scores       []float64
	}
	DetSizes [][4]int `json:"det_sizes"`
}

func loadReference(t *testing.T) *reference {
	t.Helper()
	b, err := os.ReadFile("testdata/reference.json")
	if err != nil {
		t.Fatal(err)
	}
	var r reference
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func unb64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// compare reports the largest difference between two images and how many
// values differ.
func compare(got, want []byte) (maxDiff, differ int) {
	for i := range want {
		d := int(got[i]) - int(want[i])
		if d < 0 {
			d = -d
		}
		maxDiff = max(maxDiff, d)
		if d != 0 {
			differ++
		}
	}
	return maxDiff, differ
}

// TestReferenceResize: imgproc.Resize gives exactly cv2.resize's
// (INTER_LINEAR) pixels.
func TestReferenceResize(t *testing.T) {
	for _, c := range loadReference(t).Resize {
		src := &imgproc.Image{W: c.W, H: c.H, C: 3, Pix: unb64(t, c.Src)}
		got, err := imgproc.Resize(src, c.DW, c.DH)
		if err != nil {
			t.Fatal(err)
		}
		want := unb64(t, c.Want)
		maxDiff, differ := compare(got.Pix, want)
		if maxDiff != 0 {
			t.Errorf("%dx%d → %dx%d: max difference %d, %d of %d values differ", c.W, c.H, c.DW, c.DH, maxDiff, differ, len(want))
		}
	}
}

// TestReferenceCrop: Crop is get_rotate_crop_image (getPerspectiveTransform
// and warpPerspective INTER_CUBIC with replicated borders): the same size,
// and values within 2 levels.
func TestReferenceCrop(t *testing.T) {
	r := loadReference(t)
	src := &imgproc.Image{W: r.CropSrc.W, H: r.CropSrc.H, C: 3, Pix: unb64(t, r.CropSrc.Src)}
	for _, c := range r.Crop {
		var pts [4]geom.Point
		for i, p := range c.Pts {
			pts[i] = geom.Point{X: p[0], Y: p[1]}
		}
		got, err := Crop(src, pts)
		if err != nil {
			t.Fatal(err)
		}
		if got.W != c.W || got.H != c.H {
			t.Errorf("%v: %dx%d, want %dx%d", c.Pts, got.W, got.H, c.W, c.H)
			continue
		}
		want := unb64(t, c.Want)
		maxDiff, differ := compare(got.Pix, want)
		t.Logf("%v: max difference %d, %d of %d values differ", c.Pts, maxDiff, differ, len(want))
		if maxDiff > 2 || differ*20 > len(want) {
			t.Errorf("%v: max difference %d, %d of %d values differ", c.Pts, maxDiff, differ, len(want))
		}
	}
}

// TestReferenceDB: dbpost.Boxes gives the boxes of DBPostProcess +
// filter_tag_det_res, corners within a pixel, and the same scores (the
// score mask is cv2.fillPoly's pixel for pixel, edges clipped as
// cv::clipLine and drawn as LINE_8).
func TestReferenceDB(t *testing.T) {
	total := 0
	for i, c := range loadReference(t).DB {
		raw := unb64(t, c.Map)
		m := dbpost.Map{W: c.W, H: c.H, Prob: make([]float32, len(raw))}
		for k, v := range raw {
			m.Prob[k] = float32(v) / 255
		}
		got := dbpost.Boxes(m, c.SW, c.SH, dbpost.Defaults)
		total += len(c.Boxes)
		// Contours come in another order than our regions: match by corner.
		used := make([]bool, len(got))
		for k, want := range c.Boxes {
			found := false
			for j, g := range got {
				if used[j] || !near(g.Points, want, 1) {
					continue
				}
				used[j], found = true, true
				if math.Abs(g.Score-c.Scores[k]) > 1e-6 {
					t.Errorf("map %d box %v: score %.4f, want %.4f", i, want, g.Score, c.Scores[k])
				}
			}
			if !found {
				t.Errorf("map %d: no box near %v in %v", i, want, got)
			}
		}
		for j, g := range got {
			// OpenCV's corners carry float32 noise (2.9999986 for 3) that
			// truncation can turn into a pixel of the score mask: a box
			// whose score is that close to box_thresh may differ.
			if !used[j] {
				if g.Score < dbpost.Defaults.BoxThresh+0.01 {
					t.Logf("map %d: box %v at score %.4f, at the threshold, not in the reference", i, g.Points, g.Score)
					continue
				}
				t.Errorf("map %d: box %v (score %.4f) is not in the reference", i, g.Points, g.Score)
			}
		}
	}
	if total < 10 {
		t.Errorf("only %d reference boxes: the test data is too easy", total)
	}
}

func near(got [4]geom.Point, want [4][2]float64, tol float64) bool {
	for i := range got {
		if math.Abs(got[i].X-want[i][0]) > tol || math.Abs(got[i].Y-want[i][1]) > tol {
			return false
		}
	}
	return true
}

func TestReferenceDetectSize(t *testing.T) {
	for _, c := range loadReference(t).DetSizes {
		if w, h := DetectSize(c[0], c[1], 960); w != c[2] || h != c[3] {
			t.Errorf("%dx%d: %dx%d, want %dx%d", c[0], c[1], w, h, c[2], c[3])
		}
	}
}
