package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// MaddyEnv names the environment variable with the path of a prebuilt
// custom maddy binary; the Makefile sets it so the build happens once.
const MaddyEnv = "REMOTE_PULL_MADDY"

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// BuildMaddy returns the path of the custom maddy binary: $REMOTE_PULL_MADDY
// if set, else `go build -o TMP github.com/remote-pull/remote_pull/cmd/maddy`, once per test process
// (a cold build takes about two minutes, later ones share the result). The
// build lands in a directory under os.TempDir() that Main removes when the
// tests end; without a TestMain calling Main that directory is left behind.
func BuildMaddy(t T) string {
	t.Helper()
	if p := os.Getenv(MaddyEnv); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("harness: $%s: %v", MaddyEnv, err)
		}
		return p
	}
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "remote_pull-maddy-")
		if build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "maddy")
		t.Logf("harness: building github.com/remote-pull/remote_pull/cmd/maddy (set $%s to skip)", MaddyEnv)
		cmd := exec.Command("go", "build", "-o", build.bin, "github.com/remote-pull/remote_pull/cmd/maddy")
		out, err := cmd.CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go build github.com/remote-pull/remote_pull/cmd/maddy: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("harness: %v", build.err)
	}
	return build.bin
}

// Main runs the tests and then removes the binary BuildMaddy built, if any.
// Use it from a package's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(harness.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
	return code
}
