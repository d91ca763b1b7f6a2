package multimodal

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/plugins/multimodal/internal/imagefile"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocr"
	"github.com/dsmil/l7/plugins/multimodal/internal/ocrmodels"
	"github.com/dsmil/l7/sdk"
)

// DefaultModelName is the model id the plugin serves unless model_name
// says otherwise.
const DefaultModelName = "dsmil-ocr-ppocrv4"

// DefaultParallelism is how many images are read at once.
const DefaultParallelism = 1

// settingSpecs are the plugin-specific settings of the multimodal block.
var settingSpecs = []sdk.SettingSpec{
	{Name: "models", Type: "string",
		Description: "Directory of the PP-OCRv4 files (ch_PP-OCRv4_det_infer.onnx, ch_PP-OCRv4_rec_infer.onnx, ch_ppocr_mobile_v2.0_cls_infer.onnx, ppocr_keys_v1.txt). Default: the `make ocr-models` cache."},
	{Name: "model_name", Type: "string", Description: "The model id the plugin reports. Default dsmil-ocr-ppocrv4."},
	{Name: "file_roots", Type: "list(string)",
		Description: "Directories whose files requests may name as file:// image URLs. Default: none (file:// refused)."},
	{Name: "max_image_bytes", Type: "string", Description: `Largest image file, e.g. "20MiB" (the default).`},
	{Name: "max_image_pixels", Type: "number", Description: "Largest width × height of an image. Default 36000000."},
	{Name: "max_images", Type: "number", Description: "Most images in one request. Default 8."},
	{Name: "classify_orientation", Type: "bool",
		Description: "Run the 0°/180° orientation classifier on every text line (PaddleOCR's use_angle_cls). Default false, as PaddleOCR."},
	{Name: "unclip_ratio", Type: "number",
		Description: "How far detected text boxes grow (PaddleOCR's det_db_unclip_ratio). Default 2.5; PaddleOCR's 1.5 loses word spaces."},
	{Name: "parallelism", Type: "number", Description: "Requests read at once; more wait. Default 1."},
	{Name: "queue", Type: "number", Description: "Requests that may wait for a turn; more are refused with OVERLOADED (HTTP 503 + Retry-After). Default 16."},
	{Name: "threads", Type: "number", Description: "ONNX Runtime intra-op threads. Default 0: one per core."},
	{Name: "graph_optimization", Type: "string",
		Description: `ONNX Runtime graph optimization level: "disable", "basic", "extended" or "all" (default).`},
	{Name: "allow_spinning", Type: "bool", Description: "Let idle ONNX Runtime threads spin-wait (default true)."},
	{Name: "ort_library", Type: "string", Description: "Path of libonnxruntime.so. Default: $DSMIL_ORT_LIB, else the `make ort` cache."},
}

// settings are the decoded plugin settings.
type settings struct {
	Models      string
	ModelName   string
	FileRoots   []string // absolute, cleaned
	Limits      imagefile.Limits
	MaxImages   int
	Classify    bool
	UnclipRatio float64
	Parallelism int
	Queue       int
	Session     ort.Options
	ORTLibrary  string
}

func parseSettings(raw map[string]any, getenv func(string) string) (*settings, error) {
	s := &settings{UnclipRatio: ocr.DefaultUnclipRatio, ModelName: DefaultModelName, Limits: imagefile.DefaultLimits, MaxImages: 8, Parallelism: DefaultParallelism, Queue: 16}
	for name, v := range raw {
		var err error
		switch name {
		case "models":
			s.Models, err = str(v)
		case "model_name":
			s.ModelName, err = str(v)
		case "file_roots":
			s.FileRoots, err = strList(v)
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
		case "unclip_ratio":
			s.UnclipRatio, err = number(v)
			if err == nil && (s.UnclipRatio < 0.5 || s.UnclipRatio > 10) {
				err = fmt.Errorf("want a number from 0.5 to 10, not %v", s.UnclipRatio)
			}
		case "classify_orientation":
			s.Classify, err = boolean(v)
		case "parallelism":
			s.Parallelism, err = sdk.SettingInt(v, 1)
		case "queue":
			s.Queue, err = sdk.SettingInt(v, 0)
		case "threads":
			s.Session.IntraOpThreads, err = sdk.SettingInt(v, 0)
		case "graph_optimization":
			s.Session.GraphOptimization, err = str(v)
			if err == nil {
				err = s.Session.Validate()
			}
		case "allow_spinning":
			var spin bool
			spin, err = boolean(v)
			s.Session.DisableSpinning = !spin
		case "ort_library":
			s.ORTLibrary, err = str(v)
		default:
			return nil, sdk.InvalidParam(name, "multimodal has no setting %q (it has %s)", name, settingNames())
		}
		if err != nil {
			return nil, sdk.InvalidParam(name, "setting %s: %v", name, err)
		}
	}
	var err error
	if s.Models == "" {
		s.Models = ocrmodels.DefaultDir()
	}
	if s.Models, err = filepath.Abs(s.Models); err != nil {
		return nil, sdk.InvalidParam("models", "setting models: %v", err)
	}
	for i, r := range s.FileRoots {
		if !filepath.IsAbs(r) {
			if r, err = filepath.Abs(r); err != nil {
				return nil, sdk.InvalidParam("file_roots", "setting file_roots: %v", err)
			}
		}
		// Roots are compared with resolved paths, so resolve them too.
		if real, err := filepath.EvalSymlinks(r); err == nil {
			r = real
		}
		s.FileRoots[i] = filepath.Clean(r)
	}
	if s.ORTLibrary == "" {
		s.ORTLibrary = ort.ResolveLibrary(getenv)
	} else if strings.ContainsRune(s.ORTLibrary, '/') {
		if s.ORTLibrary, err = filepath.Abs(s.ORTLibrary); err != nil {
			return nil, sdk.InvalidParam("ort_library", "setting ort_library: %v", err)
		}
	}
	return s, nil
}

func settingNames() string {
	names := make([]string, len(settingSpecs))
	for i, s := range settingSpecs {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

func boolean(v any) (bool, error) {
	b, ok := v.(bool)
	if !ok {
		return false, fmt.Errorf("want a bool, not %T", v)
	}
	return b, nil
}

func number(v any) (float64, error) {
	f, ok := v.(float64)
	if !ok {
		return 0, fmt.Errorf("want a number, not %T", v)
	}
	return f, nil
}

func str(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a string, not %T", v)
	}
	return s, nil
}

func strList(v any) ([]string, error) {
	switch l := v.(type) {
	case []string:
		return append([]string(nil), l...), nil
	case []any:
		out := make([]string, len(l))
		for i, x := range l {
			s, ok := x.(string)
			if !ok {
				return nil, fmt.Errorf("want a list of strings, element %d is %T", i, x)
			}
			out[i] = s
		}
		return out, nil
	}
	return nil, fmt.Errorf("want a list of strings, not %T", v)
}
