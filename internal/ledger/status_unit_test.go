package ledger

import (
	"testing"
	"time"
)

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

// The progress by bytes is saved and read back.
func TestStatusProgressBytes(t *testing.T) {
	l, _ := open(t)
	p := Progress{Done: 3, Total: 10, BytesDone: 3000, BytesTotal: 1 << 40, Started: time.Unix(1700000000, 0)}
	if err := l.SaveStatus(bg, AccountStatus{Account: "a", State: "polling", Progress: p}); err != nil {
		t.Fatal(err)
	}
	st, ok, err := l.Status(bg, "a")
	if err != nil || !ok || st.Progress.BytesDone != 3000 || st.Progress.BytesTotal != 1<<40 || st.Progress.Done != 3 {
		t.Fatalf("status %+v %v %v", st.Progress, ok, err)
	}
}
