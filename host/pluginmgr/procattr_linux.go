package pluginmgr

import (
	"os/exec"
	"syscall"
)

// bindToHost makes the kernel send the plugin SIGKILL if the host process
// dies without stopping it (a crash, kill -9), so no plugin outlives its
// host holding a model's memory.
func bindToHost(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
