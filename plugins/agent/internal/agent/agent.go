// Package agent is the agent plugin's workload (Device 48, issue 12): a
// constrained tool-using harness. A task names a task type of the plugin's
// settings; the harness renders its instructions, then asks the model for
// tool calls, step by step, each step an L7_CHAT_REQ through the host's
// router with the task's own tenant and attributes, runs the calls with the
// tools the task's ROE and compartments allow, and ends when the model
// answers without a tool call or a budget runs out.
package agent

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync/atomic"

	"github.com/dsmil/l7/plugins/agent/internal/tools"
	"github.com/dsmil/l7/sdk"
	"github.com/hashicorp/go-hclog"
)

// Plugin identity.
const (
	Name            = "agent"
	Version         = "0.1.0"
	DefaultDeviceID = 48
)

// Workload is the agent workload. Create it with New.
type Workload struct {
	cfg atomic.Pointer[config]
}

var (
	_ sdk.Workload    = (*Workload)(nil)
	_ sdk.AgentRunner = (*Workload)(nil)
	_ sdk.Closer      = (*Workload)(nil)
)

// New returns an unconfigured agent workload.
func New() *Workload { return &Workload{} }

type config struct {
	deviceID  uint8
	profiles  []string
	tasks     map[string]*TaskType
	workspace *tools.Workspace
	artifacts string // base directory; "" = no write tools
	limits    tools.Limits
	log       hclog.Logger
}

var settings = []sdk.SettingSpec{
	{Name: "tasks", Type: "any", Required: true, Description: "Task types by name: instructions, parameters, profile, model, tools, tool_choice, max_steps, max_tokens, step_max_tokens, wall_time, temperature."},
	{Name: "workspaces", Type: "map(string)", Description: "Read-only workspace roots: name = directory."},
	{Name: "artifacts_dir", Type: "string", Description: "Where write tools put artifacts, as DIR/TENANT/TASK-ID/. Unset: write tools fail."},
	{Name: "read_bytes", Type: "number", Description: "Bytes read_file returns and extract_iocs reads at most. Default 65536."},
	{Name: "grep_matches", Type: "number", Description: "Matches grep returns at most. Default 100."},
	{Name: "image_bytes", Type: "number", Description: "Size of the image files read_image sends at most. Default 8388608 (8 MiB)."},
}

// Info describes the plugin.
func (w *Workload) Info(context.Context) (*sdk.PluginInfo, error) {
	info := &sdk.PluginInfo{
		Name: Name, Version: Version, APIVersions: []uint32{sdk.APIVersion}, DeviceID: DefaultDeviceID,
		Capabilities: []sdk.Capability{sdk.CapAgent}, Accelerator: "cpu", Settings: settings,
	}
	if c := w.cfg.Load(); c != nil {
		info.DeviceID, info.Profiles = c.deviceID, c.profiles
		for name := range c.tasks {
			info.Models = append(info.Models, name)
		}
		sort.Strings(info.Models)
	}
	return info, nil
}

// Configure reads the settings and opens the workspace.
func (w *Workload) Configure(_ context.Context, cfg *sdk.Config) error {
	c := &config{deviceID: cfg.DeviceID, profiles: cfg.Profiles, log: cfg.Logger}
	if c.log == nil {
		c.log = hclog.NewNullLogger()
	}
	known := map[string]bool{}
	for _, s := range settings {
		known[s.Name] = true
	}
	for k := range cfg.Settings {
		if !known[k] {
			return sdk.InvalidParam(k, "unknown setting %q", k)
		}
	}
	var err error
	if c.tasks, err = parseTaskTypes(cfg.Settings["tasks"]); err != nil {
		return err
	}
	roots := map[string]string{}
	if v, ok := cfg.Settings["workspaces"]; ok {
		m, ok := v.(map[string]any)
		if !ok {
			return sdk.InvalidParam("workspaces", "want a map of root names to directories")
		}
		for k, d := range m {
			s, ok := d.(string)
			if !ok || s == "" {
				return sdk.InvalidParam("workspaces", "workspaces.%s: want a directory", k)
			}
			roots[k] = s
		}
	}
	if v, ok := cfg.Settings["artifacts_dir"]; ok {
		s, ok := v.(string)
		if !ok || s == "" {
			return sdk.InvalidParam("artifacts_dir", "want a directory")
		}
		c.artifacts = s
	}
	for _, n := range []struct {
		name string
		dst  *int
	}{{"read_bytes", &c.limits.ReadBytes}, {"grep_matches", &c.limits.GrepMatches}} {
		if v, ok := cfg.Settings[n.name]; ok {
			if *n.dst, err = sdk.SettingInt(v, 1); err != nil {
				return sdk.InvalidParam(n.name, "%s: %v", n.name, err)
			}
		}
	}
	if v, ok := cfg.Settings["image_bytes"]; ok {
		n, err := sdk.SettingInt(v, 1)
		if err != nil {
			return sdk.InvalidParam("image_bytes", "image_bytes: %v", err)
		}
		if n > maxImageBytes {
			return sdk.InvalidParam("image_bytes", "image_bytes: %d is over %d (the request must fit in one DBE frame)", n, maxImageBytes)
		}
		c.limits.ImageBytes = int64(n)
	}
	if c.workspace, err = tools.OpenWorkspace(roots); err != nil {
		return sdk.InvalidParam("workspaces", "%v", err)
	}
	if old := w.cfg.Swap(c); old != nil {
		_ = old.workspace.Close()
	}
	return nil
}

// Health is nil once configured.
func (w *Workload) Health(context.Context) error {
	if w.cfg.Load() == nil {
		return sdk.ErrNotConfigured
	}
	return nil
}

// Close closes the workspace.
func (w *Workload) Close(context.Context) error {
	if c := w.cfg.Swap(nil); c != nil {
		if err := c.workspace.Close(); err != nil {
			return fmt.Errorf("agent: closing the workspace: %w", err)
		}
	}
	return nil
}

// maxImageBytes caps image_bytes: an image travels in one L7_CHAT_REQ,
// whose frame is at most dbe.DefaultMaxFrameSize (16 MiB).
const maxImageBytes = 12 << 20

var errNotConfigured = errors.New("agent: not configured")
