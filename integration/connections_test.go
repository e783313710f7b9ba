package integration

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
	"github.com/remote-pull/remote_pull/internal/testlib/provider"
)

// An account watching more folders than its provider allows connections
// (20 Gmail labels and INBOX against Gmail's 15; 25 Microsoft 365 folders
// and INBOX against Microsoft's 20) stays within max_connections (the
// defaults on their hosts; the doubles listen on 127.0.0.1): no login is
// refused, INBOX and the first folders are watched (new mail there arrives
// although the next poll is an hour away), the others are polled, and
// mail in every folder is delivered, also after a reload restarts the
// account. status and check say which folders are watched and which
// polled.
func TestConnectionBudget(t *testing.T) {
	t.Run("gmail", func(t *testing.T) {
		testConnectionBudget(t, providerAccount{kind: provider.Gmail, folders: 20, maxConns: 10,
			auth: "        password_file upstream-password\n"})
	})
	t.Run("microsoft", func(t *testing.T) {
		testConnectionBudget(t, providerAccount{kind: provider.Microsoft, folders: 25, maxConns: 15,
			auth: "        auth xoauth2\n        oauth2 {\n            token_endpoint http://127.0.0.1:9/token\n" +
				"            auth_endpoint http://127.0.0.1:9/auth\n            client_id test-client\n            token_file ms.token\n        }\n"})
	})
}

type providerAccount struct {
	kind     provider.Kind
	folders  int    // besides INBOX
	maxConns int    // max_connections
	auth     string // the account's login directives
}

func testConnectionBudget(t *testing.T, pa providerAccount) {
	const token = "access-token-1"
	up := provider.Start(t, provider.Config{Kind: pa.kind, User: "alice@provider.example", Password: upPass, Token: token})
	folders := make([]string, pa.folders)
	for i := range folders {
		folders[i] = fmt.Sprintf("Folder%02d", i)
		up.CreateFolder(folders[i])
		up.Append(harness.Message(i+1, 600), time.Now(), nil, folders[i])
	}
	msg := len(folders) // the last message number used
	inbox := "INBOX"
	if pa.kind == provider.Gmail {
		inbox = `\Inbox` // the label that puts a message in INBOX
	}
	conf := fmt.Sprintf(`remote_pull {
    account acct {
        imap tcp://%s
        insecure_plaintext yes
        username alice@provider.example
%s        rcpt_to %s
        keep yes
        poll_interval 1h
        max_connections %d
        folders INBOX %s
        deliver_to &local_routing
    }
}
`, up.Addr(), pa.auth, localUser, pa.maxConns, strings.Join(folders, " "))
	bin := harness.BuildMaddy(t)
	m := harness.StartMaddy(t, bin, harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Extra: conf,
		Files: map[string]string{
			"upstream-password": upPass + "\n",
			"ms.token":          `{"access_token":"` + token + `","refresh_token":"r","expiry":"2099-01-01T00:00:00Z"}`,
		},
	})
	r := &rig{maddy: m, bin: bin}
	r.local(t, msg)

	watched := append([]string{"INBOX"}, folders[:pa.maxConns-2]...)
	polled := folders[pa.maxConns-2:]
	// Every watched folder idles before mail is added: an APPEND before
	// its IDLE would be announced to no one.
	harness.Eventually(t, waitLong, func() bool {
		return strings.Count(strings.Join(up.Log(), "\n"), "IDLE") >= len(watched)
	}, "the IDLE connections")

	// Each watched folder: new mail arrives with the next poll an hour away.
	for _, folder := range watched {
		msg++
		if folder == "INBOX" {
			folder = inbox
		}
		up.Append(harness.Message(msg, 600), time.Now(), nil, folder)
		r.local(t, msg)
	}
	// The polled folders: their mail arrives with the next poll, here the
	// one new mail in INBOX starts.
	for _, folder := range polled {
		msg++
		up.Append(harness.Message(msg, 600), time.Now(), nil, folder)
	}
	msg++
	up.Append(harness.Message(msg, 600), time.Now(), nil, inbox)
	if got := r.local(t, msg); len(got) != msg {
		t.Fatalf("maddy holds %d messages, want %d", len(got), msg)
	}

	// A reload that restarts the account: the new loop opens its
	// connections only once the old one has closed all of its.
	b, err := os.ReadFile(m.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(m.ConfigPath, []byte(strings.Replace(string(b), "poll_interval 1h", "poll_interval 59m", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	idles := strings.Count(strings.Join(up.Log(), "\n"), "IDLE")
	m.Signal(t, syscall.SIGUSR2)
	m.WaitLog(t, `reload: account started`, waitLong)
	harness.Eventually(t, waitLong, func() bool {
		return strings.Count(strings.Join(up.Log(), "\n"), "IDLE") >= idles+len(watched)
	}, "the IDLE connections after the reload")
	msg++
	up.Append(harness.Message(msg, 600), time.Now(), nil, folders[0])
	r.local(t, msg)

	if peak := up.PeakConns(); peak > pa.maxConns {
		t.Errorf("%d connections at once, max_connections %d", peak, pa.maxConns)
	}
	for _, refused := range []string{"Too many simultaneous connections", "not connected"} {
		if strings.Contains(m.Log(), refused) {
			t.Errorf("a connection was refused (%q):\n%s", refused, m.Log())
		}
	}
	plan := fmt.Sprintf("%d connections (max_connections %d): poll + %d IDLE (%s); polled every poll_interval instead of watched: %s",
		pa.maxConns, pa.maxConns, len(watched), strings.Join(watched, ", "), strings.Join(polled, ", "))
	if out := m.CLI(t, "remote-pull", "status"); !strings.Contains(out, "connections: acct: "+plan) {
		t.Errorf("status does not show the plan %q:\n%s", plan, out)
	}
	// check holds one connection more while it runs.
	if out := m.CLI(t, "remote-pull", "check", "acct"); !strings.Contains(out, "connections: "+plan) {
		t.Errorf("check does not show the plan %q:\n%s", plan, out)
	}
}
