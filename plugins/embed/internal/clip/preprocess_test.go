package clip

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"encoding/json"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/dsmil/l7/internal/mkmodel"
	"github.com/dsmil/l7/plugins/internal/imagefile"
)

// clipPreprocess is openai/clip-vit-base-patch32's preprocessing, as
// dsmil-mkmodel writes it for clip-vit-b32.
func clipPreprocess(t *testing.T) *Preprocess {
	t.Helper()
	s, _ := mkmodel.CLIPPreset("tiny-clip")
	s.ImageSize, s.PatchSize = 224, 32 // clip-vit-b32's images on tiny towers
	r, err := mkmodel.WriteCLIP(filepath.Join(t.TempDir(), "m"), s)
	if err != nil {
		t.Fatal(err)
	}
	p, err := loadPreprocess(filepath.Join(r.Dir, "preprocessor_config.json"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPixelsMatchTransformersJS decodes and preprocesses each test image
// (testdata/images, made by testdata/gen/gen.mjs) and compares the pixel
// values with those transformers.js's CLIPImageProcessor gave in Node
// (testdata/pixels). Differences are counted in 8-bit levels of their
// channel: one level is 1/255/std ≈ 0.0146 after normalisation.
//
// PNGs decode to the same bytes in Go and in libvips, and the resize
// reproduces libvips's fixed-point bicubic affine: every value must be
// equal (to 1e-4 of a level: float32 rounding). JPEGs: the chroma
// upsampling and colour conversion are libjpeg's (ycbcrToRGB), but Go's
// image/jpeg IDCT differs from libjpeg's (mozjpeg, in sharp) by a level
// here and there, which the bicubic resize spreads: at most 3 levels, a
// mean of at most 0.05.
func TestPixelsMatchTransformersJS(t *testing.T) {
	var index struct {
		Generator string `json:"generator"`
		Images    []struct {
			Name string `json:"name"`
			Dims []int  `json:"dims"`
		} `json:"images"`
	}
	b, err := os.ReadFile("testdata/pixels.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &index); err != nil {
		t.Fatal(err)
	}
	if len(index.Images) < 10 {
		t.Fatalf("%d reference images", len(index.Images))
	}
	p := clipPreprocess(t)
	for _, im := range index.Images {
		t.Run(im.Name, func(t *testing.T) {
			want := readF32(t, filepath.Join("testdata/pixels", im.Name+".f32.gz"))
			data, err := os.ReadFile(filepath.Join("testdata/images", im.Name))
			if err != nil {
				t.Fatal(err)
			}
			d, err := imagefile.Decode(data, imagefile.DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			got := p.Pixels(ToRGB(d))
			if len(got) != len(want) || len(got) != 3*224*224 {
				t.Fatalf("%d values, transformers.js %d", len(got), len(want))
			}
			// Differences in 8-bit levels of their channel.
			worst, sum, off := 0.0, 0.0, 0
			for i := range got {
				dv := math.Abs(float64(got[i]-want[i])) * 255 * p.Std[i/(224*224)]
				worst, sum = max(worst, dv), sum+dv
				if dv > 1e-4 {
					off++
				}
			}
			maxLevels, maxMean := 0.0, 0.0 // PNG: exact
			if strings.HasSuffix(im.Name, ".jpg") {
				maxLevels, maxMean = 3, 0.05
			}
			mean := sum / float64(len(got))
			t.Logf("max |Δ| %.2f levels, mean %.3f levels; %d of %d values differ (%.2f%%)", worst, mean, off, len(got), 100*float64(off)/float64(len(got)))
			if worst > maxLevels+1e-4 || mean > maxMean {
				t.Errorf("max |Δ| %.2f levels, mean %.3f levels; allowed %.0f and %.1f", worst, mean, maxLevels, maxMean)
			}
		})
	}
}

func readF32(t *testing.T, path string) []float32 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, len(raw)/4)
	if err := binary.Read(bytes.NewReader(raw), binary.LittleEndian, out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPreprocessConfig: the preprocessor_config.json forms read, and those
// refused with what is wrong.
func TestPreprocessConfig(t *testing.T) {
	write := func(body string) string {
		p := filepath.Join(t.TempDir(), "preprocessor_config.json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	norm := `"do_normalize": true, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]`
	// The legacy form (openai/clip-vit-base-patch32's first upload): a
	// number is the shortest edge, as transformers reads it.
	p, err := loadPreprocess(write(`{"do_resize": true, "size": 224, "resample": 3, "do_center_crop": true, "crop_size": 224, ` + norm + `}`))
	if err != nil || p.ShortestEdge != 224 || p.CropW != 224 || p.CropH != 224 || !p.Rescale || p.RescaleFactor != 1.0/255 {
		t.Fatalf("legacy config: %+v, %v", p, err)
	}
	if w, h := p.ResizedSize(640, 480); w != 298 || h != 224 {
		t.Errorf("640x480 resizes to %dx%d, want 298x224", w, h)
	}
	if w, h := p.ResizedSize(100, 60); w != 373 || h != 224 {
		t.Errorf("100x60 resizes to %dx%d, want 373x224", w, h)
	}
	for _, tc := range []struct{ body, want string }{
		{`{"do_resize": true, "size": {"shortest_edge": 224}, "resample": 2, "do_center_crop": true, "crop_size": 224}`, "resample is 2; only 3 (bicubic"},
		{`{"do_resize": true, "size": {"shortest_edge": 224}, "do_center_crop": true, "crop_size": 224}`, "resample is unset"},
		{`{"do_resize": true, "size": {"shortest_edge": 224}, "resample": 3}`, "cannot feed the vision model"},
		{`{"do_resize": true, "size": {"shortest_edge": 224, "longest_edge": 500}, "resample": 3}`, "longest_edge is not supported"},
		{`{"do_resize": true, "size": {"shortest_edge": 224}, "resample": 3, "do_center_crop": true, "crop_size": 224, "do_normalize": true}`, "image_mean and image_std"},
		{`{"do_resize": true, "size": {"height": 224, "width": 224}, "resample": 3, "crop_pct": 0.9}`, "crop_pct"},
	} {
		if _, err := loadPreprocess(write(tc.body)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %q", tc.body, err, tc.want)
		}
	}
	// A fixed-size resize needs no crop.
	p, err = loadPreprocess(write(`{"do_resize": true, "size": {"height": 96, "width": 64}, "resample": 3}`))
	if err != nil || p.CropW != 64 || p.CropH != 96 {
		t.Fatalf("fixed size: %+v, %v", p, err)
	}
}

// TestCenterCropPads: a crop larger than the image pads it with black,
// centred as RawImage.center_crop does.
func TestCenterCropPads(t *testing.T) {
	p := &Preprocess{CenterCrop: true, CropW: 5, CropH: 4}
	m := &RGB{W: 2, H: 3, Pix: []uint8{1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 5, 6, 6, 6}}
	px := p.Pixels(m)
	// Left pad floor(3/2) = 1, top pad floor(1/2) = 0.
	want := []float32{
		0, 1, 2, 0, 0,
		0, 3, 4, 0, 0,
		0, 5, 6, 0, 0,
		0, 0, 0, 0, 0,
	}
	for i, v := range want {
		if px[i] != v {
			t.Fatalf("red plane %v, want %v", px[:20], want)
		}
	}
}

// TestBicubicWindow: the window Pixels resizes is the same as the whole
// resize cropped, and an extreme aspect ratio costs only its crop.
func TestBicubicWindow(t *testing.T) {
	m := &RGB{W: 37, H: 23, Pix: make([]uint8, 37*23*3)}
	for i := range m.Pix {
		m.Pix[i] = uint8(i * 7919 % 251)
	}
	full := Bicubic(m, 90, 56)
	for _, win := range [][4]int{{0, 0, 90, 56}, {17, 3, 40, 40}, {-5, -2, 100, 60}, {80, 50, 20, 20}} {
		got := BicubicWindow(m, 90, 56, win[0], win[1], win[2], win[3])
		want := crop(full, win[0], win[1], win[2], win[3])
		if !bytes.Equal(got.Pix, want.Pix) {
			t.Errorf("window %v differs from the whole resize cropped", win)
		}
	}
	p := clipPreprocess(t)
	for _, size := range [][2]int{{1, 16384}, {16384, 1}} {
		thin := &RGB{W: size[0], H: size[1], Pix: make([]uint8, size[0]*size[1]*3)}
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		before := ms.TotalAlloc
		px := p.Pixels(thin)
		runtime.ReadMemStats(&ms)
		if len(px) != 3*224*224 || ms.TotalAlloc-before > 2<<20 {
			t.Errorf("%dx%d (resized to 224 by 3 670 016): %d values, %d bytes allocated", size[0], size[1], len(px), ms.TotalAlloc-before)
		}
	}
}

// FuzzPixels: any bytes either fail to decode within the limits or become
// exactly the crop's pixel values, whatever the image's size and shape.
func FuzzPixels(f *testing.F) {
	// Small images of each kind: the fuzzer mutates small inputs fast.
	for _, m := range []image.Image{image.NewNRGBA(image.Rect(0, 0, 9, 5)), image.NewGray(image.Rect(0, 0, 3, 40)), image.NewRGBA(image.Rect(0, 0, 64, 64))} {
		var b bytes.Buffer
		if err := png.Encode(&b, m); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
		b.Reset()
		if err := jpeg.Encode(&b, m, nil); err != nil {
			f.Fatal(err)
		}
		f.Add(b.Bytes())
	}
	p := &Preprocess{Resize: true, ShortestEdge: 16, CenterCrop: true, CropW: 16, CropH: 16,
		Rescale: true, RescaleFactor: 1.0 / 255, Normalize: true, Mean: [3]float64{0.5, 0.5, 0.5}, Std: [3]float64{0.5, 0.5, 0.5}}
	lim := imagefile.Limits{MaxBytes: 1 << 20, MaxPixels: 1 << 20, MaxSide: 4096}
	f.Fuzz(func(t *testing.T, data []byte) {
		d, err := imagefile.Decode(data, lim)
		if err != nil {
			return
		}
		px := p.Pixels(ToRGB(d))
		if len(px) != 3*16*16 {
			t.Fatalf("%d values", len(px))
		}
		for _, v := range px {
			if v < -1.0001 || v > 1.0001 {
				t.Fatalf("value %v outside [-1, 1]", v)
			}
		}
	})
}
