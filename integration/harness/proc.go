package harness

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// Process is a started server whose exit is observed by one goroutine. The
// harness runs Dovecot and maddy with it; integration/interop runs the
// other upstream servers with it.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the child has been reaped
	err  error         // cmd.Wait's result, valid after done
}

// StartProcess starts cmd with stdin from /dev/null and stdout and stderr
// appended to logPath (files rather than pipes: a child that leaves
// grandchildren holding a pipe cannot make Wait hang). deathSig is what the
// child gets if the test process dies first; cmd.SysProcAttr may hold
// other attributes (a process group), which are kept.
func StartProcess(cmd *exec.Cmd, logPath string, deathSig syscall.Signal) (*Process, error) {
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer out.Close() // the child has its own copy
	cmd.Stdin = nil
	cmd.Stdout = out
	cmd.Stderr = out
	setDeathSignal(cmd, deathSig)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Pid is the child's process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the child has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is how the child ended (cmd.Wait's result), nil while it runs.
func (p *Process) Err() error {
	if !p.Exited() {
		return nil
	}
	return p.err
}

// Signal sends sig without waiting.
func (p *Process) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Stop sends sig and waits up to timeout for the exit; if the child is
// still running then, it kills it and returns an error saying so.
func (p *Process) Stop(sig syscall.Signal, timeout time.Duration) error {
	if p.Exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
	}
	err := fmt.Errorf("pid %d still running %v after %v", p.Pid(), timeout, sig)
	p.Kill()
	return err
}

// Kill sends SIGKILL and waits for the exit.
func (p *Process) Kill() {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// WaitGreeting polls addr until a server greeting starting with want
// ("* OK", "+OK") arrives, the process exits, or 30 s pass: over TLS with
// tlsCfg, on plain TCP if it is nil. Servers' ports may accept before their
// login processes are ready, so a successful connect is not enough.
func (p *Process) WaitGreeting(addr, want string, tlsCfg *tls.Config) error {
	deadline := time.Now().Add(30 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("process exited: %v", p.err)
		}
		line, err := readGreeting(addr, tlsCfg)
		if err == nil && strings.HasPrefix(line, want) {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("unexpected greeting %q", line)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("no greeting within 30 s: %v", last)
}

func readGreeting(addr string, tlsCfg *tls.Config) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	// Room for a slow greeter; a timed-out attempt is retried anyway.
	_ = conn.SetDeadline(time.Now().Add(3 * time.Second))
	if tlsCfg != nil {
		conn = tls.Client(conn, tlsCfg)
	}
	return bufio.NewReader(conn).ReadString('\n')
}

// WaitAccept polls addr until it accepts a connection, the process exits,
// or 30 s pass.
func (p *Process) WaitAccept(addr string) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if p.Exited() {
			return fmt.Errorf("process exited: %v", p.err)
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("not accepting connections within 30 s")
}
