//go:build interop

// Package interop runs remote_pull's end-to-end basics against upstream
// servers other than Dovecot (which `make test` covers, as it covers maddy as
// an upstream): Cyrus IMAP, Courier IMAP and POP3, GNU Mailutils imap4d and
// pop3d, and popa3d.
//
// `make interop` runs setup.sh, which unpacks the servers' Debian packages into
// a cache directory without installing them (they conflict with Dovecot), and
// then `go test -tags interop ./integration/interop/`. The tests start every
// server in the foreground from that cache, with its configuration in a
// temporary directory, on 127.0.0.1 high ports. Courier and popa3d look for
// files at fixed paths (/etc/courier, /run/courier, /var/mail, /etc/passwd):
// they run in a private mount and PID namespace (unshare) where /etc, /usr
// or /var/lib are read-only overlays of the test's files and the cache on
// the real directories, and /run or /var/mail the test's own, so nothing
// outside the temporary directories is written. That, and daemons that
// switch to the mail user, need root: the tests fail (never skip) without it.
//
// Each test logs a "RESULT | server | check | outcome" line: the table in
// README.md ("Interoperability") comes from them.
package interop

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

const (
	localUser = "alice@example.org"
	localPass = "local-secret"
	upPass    = "upstream-secret"
	// upHash is upPass as SHA-512 crypt, for servers that want crypt(3).
	upHash = "$6$rpinterop$xeGN55FFAuDwKYJYNwu8554443uWd8PYd4M7K.RsMVs87BiAAIY03KIoh.Gj8xQvDL5jFLCWsVbhnAGDKkHSD1"
	// waitLong guards against hangs; nothing asserts on speed with it.
	waitLong = 90 * time.Second
)

// The inetd helper: the test binary re-executed inside popa3d's namespace
// accepts connections and runs one server process per connection on it.
const (
	inetdListenEnv = "RP_INTEROP_INETD_LISTEN"
	inetdArgsEnv   = "RP_INTEROP_INETD_ARGS" // NUL-separated argv
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(inetdListenEnv); addr != "" {
		os.Exit(inetd(addr, strings.Split(os.Getenv(inetdArgsEnv), "\x00")))
	}
	os.Exit(harness.Main(m))
}

// inetd accepts on addr and runs argv for each connection with the
// connection as its stdin and stdout, as inetd does for popa3d.
func inetd(addr string, argv []string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "inetd:", err)
		return 1
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			fmt.Fprintln(os.Stderr, "inetd:", err)
			return 1
		}
		f, err := c.(*net.TCPConn).File()
		c.Close()
		if err != nil {
			fmt.Fprintln(os.Stderr, "inetd:", err)
			continue
		}
		cmd := exec.Command(argv[0], argv[1:]...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = f, f, os.Stderr
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, "inetd:", err)
		} else {
			go cmd.Wait()
		}
		f.Close()
	}
}

// cacheRoot is the unpacked root of one server's packages (setup.sh).
func cacheRoot(t *testing.T, server string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("interop tests need root: the servers run in mount namespaces and switch to the mail user")
	}
	dir := os.Getenv("REMOTE_PULL_INTEROP_CACHE")
	if dir == "" {
		dir = "/var/tmp/remote_pull-interop" // as in setup.sh
	}
	root := filepath.Join(dir, server)
	if _, err := os.Stat(filepath.Join(root, ".unpacked")); err != nil {
		t.Fatalf("%s is not unpacked in %s: run `make interop` (integration/interop/setup.sh fetches the servers)", server, dir)
	}
	return root
}

// serverDir is a fresh temporary directory that the mail user (which the
// servers switch to) can enter.
func serverDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{dir, filepath.Dir(dir)} {
		st, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, st.Mode().Perm()|0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// mailUID is Debian's mail user (8:8), which owns the upstream mailboxes:
// the servers refuse root.
const mailUID, mailGID = 8, 8

func chownR(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	err := filepath.Walk(dir, func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, uid, gid)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, dst, src string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, dst, string(data), mode)
}

// etcOverlay writes passwd, group and shadow into etc, the upper layer of
// a namespace's /etc overlay: the system's files with the given lines
// appended, so that users a package's postinst would create exist only for
// the server under test.
func etcOverlay(t *testing.T, etc, passwd, group, shadow string) {
	t.Helper()
	for _, f := range []struct {
		name, extra string
		mode        os.FileMode
	}{{"passwd", passwd, 0o644}, {"group", group, 0o644}, {"shadow", shadow, 0o640}} {
		data, err := os.ReadFile(filepath.Join("/etc", f.name))
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > 0 && data[len(data)-1] != '\n' {
			data = append(data, '\n')
		}
		writeFile(t, filepath.Join(etc, f.name), string(data)+f.extra, f.mode)
	}
}
