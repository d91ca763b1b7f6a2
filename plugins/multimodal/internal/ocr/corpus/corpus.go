// Package corpus renders the OCR accuracy corpus: text of the kinds an
// operator screenshots (English sentences, IPv4 addresses, hostnames,
// hashes, log lines) drawn with the Go fonts (golang.org/x/image/font/gofont)
// at 12–48 px, black on white or on coloured backgrounds, some slightly
// rotated, some saved as JPEG at quality 60, and screenshot-like blocks of
// several lines. The same seed always gives the same corpus. It also
// scores OCR output: character error rate and line exact match.
package corpus

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"strings"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/gomono"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
)

// Sample is one corpus image and the lines it shows, top to bottom.
type Sample struct {
	Name  string
	Kind  string // sentence, ipv4, hostname, hash, log, block
	Lines []string
	// File is the encoded image (PNG, or JPEG when JPEG is set).
	File []byte
	JPEG bool
	Size int     // font size in pixels
	Tilt float64 // rotation in degrees
}

var (
	fontsOnce sync.Once
	fonts     map[string]*opentype.Font
	fontsErr  error
)

func loadFonts() (map[string]*opentype.Font, error) {
	fontsOnce.Do(func() {
		fonts = map[string]*opentype.Font{}
		for name, ttf := range map[string][]byte{"regular": goregular.TTF, "mono": gomono.TTF} {
			f, err := opentype.Parse(ttf)
			if err != nil {
				fontsErr = fmt.Errorf("corpus: font %s: %w", name, err)
				return
			}
			fonts[name] = f
		}
	})
	return fonts, fontsErr
}

// Style is how a sample is drawn.
type Style struct {
	Size    int // pixels
	Mono    bool
	FG, BG  color.RGBA
	Tilt    float64 // degrees, counter-clockwise
	JPEG    bool    // quality 60
	Spacing float64 // line height in sizes (1.5 when 0)
}

// Render draws lines in style and encodes the image.
func Render(lines []string, st Style) ([]byte, error) {
	img, err := draw1(lines, st, 0, 0)
	if err != nil {
		return nil, err
	}
	return encode(img, st)
}

// Screenshot renders a w×h screen of n log and status lines in Go Mono at
// 16 px, light on a dark terminal background (1280, 720 and 20 make the
// issue's speed benchmark image), and the lines it shows.
func Screenshot(seed uint64, w, h, n int) ([]byte, []string, error) {
	r := rand.New(rand.NewPCG(seed, 0x5c2e))
	lines := make([]string, n)
	for i := range lines {
		if i%5 == 0 {
			lines[i] = hostname(r) + " " + ipv4(r) + " " + hash(r)
		} else {
			lines[i] = logLine(r)
		}
	}
	st := Style{Size: 16, Mono: true, FG: backgrounds[3].fg, BG: backgrounds[3].bg, Spacing: 1.6}
	img, err := draw1(lines, st, w, h)
	if err != nil {
		return nil, nil, err
	}
	b, err := encode(img, st)
	return b, lines, err
}

// draw1 draws lines in style on a canvas just big enough, or w×h when
// they are not 0.
func draw1(lines []string, st Style, cw, ch int) (image.Image, error) {
	fs, err := loadFonts()
	if err != nil {
		return nil, err
	}
	f := fs["regular"]
	if st.Mono {
		f = fs["mono"]
	}
	face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: float64(st.Size), DPI: 72, Hinting: font.HintingFull})
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	defer face.Close()
	spacing := st.Spacing
	if spacing == 0 {
		spacing = 1.5
	}
	margin := st.Size
	lineH := int(math.Ceil(float64(st.Size) * spacing))
	width := 0
	for _, l := range lines {
		width = max(width, font.MeasureString(face, l).Ceil())
	}
	w := width + 2*margin
	h := lineH*len(lines) + 2*margin
	if cw > 0 && ch > 0 {
		w, h = cw, ch
	}
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), &image.Uniform{st.BG}, image.Point{}, draw.Src)
	d := &font.Drawer{Dst: img, Src: &image.Uniform{st.FG}, Face: face}
	asc := face.Metrics().Ascent.Ceil()
	for i, l := range lines {
		d.Dot = fixed.P(margin, margin+i*lineH+asc+(lineH-st.Size)/2)
		d.DrawString(l)
	}
	var out image.Image = img
	if st.Tilt != 0 {
		out = rotate(img, st.Tilt, st.BG)
	}
	return out, nil
}

func encode(img image.Image, st Style) ([]byte, error) {
	var b bytes.Buffer
	var err error
	if st.JPEG {
		err = jpeg.Encode(&b, img, &jpeg.Options{Quality: 60})
	} else {
		err = png.Encode(&b, img)
	}
	if err != nil {
		return nil, fmt.Errorf("corpus: %w", err)
	}
	return b.Bytes(), nil
}

// rotate turns img by deg degrees counter-clockwise about its centre onto
// a canvas big enough to hold it, bilinear, filled with bg.
func rotate(img *image.RGBA, deg float64, bg color.RGBA) *image.RGBA {
	th := deg * math.Pi / 180
	c, s := math.Cos(th), math.Sin(th)
	w0, h0 := float64(img.Bounds().Dx()), float64(img.Bounds().Dy())
	w := int(math.Ceil(math.Abs(w0*c) + math.Abs(h0*s)))
	h := int(math.Ceil(math.Abs(w0*s) + math.Abs(h0*c)))
	out := image.NewRGBA(image.Rect(0, 0, w, h))
	cx0, cy0, cx, cy := w0/2, h0/2, float64(w)/2, float64(h)/2
	at := func(x, y int) [4]float64 {
		if x < 0 || y < 0 || x >= int(w0) || y >= int(h0) {
			return [4]float64{float64(bg.R), float64(bg.G), float64(bg.B), 255}
		}
		p := img.RGBAAt(x, y)
		return [4]float64{float64(p.R), float64(p.G), float64(p.B), 255}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			// screen y is down: counter-clockwise on screen
			dx, dy := float64(x)+0.5-cx, float64(y)+0.5-cy
			sx := c*dx - s*dy + cx0 - 0.5
			sy := s*dx + c*dy + cy0 - 0.5
			x0, y0 := int(math.Floor(sx)), int(math.Floor(sy))
			fx, fy := sx-float64(x0), sy-float64(y0)
			var v [4]float64
			for j, wy := range [2]float64{1 - fy, fy} {
				for i, wx := range [2]float64{1 - fx, fx} {
					p := at(x0+i, y0+j)
					for k := range v {
						v[k] += wx * wy * p[k]
					}
				}
			}
			out.SetRGBA(x, y, color.RGBA{uint8(v[0] + 0.5), uint8(v[1] + 0.5), uint8(v[2] + 0.5), 255})
		}
	}
	return out
}

var (
	words = strings.Fields(`the operator reviewed every alert before the shift ended and closed the
		ticket after the backup finished on schedule while the network team restarted two
		switches in the east data hall because a firmware update had failed overnight our
		analysts found no sign of lateral movement but the audit log shows three failed
		logins from an unknown address please rotate the service credentials and confirm
		that monitoring is green before noon tomorrow`)
	hostParts = []string{"db", "web", "mail", "vpn", "core", "edge", "siem", "ldap", "proxy", "build", "cache", "node"}
	domains   = []string{"example.com", "corp.local", "dsmil.mil", "internal.net", "lab.example.org"}
	levels    = []string{"INFO", "WARN", "ERROR", "DEBUG"}
	services  = []string{"sshd", "nginx", "kernel", "postfix", "systemd", "cron", "dockerd"}
	messages  = []string{"connection closed by", "accepted publickey for root from", "upstream timed out from",
		"failed password for admin from", "session opened for user deploy from", "blocked outbound to"}
)

func sentence(r *rand.Rand) string {
	n := 4 + r.IntN(5)
	start := r.IntN(len(words) - n)
	s := strings.Join(words[start:start+n], " ")
	s = strings.ToUpper(s[:1]) + s[1:]
	return s + "."
}

func ipv4(r *rand.Rand) string {
	return fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(254), r.IntN(256), r.IntN(256), 1+r.IntN(254))
}

func hostname(r *rand.Rand) string {
	return fmt.Sprintf("%s-%02d.%s", hostParts[r.IntN(len(hostParts))], r.IntN(100), domains[r.IntN(len(domains))])
}

func hash(r *rand.Rand) string {
	n := []int{8, 12, 16, 32}[r.IntN(4)]
	const hex = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = hex[r.IntN(16)]
	}
	return string(b)
}

func logLine(r *rand.Rand) string {
	return fmt.Sprintf("%02d:%02d:%02d %s %s[%d]: %s %s", r.IntN(24), r.IntN(60), r.IntN(60),
		levels[r.IntN(len(levels))], services[r.IntN(len(services))], 100+r.IntN(9900),
		messages[r.IntN(len(messages))], ipv4(r))
}

var backgrounds = []struct{ fg, bg color.RGBA }{
	{color.RGBA{0, 0, 0, 255}, color.RGBA{255, 255, 255, 255}},
	{color.RGBA{0, 0, 0, 255}, color.RGBA{255, 244, 196, 255}},    // pale yellow
	{color.RGBA{20, 20, 90, 255}, color.RGBA{200, 225, 255, 255}}, // blue on light blue
	{color.RGBA{240, 240, 240, 255}, color.RGBA{30, 34, 42, 255}}, // light on dark (terminal)
	{color.RGBA{0, 90, 0, 255}, color.RGBA{235, 235, 235, 255}},
}

// Generate renders n single-line samples and n/8 multi-line blocks from
// seed: sizes 12–48 px, one in three on a coloured background, one in four
// tilted by up to ±3°, one in four JPEG at quality 60.
func Generate(seed uint64, n int) ([]Sample, error) {
	r := rand.New(rand.NewPCG(seed, 0x0c12))
	gens := []struct {
		kind string
		f    func(*rand.Rand) string
		mono bool
	}{
		{"sentence", sentence, false}, {"ipv4", ipv4, false}, {"hostname", hostname, false},
		{"hash", hash, true}, {"log", logLine, true},
	}
	var out []Sample
	for i := 0; i < n; i++ {
		g := gens[i%len(gens)]
		text := g.f(r)
		st := Style{Size: 12 + r.IntN(37), Mono: g.mono, FG: backgrounds[0].fg, BG: backgrounds[0].bg}
		if r.IntN(3) == 0 {
			b := backgrounds[1+r.IntN(len(backgrounds)-1)]
			st.FG, st.BG = b.fg, b.bg
		}
		if r.IntN(4) == 0 {
			st.Tilt = (r.Float64()*2 - 1) * 3
		}
		st.JPEG = r.IntN(4) == 0
		file, err := Render([]string{text}, st)
		if err != nil {
			return nil, err
		}
		out = append(out, Sample{Name: fmt.Sprintf("%03d-%s", i, g.kind), Kind: g.kind, Lines: []string{text},
			File: file, JPEG: st.JPEG, Size: st.Size, Tilt: st.Tilt})
	}
	for i := 0; i < n/8; i++ {
		lines := []string{hostname(r) + " " + ipv4(r)}
		for k := 0; k < 3+r.IntN(4); k++ {
			lines = append(lines, logLine(r))
		}
		lines = append(lines, sentence(r))
		st := Style{Size: 14 + r.IntN(9), Mono: true, FG: backgrounds[0].fg, BG: backgrounds[0].bg}
		if i%2 == 1 {
			st.FG, st.BG = backgrounds[3].fg, backgrounds[3].bg
		}
		file, err := Render(lines, st)
		if err != nil {
			return nil, err
		}
		out = append(out, Sample{Name: fmt.Sprintf("block-%02d", i), Kind: "block", Lines: lines, File: file, Size: st.Size})
	}
	return out, nil
}

// Score accumulates character errors and line matches.
type Score struct {
	Chars, Errors int // reference characters; edit distance
	Lines, Exact  int // reference lines; lines read exactly
}

// Add scores one sample: got lines against want lines. Lines are paired
// in order after both are joined; the edit distance is over the texts
// joined with newlines, so a missed or extra line costs its characters.
func (s *Score) Add(want, got []string) {
	w, g := strings.Join(want, "\n"), strings.Join(got, "\n")
	s.Chars += len([]rune(w))
	s.Errors += Levenshtein(w, g)
	s.Lines += len(want)
	for i, l := range want {
		if i < len(got) && got[i] == l {
			s.Exact++
		}
	}
}

// CER is the character error rate.
func (s Score) CER() float64 {
	if s.Chars == 0 {
		return 0
	}
	return float64(s.Errors) / float64(s.Chars)
}

// ExactRate is the share of lines read exactly.
func (s Score) ExactRate() float64 {
	if s.Lines == 0 {
		return 0
	}
	return float64(s.Exact) / float64(s.Lines)
}

func (s Score) String() string {
	return fmt.Sprintf("CER %.4f (%d/%d), exact lines %.3f (%d/%d)", s.CER(), s.Errors, s.Chars, s.ExactRate(), s.Exact, s.Lines)
}

// Levenshtein is the edit distance between a and b in runes.
func Levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			c := prev[j-1]
			if ra[i-1] != rb[j-1] {
				c++
			}
			cur[j] = min(c, prev[j]+1, cur[j-1]+1)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
