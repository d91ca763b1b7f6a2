package embed

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/sdk"
)

// DefaultMaxBatch is how many sequences one ONNX Runtime run takes unless
// the max_batch setting says otherwise.
const DefaultMaxBatch = 32

// DefaultBatchWait is how long a batch that is not full waits for requests
// still being tokenised, unless the batch_wait_ms setting says otherwise.
const DefaultBatchWait = 2 * time.Millisecond

// settingSpecs are the plugin-specific settings of embed's plugin block.
var settingSpecs = []sdk.SettingSpec{
	{Name: "model", Type: "string", Required: true,
		Description: "Model directory in the sentence-transformers layout (onnx/model.onnx, modules.json, 1_Pooling/config.json, tokenizer.json). A relative path is resolved against the plugin's working directory, which is dsmil-host's."},
	{Name: "model_name", Type: "string",
		Description: "The model id the plugin reports (the OpenAI model name). Default: the model directory's name."},
	{Name: "matryoshka", Type: "bool",
		Description: "The model was trained for truncated vectors (Matryoshka): requests may ask for fewer dimensions, which are cut and re-normalised. Default false: dimensions other than the model's are a 400."},
	{Name: "max_batch", Type: "number",
		Description: "Sequences per ONNX Runtime run, packed from the inputs of every request in flight (dynamic batching). Default 32."},
	{Name: "batch_wait_ms", Type: "number",
		Description: "When ONNX Runtime is idle and fewer than max_batch sequences are queued, how long (milliseconds) the next run waits for requests the plugin has received and is still tokenising. 0: never wait. Default 2."},
	{Name: "threads", Type: "number",
		Description: "ONNX Runtime intra-op threads. Default 0: one per core."},
	{Name: "graph_optimization", Type: "string",
		Description: `ONNX Runtime graph optimization level: "disable", "basic", "extended" or "all" (default).`},
	{Name: "allow_spinning", Type: "bool",
		Description: "Let idle ONNX Runtime threads spin-wait for work (ONNX Runtime's default, true). false frees the cores for other processes between requests."},
	{Name: "ort_library", Type: "string",
		Description: "Path of libonnxruntime.so. Default: $DSMIL_ORT_LIB, else the `make ort` cache."},
}

// settings are the decoded plugin settings.
type settings struct {
	Model      string // absolute
	ModelName  string
	Matryoshka bool
	MaxBatch   int
	BatchWait  time.Duration
	Session    ort.Options
	ORTLibrary string
}

// parseSettings decodes and checks raw, filling in defaults. A bad or
// unknown setting is an INVALID_REQUEST naming it.
func parseSettings(raw map[string]any, getenv func(string) string) (*settings, error) {
	s := &settings{MaxBatch: DefaultMaxBatch, BatchWait: DefaultBatchWait}
	for name, v := range raw {
		var err error
		switch name {
		case "model":
			s.Model, err = str(v)
		case "model_name":
			s.ModelName, err = str(v)
		case "matryoshka":
			s.Matryoshka, err = boolean(v)
		case "max_batch":
			s.MaxBatch, err = sdk.SettingInt(v, 1)
		case "batch_wait_ms":
			var ms int
			ms, err = sdk.SettingInt(v, 0)
			if err == nil && ms > 1000 {
				err = fmt.Errorf("%d ms is more than the 1000 a wait window may be", ms)
			}
			s.BatchWait = time.Duration(ms) * time.Millisecond
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
			return nil, sdk.InvalidParam(name, "embed has no setting %q (it has %s)", name, settingNames())
		}
		if err != nil {
			return nil, sdk.InvalidParam(name, "setting %s: %v", name, err)
		}
	}
	if strings.TrimSpace(s.Model) == "" {
		return nil, sdk.InvalidParam("model", "setting model (the model directory) is required")
	}
	var err error
	if s.Model, err = filepath.Abs(s.Model); err != nil {
		return nil, sdk.InvalidParam("model", "setting model: %v", err)
	}
	if s.ModelName == "" {
		s.ModelName = filepath.Base(s.Model)
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

func str(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a string, not %T", v)
	}
	return s, nil
}
