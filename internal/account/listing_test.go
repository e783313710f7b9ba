package account

import (
	"context"
	"testing"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source"
)

// A pass finds listed messages by position (listing.go): by binary search
// in an IMAP listing in UID order, by a map otherwise. Both must give what
// a map of the messages gave: every message delivered once, states and
// the floor right, removals recorded.

// sparseFake lists UIDs spread as Gmail's are (a few messages over UIDs up
// to the billions): decimal strings of every length, where a comparison
// of strings alone would misorder them.
func sparseFake(uids ...uint32) *fakeUpstream {
	up := newFake(0)
	for _, uid := range uids {
		up.add(uid)
	}
	return up
}

var sparseUIDs = []uint32{1, 9, 10, 99, 100, 12345, 1000000, 2999999, 3000000, 4294967294}

func TestSparseUIDsDeliverOnceAndSetTheFloor(t *testing.T) {
	for _, descending := range []bool{false, true} {
		up := sparseFake(sparseUIDs...)
		up.descending = descending
		up.uidNext = 4294967295
		r := newRig(t, up, false)
		if res := r.mustPoll(t); res.Delivered != len(sparseUIDs) || res.Removed != len(sparseUIDs) {
			t.Fatalf("descending %v: %+v", descending, res)
		}
		for _, uid := range sparseUIDs {
			if st := r.state(t, ledger.FormatUID(uid)); st != ledger.Removed {
				t.Fatalf("descending %v: UID %d %q, want removed", descending, uid, st)
			}
		}
		st, _, _ := r.l.Mailbox(context.Background(), "acct", "INBOX")
		if st.UIDFloor != 4294967295 {
			t.Fatalf("descending %v: floor %d, want one past the highest", descending, st.UIDFloor)
		}
		r.noDuplicates(t)
	}
}

// A message in the middle of a sparse listing that stays to do (flagged
// \Deleted by another client) holds the floor at its UID, not at a UID a
// string comparison would put first.
func TestSparseUIDsPendingHoldsTheFloor(t *testing.T) {
	for _, descending := range []bool{false, true} {
		up := sparseFake(sparseUIDs...)
		up.descending = descending
		up.deleted[12345] = true
		r := newRig(t, up, true)
		if res := r.mustPoll(t); res.Delivered != len(sparseUIDs)-1 {
			t.Fatalf("descending %v: %+v", descending, res)
		}
		st, _, _ := r.l.Mailbox(context.Background(), "acct", "INBOX")
		if st.UIDFloor != 12345 {
			t.Fatalf("descending %v: floor %d, want 12345", descending, st.UIDFloor)
		}
		delete(up.deleted, 12345)
		if res := r.mustPoll(t); res.Delivered != 1 {
			t.Fatalf("descending %v: the undeleted message: %+v", descending, res)
		}
		st, _, _ = r.l.Mailbox(context.Background(), "acct", "INBOX")
		if st.UIDFloor != 4294967295 {
			t.Fatalf("descending %v: floor %d after the undeleted one", descending, st.UIDFloor)
		}
		r.noDuplicates(t)
	}
}

func TestCmpUIDOrdersAsNumbers(t *testing.T) {
	ordered := []string{"1", "2", "9", "10", "99", "100", "4294967295", "", "01", "a", "b"}
	for i := range ordered {
		for j := range ordered {
			want := 0
			if i < j {
				want = -1
			} else if i > j {
				want = 1
			}
			if got := cmpUID(ordered[i], ordered[j]); got != want {
				t.Errorf("cmpUID(%q, %q) = %d, want %d", ordered[i], ordered[j], got, want)
			}
		}
	}
	if !ascendingUIDs([]source.Message{{UID: "9"}, {UID: "10"}}) || ascendingUIDs([]source.Message{{UID: "10"}, {UID: "9"}}) ||
		ascendingUIDs([]source.Message{{UID: "9"}, {UID: "9"}}) || ascendingUIDs([]source.Message{{UID: "09"}}) {
		t.Error("ascendingUIDs")
	}
}
