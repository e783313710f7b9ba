package ledger

import (
	"context"
	"path/filepath"
	"testing"
)

func open(t *testing.T) (*Ledger, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ledger.db")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, path
}

var bg = context.Background()

func TestPersistenceAndReadOnly(t *testing.T) {
	l, path := open(t)
	key := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 3}
	l.Record(bg, key, Entry{UID: "1", State: Delivered})
	if err := l.Sync(bg); err != nil {
		t.Fatal(err)
	}
	// A reader (the status command) while the writer is open.
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	l.Record(bg, key, Entry{UID: "2", State: Delivered})
	st, err := ro.States(bg, key, 0)
	if err != nil || len(st) != 2 {
		t.Fatalf("read-only view: %v %v", st, err)
	}
	ro.Close()
	l.Close()

	again, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if st, _ := again.States(bg, key, 0); len(st) != 2 {
		t.Fatalf("after reopening: %v", st)
	}
	if _, err := OpenReadOnly(filepath.Join(t.TempDir(), "missing.db")); err == nil {
		t.Fatal("OpenReadOnly created a missing ledger")
	}
}

// Sync works, and keeps working, while a reader holds a snapshot open
// (the case where a passive checkpoint silently did nothing).
func TestSyncWithAReader(t *testing.T) {
	l, path := open(t)
	key := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 3}
	l.Record(bg, key, Entry{UID: "1", State: Delivered})
	ro, err := OpenReadOnly(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	tx, err := ro.db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var n int
	if err := tx.QueryRow(`SELECT COUNT(*) FROM messages`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	l.Record(bg, key, Entry{UID: "2", State: Delivered})
	if err := l.Sync(bg); err != nil {
		t.Fatal(err)
	}
}

// A ledger written while INBOX was taken as spelled (folders inbox) holds
// keys under "inbox"; at open they move to "INBOX", merged with entries
// already there, so that an upgrade re-imports nothing.
func TestINBOXKeysMigrated(t *testing.T) {
	l, path := open(t)
	lower := MailboxKey{Account: "a", Mailbox: "inbox", UIDValidity: 5}
	upper := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 5}
	mixed := MailboxKey{Account: "a", Mailbox: "Inbox", UIDValidity: 5}
	l.Record(bg, lower, Entry{UID: "1", State: Delivered, Fingerprint: "f1", MsgID: "m1"})
	l.Record(bg, upper, Entry{UID: "1", State: Duplicate, Fingerprint: "f1"}) // polled twice: one of each
	l.Record(bg, lower, Entry{UID: "2", State: Removed, Fingerprint: "f2"})
	l.Record(bg, mixed, Entry{UID: "3", State: Refused, Reason: "550 no"})
	l.Record(bg, upper, Entry{UID: "4", State: Delivered})
	l.Record(bg, MailboxKey{Account: "b", Mailbox: "inbox", UIDValidity: 9}, Entry{UID: "1", State: Delivered})
	l.SetMailbox(bg, "a", "inbox", MailboxState{UIDValidity: 5, UIDFloor: 3})
	l.SetMailbox(bg, "a", "INBOX", MailboxState{UIDValidity: 5, UIDFloor: 5})
	l.SetMailbox(bg, "a", "Inbox", MailboxState{UIDValidity: 5, UIDFloor: 4})
	l.SetMailbox(bg, "b", "inbox", MailboxState{UIDValidity: 9, UIDFloor: 2})
	l.Close()

	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	st, _ := l.States(bg, upper, 0)
	want := map[string]State{"1": Delivered, "2": Removed, "3": Refused, "4": Delivered}
	if len(st) != len(want) {
		t.Fatalf("INBOX after the migration: %+v", st)
	}
	for uid, s := range want {
		if st[uid].State != s {
			t.Errorf("UID %s: %q, want %q", uid, st[uid].State, s)
		}
	}
	for _, k := range []MailboxKey{lower, mixed} {
		if st, _ := l.States(bg, k, 0); len(st) != 0 {
			t.Errorf("%s still has entries: %v", k, st)
		}
		if _, ok, _ := l.Mailbox(bg, k.Account, k.Mailbox); ok {
			t.Errorf("%s still has a mailbox row", k)
		}
	}
	// The lowest floor of the merged rows: nothing above it is skipped.
	if mb, ok, _ := l.Mailbox(bg, "a", "INBOX"); !ok || mb.UIDFloor != 3 || mb.UIDValidity != 5 {
		t.Errorf("a's INBOX row: %+v %v", mb, ok)
	}
	if mb, ok, _ := l.Mailbox(bg, "b", "INBOX"); !ok || mb.UIDFloor != 2 {
		t.Errorf("b's INBOX row: %+v %v", mb, ok)
	}
	if st, _ := l.States(bg, MailboxKey{Account: "b", Mailbox: "INBOX", UIDValidity: 9}, 0); st["1"].State != Delivered {
		t.Errorf("b's INBOX: %+v", st)
	}
}
