package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// password_command end to end: a command that prints nothing is a status
// line of its own (not "auth failed", no login tried); once it prints the
// password, mail arrives; a password rotated upstream and in the "vault"
// is used after the reload signal, and the secret is never logged.
func TestPasswordCommand(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 700))
	// Polls only on the reload signal: no IDLE session that would notice
	// the new message and log in with the stale password first.
	conf := accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile, Poll: "1h",
		Extra: "        idle no\n"}.String()
	conf = strings.Replace(conf, "password_file upstream-password", "password_command cat vault", 1)
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Extra: conf,
		Files: map[string]string{"vault": ""},
	})
	vault := filepath.Join(m.StateDir, "vault")
	setVault := func(pw string) {
		t.Helper()
		if err := os.WriteFile(vault, []byte(pw+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	m.WaitLog(t, "password command failed: cat printed no password", waitLong)
	status := m.CLI(t, "remote-pull", "status")
	if !strings.Contains(status, "password command failed") || strings.Contains(status, "auth failed") {
		t.Errorf("status after an empty output:\n%s", status)
	}
	if out, code := m.CLIStatus(t, "remote-pull", "check", "acct"); code != 1 || !strings.Contains(out, "check failed: ") ||
		!strings.Contains(out, "password command failed: cat printed no password") {
		t.Errorf("check with an empty output: exit %d\n%s", code, out)
	}
	if n := up.LoginCount(upUser); n != 0 {
		t.Errorf("%d logins without a password", n)
	}

	setVault(upPass)
	m.Signal(t, syscall.SIGUSR2)
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)

	// Rotated upstream and in the vault: the cached password is stale,
	// and the reload runs the command again. poll_interval is an hour and
	// a refused login backs off for a minute: only the reload explains a
	// delivery within 30 seconds.
	const rotated = "rotated-Secret-42"
	up.SetPassword(t, upUser, rotated)
	harness.Eventually(t, waitLong, func() bool {
		c, err := up.DialIMAP(upUser, rotated)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "Dovecot takes the rotated password")
	setVault(rotated)
	up.Seed(t, upUser, "INBOX", harness.Message(2, 700))
	m.Signal(t, syscall.SIGUSR2)
	m.WaitMessages(t, localUser, localPass, "INBOX", 2, 30*time.Second)

	for _, secret := range []string{upPass, rotated} {
		if strings.Contains(m.Log(), secret) {
			t.Errorf("the log holds the password %q", secret)
		}
		if out := m.CLI(t, "remote-pull", "status", "--json"); strings.Contains(out, secret) {
			t.Errorf("status holds the password %q", secret)
		}
	}
}
