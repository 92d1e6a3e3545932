//go:build unix

package gitsrc

import (
	"os/exec"
	"syscall"
)

// killGroup makes cancellation kill git and everything it started (remote
// helpers, the SSH client), not only git itself.
func killGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
}
