package amx

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/sdk"
)

// Defaults of the settings.
const (
	// DefaultParallelism is how many requests generate at once: with
	// batching, the most rows of the continuous batch.
	DefaultParallelism = 8
	// DefaultQueue is how many requests may wait for a turn.
	DefaultQueue = 16
)

// settingSpecs are the plugin-specific settings of llm-amx's plugin block.
var settingSpecs = []sdk.SettingSpec{
	{Name: "model", Type: "string", Required: true,
		Description: "Model directory (Optimum/transformers.js or onnxruntime-genai layout). A relative path is resolved against the plugin's working directory, which is dsmil-host's."},
	{Name: "variant", Type: "string",
		Description: `Model file: "q4", "int8", "fp32", ... (onnx/model_<variant>.onnx), or a path ending in .onnx. Default: the first of q4, int8, quantized, uint8, fp32, bnb4, q4f16, fp16 present.`},
	{Name: "model_name", Type: "string",
		Description: "The model id the plugin reports (the OpenAI model name). Default: the model directory's name."},
	{Name: "threads", Type: "number",
		Description: "ONNX Runtime intra-op threads. Default 0: one per core."},
	{Name: "graph_optimization", Type: "string",
		Description: `ONNX Runtime graph optimization level: "disable", "basic", "extended" or "all" (default).`},
	{Name: "allow_spinning", Type: "bool",
		Description: "Let idle ONNX Runtime threads spin-wait for work (ONNX Runtime's default, true): lower latency, but busy cores between steps. false frees the cores for other processes."},
	{Name: "max_context", Type: "number",
		Description: "Longest sequence (prompt + completion) in tokens. Default: the model's max_position_embeddings."},
	{Name: "max_tokens", Type: "number",
		Description: "Completion limit for requests that set no max_tokens. Default 0: the rest of the context (and of the KV budget)."},
	{Name: "kv_budget", Type: "string",
		Description: `KV cache memory all running requests may reserve, e.g. "2GiB". Default: memory_budget minus the model's weights when memory_budget is set, else enough for every parallel request at max_context.`},
	{Name: "parallelism", Type: "number",
		Description: "Requests generating at once: with batching, the most sequences decoded together in one ONNX Runtime run per step. Default 8."},
	{Name: "batching", Type: "bool",
		Description: "Continuous batching: the running requests decode together, one ONNX Runtime run per token for all of them (models whose graph uses GroupQueryAttention). false: each request runs its own. Default true."},
	{Name: "queue", Type: "number",
		Description: "Requests that may wait for a turn; more are refused with OVERLOADED (HTTP 503 + Retry-After). Default 16."},
	{Name: "prefill_chunk", Type: "number",
		Description: "Most prompt tokens prefilled in one ONNX Runtime run: a prompt is prefilled in chunks, one chunk at a time beside the batch's decode steps, which bounds the prefill's working memory. 0: the whole prompt in one run. Default 256."},
	{Name: "prefix_cache", Type: "string",
		Description: `Memory of the per-tenant prefix cache (KV of computed prompt prefixes, reused by later requests of the same tenant that start with them), taken from the KV budget, e.g. "256MiB"; "0" turns it off. Default: a quarter of the KV budget.`},
	{Name: "memory_arena", Type: "bool",
		Description: "Keep ONNX Runtime's CPU memory arena (ORT's default). Default false: ORT's working memory is freed after each run, so the memory of a long prefill is returned to the system."},
	{Name: "ort_library", Type: "string",
		Description: "Path of libonnxruntime.so. Default: $DSMIL_ORT_LIB, else the `make ort` cache."},
	{Name: "ignore_eos", Type: "bool",
		Description: "Generate past EOS tokens until max_tokens or a stop sequence. For benchmarks only: random-weight models draw EOS at random."},
}

// settings are the decoded plugin settings.
type settings struct {
	// Model is the model directory, absolute.
	Model string
	// Variant picks the model file.
	Variant string
	// ModelName is the reported model id.
	ModelName string
	// Session are the ONNX Runtime session options.
	Session ort.Options
	// MaxContext caps prompt + completion; 0 means the model's limit.
	MaxContext int
	// MaxTokens is the default completion limit; 0 means the rest of the
	// context.
	MaxTokens int
	// KVBudget is the KV cache budget in bytes; 0 means the default.
	KVBudget int64
	// Parallelism is how many requests generate at once.
	Parallelism int
	// Queue is how many requests may wait.
	Queue int
	// ORTLibrary is the ONNX Runtime library to load.
	ORTLibrary string
	// IgnoreEOS generates past EOS tokens.
	IgnoreEOS bool
	// Batching decodes the running requests in one batch.
	Batching bool
	// PrefillChunk is the prefill chunk in tokens; 0: the whole prompt.
	PrefillChunk int
	// PrefixCache is the prefix cache's size; -1: the default, 0: off.
	PrefixCache int64
}

// DefaultPrefillChunk is the prefill_chunk default.
const DefaultPrefillChunk = 256

// parseSettings decodes and checks cfg.Settings, filling in defaults. A
// bad or unknown setting is an INVALID_REQUEST naming it.
func parseSettings(raw map[string]any, getenv func(string) string) (*settings, error) {
	s := &settings{Parallelism: DefaultParallelism, Queue: DefaultQueue, Batching: true, PrefillChunk: DefaultPrefillChunk, PrefixCache: -1}
	s.Session.DisableArena = true
	for name, v := range raw {
		var err error
		switch name {
		case "model":
			s.Model, err = str(v)
		case "variant":
			s.Variant, err = str(v)
		case "model_name":
			s.ModelName, err = str(v)
		case "threads":
			s.Session.IntraOpThreads, err = sdk.SettingInt(v, 0)
		case "graph_optimization":
			s.Session.GraphOptimization, err = str(v)
			if err == nil {
				err = s.Session.Validate()
			}
		case "max_context":
			s.MaxContext, err = sdk.SettingInt(v, 1)
		case "max_tokens":
			s.MaxTokens, err = sdk.SettingInt(v, 0)
		case "kv_budget":
			s.KVBudget, err = sdk.SettingSize(v)
			if err == nil && s.KVBudget <= 0 {
				err = fmt.Errorf("must be more than 0")
			}
		case "parallelism":
			s.Parallelism, err = sdk.SettingInt(v, 1)
		case "queue":
			s.Queue, err = sdk.SettingInt(v, 0)
		case "ort_library":
			s.ORTLibrary, err = str(v)
		case "ignore_eos":
			s.IgnoreEOS, err = boolean(v)
		case "batching":
			s.Batching, err = boolean(v)
		case "prefill_chunk":
			s.PrefillChunk, err = sdk.SettingInt(v, 0)
		case "prefix_cache":
			var v2 string
			if v2, err = str(v); err == nil && strings.TrimSpace(v2) == "0" {
				s.PrefixCache = 0
			} else if err == nil {
				s.PrefixCache, err = sdk.SettingSize(v)
			}
		case "memory_arena":
			var arena bool
			arena, err = boolean(v)
			s.Session.DisableArena = !arena
		case "allow_spinning":
			var spin bool
			spin, err = boolean(v)
			s.Session.DisableSpinning = !spin
		default:
			return nil, sdk.InvalidParam(name, "llm-amx has no setting %q (it has %s)", name, settingNames())
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
