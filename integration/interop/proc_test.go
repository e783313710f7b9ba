//go:build interop

package interop

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// daemon is a server process started by a test: stdout and stderr go to a
// log file, and it dies with the test process (Pdeathsig) if the cleanups
// never run.
type daemon struct {
	name    string
	proc    *harness.Process
	logPath string
	stopSig syscall.Signal // how stop asks it to end; SIGTERM by default
}

// startDaemon starts cmd and stops it (SIGTERM, then SIGKILL after 10 s) in
// t.Cleanup, showing the tail of its log when the test failed.
func startDaemon(t *testing.T, name string, cmd *exec.Cmd, logPath string) *daemon {
	t.Helper()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	// A process group of its own: Cyrus's master ends by signalling its
	// whole process group, which would otherwise take down every other
	// server the tests run as the mail user.
	cmd.SysProcAttr.Setpgid = true
	p, err := harness.StartProcess(cmd, logPath, syscall.SIGKILL)
	if err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	d := &daemon{name: name, proc: p, logPath: logPath}
	t.Cleanup(func() {
		exited := p.Exited()
		d.stop()
		if t.Failed() {
			state := "running until the test ended"
			if exited {
				state = fmt.Sprintf("had exited before the test ended (%v)", p.Err())
			}
			t.Logf("%s %s; log %s (tail):\n%s", name, state, logPath, harness.Tail(logPath, 60))
		}
	})
	return d
}

// stop ends the daemon, then kills whatever is left in its process group:
// session processes it forked, which outlive it when they hang (a Mailutils
// imap4d session child stuck in a futex was seen).
func (d *daemon) stop() {
	defer func() { _ = syscall.Kill(-d.proc.Pid(), syscall.SIGKILL) }()
	sig := d.stopSig
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	_ = d.proc.Stop(sig, 10*time.Second)
}

func (d *daemon) log() string {
	data, _ := os.ReadFile(d.logPath)
	return string(data)
}

// waitGreeting waits until addr greets with want ("* OK", "+OK") on plain
// TCP, the daemon exits, or 30 s pass: ports may accept before the server
// is ready.
func (d *daemon) waitGreeting(t *testing.T, addr, want string) {
	t.Helper()
	if err := d.proc.WaitGreeting(addr, want, nil); err != nil {
		t.Fatalf("%s on %s: %v\nlog:\n%s", d.name, addr, err, harness.Tail(d.logPath, 40))
	}
}
