package model

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/dsmil/l7/internal/onnx/lastlogits"
	"github.com/dsmil/l7/internal/onnx/weightref"
	"github.com/dsmil/l7/plugins/internal/ort"
	ortgo "github.com/yalue/onnxruntime_go"
)

// ErrNotInitialized reports an Open before ort.Init.
var ErrNotInitialized = errors.New("model: ONNX Runtime is not initialized (call ort.Init first)")

// Options control Open.
type Options struct {
	// Variant picks the model file; see Locate. Default: DefaultVariants.
	Variant string

	// Session are the ONNX Runtime session options (threads, graph
	// optimization level).
	Session ort.Options

	// MaxSequence caps the length (prompt + generated tokens) of a
	// Sequence; 0 means the model's max_position_embeddings.
	MaxSequence int

	// AllLogits keeps a graph that computes the logits of every position
	// fed as it is. By default Open rewrites such a graph at load time to
	// compute the last position's only (see LastLogits).
	AllLogits bool

	// PrefillGraph opens, beside the model file, its prefill graph
	// (<file>_prefill.onnx, dsmil-mkmodel -prefill-graph: the linears in
	// int8 through ONNX Runtime's u8×s8 GEMM, AMX where the CPU has it) in
	// a second session that Sequence.Step uses for steps of at least
	// PrefillMin tokens and Batch.Step for steps of at least PrefillMin
	// rows.
	PrefillGraph bool
	// PrefillAuto opens the prefill graph when its file is there (and
	// goes on without one when it is not): PrefillGraph for the models
	// that have one.
	PrefillAuto bool
	// PrefillMin is the fewest tokens a step feeds to use the prefill
	// graph; 0 means DefaultPrefillMin.
	PrefillMin int
}

// DefaultPrefillMin is Options.PrefillMin's default.
const DefaultPrefillMin = 8

// Model is an opened decoder: its files, configuration, graph description
// and ONNX Runtime session. It is safe for concurrent use by many
// Sequences.
type Model struct {
	// Files are the model directory's files.
	Files *Files
	// Config is the parsed configuration.
	Config *Config
	// Graph is the ONNX graph's description.
	Graph *GraphInfo
	// KVElem is the KV cache's element type (float or float16).
	KVElem ElemType
	// LogitsElem is the logits' element type (float or float16).
	LogitsElem ElemType
	// MaxSequence is the longest sequence a Sequence may hold.
	MaxSequence int
	// LastLogits: the graph computes the logits of each row's last
	// position only (logits [batch, 1, vocab]), as written by the
	// generator or rewritten by Open; Sequence.Step then returns one row.
	LastLogits bool
	// LogitsRewrite says what Open did to the graph's LM head: "" (left
	// as it is), or the rewrite, or why it was not possible.
	LogitsRewrite string
	// PrefillFile is the prefill graph's file when one is open
	// (Options.PrefillGraph), PrefillMin the fewest tokens of a step
	// that runs it.
	PrefillFile string
	PrefillMin  int
	// SharedWeights counts the prefill graph's initializers that are
	// the main graph's (same name, shape and bytes, only gathered: the
	// embedding table) and read from its file, one copy for both
	// sessions; SharedBytes is their size, not counted twice in
	// Files.WeightBytes.
	SharedWeights int
	SharedBytes   int64
	// shareable are the main graph's initializers the prefill graph
	// has too, that it would share (Inspect), of shareableBytes.
	shareable      []weightref.Tensor
	shareableBytes int64
	// noRefs: the weights are not made references (see openGraph).
	noRefs  bool
	prefill *ortgo.DynamicAdvancedSession

	hasMask, hasPos bool
	inputNames      []string // in the order Sequence feeds them
	outputNames     []string
	session         *ortgo.DynamicAdvancedSession
}

// Open locates, checks and loads the model in dir. ort.Init must have
// been called.
func Open(dir string, opts Options) (*Model, error) {
	if ort.Loaded() == nil {
		return nil, ErrNotInitialized
	}
	m, err := Inspect(dir, opts)
	if err != nil {
		return nil, err
	}
	so, err := opts.Session.SessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	m.noRefs = opts.Session.Provider != "" || weightRefMin == math.MaxInt
	var info *lastlogits.Info
	var rewriteErr error
	m.session, info, rewriteErr, err = m.openGraph(m.Files.ONNX, so, !opts.AllLogits && !m.LastLogits, nil)
	if err != nil {
		return nil, fmt.Errorf("model: ONNX Runtime cannot load %s: %w", m.Files.ONNX, err)
	}
	switch {
	case info != nil:
		m.LastLogits = true
		m.LogitsRewrite = fmt.Sprintf("%s: Slice of %s before %s", lastOnly, info.Hidden, info.Head)
	case rewriteErr != nil:
		m.LogitsRewrite = "all positions: " + rewriteErr.Error()
	}
	if opts.usePrefill(m.Files.ONNX) {
		if err := m.openPrefill(opts); err != nil {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}

// lastOnly starts LogitsRewrite when Open rewrote the graph.
const lastOnly = "last position only"

// weightRefMin is the smallest inline initializer openGraph makes a
// reference (weightref.Options.MinBytes); tests change it (math.MaxInt:
// none, ONNX Runtime reads the file or the rewritten copy as before).
var weightRefMin = weightref.DefaultMinBytes

// openGraph opens a session on the graph in the ONNX file at path. The
// graph handed to ONNX Runtime is rewritten in memory: its large inline
// weights become external-data references to their bytes in the file
// (internal/onnx/weightref), so ONNX Runtime reads them from the file and
// the rewritten graph is no second copy of them; redirect (optional)
// points weights at identical ones in another file of the directory. With
// rewrite, the graph also computes the last position's logits only
// (internal/onnx/lastlogits): info says how; when the rewrite does not
// recognise the LM head, rewriteErr says why and the graph is left as it
// is.
//
// With an execution provider other than the CPU's (Options.Session
// .Provider) the weights are not made references: how a provider such as
// OpenVINO reads external data of a model loaded from memory was not
// checked here. ONNX Runtime then reads the file itself, or is handed the
// rewritten copy (the weights in memory twice while it parses it).
func (m *Model) openGraph(path string, so *ortgo.SessionOptions, rewrite bool,
	redirect func(weightref.Tensor) (weightref.Ref, bool)) (s *ortgo.DynamicAdvancedSession, info *lastlogits.Info, rewriteErr error, err error) {
	refs := &weightref.Options{Location: filepath.Base(path), MinBytes: weightRefMin, Redirect: redirect}
	if m.noRefs {
		refs = nil
	}
	var data []byte
	if rewrite {
		d, i, err := lastlogits.File(path, m.Config.Names.Logits, refs)
		if err != nil {
			rewriteErr = err
		} else {
			data, info = d, &i
		}
	}
	if data == nil && refs == nil {
		s, err = ortgo.NewDynamicAdvancedSession(path, m.inputNames, m.outputNames, so)
		return s, nil, rewriteErr, err
	}
	if data == nil {
		f, err := weightref.Map(path)
		if err != nil {
			return nil, nil, nil, err
		}
		data, err = weightref.Model(f.Data, refs)
		f.Close()
		if err != nil {
			return nil, nil, nil, err
		}
	}
	// The references (and the model's own external data) are found
	// relative to this folder when the model comes from memory.
	if err := so.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", filepath.Dir(path)); err != nil {
		return nil, nil, nil, err
	}
	s, err = ortgo.NewDynamicAdvancedSessionWithONNXData(data, m.inputNames, m.outputNames, so)
	if err != nil {
		return nil, nil, nil, err
	}
	if refs == nil {
		data = nil
		debug.FreeOSMemory() // the rewritten copy of the weights
	}
	return s, info, rewriteErr, nil
}

// Inspect does everything Open does except creating the ONNX Runtime
// session: it locates the files, parses the configuration, reads the graph
// and checks that they agree. It does not need ONNX Runtime.
func Inspect(dir string, opts Options) (*Model, error) {
	f, err := Locate(dir, opts.Variant)
	if err != nil {
		return nil, err
	}
	c, err := LoadConfig(f)
	if err != nil {
		return nil, err
	}
	gi, err := ReadGraphInfo(f.ONNX)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrLayout, err)
	}
	var missing []string
	for _, loc := range gi.ExternalData {
		p := filepath.Join(filepath.Dir(f.ONNX), filepath.FromSlash(loc))
		st, err := os.Stat(p)
		if err != nil {
			missing = append(missing, loc)
			continue
		}
		f.ExternalData = append(f.ExternalData, p)
		f.WeightBytes += st.Size()
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: %s refers to external data %s, missing from %s",
			ErrLayout, filepath.Base(f.ONNX), strings.Join(missing, ", "), filepath.Dir(f.ONNX))
	}
	m := &Model{Files: f, Config: c, Graph: gi, MaxSequence: c.MaxPositions}
	if opts.usePrefill(f.ONNX) {
		n, err := prefillBytes(f.ONNX)
		if err != nil {
			return nil, err
		}
		// The embedding table the prefill graph shares with the main
		// graph is in memory once.
		if m.shareable, m.shareableBytes, err = shareable(f.ONNX); err != nil {
			return nil, fmt.Errorf("%w: %w: %v", ErrGraph, ErrPrefillGraph, err)
		}
		f.WeightBytes += n - m.shareableBytes
	}
	if opts.MaxSequence > 0 {
		m.MaxSequence = min(opts.MaxSequence, c.MaxPositions)
	}
	if err := m.checkGraph(); err != nil {
		return nil, err
	}
	return m, nil
}

// Close releases the ONNX Runtime session. Sequences must be closed first.
func (m *Model) Close() error {
	if m.session == nil {
		return nil
	}
	if m.prefill != nil {
		m.prefill.Destroy()
		m.prefill = nil
	}
	err := m.session.Destroy()
	m.session = nil
	return err
}

// KVBytesPerToken is one token's KV cache size: layers × kv_heads ×
// head_dim × 2 × the KV element size.
func (m *Model) KVBytesPerToken() int64 {
	return m.Config.KVBytesPerToken(m.KVElem.Size())
}

// Vocab is the logits' row length.
func (m *Model) Vocab() int { return m.Config.Vocab }

// layerPattern matches a KV name pattern and captures the layer number.
func layerPattern(p string) *regexp.Regexp {
	return regexp.MustCompile("^" + strings.Replace(regexp.QuoteMeta(p), "%d", `(\d+)`, 1) + "$")
}

// checkGraph compares the graph's inputs and outputs with the config and
// fills in the feeding plan. It reports every problem at once.
func (m *Model) checkGraph() error {
	c, n := m.Config, m.Config.Names
	var bad []string
	problem := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	ins, outs := map[string]TensorInfo{}, map[string]TensorInfo{}
	for _, t := range m.Graph.Inputs {
		ins[t.Name] = t
	}
	for _, t := range m.Graph.Outputs {
		outs[t.Name] = t
	}
	// checkDims checks rank and the static dimensions want gives (-1 =
	// any).
	checkDims := func(kind string, t TensorInfo, want ...int64) {
		if t.Shape == nil {
			return // no shape declared: ORT checks at run time
		}
		if len(t.Shape) != len(want) {
			problem("%s %s has rank %d, want %d", kind, t, len(t.Shape), len(want))
			return
		}
		for i, w := range want {
			if d := t.Shape[i]; w >= 0 && d.Value >= 0 && d.Value != w {
				problem("%s %s: dimension %d is %d, but the config says %d", kind, t, i, d.Value, w)
			}
		}
	}
	intInput := func(name string, required bool) bool {
		t, ok := ins[name]
		if !ok {
			if required {
				problem("graph has no input %q", name)
			}
			return false
		}
		if t.Elem != ElemInt64 {
			problem("input %s: element type %s, want int64", t, t.Elem)
		}
		checkDims("input", t, -1, -1)
		return true
	}
	intInput(n.InputIDs, true)
	m.hasMask = intInput(n.AttentionMask, false)
	m.hasPos = intInput(n.PositionIDs, false)
	m.inputNames = []string{n.InputIDs}
	if m.hasMask {
		m.inputNames = append(m.inputNames, n.AttentionMask)
	}
	if m.hasPos {
		m.inputNames = append(m.inputNames, n.PositionIDs)
	}

	logits, ok := outs[n.Logits]
	if !ok {
		problem("graph has no output %q", n.Logits)
	} else {
		m.LogitsElem = logits.Elem
		if logits.Elem != ElemFloat && logits.Elem != ElemFloat16 {
			problem("output %s: element type %s, want float or float16", logits, logits.Elem)
		}
		checkDims("output", logits, -1, -1, int64(c.Vocab))
		m.LastLogits = len(logits.Shape) == 3 && logits.Shape[1].Value == 1
	}
	m.outputNames = []string{n.Logits}

	kv := func(kind string, set map[string]TensorInfo, pattern string) {
		for l := 0; l < c.Layers; l++ {
			name := fmt.Sprintf(pattern, l)
			t, ok := set[name]
			if !ok {
				problem("graph has no %s %q (config.json: num_hidden_layers %d)", kind, name, c.Layers)
				continue
			}
			if m.KVElem == 0 && (t.Elem == ElemFloat || t.Elem == ElemFloat16) {
				m.KVElem = t.Elem
			}
			if t.Elem != ElemFloat && t.Elem != ElemFloat16 {
				problem("%s %s: element type %s, want float or float16", kind, t, t.Elem)
			} else if t.Elem != m.KVElem {
				problem("%s %s: element type %s, but other KV tensors are %s", kind, t, t.Elem, m.KVElem)
			}
			checkDims(kind, t, -1, int64(c.KVHeads), -1, int64(c.HeadDim))
		}
		re := layerPattern(pattern)
		for name := range set {
			if sm := re.FindStringSubmatch(name); sm != nil {
				if l, _ := strconv.Atoi(sm[1]); l >= c.Layers {
					problem("graph has %s %q but config.json says num_hidden_layers %d", kind, name, c.Layers)
				}
			}
		}
	}
	kv("input", ins, n.PastKey)
	kv("input", ins, n.PastValue)
	kv("output", outs, n.PresentKey)
	kv("output", outs, n.PresentValue)
	// Sequence feeds and fetches the cache per layer: key, value.
	for l := 0; l < c.Layers; l++ {
		m.inputNames = append(m.inputNames, fmt.Sprintf(n.PastKey, l), fmt.Sprintf(n.PastValue, l))
		m.outputNames = append(m.outputNames, fmt.Sprintf(n.PresentKey, l), fmt.Sprintf(n.PresentValue, l))
	}
	known := map[string]bool{}
	for _, name := range m.inputNames {
		known[name] = true
	}
	for _, t := range m.Graph.Inputs {
		if !known[t.Name] && !layerPattern(n.PastKey).MatchString(t.Name) && !layerPattern(n.PastValue).MatchString(t.Name) {
			problem("graph input %s is not one the plugin feeds (it feeds %s, %s, %s and %s/%s)",
				t, n.InputIDs, n.AttentionMask, n.PositionIDs, n.PastKey, n.PastValue)
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrGraph, m.Files.ONNX, strings.Join(bad, "; "))
	}
	return nil
}
