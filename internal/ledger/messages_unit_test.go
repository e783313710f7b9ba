package ledger

import (
	"strings"
	"testing"
	"time"
)

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

// A delivered message that a renumbering (or a restore from a backup) took
// out of its folder is gone from the folder's entries, so that its UID
// names new mail; but it still counts as delivered for dedupe: a copy the
// user filed elsewhere is not delivered again.
func TestDeliveredElsewhereAfterItsFolderLostIt(t *testing.T) {
	l, _ := open(t)
	work := MailboxKey{Account: "a", Mailbox: "Work", UIDValidity: 300}
	l.Record(bg, work, Entry{UID: "46", State: Removed, Fingerprint: "fp-46", MsgID: "maddy-46", Digest: "d-46"})
	l.Record(bg, work, Entry{UID: "47", State: Refused, Fingerprint: "fp-47", Digest: "d-47"})
	for _, to := range []uint32{300, 301} { // a restore, then a new UIDVALIDITY
		if err := l.Rekey(bg, MailboxKey{Account: "a", Mailbox: "Work", UIDValidity: 300}, to, nil); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range []uint32{300, 301} {
		if st, _ := l.States(bg, MailboxKey{Account: "a", Mailbox: "Work", UIDValidity: v}, 0); len(st) != 0 {
			t.Fatalf("UIDVALIDITY %d: the lost messages' entries still hold their UIDs: %v", v, st)
		}
	}
	inbox := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 100}
	for _, c := range []struct {
		id   Identity
		want bool
	}{
		{Identity{Digest: "d-46"}, true},
		{Identity{Fingerprint: "fp-46"}, true},
		{Identity{Digest: "d-47"}, false}, // refused, never delivered
	} {
		if got, err := l.DeliveredElsewhere(bg, inbox, "30", c.id); err != nil || got != c.want {
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

// Every column of an entry is written and read back by each path that
// copies whole entries: Record, RecordMany, Rekey and the INBOX
// migration (both its plain copy and its merge of one UID recorded under
// two spellings). A column left out of one of them is lost there.
func TestEveryColumnKept(t *testing.T) {
	l, path := open(t)
	full := Entry{UID: "7", State: Removed, Reason: "r", Fingerprint: "f", Size: 42,
		MsgID: "m", Digest: "d", GlobalID: "g", At: time.Unix(1700000000, 0)}
	same := func(what string, got []Entry, want Entry) {
		t.Helper()
		if len(got) != 1 {
			t.Fatalf("%s: %d entries, want 1: %+v", what, len(got), got)
		}
		g := got[0]
		if !g.At.Equal(want.At) {
			t.Errorf("%s: at %v, want %v", what, g.At, want.At)
		}
		g.At, want.At = time.Time{}, time.Time{}
		if g != want {
			t.Errorf("%s:\n got %+v\nwant %+v", what, g, want)
		}
	}

	key := MailboxKey{Account: "a", Mailbox: "Archive", UIDValidity: 1}
	if err := l.Record(bg, key, full); err != nil {
		t.Fatal(err)
	}
	got, _ := l.Entries(bg, key)
	same("Record", got, full)

	if err := l.Rekey(bg, key, 2, map[string]string{"7": "9"}); err != nil {
		t.Fatal(err)
	}
	rekeyed := full
	rekeyed.UID, rekeyed.State = "9", Adopted
	got, _ = l.Entries(bg, MailboxKey{Account: "a", Mailbox: "Archive", UIDValidity: 2})
	same("Rekey", got, rekeyed)

	// RecordMany stamps its own time.
	many := MailboxKey{Account: "a", Mailbox: "Sent", UIDValidity: 1}
	before := time.Now().Truncate(time.Second)
	if err := l.RecordMany(bg, many, []Entry{full}); err != nil {
		t.Fatal(err)
	}
	got, _ = l.Entries(bg, many)
	if len(got) == 1 && got[0].At.Before(before) {
		t.Errorf("RecordMany: at %v, before the call (%v)", got[0].At, before)
	}
	stamped := full
	if len(got) == 1 {
		stamped.At = got[0].At
	}
	same("RecordMany", got, stamped)

	// Under "inbox": UID 7 merges over a less telling entry under
	// "INBOX", UID 8 is copied as it is.
	lower := MailboxKey{Account: "a", Mailbox: "inbox", UIDValidity: 3}
	upper := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 3}
	copied := full
	copied.UID = "8"
	l.Record(bg, lower, full)
	l.Record(bg, lower, copied)
	l.Record(bg, upper, Entry{UID: "7", State: Delivered, Reason: "x", Fingerprint: "x", Size: 1,
		MsgID: "x", Digest: "x", GlobalID: "x", At: time.Unix(1600000000, 0)})
	l.SetMailbox(bg, "a", "inbox", MailboxState{UIDValidity: 3})
	l.SetMailbox(bg, "a", "INBOX", MailboxState{UIDValidity: 3})
	l.Close()
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got, _ = l.Entries(bg, upper)
	byUID := map[string][]Entry{}
	for _, e := range got {
		byUID[e.UID] = append(byUID[e.UID], e)
	}
	same("INBOX merge", byUID["7"], full)
	same("INBOX copy", byUID["8"], copied)
}

// HighestUID compares UIDs as numbers, over every state, in one mailbox
// at one UIDVALIDITY, through the index rather than a scan of the
// mailbox's entries.
func TestHighestUID(t *testing.T) {
	l, _ := open(t)
	key := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 7}
	if h, err := l.HighestUID(bg, key); err != nil || h != 0 {
		t.Fatalf("empty mailbox: %d, %v", h, err)
	}
	for _, e := range []Entry{{UID: "9", State: Delivered}, {UID: "10", State: Removed}, {UID: "3", State: Refused}} {
		if err := l.Record(bg, key, e); err != nil {
			t.Fatal(err)
		}
	}
	l.Record(bg, MailboxKey{Account: "b", Mailbox: "INBOX", UIDValidity: 7}, Entry{UID: "11", State: Delivered})
	l.Record(bg, MailboxKey{Account: "a", Mailbox: "Archive", UIDValidity: 7}, Entry{UID: "12", State: Delivered})
	l.Record(bg, MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 8}, Entry{UID: "13", State: Delivered})
	if h, err := l.HighestUID(bg, key); err != nil || h != 10 {
		t.Fatalf("HighestUID = %d, %v; want 10 (numeric, any state, this key only)", h, err)
	}
	rows, err := l.db.Query(`EXPLAIN QUERY PLAN SELECT MAX(`+uidNumber+`) FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity = ?`, "a", "INBOX", 7)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if len(plan) == 0 || !strings.Contains(strings.Join(plan, "; "), "messages_uid_number") {
		t.Fatalf("HighestUID's query plan does not use the index: %q", plan)
	}
}

// Dedupe asks the ledger at every delivery: each of its lookups must use
// its column's index, or an import slows down with every entry recorded
// (a scan of the account's entries per message).
func TestDeliveredElsewhereUsesTheIndexes(t *testing.T) {
	l, _ := open(t)
	for _, c := range identityColumns(Identity{GlobalID: "1", Digest: "d", Fingerprint: "f"}) {
		for _, without := range []bool{false, true} {
			c.onlyWithoutGlobalID = without
			rows, err := l.db.Query(`EXPLAIN QUERY PLAN `+deliveredElsewhereQuery(c), "a", c.value, "INBOX", 1, "1")
			if err != nil {
				t.Fatal(err)
			}
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, detail)
			}
			rows.Close()
			if want := "USING INDEX " + c.index + " (account=? AND " + c.column + "=?)"; !strings.Contains(strings.Join(plan, "; "), want) {
				t.Errorf("%s: the query plan is not %q: %q", c.column, want, plan)
			}
		}
	}
}
