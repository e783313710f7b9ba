//go:build unix

package remotepull

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// stateLock is the open lock file while this process polls.
var stateLock *os.File

// lockStateDir takes an exclusive lock on DIR/lock, held until
// unlockStateDir: a second maddy on the same state_dir would poll the same
// accounts into the same ledger.
func lockStateDir(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("another maddy already runs remote_pull on this state directory (%s is locked): stop it first", f.Name())
		}
		return fmt.Errorf("locking %s: %w", f.Name(), err)
	}
	// The pid, for 'remote-pull add' and 'remove' to send the reload
	// signal to; only the holder of the lock writes it.
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	stateLock = f
	return nil
}

// RunningPID is the pid of the maddy that runs remote_pull on the state
// directory dir, if one does.
func RunningPID(dir string) (int, bool) {
	if !Running(dir) {
		return 0, false
	}
	b, err := os.ReadFile(filepath.Join(dir, "lock"))
	if err != nil {
		return 0, false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid, err == nil && pid > 0
}

// Running reports whether a maddy holds the lock of the remote_pull state
// directory dir, that is, is running remote_pull there.
func Running(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "lock"))
	if err != nil {
		return false // never started here
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

func unlockStateDir() {
	if stateLock != nil {
		stateLock.Close() // releases the flock
		stateLock = nil
	}
}
