//go:build interop

package interop

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// popa3dRun is the namespace's init for popa3d, which takes everything from
// paths fixed at build time: system users (PAM, getpwnam) from /etc, its
// privilege-separation user "popa3d" and chroot /var/lib/popa3d, and
// mailboxes in /var/mail. /etc and /var/lib become read-only overlays of the
// test's files on the real ones, and /var/mail the test's directory. Then
// the test binary itself takes over as an inetd that runs popa3d per
// connection.
const popa3dRun = `#!/bin/sh
set -e
D="$1"; shift
mount -t overlay overlay -o "lowerdir=$D/etc:/etc" /etc
mount -t overlay overlay -o "lowerdir=$D/varlib:/var/lib" /var/lib
mount --bind "$D/mail" /var/mail
exec "$@"
`

// popa3d's users in the namespace: the mailbox owner and the unprivileged
// user its pre-authentication process runs as.
const popa3dUID, popa3dPrivUID = 40001, 40002

// startPopa3d runs popa3d 1.0.3 (Debian's popa3d, unpacked by setup.sh) as
// inetd would, one process per connection with the connection on stdin and
// stdout, in a namespace where the test user exists (PAM, pam_unix, a crypt
// password) and owns /var/mail/USER, an mbox. popa3d has no TLS.
func startPopa3d(t *testing.T) *upstream {
	t.Helper()
	root := cacheRoot(t, "popa3d")
	dir := serverDir(t)
	addr := harness.FreePort(t)
	const user = "remote-alice"
	etcOverlay(t, filepath.Join(dir, "etc"),
		fmt.Sprintf("%s:x:%d:%d::/nonexistent:/usr/sbin/nologin\npopa3d:x:%d:%d:popa3d:/var/lib/popa3d:/usr/sbin/nologin\n",
			user, popa3dUID, popa3dUID, popa3dPrivUID, popa3dPrivUID),
		fmt.Sprintf("%s:x:%d:\npopa3d:x:%d:\n", user, popa3dUID, popa3dPrivUID),
		fmt.Sprintf("%s:%s:19000:0:99999:7:::\npopa3d:*:19000:0:99999:7:::\n", user, upHash))
	copyFile(t, filepath.Join(dir, "etc/pam.d/popa3d"), filepath.Join(root, "etc/pam.d/popa3d"), 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "varlib/popa3d"), 0o755); err != nil {
		t.Fatal(err)
	}
	mail := filepath.Join(dir, "mail")
	if err := os.MkdirAll(mail, 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(mail, 0o1777); err != nil {
		t.Fatal(err)
	}
	mbox := filepath.Join(mail, user)
	writeFile(t, mbox, "", 0o600)
	if err := os.Chown(mbox, popa3dUID, popa3dUID); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(dir, "run.sh")
	writeFile(t, script, popa3dRun, 0o755)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "--pid", "--fork", "--kill-child",
		"sh", script, dir, self)
	cmd.Env = append(os.Environ(), inetdListenEnv+"="+addr, inetdArgsEnv+"="+filepath.Join(root, "usr/sbin/popa3d"))
	d := startDaemon(t, "popa3d", cmd, filepath.Join(dir, "popa3d.log"))
	d.stopSig = syscall.SIGKILL // unshare ignores SIGTERM; the namespace dies with it
	d.waitGreeting(t, addr, "+OK")
	return &upstream{
		Name: "popa3d", Proto: "pop3", Addr: addr, User: user,
		CA: harness.NewCA(t), // unused: popa3d has no TLS
		writeMaildrop: func(t *testing.T, msgs [][]byte) {
			var b bytes.Buffer
			for _, m := range msgs {
				b.WriteString("From sender@example.net Tue Jan  2 03:04:05 2024\n")
				b.Write(m)
				if !bytes.HasSuffix(m, []byte("\n")) {
					b.WriteString("\n")
				}
				b.WriteString("\n")
			}
			f, err := os.OpenFile(mbox, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(b.Bytes()); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
		},
		// popa3d logs to syslog only, which these tests do not run.
		Log: func() string { return "(popa3d logs to syslog only)\n" + d.log() },
	}
}
