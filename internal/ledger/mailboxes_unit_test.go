package ledger

import (
	"errors"
	"testing"
)

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
