package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
)

func msgWith(i int, headers string) []byte {
	return []byte(fmt.Sprintf("%sFrom: sender@example.net\r\nSubject: policy %d\r\nMessage-ID: <policy-%d@example.net>\r\n\r\nbody %d\r\n", headers, i, i, i))
}

// Multidrop: the recipient comes from X-Original-To; a message without it
// goes to rcpt_to; an unknown local recipient is refused, stays upstream,
// is not retried at every poll, and does not hold up the others.
func TestMultidrop(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX",
		msgWith(1, "X-Original-To: alice@example.org\r\n"),
		msgWith(2, "X-Original-To: bob@example.org\r\nDelivered-To: alice@example.org\r\n"),
		msgWith(3, ""),
		msgWith(4, "X-Original-To: nobody@example.org\r\n"),
	)
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass, "bob@example.org": "bob-pass"},
		Extra: accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile,
			Extra: "        envelope_header X-Original-To Delivered-To\n"}.String(),
		Files: map[string]string{"upstream-password": upPass + "\n"},
	})
	r := &rig{up: up, maddy: m}
	// Alice, the account's rcpt_to, also gets the notice about the
	// refused message (docs/reference.md, notify).
	r.local(t, 3)
	bob := m.WaitMessages(t, "bob@example.org", "bob-pass", "INBOX", 1, waitLong)
	r.waitPolls(t, 3)
	alice, notices := harness.SplitNotices(r.local(t, 3))
	if got := subjects(t, alice); got != "policy 1,policy 3" {
		t.Errorf("alice got %s", got)
	}
	checkNotice(t, notices, "messages waiting upstream", "1 refused, 0 larger than max_message_size")
	if got := subjects(t, bob); got != "policy 2" {
		t.Errorf("bob got %s", got)
	}
	if n := r.countLog(`"uid":"4"`); r.countLog("message refused") != 1 || n < 1 {
		t.Errorf("the unknown recipient's message was not refused exactly once:\n%s", grep(m.Log(), "refused"))
	}
	left := r.upstream(t, "INBOX")
	if len(left) != 1 || harness.Subject(left[0].Raw) != "policy 4" {
		t.Fatalf("upstream should hold only the refused message, holds %d", len(left))
	}
}

// checkNotice checks that exactly one notice came, about kind, saying text.
func checkNotice(t *testing.T, notices []harness.MailboxMessage, kind, text string) {
	t.Helper()
	if len(notices) != 1 {
		t.Fatalf("%d notices to the account's owner, want 1", len(notices))
	}
	raw := string(notices[0].Raw)
	if !strings.Contains(harness.Subject(notices[0].Raw), kind) || !strings.Contains(raw, text) {
		t.Fatalf("the notice should be about %q and say %q:\n%s", kind, text, raw)
	}
}

func subjects(t *testing.T, msgs []harness.MailboxMessage) string {
	t.Helper()
	var out []string
	for _, m := range msgs {
		_, raw, _ := harness.Delivered(m.Raw)
		out = append(out, harness.Subject(raw))
	}
	return strings.Join(out, ",")
}

// A message over max_message_size is not downloaded and stays upstream
// even with keep no; it is logged once.
func TestMaxMessageSize(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 2000))
	up.SeedReader(t, upUser, "INBOX", false, harness.Large(5))
	up.Seed(t, upUser, "INBOX", harness.Message(3, 2000))
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile,
		Extra: "        max_message_size 1M\n"}.String())
	r.local(t, 3)
	r.waitPolls(t, 3)
	fetched, notices := harness.SplitNotices(r.local(t, 3))
	if n := len(fetched); n != 2 {
		t.Fatalf("maddy holds %d messages, want the 2 small ones", n)
	}
	checkNotice(t, notices, "messages waiting upstream", "0 refused, 1 larger than max_message_size")
	if n := r.countLog("message too large, left upstream"); n != 1 {
		t.Fatalf("logged %d times, want once", n)
	}
	left := r.upstream(t, "INBOX")
	if len(left) != 1 || len(left[0].Raw) != int(harness.LargeSize(5)) {
		t.Fatalf("upstream should hold just the 5 MB message, holds %d", len(left))
	}
	if strings.Contains(up.Log(), "body_bytes=5242880") {
		t.Fatal("the large message was downloaded")
	}
}

// first_sync new adopts what is upstream; only later mail is fetched.
func TestFirstSyncNew(t *testing.T) {
	up := newUpstream(t)
	seedN(t, up, 3, 700)
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile, Keep: true,
		Extra: "        first_sync new\n"}.String())
	r.maddy.WaitLog(t, "first sync: adopted", waitLong)
	fresh := harness.Message(10, 700)
	up.Append(t, upUser, "INBOX", fresh)
	got := r.local(t, 1)
	r.waitPolls(t, 2)
	got = r.local(t, 1)
	if len(got) != 1 || subjects(t, got) != harness.Subject(fresh) {
		t.Fatalf("maddy holds %s, want only the new message", subjects(t, got))
	}
}

// max_messages_per_poll 10 drains 35 messages in consecutive polls, without
// waiting for poll_interval in between.
func TestMaxMessagesPerPoll(t *testing.T) {
	up := newUpstream(t)
	want := seedN(t, up, 35, 600)
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile,
		Poll: "1h", Extra: "        max_messages_per_poll 10\n        idle no\n"}.String())
	checkOnce(t, r.local(t, 35), want, 0)
	// The last poll logs its end after its messages are in maddy.
	r.maddy.WaitLog(t, `"delivered":5,`, waitLong)
	if n := r.countLog(`"delivered":10`); n != 3 {
		t.Fatalf("%d polls delivered 10, want 3 (then 5):\n%s", n, grep(r.maddy.Log(), "poll done"))
	}
	if r.countLog(`"delivered":5,`) != 1 {
		t.Fatalf("no final poll of 5:\n%s", grep(r.maddy.Log(), "poll done"))
	}
}

// Upstream Authentication-Results fields survive only from trusted_authres.
func TestAuthenticationResults(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", msgWith(1,
		"Authentication-Results: mx.google.com; dkim=pass header.d=bank.example\r\n"+
			"Authentication-Results: forger.example; dkim=pass header.d=bank.example\r\n"))
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile,
		Extra: "        trusted_authres mx.google.com\n"}.String())
	raw := string(r.local(t, 1)[0].Raw)
	if !strings.Contains(raw, "Authentication-Results: mx.google.com; dkim=pass") {
		t.Errorf("the trusted field was removed:\n%s", raw)
	}
	if strings.Contains(raw, "forger.example") {
		t.Errorf("the forged field survived:\n%s", raw)
	}
}

// A quarantine folder's messages land in the local Junk mailbox.
func TestQuarantineFolder(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 600))
	up.Seed(t, upUser, "Spam", harness.Message(2, 600))
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile, Keep: true,
		Extra: "        folders INBOX Spam\n        quarantine_folders Spam\n"}.String())
	inbox := r.local(t, 1)
	junk := r.maddy.WaitMessages(t, localUser, localPass, "Junk", 1, waitLong)
	if subjects(t, inbox) != harness.Subject(harness.Message(1, 600)) || subjects(t, junk) != harness.Subject(harness.Message(2, 600)) {
		t.Fatalf("INBOX %s, Junk %s", subjects(t, inbox), subjects(t, junk))
	}
}
