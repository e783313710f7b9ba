package ledger

import (
	"testing"
	"time"
)

func TestCommittedSinceAndRefetch(t *testing.T) {
	l, _ := open(t)
	key := MailboxKey{Account: "a", Mailbox: "INBOX", UIDValidity: 7}
	old, recent := time.Unix(1_000_000, 0), time.Unix(2_000_000, 0)
	for _, e := range []Entry{
		{UID: "1", State: Delivered, At: old},
		{UID: "2", State: Delivered, At: recent},
		{UID: "3", State: Removed, At: recent},
		{UID: "4", State: Refused, At: recent},
		{UID: "5", State: Adopted, MsgID: "m5", At: recent}, // delivered before a renumbering
		{UID: "6", State: Adopted, At: recent},              // never delivered
		{UID: "7", State: Duplicate, At: recent},
	} {
		if err := l.Record(bg, key, e); err != nil {
			t.Fatal(err)
		}
	}
	l.Record(bg, MailboxKey{Account: "b", Mailbox: "INBOX", UIDValidity: 7}, Entry{UID: "8", State: Delivered, At: recent})
	if err := l.SetMailbox(bg, "a", "INBOX", MailboxState{UIDValidity: 7, UIDFloor: 9}); err != nil {
		t.Fatal(err)
	}

	got, renumbered, err := l.CommittedSince(bg, "a", recent)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].UID != "2" || got[1].UID != "3" || got[0].Key != key || renumbered != 1 {
		t.Fatalf("CommittedSince = %+v, renumbered %d; want UIDs 2 and 3 of %v, 1 renumbered", got, renumbered, key)
	}

	// Only a Delivered entry is dropped: a removed one has no upstream
	// copy left to fetch.
	n, err := l.Refetch(bg, key, []string{"2", "3", "4"})
	if err != nil || n != 1 {
		t.Fatalf("Refetch = %d, %v; want 1", n, err)
	}
	states, _ := l.States(bg, key, 0)
	if _, ok := states["2"]; ok || states["3"].State != Removed || states["4"].State != Refused {
		t.Fatalf("after Refetch: %v", states)
	}
	st, _, _ := l.Mailbox(bg, "a", "INBOX")
	if st.UIDFloor != 1 {
		t.Fatalf("floor %d after Refetch, want 1 (the poll must see UID 2 again)", st.UIDFloor)
	}
}
