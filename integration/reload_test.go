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

// A wrong password backs off (at least a minute: no hammering of the
// upstream); fixing the password file and sending maddy's reload signal
// retries at once.
func TestReloadFixesPassword(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 700))
	bin := harness.BuildMaddy(t)
	m := harness.StartMaddy(t, bin, harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Extra: accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile}.String(),
		Files: map[string]string{"upstream-password": "wrong-password\n"},
	})
	m.WaitLog(t, "auth failed", waitLong)
	time.Sleep(500 * time.Millisecond) // Dovecot logs a little late
	attempts := up.LoginCount(upUser)
	time.Sleep(3 * time.Second)
	if n := up.LoginCount(upUser); n != attempts || attempts == 0 {
		t.Fatalf("login attempts: %d, then %d three seconds later: no back-off after a refused login", attempts, n)
	}
	if !strings.Contains(m.Log(), `"retry_in":"`) {
		t.Fatal("the back-off is not logged")
	}

	if err := os.WriteFile(filepath.Join(m.StateDir, "upstream-password"), []byte(upPass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m.Signal(t, syscall.SIGUSR2)
	m.WaitLog(t, "reloaded password files", waitLong)
	// The back-off has most of a minute left: only the reload explains a
	// delivery within 30 seconds.
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, 30*time.Second)
}

// Account changes without a restart: on the reload signal the remote_pull
// blocks are read again; an added account starts, a removed one stops, a
// disabled one is not polled, a mistake keeps what runs and says where;
// maddy's IMAP listener serves throughout and nothing else restarts.
func TestReloadAccounts(t *testing.T) {
	up := newUpstream(t)
	up.AddUser(t, "remote-bob", upPass)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 700))
	up.Seed(t, "remote-bob", "INBOX", harness.Message(2, 700))
	addr := "tls://localhost:" + port(up.IMAPSAddr)
	alice := accountConf{Name: "alice", Addr: addr, Keep: true, CAFile: up.CA.CAFile, NoBlock: true, Poll: "1h"}.String()
	bob := strings.Replace(accountConf{Name: "bob", Addr: addr, Keep: true, CAFile: up.CA.CAFile, NoBlock: true, Poll: "1h"}.String(),
		"username "+upUser, "username remote-bob", 1)
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Extra: "remote_pull {\n" + alice + "}\n",
		Files: map[string]string{"upstream-password": upPass + "\n"},
	})
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)
	conf, err := os.ReadFile(m.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(from, to string) {
		t.Helper()
		if err := os.WriteFile(m.ConfigPath, []byte(strings.Replace(string(conf), from, to, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		m.Signal(t, syscall.SIGUSR2)
	}

	// Added: bob starts and delivers, alice keeps running.
	rewrite(alice, alice+bob)
	m.WaitLog(t, `reload: account started	{"account":"bob"}`, waitLong)
	m.WaitMessages(t, localUser, localPass, "INBOX", 2, waitLong)

	// A mistake: nothing changes, and the log says where.
	rewrite(alice, strings.Replace(alice, "keep yes", "keep perhaps", 1)+bob)
	m.WaitLog(t, "the remote_pull configuration has a mistake", waitLong)
	if !strings.Contains(m.Log(), "maddy.conf:") {
		t.Errorf("the mistake's file:line is not logged:\n%s", grep(m.Log(), "mistake"))
	}

	// Removed: bob stops; disabled: alice stays configured but is not polled.
	rewrite(alice, strings.Replace(alice, "poll_interval 1h", "poll_interval 1h\n        disabled yes", 1))
	m.WaitLog(t, `account removed from the configuration; stopped`, waitLong)
	harness.Eventually(t, waitLong, func() bool {
		return strings.Contains(m.CLI(t, "remote-pull", "status"), "disabled")
	}, "alice shown as disabled")
	before := up.LoginCount(upUser) + up.LoginCount("remote-bob")
	m.Signal(t, syscall.SIGUSR2) // a retry signal: nothing is polled
	time.Sleep(2 * time.Second)
	if after := up.LoginCount(upUser) + up.LoginCount("remote-bob"); after != before {
		t.Errorf("%d logins after everything was removed or disabled", after-before)
	}
	// The IMAP listener served throughout; maddy never restarted.
	if n := len(m.Mailbox(t, localUser, localPass, "INBOX")); n != 2 {
		t.Errorf("INBOX holds %d messages, want 2", n)
	}
	if strings.Count(m.Log(), "listening on") > 1 {
		t.Error("maddy's listeners were started again")
	}
}
