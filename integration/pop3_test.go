package integration

import (
	"bytes"
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// popWant is what arrives over POP3 for a seeded message: as over IMAP,
// except that POP3 has no way to send a last line without its CRLF
// (RFC 1939 ends a message with CRLF.CRLF), so Dovecot adds one.
func popWant(raw []byte) []byte {
	out := harness.AsDelivered(raw)
	if !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, "\r\n"...)
	}
	return out
}

func seedTrickyPOP3(t *testing.T, up *harness.Dovecot) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	for name, raw := range harness.TrickyCorpus() {
		up.Seed(t, upUser, "INBOX", raw)
		want["tricky: "+name] = popWant(raw)
	}
	for i := 1; i <= 5; i++ {
		raw := harness.Message(i, 3000)
		up.Seed(t, upUser, "INBOX", raw)
		want[harness.Subject(raw)] = raw
	}
	return want
}

// Keep mode over implicit TLS: everything once, byte for byte; upstream
// untouched; a restart fetches only what is new.
func TestPOP3Keep(t *testing.T) {
	up := newUpstream(t)
	want := seedTrickyPOP3(t, up)
	r := startMaddy(t, up, accountConf{Proto: "pop3", Addr: "tls://localhost:" + port(up.POP3SAddr), Keep: true, CAFile: up.CA.CAFile}.String())
	checkBytes(t, bodies(t, r.local(t, len(want))), want)
	r.waitPolls(t, 2)
	if n := len(r.local(t, len(want))); n != len(want) {
		t.Fatalf("after more polls maddy holds %d messages, want %d", n, len(want))
	}
	if n := len(r.upstream(t, "INBOX")); n != len(want) {
		t.Fatalf("upstream holds %d messages, want all %d kept", n, len(want))
	}

	r.maddy.Stop(t)
	extra := harness.Message(99, 1200)
	up.Seed(t, upUser, "INBOX", extra)
	want[harness.Subject(extra)] = extra
	r.maddy.Start(t)
	r.local(t, len(want))
	r.waitPolls(t, 2)
	checkOnce(t, r.local(t, len(want)), want, 0)
}

// Delete mode over STLS: delivered messages are deleted at QUIT, only
// they; nothing arrives twice across polls.
func TestPOP3DeleteSTLS(t *testing.T) {
	up := newUpstream(t)
	want := seedTrickyPOP3(t, up)
	r := startMaddy(t, up, accountConf{Proto: "pop3", Addr: "tcp://localhost:" + port(up.POP3Addr), CAFile: up.CA.CAFile}.String())
	checkBytes(t, bodies(t, r.local(t, len(want))), want)
	harness.Eventually(t, waitLong, func() bool { return len(r.upstream(t, "INBOX")) == 0 }, "upstream emptied")

	more := harness.Message(50, 2500)
	up.Seed(t, upUser, "INBOX", more)
	want[harness.Subject(more)] = more
	r.local(t, len(want))
	r.waitPolls(t, 2)
	checkOnce(t, r.local(t, len(want)), want, 0)
}

// A refused message stays in the POP3 maildrop even with keep no.
func TestPOP3RefusalStays(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 800))
	r := startMaddy(t, up, accountConf{Proto: "pop3", Addr: "tls://localhost:" + port(up.POP3SAddr), CAFile: up.CA.CAFile,
		RcptTo: "nobody@example.org"}.String())
	r.maddy.WaitLog(t, "message refused, left upstream", waitLong)
	r.waitPolls(t, 3)
	if n := r.countLog("incoming message"); n != 1 {
		t.Fatalf("the refused message was fetched %d times, want once", n)
	}
	if n := len(r.upstream(t, "INBOX")); n != 1 {
		t.Fatalf("upstream holds %d messages, want the refused one", n)
	}
}

// A wrong CA is refused before any login, on POP3S and on STLS; a server
// without STLS on tcp:// never sees the password.
func TestPOP3TLSRefusals(t *testing.T) {
	for _, mode := range []string{"tls", "tcp"} {
		t.Run("wrong CA "+mode, func(t *testing.T) {
			up := newUpstream(t)
			up.Seed(t, upUser, "INBOX", harness.Message(1, 800))
			addr := up.POP3SAddr
			if mode == "tcp" {
				addr = up.POP3Addr
			}
			r := startMaddy(t, up, accountConf{Proto: "pop3", Addr: mode + "://localhost:" + port(addr), CAFile: harness.NewCA(t).CAFile}.String())
			r.maddy.WaitLog(t, "certificate signed by unknown authority", waitLong)
			if n := up.LoginCount(upUser); n != 0 {
				t.Fatalf("%d logins with an unverified certificate", n)
			}
		})
	}
	t.Run("no STLS", func(t *testing.T) {
		up := newUpstream(t, "ssl = no")
		up.Seed(t, upUser, "INBOX", harness.Message(1, 800))
		r := startMaddy(t, up, accountConf{Proto: "pop3", Addr: "tcp://localhost:" + port(up.POP3Addr), CAFile: up.CA.CAFile}.String())
		r.maddy.WaitLog(t, "STLS", waitLong)
		if n := up.LoginCount(upUser); n != 0 {
			t.Fatalf("%d login attempts without TLS", n)
		}
	})
}
