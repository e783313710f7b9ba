package ledger

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"
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

func TestRecordAndStates(t *testing.T) {
	l, _ := open(t)
	key := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 7}
	for _, e := range []Entry{
		{UID: "9", State: Delivered, Fingerprint: "f9"},
		{UID: "10", State: Refused, Reason: "550 5.1.1 no"},
		{UID: "100", State: TooLarge},
	} {
		if err := l.Record(bg, key, e); err != nil {
			t.Fatal(err)
		}
	}
	// Another account, folder and UIDVALIDITY must not leak in.
	l.Record(bg, MailboxKey{Account: "b", Mailbox: "INBOX", UIDValidity: 7}, Entry{UID: "11", State: Delivered})
	l.Record(bg, MailboxKey{Account: "a", Mailbox: "Archive", UIDValidity: 7}, Entry{UID: "12", State: Delivered})
	l.Record(bg, MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 8}, Entry{UID: "13", State: Delivered})

	all, err := l.States(bg, key, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all["9"].State != Delivered || all["10"].State != Refused || all["100"].State != TooLarge {
		t.Fatalf("States = %v", all)
	}
	// The floor filter is numeric: 9 < 10 < 100, although "9" > "10" as text.
	from10, err := l.States(bg, key, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(from10) != 2 || from10["9"].State != "" {
		t.Fatalf("States from 10 = %v", from10)
	}
	// Recording again replaces: a retried refusal that is now delivered.
	if err := l.Record(bg, key, Entry{UID: "10", State: Delivered}); err != nil {
		t.Fatal(err)
	}
	entries, err := l.Entries(bg, key)
	if err != nil || len(entries) != 3 {
		t.Fatalf("Entries: %v %v", entries, err)
	}
	for _, e := range entries {
		if e.UID == "10" && (e.State != Delivered || e.Reason != "") {
			t.Fatalf("replaced entry = %+v", e)
		}
		if e.At.IsZero() {
			t.Fatal("entry without a time")
		}
	}
}

func TestFinal(t *testing.T) {
	cases := []struct {
		s          State
		keep, want bool
	}{
		{Delivered, true, true}, {Delivered, false, false}, // waits for its removal
		{Refused, false, true}, {TooLarge, false, true}, {Adopted, false, true},
		{"", true, false}, {"", false, false},
	}
	for _, c := range cases {
		if got := c.s.Final(c.keep); got != c.want {
			t.Errorf("%q.Final(keep=%v) = %v", c.s, c.keep, got)
		}
	}
}

func TestMailboxState(t *testing.T) {
	l, _ := open(t)
	if _, ok, err := l.Mailbox(bg, "a", "INBOX"); ok || err != nil {
		t.Fatalf("a mailbox never polled: ok %v, err %v", ok, err)
	}
	if err := l.SetMailbox(bg, "a", "INBOX", MailboxState{UIDValidity: 5, UIDFloor: 42}); err != nil {
		t.Fatal(err)
	}
	st, ok, err := l.Mailbox(bg, "a", "INBOX")
	if !ok || err != nil || st != (MailboxState{UIDValidity: 5, UIDFloor: 42}) {
		t.Fatalf("Mailbox = %+v %v %v", st, ok, err)
	}
	l.SetMailbox(bg, "a", "INBOX", MailboxState{UIDValidity: 6})
	if st, _, _ := l.Mailbox(bg, "a", "INBOX"); st.UIDFloor != 1 {
		t.Fatalf("a zero floor is stored as 1, got %d", st.UIDFloor)
	}
}

func TestForget(t *testing.T) {
	l, _ := open(t)
	key := MailboxKey{Account: "pop", Mailbox: "INBOX"}
	for _, uid := range []string{"u1", "u2", "u3"} {
		l.Record(bg, key, Entry{UID: uid, State: Delivered})
	}
	if err := l.Forget(bg, key, []string{"u1", "u3", "never-there"}); err != nil {
		t.Fatal(err)
	}
	st, _ := l.States(bg, key, 0)
	if len(st) != 1 || st["u2"].State != Delivered {
		t.Fatalf("after Forget: %v", st)
	}
}

func TestRekey(t *testing.T) {
	l, _ := open(t)
	old := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 1}
	l.Record(bg, old, Entry{UID: "1", State: Delivered, Fingerprint: "f1"})
	l.Record(bg, old, Entry{UID: "2", State: Refused, Reason: "550 no", Fingerprint: "f2"})
	l.Record(bg, old, Entry{UID: "3", State: Delivered, Fingerprint: "gone"})
	if err := l.Rekey(bg, old, 2, map[string]string{"1": "101", "2": "102"}); err != nil {
		t.Fatal(err)
	}
	if st, _ := l.States(bg, old, 0); len(st) != 0 {
		t.Fatalf("old UIDVALIDITY still has entries: %v", st)
	}
	cur, _ := l.Entries(bg, MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 2})
	got := map[string]Entry{}
	for _, e := range cur {
		got[e.UID] = e
	}
	if len(got) != 2 || got["101"].State != Adopted || got["102"].State != Refused || got["102"].Reason != "550 no" || got["101"].Fingerprint != "f1" {
		t.Fatalf("after Rekey: %+v", got)
	}
}

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

// Rekey within one UIDVALIDITY (a server restored from a backup renumbers
// without changing it): the moves do not collide with the old entries.
func TestRekeySameValidity(t *testing.T) {
	l, _ := open(t)
	key := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 5}
	l.Record(bg, key, Entry{UID: "1", State: Delivered, Fingerprint: "f1"})
	l.Record(bg, key, Entry{UID: "2", State: Removed, Fingerprint: "f2"})
	l.Record(bg, key, Entry{UID: "3", State: Refused, Fingerprint: "f3"})
	// 1 → 2 and 2 → 1 swap places; 3 is gone.
	if err := l.Rekey(bg, key, 5, map[string]string{"1": "2", "2": "1"}); err != nil {
		t.Fatal(err)
	}
	st, _ := l.States(bg, key, 0)
	if len(st) != 2 || st["2"].State != Adopted || st["1"].State != Adopted {
		t.Fatalf("after Rekey: %+v", st)
	}
}

// MarkRemoved turns delivered entries into removed ones, and nothing else.
func TestMarkRemoved(t *testing.T) {
	l, _ := open(t)
	key := MailboxKey{Account: "pop", Mailbox: "INBOX"}
	l.Record(bg, key, Entry{UID: "u1", State: Delivered, Size: 10})
	l.Record(bg, key, Entry{UID: "u2", State: Refused})
	if err := l.MarkRemoved(bg, key, []string{"u1", "u2", "u3"}); err != nil {
		t.Fatal(err)
	}
	st, _ := l.States(bg, key, 0)
	if len(st) != 2 || st["u1"].State != Removed || st["u1"].Size != 10 || st["u2"].State != Refused {
		t.Fatalf("after MarkRemoved: %+v", st)
	}
}

// A floor reset by remote-pull retry while a poll runs is not overwritten
// by the floor that poll computed from what it read before the reset.
func TestRetryDuringPollKeepsTheReset(t *testing.T) {
	l, _ := open(t)
	key := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 5}
	if err := l.SetMailbox(bg, "a", "INBOX", MailboxState{UIDValidity: 5, UIDFloor: 3}); err != nil {
		t.Fatal(err)
	}
	l.Record(bg, key, Entry{UID: "3", State: Refused})
	read, _, _ := l.Mailbox(bg, "a", "INBOX") // the poll starts
	if n, err := l.Retry(bg, "a", []State{Refused}, "", nil); err != nil || n != 1 {
		t.Fatalf("Retry: %d %v", n, err)
	}
	read.UIDFloor = 10 // the poll ends, having seen UID 3 as refused
	if err := l.SetMailbox(bg, "a", "INBOX", read); !errors.Is(err, ErrFloorMoved) {
		t.Fatalf("SetMailbox over a reset: %v, want ErrFloorMoved", err)
	}
	if st, _, _ := l.Mailbox(bg, "a", "INBOX"); st.UIDFloor != 1 {
		t.Fatalf("floor %d after the retry, want 1", st.UIDFloor)
	}
	// The next poll reads the new generation and may store again.
	next, _, _ := l.Mailbox(bg, "a", "INBOX")
	next.UIDFloor = 4
	if err := l.SetMailbox(bg, "a", "INBOX", next); err != nil {
		t.Fatal(err)
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

// A status note is saved and read back; an older ledger gains the column.
func TestStatusNote(t *testing.T) {
	l, path := open(t)
	if err := l.SaveStatus(bg, AccountStatus{Account: "a", State: "ok", Note: "keep no: flagged only"}); err != nil {
		t.Fatal(err)
	}
	sts, err := l.Statuses(bg)
	if err != nil || len(sts) != 1 || sts[0].Note != "keep no: flagged only" {
		t.Fatalf("statuses %+v %v", sts, err)
	}
	// An older ledger: drop the new columns' table and re-create it the old way.
	if _, err := l.db.Exec(`DROP TABLE account_status; CREATE TABLE account_status (account TEXT NOT NULL PRIMARY KEY,
		protocol TEXT NOT NULL DEFAULT '', host TEXT NOT NULL DEFAULT '', state TEXT NOT NULL DEFAULT '',
		last_success INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '', next_poll INTEGER NOT NULL DEFAULT 0,
		delivered_total INTEGER NOT NULL DEFAULT 0, refused_total INTEGER NOT NULL DEFAULT 0,
		updated INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID`); err != nil {
		t.Fatal(err)
	}
	l.Close()
	again, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := again.SaveStatus(bg, AccountStatus{Account: "a", Note: "n"}); err != nil {
		t.Fatalf("after migration: %v", err)
	}
}

// The delivered and refused totals are counted with the entries, in one
// transaction: a crash after a delivery cannot lose its count.
func TestTotalsCountedWithEntries(t *testing.T) {
	l, _ := open(t)
	key := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 1}
	l.Record(bg, key, Entry{UID: "1", State: Delivered})
	l.Record(bg, key, Entry{UID: "2", State: Refused})
	l.Record(bg, key, Entry{UID: "3", State: TooLarge})
	if err := l.SaveStatus(bg, AccountStatus{Account: "a", State: "ok"}); err != nil {
		t.Fatal(err)
	}
	l.Record(bg, key, Entry{UID: "4", State: Delivered})
	sts, err := l.Statuses(bg)
	if err != nil || len(sts) != 1 || sts[0].Delivered != 2 || sts[0].Refused != 1 || sts[0].State != "ok" {
		t.Fatalf("statuses %+v %v", sts, err)
	}
}

// DeliveredElsewhere matches by global ID when the upstream has one (Gmail's
// X-GM-MSGID), by fingerprint otherwise; a ledger from before global IDs
// gains the column.
func TestDeliveredElsewhereByGlobalID(t *testing.T) {
	l, path := open(t)
	// An older ledger: the messages table without global_id.
	if _, err := l.db.Exec(`DROP TABLE messages; CREATE TABLE messages (account TEXT NOT NULL, mailbox TEXT NOT NULL,
		uidvalidity INTEGER NOT NULL, uid TEXT NOT NULL, state TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
		fingerprint TEXT NOT NULL DEFAULT '', size INTEGER NOT NULL DEFAULT 0, msg_id TEXT NOT NULL DEFAULT '',
		at INTEGER NOT NULL, PRIMARY KEY (account, mailbox, uidvalidity, uid)) WITHOUT ROWID`); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l, err := Open(path)
	if err != nil {
		t.Fatalf("after migration: %v", err)
	}
	defer l.Close()

	inbox := MailboxKey{Account: "gmail", Mailbox: "INBOX", UIDValidity: 1}
	for _, e := range []Entry{
		{UID: "1", State: Delivered, Fingerprint: "fp-a", GlobalID: "gm:100"},
		{UID: "2", State: Refused, Fingerprint: "fp-b", GlobalID: "gm:200"},
		{UID: "3", State: Delivered, Fingerprint: "fp-c"},
	} {
		if err := l.Record(bg, inbox, e); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		mailbox, uid, fingerprint, globalID string
		want                                bool
	}{
		{"Work", "1", "fp-other", "gm:100", true}, // the same Gmail message, other bytes would not matter
		{"Work", "1", "fp-a", "gm:101", false},    // the same header, another Gmail message
		{"INBOX", "1", "fp-a", "gm:100", false},   // the entry itself is not elsewhere
		{"Work", "1", "fp-b", "gm:200", false},    // refused, not delivered
		{"Work", "1", "fp-c", "", true},           // no global ID: the fingerprint
		{"Work", "1", "fp-other", "", false},
	} {
		key := MailboxKey{Account: "gmail", Mailbox: c.mailbox, UIDValidity: 1}
		got, err := l.DeliveredElsewhere(bg, key, c.uid, Identity{Fingerprint: c.fingerprint, GlobalID: c.globalID})
		if err != nil || got != c.want {
			t.Errorf("DeliveredElsewhere(%s, %s, %q) = %v, %v; want %v", c.mailbox, c.fingerprint, c.globalID, got, err, c.want)
		}
	}
	if es, err := l.Entries(bg, inbox); err != nil || len(es) != 3 || es[0].GlobalID != "gm:100" {
		t.Errorf("entries %+v %v", es, err)
	}
}

// A message delivered, then renumbered upstream (its entry adopted by
// Rekey), still counts as delivered for dedupe; one adopted without ever
// being delivered (first_sync new, max_age) does not.
func TestDeliveredElsewhereAfterRekey(t *testing.T) {
	l, _ := open(t)
	inbox := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 1}
	l.Record(bg, inbox, Entry{UID: "1", State: Delivered, Fingerprint: "fp-1", MsgID: "maddy-1", Digest: "d-1"})
	if err := l.Rekey(bg, inbox, 2, map[string]string{"1": "51"}); err != nil {
		t.Fatal(err)
	}
	old := MailboxKey{Account: "a", Mailbox: "Old", UIDValidity: 1}
	if err := l.RecordMany(bg, old, []Entry{{UID: "7", State: Adopted, Fingerprint: "fp-7", Digest: "d-7"}}); err != nil {
		t.Fatal(err)
	}
	work := MailboxKey{Account: "a", Mailbox: "Work", UIDValidity: 3}
	for _, c := range []struct {
		id   Identity
		want bool
	}{
		{Identity{Fingerprint: "fp-1"}, true}, // delivered before the renumbering
		{Identity{Digest: "d-1"}, true},
		{Identity{Fingerprint: "fp-7"}, false}, // adopted, never delivered
		{Identity{Digest: "d-7"}, false},
	} {
		if got, err := l.DeliveredElsewhere(bg, work, "9", c.id); err != nil || got != c.want {
			t.Errorf("DeliveredElsewhere(%+v) = %v, %v; want %v", c.id, got, err, c.want)
		}
	}
}

// Entries recorded before global IDs existed have none: a message that has
// one is matched with them by its content (digest, fingerprint), never with
// an entry that has another global ID.
func TestDeliveredElsewhereLegacyEntries(t *testing.T) {
	l, _ := open(t)
	inbox := MailboxKey{Account: "gmail", Mailbox: "INBOX", UIDValidity: 1}
	l.Record(bg, inbox, Entry{UID: "1", State: Delivered, Fingerprint: "fp-old"}) // before global_id
	l.Record(bg, inbox, Entry{UID: "2", State: Delivered, Fingerprint: "fp-new", Digest: "d-new", GlobalID: "gm:200"})
	work := MailboxKey{Account: "gmail", Mailbox: "Work", UIDValidity: 1}
	for _, c := range []struct {
		id   Identity
		want bool
	}{
		{Identity{GlobalID: "gm:100", Fingerprint: "fp-old"}, true},  // the legacy entry, by fingerprint
		{Identity{GlobalID: "gm:201", Fingerprint: "fp-new"}, false}, // another Gmail message, same header
		{Identity{GlobalID: "gm:201", Digest: "d-new"}, false},       // another Gmail message, same bytes
		{Identity{Digest: "d-new"}, true},                            // no global ID here: the bytes
		{Identity{GlobalID: "gm:200"}, true},
	} {
		if got, err := l.DeliveredElsewhere(bg, work, "5", c.id); err != nil || got != c.want {
			t.Errorf("DeliveredElsewhere(%+v) = %v, %v; want %v", c.id, got, err, c.want)
		}
	}
	// The entry itself is not "elsewhere"; another UID of the same folder
	// is (a message moved out and back gets a new UID).
	if got, _ := l.DeliveredElsewhere(bg, inbox, "2", Identity{Digest: "d-new"}); got {
		t.Error("an entry matched itself")
	}
	if got, _ := l.DeliveredElsewhere(bg, inbox, "3", Identity{Digest: "d-new"}); !got {
		t.Error("a copy under a new UID of the same folder was not matched")
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

// What the account carries over a restart: its last success, when it was
// first started (set by the first save only), the notices' daily count;
// and status counts messages adopted for their age, not other adoptions.
func TestStatusCarriedOverARestart(t *testing.T) {
	l, _ := open(t)
	first := time.Unix(1_700_000_000, 0)
	ok := first.Add(time.Hour)
	if err := l.SaveStatus(bg, AccountStatus{Account: "a", State: "ok", LastSuccess: ok, FirstSeen: first}); err != nil {
		t.Fatal(err)
	}
	if err := l.SaveStatus(bg, AccountStatus{Account: "a", State: "auth failed", LastSuccess: ok, FirstSeen: first.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	notice := NoticeState{Kind: "auth failed", Since: ok, Sent: ok, Window: first, Count: 3}
	if err := l.SetNotice(bg, "a", notice); err != nil {
		t.Fatal(err)
	}
	key := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 1}
	l.RecordMany(bg, key, []Entry{{UID: "1", State: Adopted, Reason: ReasonMaxAge}, {UID: "2", State: Adopted}})
	st, found, err := l.Status(bg, "a")
	if err != nil || !found {
		t.Fatalf("Status: %v %v", found, err)
	}
	if !st.LastSuccess.Equal(ok) || !st.FirstSeen.Equal(first) || st.AdoptedMaxAge != 1 {
		t.Fatalf("last success %v, first seen %v, adopted for age %d; want %v, %v, 1", st.LastSuccess, st.FirstSeen, st.AdoptedMaxAge, ok, first)
	}
	got, err := l.Notice(bg, "a")
	if err != nil || got != notice {
		t.Fatalf("Notice: %+v %v, want %+v", got, err, notice)
	}
	if _, found, err := l.Status(bg, "b"); found || err != nil {
		t.Fatalf("Status of an unknown account: %v %v", found, err)
	}
}
