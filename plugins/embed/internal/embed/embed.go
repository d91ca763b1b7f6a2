package embed

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/plugins/embed/internal/clip"
	"github.com/dsmil/l7/plugins/embed/internal/encoder"
	"github.com/dsmil/l7/plugins/embed/internal/widerun"
	"github.com/dsmil/l7/plugins/internal/imagefile"
	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	l7v1 "github.com/dsmil/l7/sdk/proto/dsmil/l7/v1"
	"github.com/hashicorp/go-hclog"
)

// Plugin identity.
const (
	// Name is the plugin's name.
	Name = "embed"
	// Version is the plugin's version.
	Version = "0.1.0"
	// DefaultDeviceID is the device embed reports before Configure: 49,
	// the one Layer 7 device (Global Intelligence) the spec gives no
	// service; see the README.
	DefaultDeviceID = 49
)

// ErrConfigured reports a second Configure.
var ErrConfigured = errors.New("embed: already configured")

// Workload is the embed workload. Create it with New.
type Workload struct {
	getenv func(string) string
	mu     sync.Mutex // serialises Configure and Close
	st     atomic.Pointer[state]
}

// state is what Configure loaded: a text encoder (model) or a CLIP dual
// encoder (clip).
type state struct {
	cfg   *sdk.Config
	set   *settings
	model *encoder.Model
	wide  *encoder.Model // the wide session of concurrent_runs "auto" (nil: none)
	// wideMin is the shortest lone sequence the wide session runs
	// (wide_min_tokens, measured when "auto"); math.MaxInt: none.
	wideMin int
	clip    *clip.Model
	dims    int // the vectors' size
	batch   *batcher
}

var (
	_ sdk.Workload = (*Workload)(nil)
	_ sdk.Embedder = (*Workload)(nil)
	_ sdk.Closer   = (*Workload)(nil)
)

// New returns an unconfigured embed workload that reads DSMIL_ORT_LIB from
// the process environment.
func New() *Workload { return &Workload{getenv: os.Getenv} }

// Info implements sdk.Workload.
func (w *Workload) Info(context.Context) (*sdk.PluginInfo, error) {
	info := &sdk.PluginInfo{
		Name:         Name,
		Version:      Version,
		APIVersions:  []uint32{sdk.APIVersion},
		DeviceID:     DefaultDeviceID,
		Capabilities: []sdk.Capability{sdk.CapEmbed},
		Accelerator:  "cpu",
		Settings:     settingSpecs,
	}
	if st := w.st.Load(); st != nil {
		info.DeviceID, info.Profiles, info.MemoryBudget = st.cfg.DeviceID, st.cfg.Profiles, st.cfg.MemoryBudget
		info.Models = []string{st.set.ModelName}
	}
	return info, nil
}

// Configure implements sdk.Workload: it loads ONNX Runtime and the model.
func (w *Workload) Configure(ctx context.Context, cfg *sdk.Config) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.st.Load() != nil {
		return ErrConfigured
	}
	set, err := parseSettings(cfg.Settings, w.getenv)
	if err != nil {
		return err
	}
	if _, err := ort.Init(set.ORTLibrary); err != nil {
		return sdk.InvalidParam("ort_library", "%v", err)
	}
	st := &state{cfg: cfg, set: set}
	if clip.IsCLIP(set.Model) {
		if set.ModelFile != "" {
			return sdk.InvalidParam("model_file", "%s is a CLIP dual encoder, which reads its own graph files (text_model.onnx and vision_model.onnx, or model.onnx); model_file chooses a text encoder's graph", set.Model)
		}
		m, err := clip.Load(set.Model, set.Session.WithDefaults())
		if err != nil {
			return sdk.InvalidParam("model", "%v", err)
		}
		runs := max(set.ConcurrentRuns, 1)
		st.clip, st.dims, st.batch = m, m.Config.ProjectionDim, newBatcher(clipRun(m), nil, set.MaxBatch, runs, set.BatchWait)
		runProcs(runs, w.getenv)
	} else {
		opts := set.Session.WithDefaults()
		runs, narrow := set.ConcurrentRuns, opts
		if runs == AutoRuns {
			// One single-threaded run per thread, and a wide session
			// for the lone sequence (batcher).
			runs, narrow.IntraOpThreads = opts.IntraOpThreads, 1
		}
		load := func(o ort.Options) (*encoder.Model, error) {
			m, err := encoder.Load(set.Model, set.ModelFile, o)
			if err != nil && set.ModelFile != "" {
				return nil, sdk.InvalidParam("model_file", "%v", err)
			} else if err != nil {
				return nil, sdk.InvalidParam("model", "%v", err)
			}
			return m, nil
		}
		m, err := load(narrow)
		if err != nil {
			return err
		}
		var wide *wideRun
		if runs > 1 && set.ConcurrentRuns == AutoRuns {
			if st.wide, err = load(opts); err != nil {
				m.Close()
				return err
			}
			wide = &wideRun{run: st.wide.Embed, minTokens: set.WideMinTokens}
			if wide.minTokens == AutoRuns {
				if wide.minTokens, err = calibrate(ctx, m, st.wide, set.CalibrateWait, cfg.Logger); err != nil {
					m.Close()
					st.wide.Close()
					return sdk.Errorf(dbe.CodeWorkerFailed, "embed: measuring wide_min_tokens: %v", err)
				}
			}
			st.wideMin = wide.minTokens
			if set.WideMinTokens == AutoRuns && wide.minTokens == widerun.Lengths[0] {
				// Even the shortest lone sequence runs sooner wide:
				// this graph splits well over threads (fp32), and
				// narrow runs beside wide ones measured slower. One
				// run at a time on every thread, as concurrent_runs = 1.
				m.Close()
				m, st.wide, wide, runs = st.wide, nil, nil, 1
			}
		}
		st.model, st.dims, st.batch = m, m.Config.Hidden, newBatcher(m.Embed, wide, set.MaxBatch, runs, set.BatchWait)
		procs := runProcs(runs, w.getenv)
		switch {
		case cfg.Logger == nil:
		case set.ConcurrentRuns == AutoRuns && opts.IntraOpThreads > 1:
			cfg.Logger.Info("concurrent runs", "runs", runs, "narrow", wide != nil, "wide_threads", opts.IntraOpThreads,
				"wide_min_tokens", wideMinString(st.wideMin), "measured", set.WideMinTokens == AutoRuns, "gomaxprocs", procs)
		default:
			cfg.Logger.Info("concurrent runs", "runs", runs, "gomaxprocs", procs)
		}
	}
	w.st.Store(st)
	return nil
}

// clipRun runs a batch of a dual encoder: its texts as one ONNX Runtime
// run of the text encoder, its images as one of the vision encoder.
func clipRun(m *clip.Model) runFunc {
	return func(ctx context.Context, seqs []encoder.Sequence) ([][]float32, error) {
		var texts [][]int64
		var images [][]float32
		var ti, ii []int
		for i, s := range seqs {
			if s.Image != nil {
				images, ii = append(images, s.Image), append(ii, i)
			} else {
				texts, ti = append(texts, s.IDs), append(ti, i)
			}
		}
		out := make([][]float32, len(seqs))
		for _, part := range []struct {
			idx []int
			run func() ([][]float32, error)
		}{
			{ti, func() ([][]float32, error) { return m.EmbedText(ctx, texts) }},
			{ii, func() ([][]float32, error) { return m.EmbedImages(ctx, images) }},
		} {
			if len(part.idx) == 0 {
				continue
			}
			vecs, err := part.run()
			if err != nil {
				return nil, err
			}
			for k, i := range part.idx {
				out[i] = vecs[k]
			}
		}
		return out, nil
	}
}

// Health implements sdk.Workload.
func (w *Workload) Health(context.Context) error {
	if w.st.Load() == nil {
		return sdk.ErrNotConfigured
	}
	return nil
}

// Close implements sdk.Closer.
func (w *Workload) Close(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if st := w.st.Swap(nil); st != nil {
		st.batch.Close()
		if st.clip != nil {
			return st.clip.Close()
		}
		var err error
		if st.wide != nil {
			err = st.wide.Close()
		}
		return errors.Join(st.model.Close(), err)
	}
	return nil
}

// Embed implements sdk.Embedder.
func (w *Workload) Embed(ctx context.Context, req *sdk.EmbedRequest) (*sdk.EmbedResult, error) {
	st := w.st.Load()
	if st == nil {
		return nil, sdk.ErrNotConfigured
	}
	p := req.Params
	if model := p.GetModel(); model != "" && model != st.set.ModelName {
		return nil, sdk.Errorf(dbe.CodeNotFound, "plugin %s serves model %s, not %s", Name, st.set.ModelName, model)
	}
	hidden, dims := st.dims, int(p.GetDimensions())
	switch {
	case dims == 0 || dims == hidden:
		dims = hidden
	case !st.set.Matryoshka:
		return nil, sdk.InvalidParam("dimensions", "model %s gives %d dimensions and was not trained for fewer (the plugin's matryoshka setting); dimensions=%d is not supported",
			st.set.ModelName, hidden, dims)
	case dims > hidden:
		return nil, sdk.InvalidParam("dimensions", "model %s gives %d dimensions; dimensions=%d is more", st.set.ModelName, hidden, dims)
	}
	images := 0
	for i, in := range p.GetInputs() {
		if in.GetImage() == nil {
			continue
		}
		if st.clip == nil {
			return nil, sdk.InvalidParam("input", "input %d is an image; model %s is a text encoder (images need a CLIP dual encoder)", i, st.set.ModelName)
		}
		if images++; images > st.set.MaxImages {
			return nil, sdk.InvalidParam("input", "more than %d images in one request (the plugin's max_images)", st.set.MaxImages)
		}
	}

	// Tokenise (and decode and resize images) here, on the request's
	// goroutine, not on the runner's: the batcher waits (briefly) for
	// requests that are still doing so.
	st.batch.begin()
	seqs := make([]encoder.Sequence, len(p.GetInputs()))
	var tokens uint32
	for i, in := range p.GetInputs() {
		s, n, err := st.sequence(in)
		if err != nil {
			st.batch.end()
			return nil, sdk.InvalidParam("input", "input %d: %v", i, err)
		}
		seqs[i], tokens = s, tokens+n
	}
	vecs, err := st.batch.embed(ctx, seqs)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, errClosed) {
			return nil, sdk.Errorf(dbe.CodeNoWorkerAvailable, "%v", err)
		}
		return nil, sdk.Errorf(dbe.CodeWorkerFailed, "%v", err)
	}
	for i := range vecs {
		vecs[i] = truncate(vecs[i], dims)
	}
	return &sdk.EmbedResult{Vectors: vecs, PromptTokens: tokens, Model: st.set.ModelName}, nil
}

// sequence turns one input into what the model runs, checked, and the
// tokens it counts in usage.
func (st *state) sequence(in *l7v1.EmbedInput) (encoder.Sequence, uint32, error) {
	if im := in.GetImage(); im != nil {
		d, err := imagefile.Decode(im.GetData(), st.set.Limits)
		if err != nil {
			return encoder.Sequence{}, 0, err
		}
		px := st.clip.Config.Pre.Pixels(clip.ToRGB(d))
		return encoder.Sequence{Image: px}, uint32(st.clip.Config.ImageTokens()), nil
	}
	var ids []int64
	if t := in.GetTokens(); t != nil {
		ids = make([]int64, len(t.GetIds()))
		for j, id := range t.GetIds() {
			ids[j] = int64(id)
		}
	}
	if st.clip != nil {
		if ids == nil {
			ids = st.clip.Encode(in.GetText())
		}
		return encoder.Sequence{IDs: ids}, uint32(len(ids)), st.clip.CheckSequence(ids)
	}
	s := encoder.Sequence{IDs: ids}
	if ids == nil {
		s = st.model.Encode(in.GetText())
	}
	return s, uint32(len(s.IDs)), st.model.CheckSequence(s)
}

// truncate keeps the first dims values of v, re-normalised to unit length
// when it was cut (Matryoshka). An uncut vector is returned as it is.
func truncate(v []float32, dims int) []float32 {
	if dims >= len(v) {
		return v
	}
	v = v[:dims]
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	if n := math.Sqrt(sum); n > 0 {
		for i := range v {
			v[i] = float32(float64(v[i]) / n)
		}
	}
	return v
}

// calibrate measures wide_min_tokens (widerun.MinTokens) on the model's
// two sessions, once the machine is quiet or wait has passed.
func calibrate(ctx context.Context, narrow, wide *encoder.Model, wait time.Duration, log hclog.Logger) (int, error) {
	start := time.Now()
	share, quiet, err := widerun.WaitQuiet(ctx, wait)
	if err != nil {
		return 0, err
	}
	if log != nil && !quiet {
		log.Warn("measuring wide_min_tokens on a busy machine: it may come out as none where a quiet machine measures less; set wide_min_tokens to a number to fix it",
			"idle", fmt.Sprintf("%.0f%%", 100*share), "waited", time.Since(start).Round(time.Millisecond).String())
	} else if log != nil && time.Since(start) >= widerun.QuietWindow*2 {
		log.Info("waited for a quiet machine to measure wide_min_tokens", "waited", time.Since(start).Round(time.Millisecond).String())
	}
	run := func(m *encoder.Model) widerun.RunFunc {
		return func(ctx context.Context, n int) error {
			// Token ids do not change how long a run takes: n of id 1.
			s := encoder.Sequence{IDs: make([]int64, n)}
			for i := range s.IDs {
				s.IDs[i] = 1
			}
			_, err := m.Embed(ctx, []encoder.Sequence{s})
			return err
		}
	}
	return widerun.MinTokens(ctx, narrow.Config.MaxSeqLength, run(narrow), run(wide))
}

// wideMinString is wide_min_tokens as logs show it.
func wideMinString(n int) string {
	if n == widerun.None {
		return "none"
	}
	return strconv.Itoa(n)
}
