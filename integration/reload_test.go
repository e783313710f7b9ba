package integration

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"remote_pull/integration/harness"
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
