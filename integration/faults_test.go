package integration

import (
	"fmt"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/integration/faultproxy"
	"github.com/remote-pull/remote_pull/integration/harness"
)

// checkOnce asserts that maddy holds every message exactly once, byte for
// byte, allowing at most maxDup extra copies (the Commit/ledger window).
func checkOnce(t *testing.T, msgs []harness.MailboxMessage, want map[string][]byte, maxDup int) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range msgs {
		_, raw, ok := harness.Delivered(m.Raw)
		if !ok {
			t.Errorf("UID %d lacks the trace fields", m.UID)
			continue
		}
		s := harness.Subject(raw)
		seen[s]++
		if w, ok := want[s]; !ok || string(w) != string(raw) {
			t.Errorf("%q: unexpected or partial message (%d bytes)", s, len(raw))
		}
	}
	dups := 0
	for s := range want {
		switch n := seen[s]; {
		case n == 0:
			t.Errorf("%q lost", s)
		case n > 1:
			dups += n - 1
		}
	}
	if dups > maxDup {
		t.Errorf("%d duplicates, at most %d allowed", dups, maxDup)
	}
}

func seedN(t *testing.T, up *harness.Dovecot, n, size int) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = harness.Message(i+1, size)
		want[harness.Subject(msgs[i])] = msgs[i]
	}
	up.Seed(t, upUser, "INBOX", msgs...)
	return want
}

// The connection is cut in the middle of message literals, several times
// in a row: no partial message is delivered, nothing is lost or doubled,
// and the import completes.
func TestCutMidMessage(t *testing.T) {
	up := newUpstream(t)
	want := seedN(t, up, 40, 50_000)
	proxy, err := faultproxy.New(up.IMAPSAddr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Close() })
	// Each of the first four connections breaks after 300 kB from the
	// server: inside the sixth or so literal of a fetch.
	proxy.CutAfter(300_000, 4)

	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(proxy.Addr), CAFile: up.CA.CAFile,
		Extra: "        idle no\n"}.String())
	checkOnce(t, r.local(t, len(want)), want, 0)
	if proxy.Cuts() < 3 {
		t.Fatalf("only %d connections were cut; the test did not exercise cuts", proxy.Cuts())
	}
	harness.Eventually(t, waitLong, func() bool { return len(r.upstream(t, "INBOX")) == 0 }, "upstream emptied")
	checkOnce(t, r.local(t, len(want)), want, 0)
}

// maddy is killed (SIGKILL) in the middle of a bulk import and started
// again: every message arrives, none twice, except at most the one whose
// Commit raced the kill (docs/guarantees.md).
func TestKillMidImport(t *testing.T) {
	up := newUpstream(t)
	want := seedN(t, up, 1500, 1500)
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile}.String())
	harness.Eventually(t, waitLong, func() bool { return r.countLog("incoming message") >= 300 }, "300 messages in flight")
	r.maddy.Kill(t)
	delivered := r.countLog("incoming message")
	if delivered >= len(want) {
		t.Fatalf("the import finished before the kill (%d); nothing was tested", delivered)
	}
	r.maddy.Start(t)
	msgs := r.local(t, len(want))
	r.waitPolls(t, 2)
	msgs = r.local(t, len(want))
	checkOnce(t, msgs, want, 1)
	if left := r.upstream(t, "INBOX"); len(left) != 0 {
		t.Fatalf("%d messages left upstream with keep no", len(left))
	}
	t.Logf("killed after %d of %d incoming messages; %d messages in maddy after the restart", delivered, len(want), len(msgs))
}

// A UIDVALIDITY change upstream does not re-import the mailbox: known
// messages are recognised by fingerprint, only new ones are fetched.
func TestUIDValidityChange(t *testing.T) {
	up := newUpstream(t)
	want := seedN(t, up, 10, 900)
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile}.String())
	r.local(t, 10)
	r.maddy.Stop(t)

	up.SetUIDValidity(t, upUser, "INBOX", 4242)
	extra := harness.Message(11, 900)
	up.Seed(t, upUser, "INBOX", extra)
	want[harness.Subject(extra)] = extra

	r.maddy.Start(t)
	r.maddy.WaitLog(t, "UIDVALIDITY changed upstream", waitLong)
	r.local(t, 11)
	r.waitPolls(t, 2)
	checkOnce(t, r.local(t, 11), want, 0)
	if !strings.Contains(r.maddy.Log(), `"matched":10`) {
		t.Errorf("the log does not say all 10 known messages were matched:\n%s", grep(r.maddy.Log(), "UIDVALIDITY"))
	}
}

func grep(text, s string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return fmt.Sprint(out)
}
