//go:build !linux

package harness

import (
	"os/exec"
	"syscall"
)

// setDeathSignal is a no-op outside Linux: only Linux has a parent-death
// signal. Cleanups still stop every process.
func setDeathSignal(cmd *exec.Cmd, sig syscall.Signal) {}
