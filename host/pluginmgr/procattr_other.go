//go:build !linux

package pluginmgr

import "os/exec"

// bindToHost has no portable equivalent off Linux.
func bindToHost(*exec.Cmd) {}
