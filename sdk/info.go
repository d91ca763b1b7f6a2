package sdk

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/dsmil/l7/sdk/dbe"
	pluginv1 "github.com/dsmil/l7/sdk/proto/dsmil/plugin/v1"
	"github.com/hashicorp/go-hclog"
)

// APIVersion is the plugin API version this SDK implements. A plugin lists
// it in PluginInfo.APIVersions.
const APIVersion = 1

// Capability is something a plugin can do, as listed in
// PluginInfo.Capabilities.
type Capability string

// Capabilities a plugin may declare.
const (
	// CapChat: the plugin answers L7_CHAT_REQ (it implements Chatter).
	CapChat Capability = "chat"
	// CapStream: the plugin produces incremental deltas for streamed chats
	// rather than one delta with the whole answer.
	CapStream Capability = "stream"
	// CapAgent: the plugin runs L7_AGENT_TASK work.
	CapAgent Capability = "agent"
	// CapEmbed: the plugin answers L7_EMBED_REQ (it implements Embedder).
	CapEmbed Capability = "embed"
)

// Known reports whether c is one of the capabilities defined above.
func (c Capability) Known() bool {
	switch c {
	case CapChat, CapStream, CapAgent, CapEmbed:
		return true
	}
	return false
}

// SettingSpec describes one plugin-specific setting the plugin accepts in its
// dsmil.hcl block. The host decodes the block against these specs and hands
// the values to Configure as Config.Settings.
type SettingSpec struct {
	// Name is the attribute name inside the plugin block.
	Name string

	// Type is one of "string", "number", "bool", "list(string)",
	// "map(string)" and "any". An "any" setting takes any HCL value
	// (objects, lists of objects: structured configuration such as the
	// agent plugin's task types) and reaches Configure as encoding/json
	// decodes its JSON form; the plugin checks its shape.
	Type string

	// Required makes the setting mandatory.
	Required bool

	// Description is shown to users; it is not used in decoding.
	Description string
}

// settingTypes are the valid SettingSpec.Type spellings.
var settingTypes = []string{"string", "number", "bool", "list(string)", "map(string)", "any"}

// PluginInfo describes a plugin. It feeds `dsmil-host plugins list` and the
// host's routing table.
type PluginInfo struct {
	// Name is the plugin's name, e.g. "echo". It must be a valid DBE
	// profile-style name: [a-z0-9][a-z0-9._-]*, at most 64 bytes.
	Name string

	// Version is the plugin's version, e.g. "0.1.0". Required.
	Version string

	// APIVersions are the plugin API versions the plugin implements; it must
	// include APIVersion.
	APIVersions []uint32

	// DeviceID is the DSMIL device the plugin drives (0–103). After
	// Configure it should be the configured device.
	DeviceID uint8

	// Profiles are the DBE L7 profiles the plugin serves. Empty means the
	// plugin serves whatever profiles the host configures.
	Profiles []string

	// Capabilities say what the plugin can do. A plugin that implements
	// Chatter lists CapChat, and CapChat only then; one that implements
	// AgentRunner lists CapAgent.
	Capabilities []Capability

	// MemoryBudget is the memory the plugin needs or was given, in bytes;
	// 0 means unknown.
	MemoryBudget uint64

	// Accelerator is where the plugin computes: "cpu", "cpu-amx", "npu",
	// "gpu", ...
	Accelerator string

	// CPUFeatures are the CPU features the plugin uses or requires, e.g.
	// "avx512f", "amx-tile".
	CPUFeatures []string

	// Models are the model names the plugin serves.
	Models []string

	// Settings are the plugin-specific settings the plugin accepts.
	Settings []SettingSpec
}

// Has reports whether the plugin declares capability c.
func (i *PluginInfo) Has(c Capability) bool { return slices.Contains(i.Capabilities, c) }

// Validate checks that i is well-formed: a valid name, a version, APIVersion
// among APIVersions, a device id of at most dbe.MaxDeviceID, valid profile names,
// known capabilities and well-formed, unique settings. Errors wrap
// ErrInvalidInfo.
func (i *PluginInfo) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !dbe.ValidProfile(i.Name) {
		bad("name %q is not [a-z0-9][a-z0-9._-]* of 1-64 bytes", i.Name)
	}
	if i.Version == "" {
		bad("version is empty")
	}
	if !slices.Contains(i.APIVersions, APIVersion) {
		bad("api versions %v do not include %d", i.APIVersions, APIVersion)
	}
	if i.DeviceID > dbe.MaxDeviceID {
		bad("device id %d > %d", i.DeviceID, dbe.MaxDeviceID)
	}
	for _, p := range i.Profiles {
		if !dbe.ValidProfile(p) {
			bad("profile %q is not a valid L7 profile", p)
		}
	}
	if dup := firstDuplicate(i.Profiles); dup != "" {
		bad("profile %q listed twice", dup)
	}
	for _, c := range i.Capabilities {
		if !c.Known() {
			bad("unknown capability %q", c)
		}
	}
	if i.Has(CapStream) && !i.Has(CapChat) {
		bad("capability %q without %q", CapStream, CapChat)
	}
	names := make([]string, 0, len(i.Settings))
	for _, s := range i.Settings {
		if s.Name == "" {
			bad("a setting has no name")
		}
		if !slices.Contains(settingTypes, s.Type) {
			bad("setting %q has type %q, want one of %q", s.Name, s.Type, settingTypes)
		}
		names = append(names, s.Name)
	}
	if dup := firstDuplicate(names); dup != "" {
		bad("setting %q listed twice", dup)
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidInfo, errors.Join(errs...))
	}
	return nil
}

func firstDuplicate(s []string) string {
	seen := make(map[string]bool, len(s))
	for _, x := range s {
		if seen[x] {
			return x
		}
		seen[x] = true
	}
	return ""
}

// Config is a plugin's configuration from its dsmil.hcl block, handed to
// Workload.Configure.
type Config struct {
	// Name is the plugin block's name in dsmil.hcl (which may differ from
	// PluginInfo.Name when one binary is configured several times).
	Name string

	// DeviceID is the DSMIL device the plugin drives (0–103).
	DeviceID uint8

	// Profiles are the DBE L7 profiles this process serves.
	Profiles []string

	// MemoryBudget is the memory the plugin may use, in bytes; 0 means no
	// budget was set.
	MemoryBudget uint64

	// Replica is which of the block's replicas this process is, from 0.
	Replica int

	// Settings are the plugin-specific settings, decoded against
	// PluginInfo.Settings, as encoding/json decodes a JSON object: strings
	// are string, numbers float64, bools bool, list(string) []any and
	// map(string) map[string]any. Absent optional settings are absent.
	Settings map[string]any

	// Logger is the plugin's logger. Configure may keep it. It is not sent
	// over the wire; the SDK fills it in on the plugin side.
	Logger hclog.Logger
}

// Status is a plugin's load, as reported by a StatusReporter.
type Status struct {
	// Load is the current load from 0 (idle) to 1 (saturated).
	Load float64

	// InFlight is the number of requests being processed.
	InFlight int

	// QueueDepth is the number of requests accepted but waiting.
	QueueDepth int

	// MemoryUsed is the memory in use, in bytes.
	MemoryUsed uint64

	// TokensPerSecond is the recent generation throughput.
	TokensPerSecond float64

	// TokensTotal is the number of tokens generated since start.
	TokensTotal uint64
}

// infoToProto converts i for the wire.
func infoToProto(i *PluginInfo) *pluginv1.PluginInfo {
	p := &pluginv1.PluginInfo{
		Name:              i.Name,
		Version:           i.Version,
		ApiVersions:       i.APIVersions,
		DeviceId:          uint32(i.DeviceID),
		Profiles:          i.Profiles,
		MemoryBudgetBytes: i.MemoryBudget,
		Accelerator:       i.Accelerator,
		CpuFeatures:       i.CPUFeatures,
		Models:            i.Models,
	}
	for _, c := range i.Capabilities {
		p.Capabilities = append(p.Capabilities, string(c))
	}
	for _, s := range i.Settings {
		p.Settings = append(p.Settings, &pluginv1.SettingSpec{
			Name: s.Name, Type: s.Type, Required: s.Required, Description: s.Description,
		})
	}
	return p
}

// infoFromProto converts a wire PluginInfo. It fails only when a value
// cannot be represented (a device id over 255); see PluginInfo.Validate for
// the rest.
func infoFromProto(p *pluginv1.PluginInfo) (*PluginInfo, error) {
	if p.GetDeviceId() > math.MaxUint8 {
		return nil, fmt.Errorf("%w: device id %d > %d", ErrInvalidInfo, p.GetDeviceId(), dbe.MaxDeviceID)
	}
	i := &PluginInfo{
		Name:         p.GetName(),
		Version:      p.GetVersion(),
		APIVersions:  p.GetApiVersions(),
		DeviceID:     uint8(p.GetDeviceId()),
		Profiles:     p.GetProfiles(),
		MemoryBudget: p.GetMemoryBudgetBytes(),
		Accelerator:  p.GetAccelerator(),
		CPUFeatures:  p.GetCpuFeatures(),
		Models:       p.GetModels(),
	}
	for _, c := range p.GetCapabilities() {
		i.Capabilities = append(i.Capabilities, Capability(c))
	}
	for _, s := range p.GetSettings() {
		i.Settings = append(i.Settings, SettingSpec{
			Name: s.GetName(), Type: s.GetType(), Required: s.GetRequired(), Description: s.GetDescription(),
		})
	}
	return i, nil
}

// configToProto converts c for the wire.
func configToProto(c *Config) (*pluginv1.ConfigureRequest, error) {
	if c.Replica < 0 || c.Replica > math.MaxUint32 {
		return nil, fmt.Errorf("%w: replica %d out of range", ErrInvalidConfig, c.Replica)
	}
	req := &pluginv1.ConfigureRequest{
		Name:              c.Name,
		DeviceId:          uint32(c.DeviceID),
		Profiles:          c.Profiles,
		MemoryBudgetBytes: c.MemoryBudget,
		Replica:           uint32(c.Replica),
	}
	if len(c.Settings) > 0 {
		b, err := json.Marshal(c.Settings)
		if err != nil {
			return nil, fmt.Errorf("%w: settings: %w", ErrInvalidConfig, err)
		}
		req.SettingsJson = string(b)
	}
	return req, nil
}

// configFromProto converts a wire ConfigureRequest; the result has no
// Logger.
func configFromProto(p *pluginv1.ConfigureRequest) (*Config, error) {
	if p.GetDeviceId() > dbe.MaxDeviceID {
		return nil, InvalidParam("device_id", "device id %d > %d", p.GetDeviceId(), dbe.MaxDeviceID)
	}
	for _, prof := range p.GetProfiles() {
		if !dbe.ValidProfile(prof) {
			return nil, InvalidParam("profiles", "profile %q is not a valid L7 profile", prof)
		}
	}
	c := &Config{
		Name:         p.GetName(),
		DeviceID:     uint8(p.GetDeviceId()),
		Profiles:     p.GetProfiles(),
		MemoryBudget: p.GetMemoryBudgetBytes(),
		Replica:      int(p.GetReplica()),
		Settings:     map[string]any{},
	}
	if s := p.GetSettingsJson(); s != "" {
		if err := json.Unmarshal([]byte(s), &c.Settings); err != nil {
			return nil, InvalidParam("settings_json", "settings are not a JSON object: %v", err)
		}
		if c.Settings == nil { // the JSON text was null
			c.Settings = map[string]any{}
		}
	}
	return c, nil
}
