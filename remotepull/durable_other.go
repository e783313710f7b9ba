//go:build !linux

package remotepull

import "syscall"

// syncStorage: without syncfs, sync(2) flushes every file system.
func syncStorage() error {
	syscall.Sync()
	return nil
}
