package account

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/ledger"
)

// budgetRig is an account with nine messages of one size upstream, a
// download budget of perDay messages' worth, and a clock the test moves.
func budgetRig(t *testing.T, perDay float64) (r *noticeRig, size int64) {
	t.Helper()
	r = newNoticeRig(t)
	r.up.msgs = nil
	r.up.msgs = map[uint32][]byte{}
	for i := 1; i <= 9; i++ {
		r.up.add(uint32(i))
	}
	size = int64(len(r.up.msgs[1]))
	r.acc.s.DownloadBudget = int64(perDay * float64(size))
	return r, size
}

// step polls at d after t0 and settles as Run does: what it fetched, and
// how long it waits.
func (r *noticeRig) step(t *testing.T, d time.Duration) (fetched int, wait time.Duration, err error) {
	t.Helper()
	r.clock = r.t0.Add(d)
	before := len(r.up.fetched)
	res, err := r.acc.pollSafely(context.Background())
	wait = r.acc.settle(context.Background(), res, err)
	return len(r.up.fetched) - before, wait, err
}

// downloadedInDay is what the ledger counts in the 24 hours up to now.
func (r *noticeRig) downloadedInDay(t *testing.T) int64 {
	t.Helper()
	ds, err := r.l.Downloads(context.Background(), "acct", r.clock.Add(-budgetWindow))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, d := range ds {
		n += d.Bytes
	}
	return n
}

// The budget paces an import: a poll stops before the message that would
// overspend the last 24 hours (nothing recorded of it, nothing lost), the
// account is "paced" until enough of the window has passed, the window
// survives a restart, and the budget is never overspent.
func TestBudgetPacesImport(t *testing.T) {
	r, size := budgetRig(t, 3.5)
	budget := r.acc.s.DownloadBudget
	n, wait, err := r.step(t, 0)
	var paced *pacedError
	if n != 3 || !errors.As(err, &paced) {
		t.Fatalf("first poll fetched %d (%v), want 3 then paced", n, err)
	}
	if st := r.acc.Status(); st.State != string(StatePaced) || st.LastError != "" {
		t.Fatalf("state %q, error %q; want paced, no error", st.State, st.LastError)
	}
	resume := r.t0.Truncate(ledger.DownloadBucket).Add(ledger.DownloadBucket + budgetWindow)
	if got := r.clock.Add(wait); !got.Equal(resume) {
		t.Fatalf("resumes at %v, want %v (when the first minute's downloads leave the window)", got, resume)
	}
	if got := r.state(t, "4"); got != "" {
		t.Fatalf("the message that did not fit is recorded as %q, want nothing", got)
	}
	saved, _, err := r.l.Status(context.Background(), "acct")
	if err != nil || saved.Budget != budget || saved.BudgetLeft != budget-3*size || saved.PendingBytes != 6*size {
		t.Fatalf("budget status %+v %v; want budget %d, %d left, %d pending", saved, err, budget, budget-3*size, 6*size)
	}
	// A restart keeps the window: nothing more until the resume time.
	r.restart()
	r.acc.s.DownloadBudget = budget
	if n, _, err := r.step(t, time.Hour); n != 0 || !errors.As(err, &paced) {
		t.Fatalf("after a restart fetched %d (%v), want none, paced", n, err)
	}
	for _, at := range []time.Duration{resume.Sub(r.t0), resume.Sub(r.t0) + budgetWindow + 2*time.Minute} {
		n, _, err := r.step(t, at)
		if n == 0 || r.downloadedInDay(t) > budget {
			t.Fatalf("at %v: fetched %d (%v), %d bytes in the day; want some, at most %d", at, n, err, r.downloadedInDay(t), budget)
		}
	}
	if len(r.p.committed) != 9 || len(r.up.fetched) != 9 {
		t.Fatalf("%d delivered, %d downloads; want all 9 once", len(r.p.committed), len(r.up.fetched))
	}
	if st := r.acc.Status(); st.State != string(StateOK) {
		t.Fatalf("state %q once all is fetched, want ok", st.State)
	}
}

// With nothing left of the budget, a poll does not even connect.
func TestBudgetSpentNoConnection(t *testing.T) {
	r, _ := budgetRig(t, 3)
	if n, _, _ := r.step(t, 0); n != 3 {
		t.Fatalf("first poll fetched %d, want 3", n)
	}
	connects := r.up.connects
	var paced *pacedError
	if _, _, err := r.step(t, time.Hour); !errors.As(err, &paced) || r.up.connects != connects {
		t.Fatalf("poll with the budget spent: %v, %d connections; want paced, none", err, r.up.connects-connects)
	}
}

// A message larger than the whole budget does not stall the account: it
// is fetched alone once the window is empty, and the account is then
// paced for a day.
func TestBudgetSmallerThanAMessage(t *testing.T) {
	r, _ := budgetRig(t, 0.5)
	for i, at := range []time.Duration{0, budgetWindow + 2*time.Minute, 2*budgetWindow + 4*time.Minute} {
		n, _, err := r.step(t, at)
		var paced *pacedError
		if n != 1 || !errors.As(err, &paced) {
			t.Fatalf("poll %d fetched %d (%v), want 1 alone, then paced", i, n, err)
		}
		if _, _, err := r.step(t, at+time.Hour); !errors.As(err, &paced) {
			t.Fatalf("an hour after poll %d: %v, want paced", i, err)
		}
	}
}
