package model

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/dsmil/l7/internal/onnx/weightref"

	ortgo "github.com/yalue/onnxruntime_go"
)

// prefillPath is the prefill graph's file for the model file onnx.
func prefillPath(onnx string) string { return strings.TrimSuffix(onnx, ".onnx") + "_prefill.onnx" }

// usePrefill says whether the model in the file onnx runs a prefill graph:
// PrefillGraph, or PrefillAuto and its file is there.
func (o Options) usePrefill(onnx string) bool {
	if o.PrefillGraph {
		return true
	}
	if !o.PrefillAuto {
		return false
	}
	_, err := os.Stat(prefillPath(onnx))
	return err == nil
}

// prefillBytes is the size of the prefill graph's file and its external
// data.
func prefillBytes(onnx string) (int64, error) {
	path := prefillPath(onnx)
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("%w: %w: %v", ErrLayout, ErrPrefillGraph, err)
	}
	n := st.Size()
	gi, err := ReadGraphInfo(path)
	if err != nil {
		return 0, fmt.Errorf("%w: %w: %v", ErrLayout, ErrPrefillGraph, err)
	}
	for _, loc := range gi.ExternalData {
		st, err := os.Stat(filepath.Join(filepath.Dir(path), filepath.FromSlash(loc)))
		if err != nil {
			return 0, fmt.Errorf("%w: %w: %v", ErrLayout, ErrPrefillGraph, err)
		}
		n += st.Size()
	}
	return n, nil
}

// shareable lists the main graph's initializers (in the model file onnx)
// that the prefill graph has too, with the same name, element type, shape
// and length, and that only Gather nodes read there (the embedding
// table), with their bytes. ONNX Runtime gathers rows from external data
// where it lies (mapped from the file), so when the prefill graph
// references the main file's bytes (openPrefill checks they are equal)
// both sessions read one copy. Matrix weights (the LM head) are not
// shared: each session prepacks them into its own buffer.
func shareable(onnx string) ([]weightref.Tensor, int64, error) {
	read := func(path string) ([]weightref.Tensor, map[string][]string, error) {
		f, err := weightref.Map(path)
		if err != nil {
			return nil, nil, err
		}
		defer f.Close()
		ts, err := weightref.Initializers(f.Data, filepath.Base(path))
		if err != nil {
			return nil, nil, err
		}
		readers, err := weightref.Readers(f.Data)
		return ts, readers, err
	}
	mainInits, _, err := read(onnx)
	if err != nil {
		return nil, 0, err
	}
	preInits, readers, err := read(prefillPath(onnx))
	if err != nil {
		return nil, 0, err
	}
	byName := map[string]weightref.Tensor{}
	for _, t := range mainInits {
		byName[t.Name] = t
	}
	var out []weightref.Tensor
	var n int64
	for _, p := range preInits {
		t, ok := byName[p.Name]
		if !ok || t.DataType != p.DataType || !slices.Equal(t.Dims, p.Dims) || t.Ref.Length != p.Ref.Length ||
			t.Ref.Length < weightref.DefaultMinBytes || len(readers[p.Name]) == 0 {
			continue
		}
		gathered := true
		for _, op := range readers[p.Name] {
			gathered = gathered && op == "Gather"
		}
		if gathered {
			out, n = append(out, t), n+t.Ref.Length
		}
	}
	return out, n, nil
}

// openPrefill opens the prefill graph next to the model file
// (Options.PrefillGraph) in a second session, after checking that it has
// the same inputs and outputs as the main graph.
func (m *Model) openPrefill(opts Options) error {
	path := prefillPath(m.Files.ONNX)
	gi, err := ReadGraphInfo(path)
	if err != nil {
		return fmt.Errorf("%w: %w: %v", ErrLayout, ErrPrefillGraph, err)
	}
	same := func(a, b []TensorInfo) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if a[i].String() != b[i].String() {
				return false
			}
		}
		return true
	}
	if !same(gi.Inputs, m.Graph.Inputs) || !same(gi.Outputs, m.Graph.Outputs) {
		return fmt.Errorf("%w: %s: its inputs and outputs are not those of %s", ErrGraph, path, m.Files.ONNX)
	}
	so, err := opts.Session.SessionOptions()
	if err != nil {
		return err
	}
	defer so.Destroy()
	// The embedding table is read from the main graph's file: one copy
	// for both sessions (see shareable).
	shared := weightref.NewShared(filepath.Dir(path), m.shareable, 0)
	defer shared.Close()
	// The main graph was rewritten at load time: so is this one.
	rewrite := strings.HasPrefix(m.LogitsRewrite, lastOnly)
	s, _, rewriteErr, err := m.openGraph(path, so, rewrite, shared.Redirect)
	if err != nil {
		return fmt.Errorf("model: ONNX Runtime cannot load %s: %w", path, err)
	}
	if rewrite && rewriteErr != nil {
		s.Destroy()
		return fmt.Errorf("%w: %s: %v", ErrGraph, path, rewriteErr)
	}
	// Inspect counted the shareable tensors once; any whose bytes
	// differ is a second copy after all.
	m.SharedWeights, m.SharedBytes = shared.Moved, shared.MovedBytes
	m.Files.WeightBytes += m.shareableBytes - shared.MovedBytes
	m.prefill, m.PrefillFile, m.PrefillMin = s, path, opts.PrefillMin
	if m.PrefillMin <= 0 {
		m.PrefillMin = DefaultPrefillMin
	}
	return nil
}

// sessionFor is the session a step of k tokens runs.
func (m *Model) sessionFor(k int) *ortgo.DynamicAdvancedSession {
	if m.prefill != nil && k >= m.PrefillMin {
		return m.prefill
	}
	return m.session
}
