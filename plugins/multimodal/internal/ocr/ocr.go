package ocr

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"

	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/plugins/multimodal/internal/imgproc"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/ctc"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/dbpost"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/geom"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocrmodels"
	ortgo "github.com/yalue/onnxruntime_go"
)

// Options are the pipeline's settings; the zero value means PaddleOCR's
// defaults.
type Options struct {
	// Session are the ONNX Runtime session options of all three models.
	Session ort.Options
	// DetLimitSide is the longest side detection works at (960).
	DetLimitSide int
	// DB are the detector post-process settings: dbpost.Defaults
	// (PaddleOCR's) with UnclipRatio DefaultUnclipRatio.
	DB *dbpost.Params
	// Classify runs the orientation classifier on every crop
	// (use_angle_cls). Off by default, as in PaddleOCR: the classifier sees
	// a long line squashed into 192×48 and calls some upright ones upside
	// down.
	Classify bool
	// ClsThresh is the probability above which a crop called 180° is
	// turned over (0.9).
	ClsThresh float64
	// DropScore drops lines recognized with lower confidence (0.5).
	DropScore float64
	// RecBatch is how many crops are recognized at once (6).
	RecBatch int
}

func (o Options) withDefaults() Options {
	if o.DetLimitSide == 0 {
		o.DetLimitSide = 960
	}
	if o.DB == nil {
		d := dbpost.Defaults
		d.UnclipRatio = DefaultUnclipRatio
		o.DB = &d
	}
	if o.ClsThresh == 0 {
		o.ClsThresh = 0.9
	}
	if o.DropScore == 0 {
		o.DropScore = 0.5
	}
	if o.RecBatch == 0 {
		o.RecBatch = 6
	}
	return o
}

// DefaultUnclipRatio is how far detected boxes grow (PaddleOCR's
// det_db_unclip_ratio) unless Options.DB says otherwise. PaddleOCR's
// default, 1.5, crops lines so tightly that the recognizer drops most word
// spaces; on the rendered corpus (bench/ocr, 112 images, 178 lines) CER is
// 0.061 at 1.5, 0.015 at 2.0, 0.0058 at 2.5 and 0.0062 at 3.0.
const DefaultUnclipRatio = 2.5

// Shapes of the models' inputs.
const (
	recHeight = 48
	recWidth  = 320 // the narrowest canvas: a ratio of 320/48
	clsHeight = 48
	clsWidth  = 192
)

// ErrModel reports model files that are not PP-OCRv4's.
var ErrModel = errors.New("ocr: unexpected model")

// Engine holds the three models, loaded once; it is safe for concurrent
// use.
type Engine struct {
	det, rec, cls *ortgo.DynamicAdvancedSession
	charset       *ctc.Charset
	opts          Options
}

// Load creates the sessions. ONNX Runtime must be initialized (ort.Init).
func Load(p ocrmodels.Paths, opts Options) (*Engine, error) {
	opts = opts.withDefaults()
	if err := p.Check(); err != nil {
		return nil, err
	}
	dict, err := os.ReadFile(p.Keys)
	if err != nil {
		return nil, fmt.Errorf("ocr: %w", err)
	}
	e := &Engine{opts: opts}
	if e.charset, err = ctc.LoadCharset(dict); err != nil {
		return nil, err
	}
	so, err := opts.Session.SessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	for _, m := range []struct {
		path string
		dst  **ortgo.DynamicAdvancedSession
		out  []int64 // expected output shape, -1 free
	}{
		{p.Detector, &e.det, []int64{-1, 1, -1, -1}},
		{p.Recognizer, &e.rec, []int64{-1, -1, int64(e.charset.Classes())}},
		{p.Classifier, &e.cls, []int64{-1, 2}},
	} {
		ins, outs, err := ortgo.GetInputOutputInfoWithOptions(m.path, so)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("ocr: %s: %w", m.path, err)
		}
		if len(ins) != 1 || len(outs) != 1 || !shapeFits(outs[0].Dimensions, m.out) {
			e.Close()
			return nil, fmt.Errorf("%w: %s has inputs %v and outputs %v, want one input and one output shaped %v",
				ErrModel, m.path, ins, outs, m.out)
		}
		s, err := ortgo.NewDynamicAdvancedSession(m.path, []string{ins[0].Name}, []string{outs[0].Name}, so)
		if err != nil {
			e.Close()
			return nil, fmt.Errorf("ocr: %s: %w", m.path, err)
		}
		*m.dst = s
	}
	return e, nil
}

func shapeFits(got ortgo.Shape, want []int64) bool {
	if len(got) != len(want) {
		return false
	}
	for i, w := range want {
		if w >= 0 && got[i] != w {
			return false
		}
	}
	return true
}

// Close releases the sessions.
func (e *Engine) Close() {
	for _, s := range []*ortgo.DynamicAdvancedSession{e.det, e.rec, e.cls} {
		if s != nil {
			_ = s.Destroy()
		}
	}
	e.det, e.rec, e.cls = nil, nil, nil
}

// Line is one recognized line of text.
type Line struct {
	Text       string
	Confidence float64
	// Box are the line's corners in the image, clockwise from the
	// top-left.
	Box [4]geom.Point
}

// Read finds and reads the text lines of img (RGB), in reading order.
func (e *Engine) Read(ctx context.Context, img *imgproc.Image) ([]Line, error) {
	boxes, err := e.Detect(ctx, img)
	if err != nil {
		return nil, err
	}
	boxes = ReadingOrder(boxes)
	crops := make([]*imgproc.Image, 0, len(boxes))
	kept := boxes[:0]
	for _, b := range boxes {
		c, err := Crop(img, b.Points)
		if err != nil {
			continue // a degenerate box
		}
		crops = append(crops, c)
		kept = append(kept, b)
	}
	if e.opts.Classify {
		if crops, err = e.orient(ctx, crops); err != nil {
			return nil, err
		}
	}
	texts, err := e.Recognize(ctx, crops)
	if err != nil {
		return nil, err
	}
	lines := make([]Line, 0, len(texts))
	for i, t := range texts {
		if t.Confidence >= e.opts.DropScore {
			lines = append(lines, Line{Text: t.Text, Confidence: t.Confidence, Box: kept[i].Points})
		}
	}
	return lines, nil
}

// DetectSize is DetResizeForTest's target size for an image of w×h with
// limit_type "max": scaled so the longer side is at most limit, each side
// then rounded (half to even) to a multiple of 32, at least 32.
func DetectSize(w, h, limit int) (int, int) {
	ratio := 1.0
	if max(w, h) > limit {
		if h > w {
			ratio = float64(limit) / float64(h)
		} else {
			ratio = float64(limit) / float64(w)
		}
	}
	rh, rw := int(float64(h)*ratio), int(float64(w)*ratio)
	rh = max(int(math.RoundToEven(float64(rh)/32)*32), 32)
	rw = max(int(math.RoundToEven(float64(rw)/32)*32), 32)
	return rw, rh
}

// ImageNet statistics as NormalizeImage applies them, to the channels in
// cv2's BGR order.
var (
	detMean = [3]float32{0.485, 0.456, 0.406}
	detStd  = [3]float32{0.229, 0.224, 0.225}
)

// DetectInput is the detector's input for img: [1, 3, h, w] values and
// their size.
func DetectInput(img *imgproc.Image, limit int) ([]float32, int, int, error) {
	w, h := DetectSize(img.W, img.H, limit)
	r, err := imgproc.Resize(img, w, h)
	if err != nil {
		return nil, 0, 0, err
	}
	data := make([]float32, 3*w*h)
	plane := w * h
	for i := 0; i < plane; i++ {
		for c := 0; c < 3; c++ { // tensor channel c is BGR channel c
			v := float32(r.Pix[i*3+2-c]) * (1.0 / 255)
			data[c*plane+i] = (v - detMean[c]) / detStd[c]
		}
	}
	return data, w, h, nil
}

// Detect returns the text boxes of img in source pixels (unordered).
func (e *Engine) Detect(ctx context.Context, img *imgproc.Image) ([]dbpost.Box, error) {
	data, w, h, err := DetectInput(img, e.opts.DetLimitSide)
	if err != nil {
		return nil, err
	}
	out, shape, err := run(ctx, e.det, data, ortgo.NewShape(1, 3, int64(h), int64(w)))
	if err != nil {
		return nil, fmt.Errorf("ocr: detection: %w", err)
	}
	if len(shape) != 4 || shape[2] != int64(h) || shape[3] != int64(w) {
		return nil, fmt.Errorf("%w: detector output %v for input %dx%d", ErrModel, shape, w, h)
	}
	return dbpost.Boxes(dbpost.Map{W: w, H: h, Prob: out}, img.W, img.H, *e.opts.DB), nil
}

// ReadingOrder is sorted_boxes: by the first corner's y then x, then each
// box moved before its predecessors while its top-left corner is within
// 10 pixels of their height and left of them.
func ReadingOrder(boxes []dbpost.Box) []dbpost.Box {
	b := append([]dbpost.Box(nil), boxes...)
	sort.SliceStable(b, func(i, j int) bool {
		p, q := b[i].Points[0], b[j].Points[0]
		if p.Y != q.Y {
			return p.Y < q.Y
		}
		return p.X < q.X
	})
	for i := 0; i < len(b)-1; i++ {
		for j := i; j >= 0; j-- {
			if math.Abs(b[j+1].Points[0].Y-b[j].Points[0].Y) < 10 && b[j+1].Points[0].X < b[j].Points[0].X {
				b[j], b[j+1] = b[j+1], b[j]
			} else {
				break
			}
		}
	}
	return b
}

// Crop is get_rotate_crop_image: the quadrilateral pts (clockwise from
// the top-left) warped onto a rectangle as wide as its longer horizontal
// edge and as high as its longer vertical edge (each truncated), turned
// 90° counter-clockwise when at least 1.5 times as high as wide.
func Crop(img *imgproc.Image, pts [4]geom.Point) (*imgproc.Image, error) {
	// float32 corners, as the box array PaddleOCR passes.
	for i := range pts {
		pts[i] = geom.Point{X: float64(float32(pts[i].X)), Y: float64(float32(pts[i].Y))}
	}
	w := int(float32(max(geom.Dist(pts[0], pts[1]), geom.Dist(pts[2], pts[3]))))
	h := int(float32(max(geom.Dist(pts[0], pts[3]), geom.Dist(pts[1], pts[2]))))
	if w <= 0 || h <= 0 {
		return nil, fmt.Errorf("ocr: empty crop %v", pts)
	}
	dst := [4]geom.Point{{X: 0, Y: 0}, {X: float64(w), Y: 0}, {X: float64(w), Y: float64(h)}, {X: 0, Y: float64(h)}}
	m, err := imgproc.PerspectiveTransform(pts, dst)
	if err != nil {
		return nil, err
	}
	out, err := imgproc.WarpPerspective(img, m, w, h)
	if err != nil {
		return nil, err
	}
	if float64(out.H)/float64(out.W) >= 1.5 {
		out = imgproc.Rot90(out)
	}
	return out, nil
}

// normalizeInto resizes crop to height hgt and width min(ceil(hgt·ratio),
// maxW), scales its BGR values to [−1, 1], and writes them at the left of
// a zeroed 3×hgt×canvasW tensor slot (resize_norm_img).
func normalizeInto(dst []float32, crop *imgproc.Image, hgt, canvasW int) error {
	ratio := float64(crop.W) / float64(crop.H)
	rw := int(math.Ceil(float64(hgt) * ratio))
	if rw > canvasW {
		rw = canvasW
	}
	rw = max(rw, 1)
	r, err := imgproc.Resize(crop, rw, hgt)
	if err != nil {
		return err
	}
	plane := hgt * canvasW
	for y := 0; y < hgt; y++ {
		for x := 0; x < rw; x++ {
			p := r.Pix[(y*rw+x)*3:]
			for c := 0; c < 3; c++ {
				dst[c*plane+y*canvasW+x] = (float32(p[2-c])/255 - 0.5) / 0.5
			}
		}
	}
	return nil
}

// orient turns over the crops the classifier calls upside down.
func (e *Engine) orient(ctx context.Context, crops []*imgproc.Image) ([]*imgproc.Image, error) {
	const batch = 6
	out := append([]*imgproc.Image(nil), crops...)
	for beg := 0; beg < len(crops); beg += batch {
		end := min(beg+batch, len(crops))
		n := end - beg
		slot := 3 * clsHeight * clsWidth
		data := make([]float32, n*slot)
		for i := beg; i < end; i++ {
			if err := normalizeInto(data[(i-beg)*slot:(i-beg+1)*slot], crops[i], clsHeight, clsWidth); err != nil {
				return nil, err
			}
		}
		probs, shape, err := run(ctx, e.cls, data, ortgo.NewShape(int64(n), 3, clsHeight, clsWidth))
		if err != nil {
			return nil, fmt.Errorf("ocr: orientation: %w", err)
		}
		if len(shape) != 2 || shape[0] != int64(n) || shape[1] != 2 {
			return nil, fmt.Errorf("%w: classifier output %v", ErrModel, shape)
		}
		for i := 0; i < n; i++ {
			// label argmax: "0" or "180"
			p0, p180 := probs[2*i], probs[2*i+1]
			if p180 > p0 && float64(p180) > e.opts.ClsThresh {
				out[beg+i] = imgproc.Rotate180(crops[beg+i])
			}
		}
	}
	return out, nil
}

// Recognize reads each crop (one text line each).
func (e *Engine) Recognize(ctx context.Context, crops []*imgproc.Image) ([]ctc.Result, error) {
	res := make([]ctc.Result, len(crops))
	order := make([]int, len(crops))
	for i := range order {
		order[i] = i
	}
	ratio := func(i int) float64 { return float64(crops[i].W) / float64(crops[i].H) }
	sort.SliceStable(order, func(a, b int) bool { return ratio(order[a]) < ratio(order[b]) })
	for beg := 0; beg < len(order); beg += e.opts.RecBatch {
		end := min(beg+e.opts.RecBatch, len(order))
		maxRatio := float64(recWidth) / recHeight
		for _, i := range order[beg:end] {
			maxRatio = max(maxRatio, ratio(i))
		}
		canvas := int(recHeight * maxRatio)
		n := end - beg
		slot := 3 * recHeight * canvas
		data := make([]float32, n*slot)
		for k, i := range order[beg:end] {
			if err := normalizeInto(data[k*slot:(k+1)*slot], crops[i], recHeight, canvas); err != nil {
				return nil, err
			}
		}
		probs, shape, err := run(ctx, e.rec, data, ortgo.NewShape(int64(n), 3, recHeight, int64(canvas)))
		if err != nil {
			return nil, fmt.Errorf("ocr: recognition: %w", err)
		}
		classes := int64(e.charset.Classes())
		if len(shape) != 3 || shape[0] != int64(n) || shape[2] != classes {
			return nil, fmt.Errorf("%w: recognizer output %v", ErrModel, shape)
		}
		steps := int(shape[1])
		per := steps * int(classes)
		for k, i := range order[beg:end] {
			r, err := e.charset.Decode(probs[k*per:(k+1)*per], steps)
			if err != nil {
				return nil, err
			}
			res[i] = r
		}
	}
	return res, nil
}

// run runs a one-input, one-output session, terminating it when ctx ends.
func run(ctx context.Context, s *ortgo.DynamicAdvancedSession, data []float32, shape ortgo.Shape) ([]float32, ortgo.Shape, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	in, err := ortgo.NewTensor(shape, data)
	if err != nil {
		return nil, nil, err
	}
	defer in.Destroy()
	ro, err := ortgo.NewRunOptions()
	if err != nil {
		return nil, nil, err
	}
	defer ro.Destroy()
	stop := context.AfterFunc(ctx, func() { _ = ro.Terminate() })
	outs := []ortgo.Value{nil}
	err = s.RunWithOptions([]ortgo.Value{in}, outs, ro)
	stop()
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		return nil, nil, err
	}
	defer outs[0].Destroy()
	t, ok := outs[0].(*ortgo.Tensor[float32])
	if !ok {
		return nil, nil, fmt.Errorf("%w: output is %T, not float32", ErrModel, outs[0])
	}
	return append([]float32(nil), t.GetData()...), t.GetShape().Clone(), nil
}
