package harness

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// handedOut holds every port FreePort returned in this process: the kernel
// may offer a port again once its listener is closed, and two listeners of
// one Dovecot on one port stop it at start.
var handedOut struct {
	sync.Mutex
	ports map[string]bool
}

// FreePort returns a loopback address "127.0.0.1:PORT" whose port was free a
// moment ago (found by listening on 127.0.0.1:0 and closing), and that no
// earlier call in this process returned. Another process may take it before
// the caller binds, which is rare enough for tests.
func FreePort(t T) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil {
		handedOut.ports = map[string]bool{}
	}
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("harness: free port: %v", err)
		}
		addr := l.Addr().String()
		if err := l.Close(); err != nil {
			t.Fatalf("harness: free port: %v", err)
		}
		if !handedOut.ports[addr] {
			handedOut.ports[addr] = true
			return addr
		}
	}
}

// Port returns the port part of "host:port", for configurations that name
// "localhost:PORT" (the name the test certificates carry).
func Port(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return port
}

// makeTraversable lets other users (Dovecot's unprivileged processes) walk
// into dir: dir itself gets mode 0755 and its parent, the per-test directory
// that the testing package creates with mode 0700, gets o+x. Nothing above
// that is touched.
func makeTraversable(t T, dir string) {
	t.Helper()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatalf("harness: %v", err)
	}
	parent := filepath.Dir(dir)
	st, err := os.Stat(parent)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if st.Mode().Perm()&0o001 == 0 {
		if err := os.Chmod(parent, st.Mode().Perm()|0o011); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
}

// Tail returns at most the last n lines of the file at path, for failure
// reports.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.SplitAfter(string(data), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}

// WaitLogFile waits until a line containing substr is appended to the file
// at path, at most timeout: what the file held already does not count, so
// that a caller can wait for the next occurrence of a line it has seen.
func WaitLogFile(path, substr string, timeout time.Duration) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		return err
	}
	want := []byte(substr)
	var carry []byte
	buf := make([]byte, 64<<10)
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); {
		n, _ := f.Read(buf)
		if n == 0 {
			time.Sleep(2 * time.Millisecond)
			continue
		}
		data := append(carry, buf[:n]...)
		if bytes.Contains(data, want) {
			return nil
		}
		carry = append([]byte(nil), data[max(0, len(data)-len(want)):]...)
	}
	return fmt.Errorf("%q not appended to %s within %v", substr, path, timeout)
}

// Eventually polls cond until it holds, failing after timeout. The timeout
// guards against a hang; it is not a speed assertion.
func Eventually(t T, timeout time.Duration, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("harness: still waiting for %s after %v", what, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
