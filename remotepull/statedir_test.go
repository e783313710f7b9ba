//go:build unix

package remotepull

import (
	"os"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/internal/account"
)

// A second poller on the same state directory is refused with a clear
// message, and the lock is free again once released.
func TestStateDirLock(t *testing.T) {
	dir := t.TempDir()
	if err := lockStateDir(dir); err != nil {
		t.Fatal(err)
	}
	first := stateLock
	stateLock = nil
	// flock is per open file: a second open, as another maddy's, conflicts.
	err := lockStateDir(dir)
	if err == nil || !strings.Contains(err.Error(), "another maddy already runs remote_pull") {
		t.Fatalf("second lock: %v", err)
	}
	// The holder's pid is there for 'remote-pull add' to signal.
	if pid, ok := RunningPID(dir); !ok || pid != os.Getpid() {
		t.Errorf("RunningPID: %d, %v; want %d", pid, ok, os.Getpid())
	}
	stateLock = first
	unlockStateDir()
	if pid, ok := RunningPID(dir); ok {
		t.Errorf("RunningPID after unlock: %d", pid)
	}
	if err := lockStateDir(dir); err != nil {
		t.Fatalf("after unlock: %v", err)
	}
	unlockStateDir()
}

// Close waits longer than a delivery may take: a SIGTERM during a slow
// delivery must not close the ledger before the delivery is recorded.
func TestCloseOutlastsADelivery(t *testing.T) {
	if closeTimeout <= account.DeliveryTimeout {
		t.Fatalf("closeTimeout %v does not outlast account.DeliveryTimeout %v", closeTimeout, account.DeliveryTimeout)
	}
}
