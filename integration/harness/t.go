package harness

import (
	"fmt"
	"os"
	"sync"
)

// T is what the harness needs of a test. *testing.T and *testing.B satisfy
// it; Script does for programs such as the demo and the benchmarks.
type T interface {
	Helper()
	Cleanup(func())
	Error(args ...any)
	Errorf(format string, args ...any)
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	TempDir() string
	Failed() bool
}

// Script is a T for a program: Fatal prints the message, runs the cleanups
// (stopping Dovecot and maddy) and exits with status 1. Call Close at the
// end of main.
type Script struct {
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	dir      string
}

var _ T = (*Script)(nil)

func (s *Script) Helper() {}

func (s *Script) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *Script) Error(args ...any) { s.fail(fmt.Sprint(args...)) }

func (s *Script) Errorf(format string, args ...any) { s.fail(fmt.Sprintf(format, args...)) }

func (s *Script) Fatal(args ...any) { s.fail(fmt.Sprint(args...)); s.exit() }

func (s *Script) Fatalf(format string, args ...any) { s.fail(fmt.Sprintf(format, args...)); s.exit() }

func (s *Script) Logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func (s *Script) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// TempDir returns a new directory, removed by Close. Like t.TempDir, it is
// a fresh one at each call.
func (s *Script) TempDir() string {
	s.mu.Lock()
	if s.dir == "" {
		d, err := os.MkdirTemp("", "remote_pull-")
		if err != nil {
			s.mu.Unlock()
			s.Fatalf("harness: %v", err)
		}
		s.dir = d
	}
	root := s.dir
	s.mu.Unlock()
	d, err := os.MkdirTemp(root, "")
	if err != nil {
		s.Fatalf("harness: %v", err)
	}
	return d
}

func (s *Script) fail(msg string) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	fmt.Fprintln(os.Stderr, msg)
}

func (s *Script) exit() {
	s.Close()
	os.Exit(1)
}

// Close runs the cleanups, last registered first, and removes the
// temporary directories.
func (s *Script) Close() {
	s.mu.Lock()
	cleanups := s.cleanups
	s.cleanups = nil
	dir := s.dir
	s.mu.Unlock()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	if dir != "" {
		os.RemoveAll(dir)
	}
}
