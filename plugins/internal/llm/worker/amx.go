package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dsmil/l7/plugins/internal/accel"
	"github.com/dsmil/l7/plugins/internal/llm/admission"
	"github.com/dsmil/l7/plugins/internal/llm/constrain"
	"github.com/dsmil/l7/plugins/internal/llm/engine"
	"github.com/dsmil/l7/plugins/internal/llm/model"
	"github.com/dsmil/l7/plugins/internal/llm/toolcall"
	"github.com/dsmil/l7/plugins/internal/ort"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
	"github.com/hashicorp/go-hclog"
)

// ErrConfigured reports a second Configure: the model is loaded once per
// process.
var ErrConfigured = errors.New("worker: already configured; restart the plugin to change its configuration")

// Workload is an LLM plugin's workload. Create it with New.
type Workload struct {
	p      Plugin
	cpu    ort.CPUFeatures
	getenv func(string) string

	mu  sync.Mutex // serializes Configure and Close
	st  atomic.Pointer[state]
	avg atomic.Int64 // recent request duration in ns (EWMA), for Retry-After
}

var (
	_ sdk.Workload       = (*Workload)(nil)
	_ sdk.Chatter        = (*Workload)(nil)
	_ sdk.StatusReporter = (*Workload)(nil)
	_ sdk.Closer         = (*Workload)(nil)
)

// New returns an unconfigured workload of plugin p.
func New(p Plugin) *Workload {
	if p.devices == nil {
		p.devices = func() []accel.Device { return accel.Devices("/") }
	}
	return &Workload{p: p, cpu: ort.DetectCPU(), getenv: os.Getenv}
}

// state is what Configure sets up.
type state struct {
	cfg      *sdk.Config
	set      *settings
	eng      *engine.Engine
	adm      *admission.Controller
	log      hclog.Logger
	kvBudget int64
	// prefillBytes is the prefill working memory set aside (batched).
	prefillBytes int64
	memory       uint64 // MemoryBudget reported in Info
	// toolFormat is the chat template's tool-call syntax (None: it cannot
	// render tools).
	toolFormat toolcall.Format
	// vocab is the tokenizer's vocabulary for constrained decoding, shared
	// by every request (its mask analyses are cached in it).
	vocab *constrain.Vocab
	// grammars are the compiled output grammars of recent requests.
	grammars grammarCache
	closed   atomic.Bool
	// accel is where the model runs (PluginInfo.Accelerator).
	accel string
}

// accelerator names where the plugin computes: the configured choice, or
// before Configure (and on the CPU) the CPU.
func (w *Workload) accelerator() string {
	if st := w.st.Load(); st != nil {
		return st.accel
	}
	return w.cpuAccelerator()
}

// cpuAccelerator names the CPU execution provider on this CPU.
func (w *Workload) cpuAccelerator() string {
	if w.cpu.AMXTile && (w.cpu.AMXInt8 || w.cpu.AMXBF16) {
		return "cpu-amx"
	}
	return "cpu"
}

// Info implements sdk.Workload.
func (w *Workload) Info(context.Context) (*sdk.PluginInfo, error) {
	info := &sdk.PluginInfo{
		Name:         w.p.Name,
		Version:      w.p.Version,
		APIVersions:  []uint32{sdk.APIVersion},
		DeviceID:     w.p.DeviceID,
		Capabilities: []sdk.Capability{sdk.CapChat, sdk.CapStream},
		Accelerator:  w.accelerator(),
		CPUFeatures:  w.cpu.List(),
		Settings:     w.p.specs(),
	}
	if w.p.Profile != "" {
		info.Profiles = []string{w.p.Profile}
	}
	if st := w.st.Load(); st != nil {
		info.DeviceID, info.Profiles = st.cfg.DeviceID, st.cfg.Profiles
		info.MemoryBudget = st.memory
		info.Models = []string{st.set.ModelName}
	}
	return info, nil
}

// Configure implements sdk.Workload: it loads ONNX Runtime and the model.
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
	set, err := parseSettings(cfg.Settings, w.getenv, &w.p)
	if err != nil {
		return err
	}
	info, err := ort.Init(set.ORTLibrary)
	if err != nil {
		return sdk.InvalidParam("ort_library", "%v", err)
	}
	choice, err := w.selectProvider(set)
	if err != nil {
		return err
	}
	opts := model.Options{Variant: set.Variant, Session: set.Session.WithDefaults(), MaxSequence: set.MaxContext,
		PrefillGraph: set.PrefillGraph, PrefillAuto: set.PrefillAuto}
	if !choice.OnCPU() {
		opts.Session.Provider, opts.Session.ProviderOptions = choice.Provider.AppendName, choice.Provider.Options
	}

	// Check the model and the budgets before loading the weights.
	m, err := model.Inspect(set.Model, opts)
	if errors.Is(err, model.ErrPrefillGraph) {
		return sdk.InvalidParam("prefill_graph", "%v", err)
	}
	if err != nil {
		return sdk.InvalidParam("model", "%v", err)
	}
	if d := w.p.Defaults.MaxContext; set.MaxContext == 0 && d > 0 && d < m.Config.MaxPositions {
		set.MaxContext, opts.MaxSequence = d, d // the plugin's default cap
		if m, err = model.Inspect(set.Model, opts); err != nil {
			return sdk.InvalidParam("model", "%v", err)
		}
	}
	weights := m.Files.WeightBytes
	if set.MaxContext > m.Config.MaxPositions {
		return sdk.InvalidParam("max_context", "max_context %d exceeds the model's max_position_embeddings %d",
			set.MaxContext, m.Config.MaxPositions)
	}
	budget := int64(cfg.MemoryBudget)
	if budget > 0 && weights >= budget {
		return sdk.InvalidParam("model", "the model's weights (%s, %s) do not fit the plugin's memory_budget of %s",
			size(weights), m.Files.ONNX, size(budget))
	}
	start := time.Now()
	eng, err := engine.Load(set.Model, opts)
	if err != nil && !choice.OnCPU() {
		// The provider is built in and its device is there, but it cannot
		// take this model: the CPU, unless an NPU is required.
		if set.Accel.Require {
			return sdk.InvalidParam("require_accelerator", "%s could not load the model on %s (%s): %v",
				w.p.Name, choice.Provider.ORTName, choice.Device.Path, err)
		}
		choice = accel.Choice{Fallback: fmt.Sprintf("%s on %s could not load the model: %v", choice.Provider.ORTName, choice.Device.Path, err)}
		opts.Session.Provider, opts.Session.ProviderOptions = "", nil
		eng, err = engine.Load(set.Model, opts)
	}
	if errors.Is(err, model.ErrPrefillGraph) {
		return sdk.InvalidParam("prefill_graph", "%v", err)
	}
	if err != nil {
		return sdk.InvalidParam("model", "%v", err)
	}
	// Loading checked which weights the prefill graph shares with the
	// main graph (in memory once): the figure counted from here on.
	weights = eng.Model.Files.WeightBytes
	if budget > 0 && weights >= budget {
		eng.Close()
		return sdk.InvalidParam("model", "the model's weights (%s, %s) do not fit the plugin's memory_budget of %s",
			size(weights), m.Files.ONNX, size(budget))
	}
	where := w.cpuAccelerator()
	if !choice.OnCPU() {
		where = choice.Provider.Accelerator
	}
	eng.Unbatched, eng.PrefillChunk = !set.Batching, set.PrefillChunk
	if set.PrefillChunk == 0 {
		eng.PrefillChunk = -1 // the whole prompt in one run
	}
	// Prefill working memory: batched, the chunks of all prefills run one
	// at a time (they take turns with the decode steps), so one chunk at
	// the longest context is set aside once; unbatched, each request
	// reserves its own beside its KV cache (see need).
	var prefill int64
	if eng.Batching() {
		prefill = eng.PrefillBytes(eng.MaxContext(), eng.MaxContext())
	}
	kv := set.KVBudget
	switch {
	case kv > 0 && budget > 0 && weights+prefill+kv > budget:
		eng.Close()
		return sdk.InvalidParam("kv_budget", "kv_budget %s + the model's weights %s + prefill working memory %s (prefill_chunk %d "+
			"at max_context %d) exceed the plugin's memory_budget of %s", size(kv), size(weights), size(prefill),
			set.PrefillChunk, eng.MaxContext(), size(budget))
	case kv == 0 && budget > 0 && weights+prefill >= budget:
		eng.Close()
		return sdk.InvalidParam("prefill_chunk", "the model's weights %s + prefill working memory %s (prefill_chunk %d at max_context %d) "+
			"leave no KV cache in the plugin's memory_budget of %s: lower prefill_chunk or max_context",
			size(weights), size(prefill), set.PrefillChunk, eng.MaxContext(), size(budget))
	case kv == 0 && budget > 0:
		kv = budget - weights - prefill
	case kv == 0:
		kv = int64(set.Parallelism) * 2 * int64(m.MaxSequence) * m.KVBytesPerToken()
	}
	// The prefix cache's memory comes out of the KV budget.
	cache := set.PrefixCache
	if cache < 0 {
		cache = kv / 4
	}
	if cache >= kv {
		eng.Close()
		return sdk.InvalidParam("prefix_cache", "prefix_cache %s leaves no KV cache in the KV budget of %s", size(cache), size(kv))
	}
	if cache > 0 {
		eng.Prefix = engine.NewPrefixCache(cache, 0)
		kv -= cache
	}
	eng.BatchKVBudget = kv
	st := &state{
		cfg: cfg, set: set, eng: eng, log: log, kvBudget: kv, prefillBytes: prefill,
		adm:        admission.New(set.Parallelism, kv, set.Queue),
		memory:     uint64(weights + prefill + kv),
		toolFormat: toolcall.Detect(eng.Template.Source()),
		accel:      where,
	}
	if budget > 0 {
		st.memory = uint64(budget)
	}
	if st.vocab, err = constrain.VocabFromTokenizer(eng.Tokenizer, eng.Model.Config.EOS); err != nil {
		eng.Close()
		return sdk.InvalidParam("model", "constrained decoding vocabulary: %v", err)
	}
	perTok := eng.Model.KVBytesPerToken()
	maxTok := min(int64(eng.MaxContext()), kv/(2*perTok))
	if maxTok < int64(eng.MaxContext()) {
		log.Warn("the KV budget caps a request below max_context", "kv_budget", size(kv),
			"max_request_tokens", maxTok, "max_context", eng.MaxContext())
	}
	if choice.Fallback != "" {
		log.Warn("running on the CPU, not an NPU", "accelerator", where, "reason", choice.Fallback)
	}
	if eng.Model.Config.RandomWeights {
		log.Warn("random-weight model: it produces gibberish (for tests, demos and benchmarks)", "model", set.Model)
	}
	log.Info("model loaded",
		"model", set.ModelName, "file", eng.Model.Files.ONNX, "weights", size(weights), "load_ms", time.Since(start).Milliseconds(),
		"onnxruntime", info.Version, "library", info.Library, "cpu_features", w.cpu.String(), "accelerator", where,
		"execution_provider", cmp.Or(opts.Session.Provider, "CPU"),
		"threads", opts.Session.IntraOpThreads, "graph_optimization", opts.Session.GraphOptimization,
		"max_context", eng.MaxContext(), "kv_bytes_per_token", perTok, "kv_budget", size(kv),
		"prefill_chunk", set.PrefillChunk, "prefill_memory", size(prefill), "memory_arena", !opts.Session.DisableArena,
		"prefix_cache", size(cache), "last_logits", eng.Model.LastLogits, "logits_rewrite", eng.Model.LogitsRewrite,
		"prefill_graph", eng.Model.PrefillFile, "prefill_shared_weights", size(eng.Model.SharedBytes),
		"parallelism", set.Parallelism, "batching", eng.Batching(), "queue", set.Queue, "ignore_eos", set.IgnoreEOS)
	if set.Batching && !eng.Batching() {
		log.Warn("batching is on but the model's graph cannot batch (it needs attention_mask, position_ids and "+
			"com.microsoft GroupQueryAttention): every request decodes on its own", "file", eng.Model.Files.ONNX)
	}
	w.st.Store(st)
	return nil
}

// Health implements sdk.Workload.
func (w *Workload) Health(context.Context) error {
	st := w.st.Load()
	switch {
	case st == nil:
		return sdk.ErrNotConfigured
	case st.closed.Load():
		return fmt.Errorf("%s: closed", w.p.Name)
	}
	return nil
}

// Status implements sdk.StatusReporter: load from the admission queue,
// memory from the process's resident set (which holds the KV caches:
// they are allocated on the Go heap).
func (w *Workload) Status(context.Context) (*sdk.Status, error) {
	st := w.st.Load()
	if st == nil {
		return &sdk.Status{MemoryUsed: rss()}, nil
	}
	s := st.adm.Stats()
	return &sdk.Status{
		Load:       s.Load(),
		InFlight:   s.Active,
		QueueDepth: s.Waiting,
		MemoryUsed: rss(),
	}, nil
}

// Close implements sdk.Closer: it releases the model.
func (w *Workload) Close(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	st := w.st.Load()
	if st == nil || st.closed.Swap(true) {
		return nil
	}
	return st.eng.Close()
}

// retryAfter is the Retry-After hint of an OVERLOADED answer: about one
// request's duration, from 1 s to 60 s.
func (w *Workload) retryAfter() time.Duration {
	return min(max(time.Duration(w.avg.Load()), time.Second), time.Minute)
}

// observe folds a request's duration into the average.
func (w *Workload) observe(d time.Duration) {
	for {
		old := w.avg.Load()
		nv := int64(d)
		if old > 0 {
			nv = old + (int64(d)-old)/8
		}
		if w.avg.CompareAndSwap(old, nv) {
			return
		}
	}
}

// overloaded is the error of a request refused because the queue is full.
func (w *Workload) overloaded(st *state) error {
	s := st.adm.Stats()
	return sdk.Overloaded(w.retryAfter(), w.p.Name+" is busy: %d requests generating, %d waiting (queue %d); retry later",
		s.Active, s.Waiting, s.QueueLen)
}

// rss is the resident set size from /proc/self/statm, 0 if unknown.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var total, resident uint64
	if _, err := fmt.Sscan(string(b), &total, &resident); err != nil {
		return 0
	}
	return resident * uint64(os.Getpagesize())
}

// size formats a byte count.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// errShuttingDown answers requests that arrive after Close.
var errShuttingDown = sdk.Errorf(dbe.CodeNoWorkerAvailable, "LLM worker: shutting down")
