package worker

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/dsmil/l7/plugins/internal/accel"
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

// forceSpinningStop is force_spinning_stop's description in the LLM
// plugins, where it defaults to true (see parseSettings).
const forceSpinningStop = "ONNX Runtime's intra-op threads stop spinning as soon as a run ends (session.force_spinning_stop): with allow_spinning they spin inside a run, not between runs. Default true in the LLM plugins: with a prefill graph the plugin runs two ONNX Runtime sessions, and one session's threads spinning after its run took the cores the other's run needed (a 32-token prefill 1.47x slower); alone, the engine also decoded fastest this way. false: ONNX Runtime's default, threads spin on after a run for its spin budget."

func init() {
	for i := range settingSpecs {
		if settingSpecs[i].Name == "force_spinning_stop" {
			settingSpecs[i].Description = forceSpinningStop
		}
	}
}

// settingSpecs are the settings of an LLM plugin's block.
var settingSpecs = append(ort.ModelSettingSpecs("Model directory (Optimum/transformers.js or onnxruntime-genai layout)."),
	sdk.SettingSpec{Name: "variant", Type: "string",
		Description: `Model file: "q4", "int8", "fp32", ... (onnx/model_<variant>.onnx), or a path ending in .onnx. Default: the first of q4, int8, quantized, uint8, fp32, bnb4, q4f16, fp16 present.`},
	sdk.SettingSpec{Name: "max_context", Type: "number",
		Description: "Longest sequence (prompt + completion) in tokens. Default: the model's max_position_embeddings."},
	sdk.SettingSpec{Name: "max_tokens", Type: "number",
		Description: "Completion limit for requests that set no max_tokens. Default 0: the rest of the context (and of the KV budget)."},
	sdk.SettingSpec{Name: "kv_budget", Type: "string",
		Description: `KV cache memory all running requests may reserve, e.g. "2GiB". Default: memory_budget minus the model's weights when memory_budget is set, else enough for every parallel request at max_context.`},
	sdk.SettingSpec{Name: "parallelism", Type: "number",
		Description: "Requests generating at once: with batching, the most sequences decoded together in one ONNX Runtime run per step. Default 8."},
	sdk.SettingSpec{Name: "batching", Type: "bool",
		Description: "Continuous batching: the running requests decode together, one ONNX Runtime run per token for all of them (models whose graph uses GroupQueryAttention). false: each request runs its own. Default true."},
	sdk.SettingSpec{Name: "queue", Type: "number",
		Description: "Requests that may wait for a turn; more are refused with OVERLOADED (HTTP 503 + Retry-After). Default 16."},
	sdk.SettingSpec{Name: "prefill_chunk", Type: "number",
		Description: "Most prompt tokens prefilled in one ONNX Runtime run: a prompt is prefilled in chunks, one chunk at a time beside the batch's decode steps, which bounds the prefill's working memory. 0: the whole prompt in one run. Default 256."},
	sdk.SettingSpec{Name: "prefix_cache", Type: "string",
		Description: `Memory of the per-tenant prefix cache (KV of computed prompt prefixes, reused by later requests of the same tenant that start with them), taken from the KV budget, e.g. "256MiB"; "0" turns it off. Default: a quarter of the KV budget.`},
	sdk.SettingSpec{Name: "memory_arena", Type: "bool",
		Description: "Keep ONNX Runtime's CPU memory arena (ORT's default): a run's working memory is reused by the next. Default true: with chunked prefill a run's working memory is one chunk's, which admission counts at max_context, and the peak resident set of long prompts was no higher than without the arena, while without it every run maps and faults in its buffers again (the time to first token through the stack 1.09-1.20x the bare model loop's, against 1.03x with it). false: ORT's working memory is freed after each run."},
	sdk.SettingSpec{Name: "prefill_graph", Type: "any",
		Description: `Run prefill chunks of 8 tokens or more, and batched decode steps of 8 rows or more, on the model's prefill graph (<file>_prefill.onnx, dsmil-mkmodel -prefill-graph: int8 linears through ONNX Runtime's u8×s8 GEMM, AMX kernels where the CPU has AMX-INT8) in a second ONNX Runtime session; other steps stay on the main graph. Costs the prefill graph's weights in memory. true: the file must be there; false: never; "auto" (the default): when the file is there.`},
	sdk.SettingSpec{Name: "ignore_eos", Type: "bool",
		Description: "Generate past EOS tokens until max_tokens or a stop sequence. For benchmarks only: random-weight models draw EOS at random."},
)

// settings are the decoded plugin settings.
type settings struct {
	// ModelSettings are the model directory (absolute), the reported model
	// id, the ONNX Runtime session options and library.
	ort.ModelSettings
	// Variant picks the model file.
	Variant string
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
	// IgnoreEOS generates past EOS tokens.
	IgnoreEOS bool
	// PrefillGraph runs prefill chunks on the model's prefill graph;
	// PrefillAuto does when the model has one (the default).
	PrefillGraph, PrefillAuto bool
	// Batching decodes the running requests in one batch.
	Batching bool
	// PrefillChunk is the prefill chunk in tokens; 0: the whole prompt.
	PrefillChunk int
	// PrefixCache is the prefix cache's size; -1: the default, 0: off.
	PrefixCache int64
	// Accel is the execution provider asked for (plugins with NPUs).
	Accel accel.Want
}

// npuSettingSpecs are the settings of plugins that may use an NPU.
var npuSettingSpecs = []sdk.SettingSpec{
	{Name: "execution_provider", Type: "string",
		Description: `Where to run: "auto" (default: the first NPU provider that ONNX Runtime is built with and whose device is present, else the CPU), "cpu", or an NPU provider: "openvino", "qnn", "vitisai".`},
	{Name: "require_accelerator", Type: "bool",
		Description: "Refuse to start without an NPU (instead of running on the CPU with a warning). Default false."},
}

// specs are the settings p's plugin block takes.
func (p *Plugin) specs() []sdk.SettingSpec {
	if len(p.NPUs) == 0 {
		return settingSpecs
	}
	return append(slices.Clip(settingSpecs), npuSettingSpecs...)
}

// DefaultPrefillChunk is the prefill_chunk default.
const DefaultPrefillChunk = 256

// parseSettings decodes and checks cfg.Settings, filling in defaults. A
// bad or unknown setting is an INVALID_REQUEST naming it.
func parseSettings(raw map[string]any, getenv func(string) string, p *Plugin) (*settings, error) {
	s := &settings{Parallelism: cmp.Or(p.Defaults.Parallelism, DefaultParallelism), Queue: cmp.Or(p.Defaults.Queue, DefaultQueue),
		Batching: true, PrefillChunk: DefaultPrefillChunk, PrefixCache: -1, PrefillAuto: true}
	// ORT's arena (memory_arena): see its description.
	s.Session.DisableArena = false
	s.Session.IntraOpThreads = p.Defaults.threads()
	s.Session.DisableSpinning = p.Defaults.NoSpinning
	// Two sessions (the main graph and the prefill graph) must not spin on
	// each other's cores: see forceSpinningStop.
	s.Session.StopSpinningAfterRun = true
	npu := len(p.NPUs) > 0
	for name, v := range raw {
		handled, err := s.Set(name, v)
		if !handled {
			switch name {
			case "variant":
				s.Variant, err = sdk.SettingString(v)
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
			case "ignore_eos":
				s.IgnoreEOS, err = sdk.SettingBool(v)
			case "prefill_graph":
				s.PrefillGraph, s.PrefillAuto = false, false
				if str, ok := v.(string); ok {
					if str != "auto" {
						err = fmt.Errorf(`want true, false or "auto", not %q`, str)
					}
					s.PrefillAuto = true
				} else {
					s.PrefillGraph, err = sdk.SettingBool(v)
					if err != nil {
						err = fmt.Errorf(`want true, false or "auto", not %T`, v)
					}
				}
			case "batching":
				s.Batching, err = sdk.SettingBool(v)
			case "prefill_chunk":
				s.PrefillChunk, err = sdk.SettingInt(v, 0)
			case "prefix_cache":
				var v2 string
				if v2, err = sdk.SettingString(v); err == nil && strings.TrimSpace(v2) == "0" {
					s.PrefixCache = 0
				} else if err == nil {
					s.PrefixCache, err = sdk.SettingSize(v)
				}
			case "memory_arena":
				var arena bool
				arena, err = sdk.SettingBool(v)
				s.Session.DisableArena = !arena
			case "execution_provider":
				if !npu {
					return nil, unknownSetting(name, p)
				}
				s.Accel.Provider, err = sdk.SettingString(v)
			case "require_accelerator":
				if !npu {
					return nil, unknownSetting(name, p)
				}
				s.Accel.Require, err = sdk.SettingBool(v)
			default:
				return nil, unknownSetting(name, p)
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

// unknownSetting refuses a setting p does not have.
func unknownSetting(name string, p *Plugin) error {
	return sdk.InvalidParam(name, "%s has no setting %q (it has %s)", p.Name, name, sdk.SettingNames(p.specs()))
}
