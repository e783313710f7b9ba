//go:build interop

package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// startMailutils runs GNU Mailutils 3.15 imap4d or pop3d (Debian's
// mailutils-imap4d and mailutils-pop3d, unpacked by setup.sh) as a daemon
// in the foreground with a configuration file of its own: one server on a
// loopback port with STARTTLS/STLS (tls-mode ondemand), the test user from a
// virtual-domain password file (crypt), its INBOX a Maildir owned by the
// mail user, and a transcript of every session in the log.
func startMailutils(t *testing.T, proto string) *upstream {
	t.Helper()
	root := cacheRoot(t, "mailutils")
	dir := serverDir(t)
	ca := harness.NewCA(t)
	addr := harness.FreePort(t)
	copyFile(t, filepath.Join(dir, "cert.pem"), ca.CertFile, 0o644)
	copyFile(t, filepath.Join(dir, "key.pem"), ca.KeyFile, 0o600)
	const user, domain = "remote-alice", "example.net"
	home := filepath.Join(dir, "home", user)
	inbox := filepath.Join(home, "INBOX") // where the virtdomain module puts it
	for _, d := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(inbox, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	chownR(t, filepath.Join(dir, "home"), mailUID, mailGID)
	writeFile(t, filepath.Join(dir, "domains", domain),
		fmt.Sprintf("%s:%s:%d:%d::%s:/bin/false\n", user, upHash, mailUID, mailGID, home), 0o644)
	lock := filepath.Join(dir, "lock")
	if err := os.MkdirAll(lock, 0o1777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(lock, 0o1777); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, proto+".conf")
	writeFile(t, conf, fmt.Sprintf(`logging { syslog false; }
auth {
  authorization virtdomain;
  authentication generic;
}
virtdomain { passwd-dir %[1]s/domains; }
mailbox { mailbox-type maildir; }
mandatory-locking {
  enable yes;
  lock-directory %[1]s/lock;
}
tls-file-checks {
  key-file none;
  cert-file none;
  ca-file none;
}
server %[2]s {
  tls-mode ondemand;
  tls {
    ssl-certificate-file %[1]s/cert.pem;
    ssl-key-file %[1]s/key.pem;
  }
  transcript yes;
}
`, dir, addr), 0o644)

	prog, greeting, name := "imap4d", "* OK", "Mailutils imap4d"
	if proto == "pop3" {
		prog, greeting, name = "pop3d", "+OK", "Mailutils pop3d"
	}
	cmd := exec.Command(filepath.Join(root, "usr/sbin", prog), "--config-file="+conf, "--daemon", "--foreground")
	cmd.Dir = dir
	d := startDaemon(t, name, cmd, filepath.Join(dir, prog+".log"))
	d.waitGreeting(t, addr, greeting)
	up := &upstream{Name: name, Proto: proto, Addr: addr, StartTLS: true, CA: ca, User: user + "@" + domain, Log: d.log}
	if proto == "pop3" {
		up.writeMaildrop = func(t *testing.T, msgs [][]byte) { writeMaildir(t, inbox, msgs) }
		// pop3d adds an X-UIDL field to every message it serves (and
		// writes it into the file at the end of the session).
		up.served = stripXUIDL
	}
	return up
}
