//go:build interop

package interop

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
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
	cmd     *exec.Cmd
	logPath string
	stopSig syscall.Signal // how stop asks it to end; SIGTERM by default
	done    chan struct{}
	err     error
}

// startDaemon starts cmd and stops it (SIGTERM, then SIGKILL after 10 s) in
// t.Cleanup, showing the tail of its log when the test failed.
func startDaemon(t *testing.T, name string, cmd *exec.Cmd, logPath string) *daemon {
	t.Helper()
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = out, out
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	// A process group of its own: Cyrus's master ends by signalling its
	// whole process group, which would otherwise take down every other
	// server the tests run as the mail user.
	cmd.SysProcAttr.Setpgid = true
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	d := &daemon{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		d.err = cmd.Wait()
		close(d.done)
	}()
	t.Cleanup(func() {
		exited := d.exited()
		d.stop()
		if t.Failed() {
			state := "running until the test ended"
			if exited {
				state = fmt.Sprintf("had exited before the test ended (%v)", d.err)
			}
			t.Logf("%s %s; log %s (tail):\n%s", name, state, logPath, harness.Tail(logPath, 60))
		}
	})
	return d
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop ends the daemon, then kills whatever is left in its process group:
// session processes it forked, which outlive it when they hang (a Mailutils
// imap4d session child stuck in a futex was seen).
func (d *daemon) stop() {
	defer func() { _ = syscall.Kill(-d.cmd.Process.Pid, syscall.SIGKILL) }()
	if d.exited() {
		return
	}
	sig := d.stopSig
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	_ = d.cmd.Process.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
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
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if d.exited() {
			t.Fatalf("%s exited: %v\nlog:\n%s", d.name, d.err, harness.Tail(d.logPath, 40))
		}
		line, err := readGreeting(addr)
		if err == nil && strings.HasPrefix(line, want) {
			return
		}
		if err == nil {
			err = fmt.Errorf("unexpected greeting %q", line)
		}
		last = err
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s on %s: no greeting within 30 s: %v\nlog:\n%s", d.name, addr, last, harness.Tail(d.logPath, 40))
}

func readGreeting(addr string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	return bufio.NewReader(c).ReadString('\n')
}

// portOf is the port of "host:port".
func portOf(addr string) string {
	_, port, _ := net.SplitHostPort(addr)
	return port
}
