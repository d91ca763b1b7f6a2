package pluginmgr

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/dsmil/l7/host/config"
	"github.com/dsmil/l7/sdk"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// ErrSettings reports plugin settings in dsmil.hcl that do not match the
// schema the plugin reports. It is never retried.
var ErrSettings = errors.New("pluginmgr: invalid plugin settings")

// pluginConfig builds the Configure request from dsmil.hcl, decoding the
// plugin-specific settings against the schema the plugin reported.
func (i *Instance) pluginConfig(info *sdk.PluginInfo) (*sdk.Config, error) {
	settings := map[string]any{}
	if i.plugin.Settings != nil {
		vals, diags := config.DecodePluginSettings(i.plugin.Settings, info.Settings)
		if diags.HasErrors() {
			var b strings.Builder
			_ = config.WriteDiagnostics(&b, i.m.cfg.Files, diags)
			return nil, fmt.Errorf("%w:\n%s", ErrSettings, b.String())
		}
		for k, v := range vals {
			j, err := ctyJSON(v)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrSettings, k, err)
			}
			settings[k] = j
		}
	}
	return &sdk.Config{
		Name:         i.plugin.Name,
		DeviceID:     uint8(i.plugin.DeviceID),
		Profiles:     i.plugin.Profiles,
		MemoryBudget: uint64(i.plugin.MemoryBudget),
		Replica:      i.replica,
		Settings:     settings,
	}, nil
}

// ctyJSON converts a setting value to plain JSON-able Go values.
func ctyJSON(v cty.Value) (any, error) {
	b, err := ctyjson.Marshal(v, v.Type())
	if err != nil {
		return nil, err
	}
	var out any
	err = json.Unmarshal(b, &out)
	return out, err
}
