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

// first_sync new records a whole folder as adopted a batch at a time, so
// that the fingerprints held at once do not grow with the folder; a cut
// between two batches leaves the folder in its first sync, and the next
// poll adopts the rest: nothing fetched, nothing left unrecorded.
func TestFirstSyncNewRecordsInBatches(t *testing.T) {
	n := 2*batchSize + 7
	up := newFake(n)
	r := newRig(t, up, true)
	r.acc.s.FirstSyncNew = true
	up.printsErrAt = 2
	if _, err := r.poll(t); err == nil {
		t.Fatal("the cut between two batches was not an error")
	}
	if _, seen, _ := r.l.Mailbox(context.Background(), "acct", "INBOX"); seen {
		t.Fatal("the folder left its first sync with part of it recorded")
	}
	if st := r.state(t, "1"); st != ledger.Adopted {
		t.Fatalf("first batch: %q, want adopted", st)
	}
	up.add(uint32(n + 1)) // arrived before the folder's first sync ended: adopted too
	res := r.mustPoll(t)
	if res.Fetched != 0 || res.Adopted != n+1 {
		t.Fatalf("second poll: %+v", res)
	}
	for uid := 1; uid <= n+1; uid++ {
		if st := r.state(t, ledger.FormatUID(uint32(uid))); st != ledger.Adopted {
			t.Fatalf("UID %d: %q, want adopted", uid, st)
		}
	}
	for _, asked := range up.printsAsked {
		if asked > batchSize {
			t.Fatalf("a Fingerprints request of %d UIDs (batch %d): %v", asked, batchSize, up.printsAsked)
		}
	}
	up.add(uint32(n + 2))
	if res := r.mustPoll(t); res.Fetched != 1 {
		t.Fatalf("new mail after the first sync: %+v", res)
	}
	r.noDuplicates(t)
}
