package clip

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"math"
	"strconv"

	"github.com/dsmil/l7/plugins/internal/imagefile"
)

// Preprocess is a CLIPImageProcessor configuration
// (preprocessor_config.json): resize (bicubic), centre crop, rescale,
// normalise.
type Preprocess struct {
	// ShortestEdge, when set, resizes the image so that its shorter side
	// is this long, keeping the aspect ratio; otherwise Width×Height is
	// the resized size.
	ShortestEdge, Width, Height int
	// Resize is do_resize.
	Resize bool
	// CenterCrop is do_center_crop; CropW×CropH is the crop (and the
	// output size).
	CenterCrop   bool
	CropW, CropH int
	// Rescale multiplies the 8-bit values by RescaleFactor (do_rescale,
	// rescale_factor: 1/255).
	Rescale       bool
	RescaleFactor float64
	// Normalize subtracts Mean and divides by Std, per RGB channel.
	Normalize bool
	Mean, Std [3]float64
}

// sizeJSON is a size in preprocessor_config.json: a number (the shortest
// edge, as transformers' CLIPImageProcessor reads it) or an object.
type sizeJSON struct {
	ShortestEdge, Height, Width int
	Int                         bool
}

func (s *sizeJSON) UnmarshalJSON(b []byte) error {
	var n int
	if err := json.Unmarshal(b, &n); err == nil {
		*s = sizeJSON{ShortestEdge: n, Height: n, Width: n, Int: true}
		return nil
	}
	var o struct {
		ShortestEdge *int `json:"shortest_edge"`
		LongestEdge  *int `json:"longest_edge"`
		Height       int  `json:"height"`
		Width        int  `json:"width"`
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return fmt.Errorf("a size must be a number or {shortest_edge} or {height, width}: %s", b)
	}
	if o.LongestEdge != nil {
		return fmt.Errorf("longest_edge is not supported: %s", b)
	}
	*s = sizeJSON{Height: o.Height, Width: o.Width}
	if o.ShortestEdge != nil {
		s.ShortestEdge = *o.ShortestEdge
	}
	return nil
}

// loadPreprocess reads preprocessor_config.json, with transformers.js's
// defaults for the keys it leaves out.
func loadPreprocess(path string) (*Preprocess, error) {
	var pj struct {
		DoResize      *bool      `json:"do_resize"`
		Size          *sizeJSON  `json:"size"`
		Resample      *int       `json:"resample"`
		DoCenterCrop  *bool      `json:"do_center_crop"`
		CropSize      *sizeJSON  `json:"crop_size"`
		DoRescale     *bool      `json:"do_rescale"`
		RescaleFactor *float64   `json:"rescale_factor"`
		DoNormalize   *bool      `json:"do_normalize"`
		Mean          *[]float64 `json:"image_mean"`
		Std           *[]float64 `json:"image_std"`
		CropPct       *float64   `json:"crop_pct"`
		DoPad         *bool      `json:"do_pad"`
	}
	if err := readJSON(path, &pj, true); err != nil {
		return nil, err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: preprocessor_config.json: %s", ErrLayout, fmt.Sprintf(format, args...))
	}
	or := func(b *bool, def bool) bool {
		if b == nil {
			return def
		}
		return *b
	}
	p := &Preprocess{Resize: or(pj.DoResize, pj.Size != nil), CenterCrop: or(pj.DoCenterCrop, false),
		Rescale: or(pj.DoRescale, true), RescaleFactor: 1.0 / 255, Normalize: or(pj.DoNormalize, false)}
	if pj.RescaleFactor != nil {
		p.RescaleFactor = *pj.RescaleFactor
	}
	if r := pj.Resample; p.Resize && (r == nil || *r != 3) {
		got := "unset (bilinear)"
		if r != nil {
			got = strconv.Itoa(*r)
		}
		return nil, bad("resample is %s; only 3 (bicubic, CLIP's) is implemented", got)
	}
	if pj.CropPct != nil || or(pj.DoPad, false) {
		return nil, bad("crop_pct and do_pad are not supported")
	}
	if p.Resize {
		if pj.Size == nil {
			return nil, bad("do_resize without a size")
		}
		if pj.Size.ShortestEdge > 0 {
			p.ShortestEdge = pj.Size.ShortestEdge
		} else if pj.Size.Width > 0 && pj.Size.Height > 0 {
			p.Width, p.Height = pj.Size.Width, pj.Size.Height
		} else {
			return nil, bad("the size sets neither shortest_edge nor height and width")
		}
	}
	switch {
	case p.CenterCrop && pj.CropSize != nil && pj.CropSize.Width > 0 && pj.CropSize.Height > 0:
		p.CropW, p.CropH = pj.CropSize.Width, pj.CropSize.Height
	case p.CenterCrop:
		return nil, bad("do_center_crop without a crop_size {height, width}")
	case p.Resize && p.ShortestEdge == 0:
		p.CropW, p.CropH = p.Width, p.Height // the resize makes every image this size
	default:
		return nil, bad("without a centre crop or a resize to a fixed size, images of different shapes cannot feed the vision model")
	}
	if p.Normalize {
		if pj.Mean == nil || pj.Std == nil || len(*pj.Mean) != 3 || len(*pj.Std) != 3 {
			return nil, bad("do_normalize needs image_mean and image_std of 3 values each")
		}
		copy(p.Mean[:], *pj.Mean)
		copy(p.Std[:], *pj.Std)
		for _, s := range p.Std {
			if s == 0 {
				return nil, bad("an image_std value is 0")
			}
		}
	}
	return p, nil
}

// RGB is an 8-bit RGB image, rows top to bottom, channels interleaved.
type RGB struct {
	W, H int
	Pix  []uint8
}

// ToRGB converts a decoded image to RGB as transformers.js (sharp, then
// RawImage.rgb) and PIL's convert("RGB") do: an alpha channel is dropped,
// not composited (a transparent pixel keeps the colour it stores); 16-bit
// values keep their high byte; JPEG's YCbCr as libjpeg converts it
// (ycbcrToRGB). The EXIF orientation is applied, as sharp's rotate() does.
func ToRGB(d *imagefile.Decoded) *RGB {
	src := d.Image
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	pix := make([]uint8, 0, w*h*3)
	switch s := src.(type) {
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := s.Pix[y*s.Stride:]
			for x := 0; x < w; x++ {
				pix = append(pix, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	case *image.RGBA: // opaque (Go's PNG decoder gives NRGBA when there is alpha)
		for y := 0; y < h; y++ {
			row := s.Pix[y*s.Stride:]
			for x := 0; x < w; x++ {
				pix = append(pix, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			for _, g := range s.Pix[y*s.Stride : y*s.Stride+w] {
				pix = append(pix, g, g, g)
			}
		}
	case *image.YCbCr:
		pix = ycbcrToRGB(s)
	default:
		for y := b.Min.Y; y < b.Max.Y; y++ {
			for x := b.Min.X; x < b.Max.X; x++ {
				c := color.NRGBA64Model.Convert(src.At(x, y)).(color.NRGBA64)
				pix = append(pix, uint8(c.R>>8), uint8(c.G>>8), uint8(c.B>>8))
			}
		}
	}
	if d.Orientation > 1 {
		pix, w, h = imagefile.Orient(pix, w, h, 3, d.Orientation)
	}
	return &RGB{W: w, H: h, Pix: pix}
}

// ycbcrToRGB converts a decoded JPEG to RGB as libjpeg (mozjpeg, in sharp)
// does by default: 4:2:0 chroma upsampled by its "fancy" triangle filter
// (h2v2_fancy_upsample: each output sample weighs the nearer chroma sample
// 9/16, its row and column neighbours 3/16 each and the diagonal one 1/16,
// with libjpeg's alternating rounding, edge samples replicated), other
// subsamplings by repetition, then its fixed-point YCbCr→RGB tables
// (jdcolor.c). Go's image/jpeg gives the chroma planes as stored and
// color.YCbCrToRGB rounds differently.
func ycbcrToRGB(s *image.YCbCr) []uint8 {
	b := s.Bounds()
	w, h := b.Dx(), b.Dy()
	cb, cr := upsample(s, s.Cb), upsample(s, s.Cr)
	pix := make([]uint8, 0, w*h*3)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			yy := int(s.Y[s.YOffset(b.Min.X+x, b.Min.Y+y)])
			cbv, crv := int(cb[y*w+x]), int(cr[y*w+x])
			pix = append(pix,
				clamp8(yy+crR[crv]),
				clamp8(yy+((cbG[cbv]+crG[crv])>>16)),
				clamp8(yy+cbB[cbv]))
		}
	}
	return pix
}

func clamp8(v int) uint8 { return uint8(min(max(v, 0), 255)) }

// libjpeg's build_ycc_rgb_table: SCALEBITS 16, FIX(x) = x·65536 + 0.5.
var crR, cbB, crG, cbG = func() (crR, cbB, crG, cbG [256]int) {
	fix := func(v float64) int { return int(v*65536 + 0.5) }
	const half = 1 << 15
	for i := range 256 {
		x := i - 128
		crR[i] = (fix(1.40200)*x + half) >> 16
		cbB[i] = (fix(1.77200)*x + half) >> 16
		crG[i] = -fix(0.71414) * x
		cbG[i] = -fix(0.34414)*x + half
	}
	return
}()

// upsample returns chroma plane c of s at full resolution, w×h.
func upsample(s *image.YCbCr, c []uint8) []uint8 {
	b := s.Bounds()
	w, h := b.Dx(), b.Dy()
	out := make([]uint8, w*h)
	if s.SubsampleRatio != image.YCbCrSubsampleRatio420 || b.Min != (image.Point{}) {
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				out[y*w+x] = c[s.COffset(b.Min.X+x, b.Min.Y+y)]
			}
		}
		return out
	}
	cw, ch := (w+1)/2, (h+1)/2
	for y := 0; y < h; y++ {
		// Column sums: the nearer chroma row weighs 3, the other (above
		// for an even output row, below for an odd one) 1.
		cy, other := y/2, y/2-1
		if y%2 == 1 {
			other = y/2 + 1
		}
		near, far := c[cy*s.CStride:], c[min(max(other, 0), ch-1)*s.CStride:]
		sum := func(cx int) int { return 3*int(near[cx]) + int(far[cx]) }
		row := out[y*w : (y+1)*w]
		for cx := 0; cx < cw; cx++ {
			this := sum(cx)
			last, next := this, this
			if cx > 0 {
				last = sum(cx - 1)
			}
			if cx+1 < cw {
				next = sum(cx + 1)
			}
			row[2*cx] = uint8((3*this + last + 8) >> 4)
			if 2*cx+1 < w {
				row[2*cx+1] = uint8((3*this + next + 7) >> 4)
			}
		}
	}
	return out
}

// ResizedSize is the size the resize step gives a w×h image, as
// transformers.js's ImageProcessor.get_resize_output_image_size computes
// it for shortest_edge: both sides scaled by max(edge/w, edge/h), rounded
// to two decimals, then down.
func (p *Preprocess) ResizedSize(w, h int) (int, int) {
	if p.ShortestEdge == 0 {
		return p.Width, p.Height
	}
	e := float64(p.ShortestEdge)
	f := math.Max(e/float64(w), e/float64(h))
	fix := func(v float64) int {
		r, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', 2, 64), 64)
		return int(math.Floor(r))
	}
	return fix(float64(w) * f), fix(float64(h) * f)
}

// Pixels turns an image into the vision model's pixel_values for one
// image, channel-major [3, CropH, CropW], as transformers.js 4's
// CLIPImageProcessor does in Node: RawImage.resize with bicubic resampling
// (sharp's affine with libvips's bicubic interpolator, Bicubic), the centre
// crop (black where the image is smaller), the rescale to float32, then
// (x - mean) / std.
func (p *Preprocess) Pixels(m *RGB) []float32 {
	// Only the pixels the crop keeps are resized: a 1×16384 image would
	// otherwise become 224×3 670 016 (2.4 GB) before its crop.
	rw, rh := m.W, m.H
	if p.Resize {
		rw, rh = p.ResizedSize(m.W, m.H)
	}
	cw, ch := rw, rh
	x0, y0 := 0, 0
	if p.CenterCrop {
		cw, ch = p.CropW, p.CropH
		x0, y0 = cropOffset(rw, cw), cropOffset(rh, ch)
	}
	if rw != m.W || rh != m.H {
		m = BicubicWindow(m, rw, rh, x0, y0, cw, ch)
	} else {
		m = crop(m, x0, y0, cw, ch)
	}
	out := make([]float32, 3*cw*ch)
	plane := cw * ch
	for y := 0; y < ch; y++ {
		for x := 0; x < cw; x++ {
			for c := 0; c < 3; c++ {
				u := m.Pix[(y*cw+x)*3+c]
				v := float32(u)
				if p.Rescale {
					v = float32(p.RescaleFactor * float64(u))
				}
				if p.Normalize {
					v = float32((float64(v) - p.Mean[c]) / p.Std[c])
				}
				out[c*plane+y*cw+x] = v
			}
		}
	}
	return out
}

// crop returns the w×h window of m at (x0, y0), black outside m.
func crop(m *RGB, x0, y0, w, h int) *RGB {
	out := &RGB{W: w, H: h, Pix: make([]uint8, w*h*3)}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			sx, sy := x+x0, y+y0
			if sx >= 0 && sy >= 0 && sx < m.W && sy < m.H {
				copy(out.Pix[(y*w+x)*3:(y*w+x+1)*3], m.Pix[(sy*m.W+sx)*3:])
			}
		}
	}
	return out
}

// cropOffset is where a centred crop of n pixels starts in a side of size
// pixels (negative: the crop is padded by that many pixels), as
// RawImage.center_crop: floor((size-n)/2) when the image is larger, and
// -floor((n-size)/2) when it is smaller.
func cropOffset(size, n int) int {
	if size >= n {
		return (size - n) / 2
	}
	return -((n - size) / 2)
}

// Bicubic resizes m to w×h as sharp's affine([w/W, 0, 0, h/H],
// {interpolator: "bicubic"}) does, which is what transformers.js's
// RawImage.resize runs in Node for resample 3: libvips's vips_affine with
// its bicubic (Catmull-Rom) interpolator on 8-bit pixels. Output pixel x
// samples the input at x·W/w (pixel corners, not centres, no
// anti-aliasing); the 4×4 stencil's weights come from a table of 65
// fractions (the fraction rounded to 1/64) in 12-bit fixed point, rows
// are rounded to integers before the column pass; the image is surrounded
// by black (sharp's default background), which the stencil reaches at the
// top and left edges and at the bottom and right.
func Bicubic(m *RGB, w, h int) *RGB { return BicubicWindow(m, w, h, 0, 0, w, h) }

// BicubicWindow is the cw×ch window at (x0, y0) of Bicubic(m, w, h) (black
// where the window leaves the w×h image), computed without the rest.
func BicubicWindow(m *RGB, w, h, x0, y0, cw, ch int) *RGB {
	const (
		interpolateShift = 12   // VIPS_INTERPOLATE_SHIFT
		round            = 2048 // VIPS_INTERPOLATE_SCALE >> 1
	)
	// vips__transform_calc_inverse on the diagonal matrix.
	a, d := float64(w)/float64(m.W), float64(h)/float64(m.H)
	det := a*d - 0*0
	tmp := 1.0 / det
	ia, id := tmp*d, tmp*a
	W, H := m.W, m.H
	// Space 2 of vips_affine_gen: the input with a border of 2 pixels
	// before (window offset 1, plus 1) and 3 after.
	at := func(x, y, c int) int {
		x, y = x-2, y-2
		if x < 0 || y < 0 || x >= W || y >= H {
			return 0
		}
		return int(m.Pix[(y*W+x)*3+c])
	}
	// Every row starts at the same x in space 2, as vips_affine_gen
	// computes it for a region starting at column 0: ia·0 + ib·oy with
	// ib = 0, less idx (−1), plus the window offset (1); then ia is added
	// per column. The columns' positions, accumulated the same way.
	// Only the window's are kept (xs[x] is column x0+x's).
	xs := make([]float64, cw)
	ix := 0.0
	ix++
	ix++
	for ox := 0; ox < x0+cw; ox++ {
		if ox >= x0 {
			xs[ox-x0] = ix
		}
		ix += ia
	}
	out := &RGB{W: cw, H: ch, Pix: make([]uint8, cw*ch*3)}
	for y := 0; y < ch; y++ {
		oy := y0 + y
		if oy < 0 || oy >= h {
			continue
		}
		// The row in space 2: ic·0 + id·oy, plus 1 (−idy), plus 1.
		iy := id * float64(oy)
		iy++
		iy++
		fy := int(math.Floor(iy))
		cy := catmullTable[tableIndex(iy)]
		iyi := int(iy)
		for x := 0; x < cw; x++ {
			ox := x0 + x
			if ox < 0 || ox >= w {
				continue
			}
			ix := xs[x]
			q := out.Pix[(y*cw+x)*3:]
			fx := int(math.Floor(ix))
			// Clip against iarea (1 … W+1 and 1 … H+1 in space 2);
			// outside, the background (black).
			if fx < 1 || fx > W+1 || fy < 1 || fy > H+1 {
				continue
			}
			cx := catmullTable[tableIndex(ix)]
			ixi := int(ix)
			for c := 0; c < 3; c++ {
				var r [4]int
				for j := 0; j < 4; j++ {
					yy := iyi - 1 + j
					v := cx[0]*at(ixi-1, yy, c) + cx[1]*at(ixi, yy, c) + cx[2]*at(ixi+1, yy, c) + cx[3]*at(ixi+2, yy, c)
					r[j] = (v + round) >> interpolateShift
				}
				v := (cy[0]*r[0] + cy[1]*r[1] + cy[2]*r[2] + cy[3]*r[3] + round) >> interpolateShift
				q[c] = uint8(min(max(v, 0), 255))
			}
		}
	}
	return out
}

// tableIndex is vips_interpolate_bicubic_interpolate's mask index: the
// fraction of x rounded to the nearest 1/64, 0 … 64.
func tableIndex(x float64) int {
	sx := int(x * 64 * 2)
	six := sx & (64*2 - 1)
	return (six + 1) >> 1
}

// catmullTable is libvips's vips_bicubic_matrixi: the Catmull-Rom weights
// of fractions 0, 1/64, …, 1 in 12-bit fixed point, truncated.
var catmullTable = func() (t [65][4]int) {
	for i := range t {
		x := float64(float32(i) / 64)
		// calculate_coefficients_catmull, operation for operation.
		cr1 := 1. - x
		cr2 := -.5 * x
		cr3 := cr1 * cr2
		cone := cr1 * cr3
		cfou := x * cr3
		cr4 := cfou - cone
		ctwo := cr1 - cone + cr4
		cthr := x - cfou - cr4
		for j, c := range [4]float64{cone, ctwo, cthr, cfou} {
			t[i][j] = int(c * 4096)
		}
	}
	return t
}()
