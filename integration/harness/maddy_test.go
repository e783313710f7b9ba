package harness

import (
	"bytes"
	"io"
	"net/http"
	"net/smtp"
	"strings"
	"testing"
	"time"
)

// TestMaddy starts the custom maddy binary (built, or $REMOTE_PULL_MADDY)
// with users, SMTP and metrics, delivers through SMTP, reads the message back
// through maddy's IMAP, and stops, kills and restarts it on the same state.
// It needs the binary's `creds create` and `imap-acct create` subcommands.
func TestMaddy(t *testing.T) {
	const user, pw = "alice@example.org", "alice-pw"
	m := StartMaddy(t, BuildMaddy(t), MaddyOptions{
		Users:   map[string]string{user: pw},
		SMTP:    true,
		Metrics: true,
	})
	m.WaitLog(t, "listening on tcp://"+m.IMAPAddr, 10*time.Second)

	msg := TrickyCorpus()["dot-stuffing"]
	if err := smtp.SendMail(m.SMTPAddr, nil, "sender@example.net", []string{user}, msg); err != nil {
		t.Fatal(err)
	}
	got := m.WaitMessages(t, user, pw, "INBOX", 1, 60*time.Second)
	if len(got) != 1 || !bytes.HasSuffix(got[0].Raw, msg) {
		t.Fatalf("INBOX: %d messages, first %q", len(got), got[0].Raw)
	}

	resp, err := http.Get("http://" + m.MetricsAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "go_goroutines") {
		t.Errorf("metrics: %s\n%.200s", resp.Status, body)
	}

	m.AddUser(t, "bob@example.org", "bob-pw") // while running
	if got := m.Mailbox(t, "bob@example.org", "bob-pw", "INBOX"); len(got) != 0 {
		t.Errorf("bob's INBOX has %d messages", len(got))
	}

	m.Stop(t)
	if m.Running() {
		t.Fatal("running after Stop")
	}
	m.Start(t)
	m.Kill(t)
	m.Start(t)
	if got := m.Mailbox(t, user, pw, "INBOX"); len(got) != 1 {
		t.Errorf("after restarts: %d messages", len(got))
	}
	if strings.Contains(m.Log(), "failed to initialize updates pipe") {
		t.Error("stale updates pipe after Kill")
	}
}
