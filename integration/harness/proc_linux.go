package harness

import (
	"os/exec"
	"syscall"
)

// setDeathSignal asks the kernel to send sig to the child when the test
// process dies without running its cleanups (a panic in another goroutine,
// a timeout kill), so no server outlives the test binary.
func setDeathSignal(cmd *exec.Cmd, sig syscall.Signal) {
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = sig
}
