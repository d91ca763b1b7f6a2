package pluginmgr

import (
	"os"

	"github.com/dsmil/l7/sdk"
)

// BaseEnv names the variables of the host's environment that every plugin
// process receives (when set): what any process needs to run, and the SDK's
// log level. A plugin block's pass_env adds names; nothing else of the
// host's environment (tenants' API keys!) reaches a plugin.
var BaseEnv = []string{"PATH", "HOME", "USER", "LANG", "LC_ALL", "TMPDIR", "TZ", "GOGC", "GOMEMLIMIT", "GOMAXPROCS", "GODEBUG", "GOTRACEBACK", sdk.EnvLogLevel}

// environment is a plugin process's environment as the host sets it: the
// BaseEnv and pass_env variables taken from the host's, the plugin block's
// env, and the host's name. go-plugin appends its own (the handshake cookie
// and PLUGIN_*), identity.AttachHandoff the identity pipe's descriptor
// number; with SkipHostEnv that is all the process gets.
func (i *Instance) environment() []string {
	var env []string
	seen := map[string]bool{}
	for _, names := range [][]string{BaseEnv, i.plugin.PassEnv} {
		for _, k := range names {
			if _, set := i.plugin.Env[k]; set || seen[k] {
				continue // the plugin block's env wins
			}
			seen[k] = true
			if v, ok := os.LookupEnv(k); ok {
				env = append(env, k+"="+v)
			}
		}
	}
	for k, v := range i.plugin.Env {
		env = append(env, k+"="+v)
	}
	return append(env, sdk.EnvHostName+"="+i.m.cfg.HostName)
}
