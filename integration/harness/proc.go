package harness

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// process is a started child whose exit is observed by one goroutine.
type process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the child has been reaped
	err  error         // cmd.Wait's result, valid after done
}

// startProcess starts cmd with stdin from /dev/null and stdout and stderr
// appended to outPath (files rather than pipes: a child that leaves
// grandchildren holding a pipe cannot make Wait hang). deathSig is what the
// child gets if the test process dies first.
func startProcess(cmd *exec.Cmd, outPath string, deathSig syscall.Signal) (*process, error) {
	out, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
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
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the child has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signal sends sig and waits up to timeout for the exit. It returns an error
// if the child is still running then.
func (p *process) signal(sig syscall.Signal, timeout time.Duration) error {
	if p.exited() {
		return nil
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("pid %d still running %v after %v", p.cmd.Process.Pid, timeout, sig)
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *process) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}
