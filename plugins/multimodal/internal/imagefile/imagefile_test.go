package imagefile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"os"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
)

// cell is the side of pattern's flat squares, so that JPEG's 8×8 blocks
// and chroma subsampling keep each square's colour.
const cell = 16

// pattern is a w×h grid of flat cell×cell squares whose colours all
// differ: red grows along x, green along y.
func pattern(w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w*cell, h*cell))
	for y := 0; y < h*cell; y++ {
		for x := 0; x < w*cell; x++ {
			m.Set(x, y, color.NRGBA{uint8(40 + 60*(x/cell)), uint8(50 + 100*(y/cell)), 200, 255})
		}
	}
	return m
}

func encode(t *testing.T, format string, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	var err error
	switch format {
	case "png":
		err = png.Encode(&b, m)
	case "jpeg":
		err = jpeg.Encode(&b, m, &jpeg.Options{Quality: 100})
	case "gif":
		// A palette of the image's own colours keeps them exact.
		var pal color.Palette
		seen := map[color.Color]bool{}
		bd := m.Bounds()
		for y := bd.Min.Y; y < bd.Max.Y; y++ {
			for x := bd.Min.X; x < bd.Max.X; x++ {
				if c := color.NRGBAModel.Convert(m.At(x, y)); !seen[c] && len(pal) < 256 {
					seen[c] = true
					pal = append(pal, c)
				}
			}
		}
		p := image.NewPaletted(bd, pal)
		for y := bd.Min.Y; y < bd.Max.Y; y++ {
			for x := bd.Min.X; x < bd.Max.X; x++ {
				p.Set(x, y, m.At(x, y))
			}
		}
		err = gif.Encode(&b, p, nil)
	case "bmp":
		err = bmp.Encode(&b, m)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeFormats(t *testing.T) {
	src := pattern(4, 2)
	for _, f := range []string{"png", "jpeg", "gif", "bmp"} {
		img, err := Decode(encode(t, f, src), DefaultLimits)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		if img.Format != f || img.W != 4*cell || img.H != 2*cell || img.C != 3 {
			t.Errorf("%s: got %s %dx%dx%d", f, img.Format, img.W, img.H, img.C)
			continue
		}
		tol := 0
		if f == "jpeg" {
			tol = 8
		}
		for y := cell / 2; y < 2*cell; y += cell {
			for x := cell / 2; x < 4*cell; x += cell {
				want := src.NRGBAAt(x, y)
				for c, w := range []uint8{want.R, want.G, want.B} {
					if d := int(img.At(x, y, c)) - int(w); d > tol || -d > tol {
						t.Errorf("%s: (%d,%d)[%d] = %d, want %d±%d", f, x, y, c, img.At(x, y, c), w, tol)
					}
				}
			}
		}
	}
}

// TestDecodeWebP reads testdata/two-colours.webp (cwebp -lossless of a
// 32×16 image: left half RGB 10,40,200, right half 250,220,10).
func TestDecodeWebP(t *testing.T) {
	data, err := os.ReadFile("testdata/two-colours.webp")
	if err != nil {
		t.Fatal(err)
	}
	img, err := Decode(data, DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if img.Format != "webp" || img.W != 32 || img.H != 16 {
		t.Fatalf("got %s %dx%d", img.Format, img.W, img.H)
	}
	for _, c := range []struct {
		x       int
		r, g, b uint8
	}{{4, 10, 40, 200}, {28, 250, 220, 10}} {
		if img.At(c.x, 8, 0) != c.r || img.At(c.x, 8, 1) != c.g || img.At(c.x, 8, 2) != c.b {
			t.Errorf("pixel (%d, 8) = %d %d %d, want %d %d %d", c.x, img.At(c.x, 8, 0), img.At(c.x, 8, 1), img.At(c.x, 8, 2), c.r, c.g, c.b)
		}
	}
}

func TestAlphaOntoWhite(t *testing.T) {
	m := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	m.Set(0, 0, color.NRGBA{0, 0, 0, 0})   // transparent black
	m.Set(1, 0, color.NRGBA{0, 0, 0, 255}) // opaque black
	img, err := Decode(encode(t, "png", m), DefaultLimits)
	if err != nil {
		t.Fatal(err)
	}
	if img.At(0, 0, 0) != 255 || img.At(1, 0, 0) != 0 {
		t.Errorf("transparent → %d, opaque black → %d; want 255, 0", img.At(0, 0, 0), img.At(1, 0, 0))
	}
}

func TestLimits(t *testing.T) {
	data := encode(t, "png", image.NewGray(image.Rect(0, 0, 40, 30)))
	for _, tc := range []struct {
		lim  Limits
		want string
	}{
		{Limits{MaxBytes: 10}, "bytes"},
		{Limits{MaxPixels: 1199}, "1200 pixels"},
		{Limits{MaxSide: 39}, "side"},
	} {
		_, err := Decode(data, tc.lim)
		if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want ErrTooLarge mentioning %q", tc.lim, err, tc.want)
		}
	}
	if _, err := Decode(data, Limits{MaxBytes: int64(len(data)), MaxPixels: 1200, MaxSide: 40}); err != nil {
		t.Errorf("at the limits: %v", err)
	}
}

// TestBomb: a PNG header claiming 100000×100000 pixels over a few hundred
// bytes is refused before any pixel is decoded.
func TestBomb(t *testing.T) {
	data := encode(t, "png", pattern(1, 1))
	// IHDR's width and height are at bytes 16–23, its CRC at 29–32.
	binary.BigEndian.PutUint32(data[16:], 100000)
	binary.BigEndian.PutUint32(data[20:], 100000)
	binary.BigEndian.PutUint32(data[29:], crc32.ChecksumIEEE(data[12:29]))
	_, err := Decode(data, DefaultLimits)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "100000x100000") {
		t.Fatalf("bomb: %v", err)
	}
}

func TestNotAnImage(t *testing.T) {
	for _, tc := range []struct {
		data []byte
		err  error
		want string
	}{
		{nil, ErrFormat, "no data"},
		{[]byte("<svg xmlns=..."), ErrFormat, "svg"},
		{[]byte("hello world"), ErrFormat, "68 65 6c"},
		{[]byte("\x89PNG\r\n\x1a\n\x00\x00"), ErrCorrupt, "png"},
		{encode(t, "jpeg", pattern(8, 8))[:200], ErrCorrupt, "jpeg"},
	} {
		_, err := Decode(tc.data, DefaultLimits)
		if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %v mentioning %q", tc.data[:min(len(tc.data), 12)], err, tc.err, tc.want)
		}
	}
}

// withOrientation inserts an APP1 Exif segment with orientation o after
// the JPEG's SOI marker.
func withOrientation(jpg []byte, o uint16, order binary.ByteOrder) []byte {
	var tiff bytes.Buffer
	if order == binary.LittleEndian {
		tiff.WriteString("II")
	} else {
		tiff.WriteString("MM")
	}
	w := func(v any) { binary.Write(&tiff, order, v) }
	w(uint16(42))
	w(uint32(8))
	w(uint16(1))      // one entry
	w(uint16(0x0112)) // Orientation
	w(uint16(3))      // SHORT
	w(uint32(1))      // count
	w(o)              // value
	w(uint16(0))      // padding
	w(uint32(0))      // no next IFD
	seg := append([]byte("Exif\x00\x00"), tiff.Bytes()...)
	app1 := []byte{0xff, 0xe1, 0, 0}
	binary.BigEndian.PutUint16(app1[2:], uint16(len(seg)+2))
	out := append([]byte{}, jpg[:2]...)
	out = append(out, app1...)
	out = append(out, seg...)
	return append(out, jpg[2:]...)
}

func TestEXIFOrientation(t *testing.T) {
	// A 16×8 image, left half black, right half white.
	src := image.NewGray(image.Rect(0, 0, 16, 8))
	for y := 0; y < 8; y++ {
		for x := 8; x < 16; x++ {
			src.SetGray(x, y, color.Gray{255})
		}
	}
	jpg := encode(t, "jpeg", src)
	dark := func(img *Image, x, y int) bool { return img.At(x, y, 0) < 128 }
	for _, tc := range []struct {
		o    uint16
		w, h int
		// where the black half ends up
		darkAt, lightAt [2]int
	}{
		{1, 16, 8, [2]int{1, 4}, [2]int{14, 4}},
		{3, 16, 8, [2]int{14, 4}, [2]int{1, 4}},
		{6, 8, 16, [2]int{4, 1}, [2]int{4, 14}}, // turned clockwise: left goes to the top
		{8, 8, 16, [2]int{4, 14}, [2]int{4, 1}}, // turned counter-clockwise: left goes to the bottom
		{2, 16, 8, [2]int{14, 4}, [2]int{1, 4}},
	} {
		for _, order := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
			data := withOrientation(jpg, tc.o, order)
			if got := Orientation(data); got != int(tc.o) {
				t.Errorf("Orientation = %d, want %d", got, tc.o)
			}
			img, err := Decode(data, DefaultLimits)
			if err != nil {
				t.Fatal(err)
			}
			if img.W != tc.w || img.H != tc.h || img.Orientation != int(tc.o) {
				t.Errorf("o=%d: %dx%d (o %d), want %dx%d", tc.o, img.W, img.H, img.Orientation, tc.w, tc.h)
				continue
			}
			if !dark(img, tc.darkAt[0], tc.darkAt[1]) || dark(img, tc.lightAt[0], tc.lightAt[1]) {
				t.Errorf("o=%d: the black half is not at %v", tc.o, tc.darkAt)
			}
		}
	}
	if Orientation(jpg) != 1 || Orientation([]byte("x")) != 1 {
		t.Error("no EXIF: want 1")
	}
}

// FuzzDecode: any bytes give an image within the limits or one of the
// three errors; never a panic or an image over the limits.
func FuzzDecode(f *testing.F) {
	var tt testing.T
	for _, fm := range []string{"png", "jpeg", "gif", "bmp"} {
		f.Add(encode(&tt, fm, pattern(2, 1)))
	}
	f.Add(withOrientation(encode(&tt, "jpeg", pattern(1, 2)), 6, binary.BigEndian))
	if webp, err := os.ReadFile("testdata/two-colours.webp"); err == nil {
		f.Add(webp)
	}
	f.Add([]byte("RIFF\x00\x00\x00\x00WEBPVP8 "))
	lim := Limits{MaxBytes: 1 << 16, MaxPixels: 1 << 16, MaxSide: 1024}
	f.Fuzz(func(t *testing.T, data []byte) {
		img, err := Decode(data, lim)
		if err != nil {
			if !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrFormat) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if img.W <= 0 || img.H <= 0 || int64(img.W)*int64(img.H) > lim.MaxPixels || len(img.Pix) != img.W*img.H*3 {
			t.Fatalf("image %dx%d with %d bytes", img.W, img.H, len(img.Pix))
		}
	})
}
