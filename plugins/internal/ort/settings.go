package ort

import (
	"path/filepath"
	"strings"

	"github.com/dsmil/l7/sdk"
)

// ModelSettingSpecs are the plugin settings every plugin that runs an ONNX
// model here shares: model (described by modelDesc), model_name, threads,
// graph_optimization, allow_spinning, force_spinning_stop and ort_library.
func ModelSettingSpecs(modelDesc string) []sdk.SettingSpec {
	return []sdk.SettingSpec{
		{Name: "model", Type: "string", Required: true, Description: modelDesc +
			" A relative path is resolved against the plugin's working directory, which is dsmil-host's."},
		{Name: "model_name", Type: "string",
			Description: "The model id the plugin reports (the OpenAI model name). Default: the model directory's name."},
		{Name: "threads", Type: "number",
			Description: "ONNX Runtime intra-op threads. Default 0: one per core."},
		{Name: "graph_optimization", Type: "string",
			Description: `ONNX Runtime graph optimization level: "disable", "basic", "extended" or "all" (default).`},
		{Name: "allow_spinning", Type: "bool",
			Description: "Let idle ONNX Runtime threads spin-wait for work (ONNX Runtime's default, true): lower latency, but busy cores between runs. false frees the cores for other processes."},
		{Name: "force_spinning_stop", Type: "bool",
			Description: "ONNX Runtime's intra-op threads stop spinning as soon as a run ends (session.force_spinning_stop) instead of spinning on for ONNX Runtime's spin budget: with allow_spinning, threads spin only inside a run, and the cores are idle between runs, at the cost of waking the threads at the next run. Default false (ONNX Runtime's default)."},
		{Name: "ort_library", Type: "string",
			Description: "Path of libonnxruntime.so. Default: $DSMIL_ORT_LIB, else the `make ort` cache."},
	}
}

// ModelSettings are the decoded shared settings.
type ModelSettings struct {
	Model      string // the model directory, absolute after Finish
	ModelName  string
	Session    Options
	ORTLibrary string // absolute when it names a file, after Finish
}

// Set decodes the shared setting name; handled is false when name is not
// one of them (the plugin's own, or unknown).
func (m *ModelSettings) Set(name string, v any) (handled bool, err error) {
	switch name {
	case "model":
		m.Model, err = sdk.SettingString(v)
	case "model_name":
		m.ModelName, err = sdk.SettingString(v)
	case "threads":
		m.Session.IntraOpThreads, err = sdk.SettingInt(v, 0)
	case "graph_optimization":
		if m.Session.GraphOptimization, err = sdk.SettingString(v); err == nil {
			err = m.Session.Validate()
		}
	case "allow_spinning":
		var spin bool
		spin, err = sdk.SettingBool(v)
		m.Session.DisableSpinning = !spin
	case "force_spinning_stop":
		m.Session.StopSpinningAfterRun, err = sdk.SettingBool(v)
	case "ort_library":
		m.ORTLibrary, err = sdk.SettingString(v)
	default:
		return false, nil
	}
	return true, err
}

// Finish checks the shared settings once all are set and fills in their
// defaults: the model directory (required) made absolute, the model name
// (the directory's), the ONNX Runtime library (ResolveLibrary with
// getenv). Its errors are INVALID_REQUEST naming the setting.
func (m *ModelSettings) Finish(getenv func(string) string) error {
	if strings.TrimSpace(m.Model) == "" {
		return sdk.InvalidParam("model", "setting model (the model directory) is required")
	}
	var err error
	if m.Model, err = filepath.Abs(m.Model); err != nil {
		return sdk.InvalidParam("model", "setting model: %v", err)
	}
	if m.ModelName == "" {
		m.ModelName = filepath.Base(m.Model)
	}
	if m.ORTLibrary == "" {
		m.ORTLibrary = ResolveLibrary(getenv)
	} else if strings.ContainsRune(m.ORTLibrary, '/') {
		if m.ORTLibrary, err = filepath.Abs(m.ORTLibrary); err != nil {
			return sdk.InvalidParam("ort_library", "setting ort_library: %v", err)
		}
	}
	return nil
}

// SettingError is the INVALID_REQUEST for setting name that failed to
// decode with err; nil when err is nil.
func SettingError(name string, err error) error {
	if err == nil {
		return nil
	}
	return sdk.InvalidParam(name, "setting %s: %v", name, err)
}
