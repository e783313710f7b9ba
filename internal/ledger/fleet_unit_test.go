package ledger

import (
	"errors"
	"strings"
	"testing"
)

// Upstream text is stored as one bounded line with its control
// characters replaced: a server's NO reply or a refusal quoting a header
// cannot reach the admin's terminal through the ledger.
func TestStoredUpstreamTextIsSanitised(t *testing.T) {
	l, _ := open(t)
	hostile := "NO \x1b]0;owned\x07\x1b[2J" + strings.Repeat("x", 100_000)
	if err := l.SaveStatus(bg, AccountStatus{Account: "a", LastError: hostile, Note: "note \x1b[31m"}); err != nil {
		t.Fatal(err)
	}
	key := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 1}
	if err := l.Record(bg, key, Entry{UID: "1", State: Refused, Reason: "550 bad header \x1b[5m" + hostile}); err != nil {
		t.Fatal(err)
	}
	if err := l.RecordMany(bg, key, []Entry{{UID: "2", State: Refused, Reason: hostile}}); err != nil {
		t.Fatal(err)
	}
	sts, err := l.Statuses(bg)
	if err != nil || len(sts) != 1 {
		t.Fatal(sts, err)
	}
	entries, err := l.Entries(bg, key)
	if err != nil || len(entries) != 2 {
		t.Fatal(entries, err)
	}
	for what, s := range map[string]string{"last error": sts[0].LastError, "note": sts[0].Note,
		"reason": entries[0].Reason, "reason (RecordMany)": entries[1].Reason} {
		if strings.ContainsAny(s, "\x1b\x07") || len(s) > 1000 {
			t.Errorf("%s stored raw: %d bytes, %q...", what, len(s), s[:min(len(s), 40)])
		}
	}
}

// The running maddy records which accounts it runs; forget is refused
// for them while it runs, and allowed once it stopped them, or when no
// maddy runs at all (what a crashed one left behind does not count).
func TestForgetRefusedWhileRunning(t *testing.T) {
	l, _ := open(t)
	key := MailboxKey{Account: "gone", Mailbox: "INBOX", UIDValidity: 1}
	l.Record(bg, key, Entry{UID: "1", State: Delivered})
	if err := l.SetRunning(bg, "gone", true); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ForgetAccount(bg, "gone", true); !errors.Is(err, ErrAccountRunning) {
		t.Fatalf("forget of an account the running maddy polls: %v", err)
	}
	if e, _ := l.Entries(bg, key); len(e) != 1 {
		t.Fatal("the refused forget dropped entries")
	}
	// No maddy runs: the record is what a crashed one left.
	if n, err := l.ForgetAccount(bg, "gone", false); err != nil || n != 1 {
		t.Fatalf("forget with no maddy running: %d %v", n, err)
	}

	l.Record(bg, key, Entry{UID: "1", State: Delivered})
	l.SetRunning(bg, "gone", true)
	if err := l.SetRunning(bg, "gone", false); err != nil {
		t.Fatal(err)
	}
	if n, err := l.ForgetAccount(bg, "gone", true); err != nil || n != 1 {
		t.Fatalf("forget after the running maddy stopped it: %d %v", n, err)
	}

	// A new maddy starts afresh: what a crashed one recorded is cleared.
	l.SetRunning(bg, "crashed", true)
	if err := l.ResetRunning(bg); err != nil {
		t.Fatal(err)
	}
	if _, err := l.ForgetAccount(bg, "crashed", true); err != nil {
		t.Fatalf("forget after a reset: %v", err)
	}
}

// retry with Duplicate undoes a wrong duplicate record: the entry becomes
// Retry, which is not final (the message is fetched again) and which a
// poll delivers without dedupe. Without it, duplicates stay.
func TestRetryDuplicate(t *testing.T) {
	l, _ := open(t)
	key := MailboxKey{Account: "a", Mailbox: "Work", UIDValidity: 1}
	l.Record(bg, key, Entry{UID: "5", State: Duplicate, Fingerprint: "f"})
	l.Record(bg, key, Entry{UID: "6", State: Duplicate, Fingerprint: "g"})
	if n, err := l.Retry(bg, "a", []State{Refused, TooLarge}, "", nil); err != nil || n != 0 {
		t.Fatalf("retry without duplicates: %d %v", n, err)
	}
	if n, err := l.Retry(bg, "a", []State{Duplicate}, "Work", []string{"5"}); err != nil || n != 1 {
		t.Fatalf("retry of a duplicate: %d %v", n, err)
	}
	states, _ := l.States(bg, key, 0)
	if states["5"].State != Retry || states["6"].State != Duplicate {
		t.Fatalf("states after retry: %+v", states)
	}
	if Retry.Final(true) || Retry.Final(false) {
		t.Error("a retried entry is final: it would never be fetched")
	}
	if st, err := l.StateOf(bg, key, "5"); err != nil || st != Retry {
		t.Errorf("StateOf = %q, %v", st, err)
	}
}
