package model

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/dsmil/l7/internal/onnx/lastlogits"

	ortgo "github.com/yalue/onnxruntime_go"
)

// prefillPath is the prefill graph's file for the model file onnx.
func prefillPath(onnx string) string { return strings.TrimSuffix(onnx, ".onnx") + "_prefill.onnx" }

// prefillBytes is the size of the prefill graph's file and its external
// data.
func prefillBytes(onnx string) (int64, error) {
	path := prefillPath(onnx)
	st, err := os.Stat(path)
	if err != nil {
		return 0, fmt.Errorf("%w: prefill_graph: %v", ErrLayout, err)
	}
	n := st.Size()
	gi, err := ReadGraphInfo(path)
	if err != nil {
		return 0, fmt.Errorf("%w: prefill_graph: %v", ErrLayout, err)
	}
	for _, loc := range gi.ExternalData {
		st, err := os.Stat(filepath.Join(filepath.Dir(path), filepath.FromSlash(loc)))
		if err != nil {
			return 0, fmt.Errorf("%w: prefill_graph: %v", ErrLayout, err)
		}
		n += st.Size()
	}
	return n, nil
}

// openPrefill opens the prefill graph next to the model file
// (Options.PrefillGraph) in a second session, after checking that it has
// the same inputs and outputs as the main graph.
func (m *Model) openPrefill(opts Options) error {
	path := prefillPath(m.Files.ONNX)
	gi, err := ReadGraphInfo(path)
	if err != nil {
		return fmt.Errorf("%w: prefill_graph: %v", ErrLayout, err)
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
	var s *ortgo.DynamicAdvancedSession
	if strings.HasPrefix(m.LogitsRewrite, lastOnly) {
		// The main graph was rewritten at load time: so is this one.
		data, _, err := lastlogits.File(path, m.Config.Names.Logits)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrGraph, path, err)
		}
		if err := so.AddSessionConfigEntry("session.model_external_initializers_file_folder_path", filepath.Dir(path)); err != nil {
			return err
		}
		s, err = ortgo.NewDynamicAdvancedSessionWithONNXData(data, m.inputNames, m.outputNames, so)
		data = nil
		debug.FreeOSMemory()
	} else {
		s, err = ortgo.NewDynamicAdvancedSession(path, m.inputNames, m.outputNames, so)
	}
	if err != nil {
		return fmt.Errorf("model: ONNX Runtime cannot load %s: %w", path, err)
	}
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
