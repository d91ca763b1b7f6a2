package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"github.com/dsmil/l7/plugins/agent/internal/tools"
	"github.com/dsmil/l7/sdk"
	"github.com/dsmil/l7/sdk/dbe"
)

// TaskType is one task type of the plugin's `tasks` setting.
type TaskType struct {
	Name string
	// Instructions is the system prompt, a text/template over the task's
	// parameters ({{.alert}}).
	Instructions *template.Template
	// Parameters are the parameters a task must give, and the only ones it
	// may give.
	Parameters []string
	// Profile is the L7 profile of the LLM steps; Model, when set, the
	// model they name.
	Profile, Model string
	// OCRProfile is the L7 profile (OCRModel, when set, the model) of the
	// image transcriptions read_image sends through the router (Device
	// 45); required when Tools has read_image.
	OCRProfile, OCRModel string
	// Tools are the tools the task type may use (before ROE and
	// compartments filter them per task).
	Tools []string
	// ToolChoice is how LLM steps ask the model to use tools: "auto" or
	// "required". The last step allowed is always "none", for an answer.
	ToolChoice string
	// Budgets: LLM steps, tokens over all steps, completion tokens per
	// step, wall time. A task's timeout_seconds caps the wall time.
	MaxSteps, MaxTokens, StepMaxTokens int
	WallTime                           time.Duration
	// Temperature of the LLM steps; nil leaves the model's default.
	Temperature *float32
}

// taskTypeJSON is a task type as the setting spells it.
type taskTypeJSON struct {
	Instructions  string   `json:"instructions"`
	Parameters    []string `json:"parameters"`
	Profile       string   `json:"profile"`
	Model         string   `json:"model"`
	OCRProfile    string   `json:"ocr_profile"`
	OCRModel      string   `json:"ocr_model"`
	Tools         []string `json:"tools"`
	ToolChoice    string   `json:"tool_choice"`
	MaxSteps      *float64 `json:"max_steps"`
	MaxTokens     *float64 `json:"max_tokens"`
	StepMaxTokens *float64 `json:"step_max_tokens"`
	WallTime      string   `json:"wall_time"`
	Temperature   *float64 `json:"temperature"`
}

// Defaults of a task type's budgets.
const (
	DefaultMaxSteps      = 8
	DefaultMaxTokens     = 16384
	DefaultStepMaxTokens = 512
	DefaultWallTime      = 120 * time.Second
)

// parseTaskTypes reads the `tasks` setting: an object of task types by
// name. Errors name the setting path (tasks.NAME.field).
func parseTaskTypes(v any) (map[string]*TaskType, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, sdk.InvalidParam("tasks", "tasks: %v", err)
	}
	var byName map[string]json.RawMessage
	if err := json.Unmarshal(raw, &byName); err != nil || byName == nil {
		return nil, sdk.InvalidParam("tasks", "tasks: want an object of task types by name")
	}
	if len(byName) == 0 {
		return nil, sdk.InvalidParam("tasks", "tasks: no task type is configured")
	}
	out := map[string]*TaskType{}
	for name, b := range byName {
		tt, err := parseTaskType(name, b)
		if err != nil {
			return nil, sdk.InvalidParam("tasks", "tasks.%s: %v", name, err)
		}
		out[name] = tt
	}
	return out, nil
}

func parseTaskType(name string, b []byte) (*TaskType, error) {
	if !dbe.ValidProfile(name) {
		return nil, fmt.Errorf("a task type name is [a-z0-9][a-z0-9._-]*")
	}
	var j taskTypeJSON
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&j); err != nil {
		return nil, err
	}
	tt := &TaskType{Name: name, Parameters: j.Parameters, Profile: j.Profile, Model: j.Model,
		OCRProfile: j.OCRProfile, OCRModel: j.OCRModel, Tools: j.Tools,
		ToolChoice: j.ToolChoice, MaxSteps: DefaultMaxSteps, MaxTokens: DefaultMaxTokens, StepMaxTokens: DefaultStepMaxTokens, WallTime: DefaultWallTime}
	if strings.TrimSpace(j.Instructions) == "" {
		return nil, fmt.Errorf("instructions: required")
	}
	if !dbe.ValidProfile(j.Profile) {
		return nil, fmt.Errorf("profile: %q is not a valid L7 profile (the profile of the model its steps use)", j.Profile)
	}
	for i, p := range j.Parameters {
		if !validParam(p) || slices.Contains(j.Parameters[:i], p) {
			return nil, fmt.Errorf("parameters: %q is not a valid, unique name ([a-z_][a-z0-9_]*)", p)
		}
	}
	if len(j.Tools) == 0 {
		return nil, fmt.Errorf("tools: list at least one of %s", strings.Join(tools.Names(), ", "))
	}
	for _, n := range j.Tools {
		if _, ok := tools.Lookup(n); !ok {
			return nil, fmt.Errorf("tools: no tool is called %q (tools: %s)", n, strings.Join(tools.Names(), ", "))
		}
	}
	if j.OCRProfile != "" && !dbe.ValidProfile(j.OCRProfile) {
		return nil, fmt.Errorf("ocr_profile: %q is not a valid L7 profile", j.OCRProfile)
	}
	if j.OCRModel != "" && j.OCRProfile == "" {
		return nil, fmt.Errorf("ocr_model: needs ocr_profile")
	}
	if slices.Contains(j.Tools, "read_image") && j.OCRProfile == "" {
		return nil, fmt.Errorf("tools: read_image needs ocr_profile (the profile of the OCR model, Device 45, its images are transcribed by)")
	}
	switch j.ToolChoice {
	case "":
		tt.ToolChoice = "auto"
	case "auto", "required":
	default:
		return nil, fmt.Errorf(`tool_choice: %q, want "auto" or "required"`, j.ToolChoice)
	}
	for _, n := range []struct {
		name string
		v    *float64
		dst  *int
		lo   int
	}{{"max_steps", j.MaxSteps, &tt.MaxSteps, 1}, {"max_tokens", j.MaxTokens, &tt.MaxTokens, 1}, {"step_max_tokens", j.StepMaxTokens, &tt.StepMaxTokens, 1}} {
		if n.v == nil {
			continue
		}
		v, err := sdk.SettingInt(*n.v, n.lo)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", n.name, err)
		}
		*n.dst = v
	}
	if j.WallTime != "" {
		d, err := time.ParseDuration(j.WallTime)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("wall_time: %q is not a positive Go duration such as \"120s\"", j.WallTime)
		}
		tt.WallTime = d
	}
	if j.Temperature != nil {
		if *j.Temperature < 0 || *j.Temperature > 2 {
			return nil, fmt.Errorf("temperature: %v is not in [0, 2]", *j.Temperature)
		}
		t := float32(*j.Temperature)
		tt.Temperature = &t
	}
	tmpl, err := template.New(name).Option("missingkey=error").Parse(j.Instructions)
	if err != nil {
		return nil, fmt.Errorf("instructions: %v", err)
	}
	// Every parameter the template names must be declared: executing it
	// with the declared ones (empty) fails on any other.
	if _, err := render(tmpl, zeroParams(tt.Parameters)); err != nil {
		return nil, fmt.Errorf("instructions: %v (declare the parameters it uses in parameters)", err)
	}
	tt.Instructions = tmpl
	return tt, nil
}

func validParam(s string) bool {
	if s == "" || len(s) > 64 || !(s[0] == '_' || s[0] >= 'a' && s[0] <= 'z') {
		return false
	}
	return strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789_") == ""
}

func zeroParams(names []string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[n] = ""
	}
	return m
}

func render(t *template.Template, params map[string]string) (string, error) {
	var b strings.Builder
	if err := t.Execute(&b, params); err != nil {
		return "", err
	}
	return b.String(), nil
}

// checkParams checks a task's parameters against its type: every declared
// one given, no other, each at most maxParamBytes.
func (tt *TaskType) checkParams(p map[string]string) error {
	var missing, unknown []string
	for _, n := range tt.Parameters {
		if _, ok := p[n]; !ok {
			missing = append(missing, n)
		}
	}
	for k, v := range p {
		if !slices.Contains(tt.Parameters, k) {
			unknown = append(unknown, k)
		}
		if len(v) > maxParamBytes {
			return sdk.InvalidParam("parameters", "parameter %q is longer than %d bytes", k, maxParamBytes)
		}
	}
	sort.Strings(missing)
	sort.Strings(unknown)
	switch {
	case len(missing) > 0:
		return sdk.InvalidParam("parameters", "task type %q needs parameters %s", tt.Name, strings.Join(missing, ", "))
	case len(unknown) > 0:
		return sdk.InvalidParam("parameters", "task type %q takes no parameters %s (it takes: %s)", tt.Name, strings.Join(unknown, ", "), strings.Join(tt.Parameters, ", "))
	}
	return nil
}

// maxParamBytes caps one parameter's value.
const maxParamBytes = 4096
