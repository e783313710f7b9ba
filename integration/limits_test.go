package integration

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
	"github.com/remote-pull/remote_pull/internal/testlib/provider"
)

// Provider limits end to end: the built maddy against the Gmail-like and
// Microsoft-like doubles (internal/testlib/provider), read back through
// maddy's IMAP.

const (
	gmailUser = "alice@gmail.example"
	gmailPass = "app-password"
)

// gmailConf is an account on the Gmail double, with more directives.
func gmailConf(addr, extra string) string {
	return fmt.Sprintf(`remote_pull {
    account gmail {
        imap tcp://%s
        insecure_plaintext yes
        username %s
        password %s
        rcpt_to %s
        keep yes
        poll_interval 1s
%s
        deliver_to &local_routing
    }
}
`, addr, gmailUser, gmailPass, localUser, extra)
}

// waitStatus waits until the status command's --json output has the
// account in state want.
func waitStatus(t *testing.T, m *harness.Maddy, want string) string {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		out := m.CLI(t, "remote-pull", "status", "--json")
		if strings.Contains(out, `"state": "`+want+`"`) {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %q not reached:\n%s", want, out)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitUntil polls cond until waitLong.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func subjectsOf(msgs []harness.MailboxMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, harness.Subject(m.Raw))
	}
	return out
}

// Gmail over quota: the account pauses with no connection at all (its
// IDLE connection closed, no login at every poll_interval), the status
// says "over quota" with the time it tries again, the owner gets one
// notice, and a restart keeps the pause.
func TestGmailOverQuotaPause(t *testing.T) {
	gm := provider.Start(t, provider.Config{Kind: provider.Gmail, User: gmailUser, Password: gmailPass})
	for i := 1; i <= 3; i++ {
		gm.Append(harness.CRLF(harness.Message(i, 2000)), time.Now(), nil, `\Inbox`)
	}
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users:   map[string]string{localUser: localPass},
		Extra:   gmailConf(gm.Addr(), "        download_budget off"),
		Metrics: true,
	})
	m.WaitMessages(t, localUser, localPass, "INBOX", 3, waitLong)
	waitUntil(t, "the IDLE connection", func() bool { return gm.Conns() == 1 })

	gm.SetOverQuota(time.Now().Add(2 * time.Hour))
	gm.Append(harness.CRLF(harness.Message(4, 2000)), time.Now(), nil, `\Inbox`) // announced by IDLE
	out := waitStatus(t, m, "over quota")
	if !strings.Contains(out, `"resume_at"`) {
		t.Fatalf("status lacks the resume time:\n%s", out)
	}
	waitUntil(t, "the IDLE connection to close", func() bool { return gm.Conns() == 0 })
	commands := len(gm.Log())
	time.Sleep(4 * time.Second) // poll_interval 1s: any knocking would show
	if log := gm.Log(); len(log) != commands || gm.Conns() != 0 {
		t.Fatalf("during the pause: %d connections, commands %q", gm.Conns(), log[commands:])
	}
	text := m.CLI(t, "remote-pull", "status")
	if !strings.Contains(text, "paused: gmail: over quota, no connection until") {
		t.Fatalf("status:\n%s", text)
	}
	metrics := scrape(t, m.MetricsAddr)
	resume := metrics[`maddy_remote_pull_resume_timestamp_seconds{account="gmail"}`]
	if metrics[`maddy_remote_pull_state{account="gmail",state="over quota"}`] != 1 ||
		resume < float64(time.Now().Add(50*time.Minute).Unix()) {
		t.Fatalf("metrics: state %v, resume %v (want an hour on)",
			metrics[`maddy_remote_pull_state{account="gmail",state="over quota"}`], resume)
	}
	// The three messages and one notice.
	msgs := m.WaitMessages(t, localUser, localPass, "INBOX", 4, waitLong)
	if got := subjectsOf(msgs); len(got) != 4 || got[3] != "remote_pull: account gmail: over quota" {
		t.Fatalf("local INBOX %q, want the 3 messages and one over quota notice", got)
	}

	// A restart during the pause: no connection either.
	m.Stop(t)
	m.Start(t)
	m.WaitLog(t, "account paused before the restart", waitLong)
	time.Sleep(3 * time.Second)
	if log := gm.Log(); len(log) != commands {
		t.Fatalf("after a restart during the pause: commands %q", log[commands:])
	}
	waitStatus(t, m, "over quota")
	if got := subjectsOf(m.Mailbox(t, localUser, localPass, "INBOX")); len(got) != 4 {
		t.Fatalf("after a restart: local INBOX %q, want no second notice", got)
	}
}

// Microsoft's "Suggested Backoff Time": no connection before it has
// passed, then the import goes on.
func TestMicrosoftThrottleBackoff(t *testing.T) {
	const user, token = "alice@contoso.example", "access-token-1"
	ms := provider.Start(t, provider.Config{Kind: provider.Microsoft, User: user, Token: token})
	ms.Append(harness.CRLF(harness.Message(1, 1500)), time.Now(), nil)
	// The token is valid for long: the endpoint is never asked.
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":"invalid_grant"}`, http.StatusBadRequest)
	}))
	t.Cleanup(tokens.Close)
	conf := fmt.Sprintf(`remote_pull {
    account ms {
        imap tcp://%s
        insecure_plaintext yes
        username %s
        auth xoauth2
        oauth2 {
            token_endpoint %s/token
            auth_endpoint %s/auth
            client_id test-client
            token_file ms.token
        }
        rcpt_to %s
        keep yes
        poll_interval 1s
        idle no
        deliver_to &local_routing
    }
}
`, ms.Addr(), user, tokens.URL, tokens.URL, localUser)
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Extra: conf,
		Files: map[string]string{"ms.token": `{"access_token":"` + token + `","refresh_token":"r","expiry":"2100-01-01T00:00:00Z"}`},
	})
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)

	const backoff = 5 * time.Second
	throttledUntil := time.Now().Add(backoff)
	ms.Throttle(backoff)
	ms.Append(harness.CRLF(harness.Message(2, 1500)), time.Now(), nil)
	waitStatus(t, m, "throttled")
	commands := len(ms.Log())
	// The next command the server gets comes after the backoff.
	var next time.Time
	waitUntil(t, "a command after the backoff", func() bool {
		if len(ms.Log()) > commands {
			next = time.Now()
			return true
		}
		return false
	})
	if next.Before(throttledUntil) {
		t.Fatalf("a connection %v before the suggested backoff ended: %q", throttledUntil.Sub(next), ms.Log()[commands:])
	}
	m.WaitMessages(t, localUser, localPass, "INBOX", 2, waitLong)
	waitStatus(t, m, "ok")
}

// The download budget paces an import under the provider's limit: maddy
// stops before the message that would overspend it, shows "paced" and the
// budget, and Gmail's own limit is never tripped, also across a restart.
// Without the budget the same import trips it (the control).
func TestGmailBudgetPacing(t *testing.T) {
	const (
		providerBudget = 60_000
		ourBudget      = "40K" // 40960 bytes: 4 messages of ~9,000 bytes
		msgSize        = 9000
	)
	for _, budget := range []string{ourBudget, "off"} {
		t.Run("download_budget "+budget, func(t *testing.T) {
			gm := provider.Start(t, provider.Config{Kind: provider.Gmail, User: gmailUser, Password: gmailPass,
				ByteBudget: providerBudget})
			for i := 1; i <= 10; i++ {
				gm.Append(harness.CRLF(harness.Message(i, msgSize)), time.Now(), nil, `\Inbox`)
			}
			m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
				Users: map[string]string{localUser: localPass},
				Extra: gmailConf(gm.Addr(), "        download_budget "+budget),
			})
			if budget == "off" {
				waitStatus(t, m, "over quota")
				if gm.BytesDownloaded() <= providerBudget {
					t.Fatalf("over quota after %d bytes, the double's budget is %d", gm.BytesDownloaded(), providerBudget)
				}
				return
			}
			out := waitStatus(t, m, "paced")
			n := len(m.Mailbox(t, localUser, localPass, "INBOX"))
			downloaded := gm.BytesDownloaded()
			if n == 0 || downloaded > 40960 {
				t.Fatalf("paced after %d messages, %d bytes; want some, at most the budget (40960)\n%s", n, downloaded, out)
			}
			if !strings.Contains(out, `"download_budget": 40960`) || !strings.Contains(out, `"pending_bytes"`) {
				t.Fatalf("status lacks the budget:\n%s", out)
			}
			if text := m.CLI(t, "remote-pull", "status"); !strings.Contains(text, "budget: gmail: ") ||
				!strings.Contains(text, "waiting upstream, about") {
				t.Fatalf("status:\n%s", text)
			}
			// Paced for the day, across a restart: nothing more downloaded,
			// the provider's limit never reached.
			time.Sleep(3 * time.Second)
			m.Stop(t)
			m.Start(t)
			time.Sleep(3 * time.Second)
			waitStatus(t, m, "paced")
			got := gm.BytesDownloaded()
			if got != downloaded {
				t.Fatalf("%d bytes downloaded while paced (%d before)", got-downloaded, downloaded)
			}
			if got := len(m.Mailbox(t, localUser, localPass, "INBOX")); got != n {
				t.Fatalf("%d messages after the pause began, %d before", got, n)
			}
			if got > providerBudget {
				t.Fatalf("%d bytes downloaded: the double's limit (%d) was tripped", got, providerBudget)
			}
			if strings.Contains(m.CLI(t, "remote-pull", "status", "--json"), "over quota") {
				t.Fatal("over quota with a budget under the provider's limit")
			}
		})
	}
}
