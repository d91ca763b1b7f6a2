package embed

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/dsmil/l7/plugins/internal/imagefile"
	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/sdk"
)

// DefaultMaxImages is how many images one request may carry unless the
// max_images setting says otherwise.
const DefaultMaxImages = 16

// DefaultMaxBatch is how many sequences one ONNX Runtime run takes unless
// the max_batch setting says otherwise.
const DefaultMaxBatch = 32

// maxConcurrentRuns bounds the concurrent_runs setting: each run holds its
// batch's activations in ONNX Runtime's memory.
const maxConcurrentRuns = 64

// AutoRuns is settings.ConcurrentRuns for concurrent_runs = "auto": one
// single-threaded run per thread, and wide runs (see batcher).
const AutoRuns = 0

// DefaultBatchWait is how long a batch that is not full waits for requests
// still being tokenised, unless the batch_wait_ms setting says otherwise.
const DefaultBatchWait = 2 * time.Millisecond

// DefaultCalibrateWait is how long the plugin waits for a quiet machine
// before measuring wide_min_tokens, unless the calibrate_wait_ms setting
// says otherwise.
const DefaultCalibrateWait = 15 * time.Second

// maxCalibrateWait bounds calibrate_wait_ms: the plugin is not ready
// meanwhile, and the host gives a plugin start_timeout (30 s by default)
// to start.
const maxCalibrateWait = 10 * time.Minute

// settingSpecs are the settings of embed's plugin block.
var settingSpecs = append(ort.ModelSettingSpecs("Model directory: a sentence-transformers text encoder (onnx/model.onnx, modules.json, 1_Pooling/config.json, tokenizer.json) or a CLIP dual encoder (config.json model_type clip, preprocessor_config.json, text_model.onnx and vision_model.onnx or model.onnx)."),
	sdk.SettingSpec{Name: "model_file", Type: "string",
		Description: `Text encoders: the ONNX graph to run, a path inside the model directory. Default "onnx/model.onnx" (fp32); "onnx/model_quantized.onnx" is the dynamically quantized int8 graph sentence-transformers repositories ship (transformers.js's dtype "q8").`},
	sdk.SettingSpec{Name: "matryoshka", Type: "bool",
		Description: "The model was trained for truncated vectors (Matryoshka): requests may ask for fewer dimensions, which are cut and re-normalised. Default false: dimensions other than the model's are a 400."},
	sdk.SettingSpec{Name: "max_batch", Type: "number",
		Description: "Sequences per ONNX Runtime run, packed from the inputs of every request in flight (dynamic batching). Default 32."},
	sdk.SettingSpec{Name: "concurrent_runs", Type: "any",
		Description: `ONNX Runtime runs in flight at once, each a batch of at most max_batch sequences; queued sequences are split evenly over every run, free or in flight (a busy run's share waits for it to end). "auto" (the default): text encoders run one single-threaded batch per thread (threads, one per core by default), and a lone one-sequence batch of at least wide_min_tokens — which cannot be split — on a second session with every thread (wide), at the cost of a second copy of the session; when wide_min_tokens is measured and even the shortest length runs sooner wide (fp32 graphs), one batch at a time on every thread instead; CLIP models run one batch at a time. A number N: N runs in flight on one session of threads threads each (1: one batch at a time on every core).`},
	sdk.SettingSpec{Name: "wide_min_tokens", Type: "any",
		Description: `With concurrent_runs "auto": the fewest tokens of a lone sequence that runs on the wide session (every thread) rather than single-threaded. "auto" (the default): measured when the plugin loads, as the shortest of 16, 32, 64, … tokens at which the wide session embeds a lone sequence in at most 90 % of the single-threaded time, and at the next length too (measured on 2 cores: 128 or 256 for dynamically quantized MiniLM-L6, 16 for fp32), once the machine is quiet (calibrate_wait_ms). A number: that many.`},
	sdk.SettingSpec{Name: "calibrate_wait_ms", Type: "number",
		Description: "With wide_min_tokens \"auto\": how long (milliseconds) the plugin waits, at most, for the machine's CPUs to be at least 90 % idle over 200 ms before it measures — other processes' load, such as the plane's other plugins loading their models, skews the measurement towards none — and measures anyway after it, logging a warning. The plugin is not ready meanwhile: keep the plugin block's start_timeout above it. 0: measure at once. Default 15000."},
	sdk.SettingSpec{Name: "batch_wait_ms", Type: "number",
		Description: "When ONNX Runtime is idle and fewer than max_batch sequences are queued, how long (milliseconds) the next run waits for requests the plugin has received and is still tokenising. 0: never wait. Default 2."},
	sdk.SettingSpec{Name: "max_image_bytes", Type: "string", Description: `CLIP models: largest image file, e.g. "20MiB" (the default).`},
	sdk.SettingSpec{Name: "max_image_pixels", Type: "number", Description: "CLIP models: largest width × height of an image. Default 36000000."},
	sdk.SettingSpec{Name: "max_images", Type: "number", Description: "CLIP models: most images in one request. Default 16."},
)

// autoInt decodes a setting that is a positive number of what or "auto"
// (AutoRuns).
func autoInt(v any, what string) (int, error) {
	if str, ok := v.(string); ok {
		if str != "auto" {
			return AutoRuns, fmt.Errorf(`want a number of %s or "auto", not %q`, what, str)
		}
		return AutoRuns, nil
	}
	return sdk.SettingInt(v, 1)
}

// settings are the decoded plugin settings.
type settings struct {
	ort.ModelSettings
	ModelFile  string // "" = encoder.DefaultFile
	Matryoshka bool
	MaxBatch   int
	// ConcurrentRuns is how many batches run at once (at least 1), or
	// AutoRuns.
	ConcurrentRuns int
	// WideMinTokens is wide_min_tokens, or AutoRuns: measure it.
	WideMinTokens int
	// CalibrateWait is how long to wait for a quiet machine before
	// measuring wide_min_tokens.
	CalibrateWait time.Duration
	BatchWait     time.Duration
	Limits        imagefile.Limits
	MaxImages     int
}

// parseSettings decodes and checks raw, filling in defaults. A bad or
// unknown setting is an INVALID_REQUEST naming it.
func parseSettings(raw map[string]any, getenv func(string) string) (*settings, error) {
	s := &settings{MaxBatch: DefaultMaxBatch, ConcurrentRuns: AutoRuns, BatchWait: DefaultBatchWait, CalibrateWait: DefaultCalibrateWait, Limits: imagefile.DefaultLimits, MaxImages: DefaultMaxImages}
	for name, v := range raw {
		handled, err := s.Set(name, v)
		if !handled {
			switch name {
			case "model_file":
				s.ModelFile, err = sdk.SettingString(v)
				if err == nil && (s.ModelFile == "" || !filepath.IsLocal(filepath.FromSlash(s.ModelFile))) {
					err = fmt.Errorf("%q is not a path inside the model directory", s.ModelFile)
				}
			case "matryoshka":
				s.Matryoshka, err = sdk.SettingBool(v)
			case "max_batch":
				s.MaxBatch, err = sdk.SettingInt(v, 1)
			case "concurrent_runs":
				s.ConcurrentRuns, err = autoInt(v, "runs")
				if err == nil && s.ConcurrentRuns > maxConcurrentRuns {
					err = fmt.Errorf("%d is more than the %d runs the plugin allows in flight", s.ConcurrentRuns, maxConcurrentRuns)
				}
			case "wide_min_tokens":
				s.WideMinTokens, err = autoInt(v, "tokens")
			case "calibrate_wait_ms":
				var ms int
				ms, err = sdk.SettingInt(v, 0)
				if err == nil && time.Duration(ms)*time.Millisecond > maxCalibrateWait {
					err = fmt.Errorf("%d ms is more than the %v the plugin waits at most", ms, maxCalibrateWait)
				}
				s.CalibrateWait = time.Duration(ms) * time.Millisecond
			case "batch_wait_ms":
				var ms int
				ms, err = sdk.SettingInt(v, 0)
				if err == nil && ms > 1000 {
					err = fmt.Errorf("%d ms is more than the 1000 a wait window may be", ms)
				}
				s.BatchWait = time.Duration(ms) * time.Millisecond
			case "max_image_bytes":
				s.Limits.MaxBytes, err = sdk.SettingSize(v)
				if err == nil && s.Limits.MaxBytes <= 0 {
					err = fmt.Errorf("must be more than 0")
				}
			case "max_image_pixels":
				var n int
				n, err = sdk.SettingInt(v, 1)
				s.Limits.MaxPixels = int64(n)
			case "max_images":
				s.MaxImages, err = sdk.SettingInt(v, 1)
			default:
				return nil, sdk.InvalidParam(name, "embed has no setting %q (it has %s)", name, sdk.SettingNames(settingSpecs))
			}
		}
		if err := ort.SettingError(name, err); err != nil {
			return nil, err
		}
	}
	if err := s.Finish(getenv); err != nil {
		return nil, err
	}
	return s, nil
}
