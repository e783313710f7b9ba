package integration

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// seedTricky puts the tricky corpus upstream, some messages already \Seen.
func seedTricky(t *testing.T, up *harness.Dovecot) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	i := 0
	for name, raw := range harness.TrickyCorpus() {
		if i%2 == 0 {
			up.Seed(t, upUser, "INBOX", raw)
		} else {
			up.SeedSeen(t, upUser, "INBOX", raw)
		}
		i++
		want["tricky: "+name] = harness.AsDelivered(raw)
	}
	return want
}

func checkBytes(t *testing.T, got map[string][]byte, want map[string][]byte) {
	t.Helper()
	for subj, w := range want {
		g, ok := got[subj]
		if !ok {
			t.Errorf("%q not delivered", subj)
			continue
		}
		if !bytes.Equal(g, w) {
			t.Errorf("%q changed on the way:\n got %q\nwant %q", subj, clip(g), clip(w))
		}
	}
	if len(got) != len(want) {
		t.Errorf("delivered %d messages, want %d", len(got), len(want))
	}
}

func clip(b []byte) []byte {
	if len(b) > 400 {
		return append(b[:400:400], "..."...)
	}
	return b
}

// Keep mode: every message arrives byte for byte, once; upstream keeps all
// of them with their flags as they were (BODY.PEEK sets no \Seen).
func TestIMAPKeep(t *testing.T) {
	up := newUpstream(t)
	want := seedTricky(t, up)
	before := up.IMAPClient(t, upUser, upPass)
	flagsBefore := map[uint32]bool{}
	for _, m := range harness.ListMessages(t, before, "INBOX") {
		flagsBefore[m.UID] = m.HasFlag(`\Seen`)
	}
	before.Close()

	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile}.String())
	checkBytes(t, bodies(t, r.local(t, len(want))), want)

	r.waitPolls(t, 2) // later polls fetch nothing again
	if got := r.local(t, len(want)); len(got) != len(want) {
		t.Fatalf("after more polls maddy holds %d messages, want %d", len(got), len(want))
	}
	after := r.upstream(t, "INBOX")
	if len(after) != len(want) {
		t.Fatalf("upstream holds %d messages, want all %d kept", len(after), len(want))
	}
	for _, m := range after {
		if m.HasFlag(`\Seen`) != flagsBefore[m.UID] || m.HasFlag(`\Deleted`) {
			t.Errorf("upstream UID %d flags changed: %v (seen before: %v)", m.UID, m.Flags, flagsBefore[m.UID])
		}
	}
}

// Delete mode: delivered messages go, and only them: a message another
// client flagged \Deleted is neither fetched nor expunged.
func TestIMAPDelete(t *testing.T) {
	up := newUpstream(t)
	for i := 1; i <= 5; i++ {
		up.Seed(t, upUser, "INBOX", harness.Message(i, 2000))
	}
	foreign := []byte("From: x@example.net\r\nSubject: foreign deleted\r\nMessage-ID: <foreign@example.net>\r\n\r\nnot ours\r\n")
	up.Seed(t, upUser, "INBOX", foreign)
	msgs := r0(t, up)
	up.AddFlags(t, upUser, "INBOX", msgs[len(msgs)-1].UID, `\Deleted`)

	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile}.String())
	got := bodies(t, r.local(t, 5))
	for i := 1; i <= 5; i++ {
		raw := harness.Message(i, 2000)
		if !bytes.Equal(got[harness.Subject(raw)], raw) {
			t.Errorf("message %d differs", i)
		}
	}
	r.waitPolls(t, 2)
	left := r.upstream(t, "INBOX")
	if len(left) != 1 || !bytes.Equal(left[0].Raw, foreign) || !left[0].HasFlag(`\Deleted`) {
		t.Fatalf("upstream should hold exactly the foreign \\Deleted message, holds %d: %+v", len(left), left)
	}
	if n := len(r.local(t, 5)); n != 5 {
		t.Fatalf("maddy holds %d messages, want 5 (the foreign one must not be fetched)", n)
	}
}

func r0(t *testing.T, up *harness.Dovecot) []harness.MailboxMessage {
	c := up.IMAPClient(t, upUser, upPass)
	defer c.Close()
	return harness.ListMessages(t, c, "INBOX")
}

// New mail arriving while maddy runs is fetched at the next poll; a restart
// delivers only what is new.
func TestIMAPNewMailAndRestart(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 500), harness.Message(2, 500))
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile}.String())
	r.local(t, 2)

	up.Append(t, upUser, "INBOX", harness.Message(3, 500))
	r.local(t, 3)

	r.maddy.Stop(t)
	up.Seed(t, upUser, "INBOX", harness.Message(4, 500))
	r.maddy.Start(t)
	r.local(t, 4)
	r.waitPolls(t, 2)
	got := r.local(t, 4)
	if len(got) != 4 {
		t.Fatalf("after a restart maddy holds %d messages, want 4: duplicates", len(got))
	}
	seen := map[string]bool{}
	for _, m := range got {
		_, raw, _ := harness.Delivered(m.Raw)
		s := harness.Subject(raw)
		if seen[s] {
			t.Errorf("%q delivered twice", s)
		}
		seen[s] = true
	}
}

// A 25 MB message arrives intact.
func TestIMAPLargeMessage(t *testing.T) {
	up := newUpstream(t)
	up.SeedReader(t, upUser, "INBOX", false, harness.Large(25))
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile}.String())
	got := r.local(t, 1)
	_, raw, _ := harness.Delivered(got[0].Raw)
	if err := harness.EqualReader(raw, harness.Large(25)); err != nil {
		t.Fatal(err)
	}
	r.waitPolls(t, 1)
	if left := r.upstream(t, "INBOX"); len(left) != 0 {
		t.Fatalf("keep no: %d messages left upstream", len(left))
	}
}

// tcp:// uses STARTTLS, verified against the configured CA.
func TestIMAPStartTLS(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 800))
	r := startMaddy(t, up, accountConf{Addr: "tcp://localhost:" + port(up.IMAPAddr), Keep: true, CAFile: up.CA.CAFile}.String())
	if got := bodies(t, r.local(t, 1)); !bytes.Equal(got[harness.Subject(harness.Message(1, 800))], harness.Message(1, 800)) {
		t.Fatal("message differs")
	}
}

// A certificate from another CA is refused before any login, on implicit
// TLS and on STARTTLS alike.
func TestIMAPWrongCARefused(t *testing.T) {
	for _, mode := range []string{"tls", "tcp"} {
		t.Run(mode, func(t *testing.T) {
			up := newUpstream(t)
			up.Seed(t, upUser, "INBOX", harness.Message(1, 800))
			other := harness.NewCA(t)
			addr := up.IMAPSAddr
			if mode == "tcp" {
				addr = up.IMAPAddr
			}
			r := startMaddy(t, up, accountConf{Addr: mode + "://localhost:" + port(addr), CAFile: other.CAFile}.String())
			r.maddy.WaitLog(t, "certificate signed by unknown authority", waitLong)
			if n := up.LoginCount(upUser); n != 0 {
				t.Fatalf("%d logins upstream with an unverified certificate", n)
			}
			if msgs := r.maddy.Mailbox(t, localUser, localPass, "INBOX"); len(msgs) != 0 {
				t.Fatalf("%d messages delivered", len(msgs))
			}
			if left := r.upstream(t, "INBOX"); len(left) != 1 {
				t.Fatalf("upstream holds %d messages, want 1", len(left))
			}
		})
	}
}

// On tcp:// a server that does not offer STARTTLS never sees the password.
func TestIMAPNoStartTLSNoLogin(t *testing.T) {
	up := newUpstream(t, "ssl = no")
	up.Seed(t, upUser, "INBOX", harness.Message(1, 800))
	r := startMaddy(t, up, accountConf{Addr: "tcp://localhost:" + port(up.IMAPAddr), CAFile: up.CA.CAFile}.String())
	r.maddy.WaitLog(t, "STARTTLS", waitLong)
	time.Sleep(time.Second)
	if n := up.LoginCount(upUser); n != 0 {
		t.Fatalf("%d login attempts without TLS", n)
	}
	if strings.Contains(up.Log(), upPass) {
		t.Fatal("the password reached the server")
	}
}

// The trace field names upstream host and address, protocol, account,
// folder, UIDVALIDITY and UID, and the local recipient.
func TestIMAPReceivedField(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 800))
	r := startMaddy(t, up, accountConf{Name: "mybox", Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile}.String())
	field, _, _ := harness.Delivered(r.local(t, 1)[0].Raw)
	field = strings.Join(strings.Fields(field), " ")
	uid := r.upstream(t, "INBOX")[0].UID
	c := up.IMAPClient(t, upUser, upPass)
	sel, err := c.Select("INBOX", nil).Wait()
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("Received: from localhost (localhost [127.0.0.1]) by mx.example.org (maddy remote_pull) with IMAP id <mybox/INBOX/%d/%d> for <%s>;",
		sel.UIDValidity, uid, localUser)
	if !strings.HasPrefix(field, want) {
		t.Fatalf("Received field\n got %s\nwant %s ...", field, want)
	}
}

// A message the pipeline refuses for good stays upstream, recorded with its
// reason, and is not fetched again at every poll; others are unaffected.
func TestIMAPRefusalNotRetried(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 800))
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile, RcptTo: "nobody@example.org"}.String())
	r.maddy.WaitLog(t, "message refused, left upstream", waitLong)
	r.waitPolls(t, 3)
	if n := r.countLog("incoming message"); n != 1 {
		t.Fatalf("the refused message was fetched %d times, want once", n)
	}
	if !strings.Contains(r.maddy.Log(), `"reason":"501 5.1.1 User does not exist"`) {
		t.Fatalf("refusal reason not logged:\n%s", r.maddy.Log())
	}
	if left := r.upstream(t, "INBOX"); len(left) != 1 || left[0].HasFlag(`\Deleted`) {
		t.Fatalf("keep no: the refused message must stay upstream untouched: %+v", left)
	}
}

// port is harness.Port, short for the many configurations here.
func port(addr string) string { return harness.Port(addr) }
