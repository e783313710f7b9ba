package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
)

// notices: one per change of trouble that lasted, none again while it
// lasts (nor after a restart), one when it is over; through the account's
// pipeline.
func TestNotices(t *testing.T) {
	r := newNoticeRig(t)
	bad := &refusingUpstream{fakeUpstream: r.up}

	r.at(0) // all well: the message, no notice
	if len(r.sent) != 0 {
		t.Fatalf("notices while all is well: %v", r.sent)
	}
	r.acc.s.Upstream = bad
	for _, m := range []time.Duration{1, 2, 4, 8, 16, 32} {
		r.at(m * time.Minute)
	}
	if n := r.sent; len(n) != 1 || n[0] != "remote_pull: account acct: auth failed" {
		t.Fatalf("after refused logins for half an hour: %v, want one auth failed notice", n)
	}
	body := string(r.p.committed["remote_pull: account acct: auth failed"])
	for _, want := range []string{"password_file", "systemctl reload maddy", "Auto-Submitted: auto-generated"} {
		if !strings.Contains(body, want) {
			t.Errorf("the notice lacks %q:\n%s", want, body)
		}
	}
	// A restart while the trouble lasts says nothing new.
	r.restart()
	r.at(33 * time.Minute)
	if n := r.sent; len(n) != 1 {
		t.Fatalf("after a restart: %v", n)
	}
	// Fixed: one notice that it works again.
	r.acc.s.Upstream = r.up
	r.at(34 * time.Minute)
	r.at(35 * time.Minute)
	if n := r.sent; len(n) != 2 || n[1] != "remote_pull: account acct works again" {
		t.Fatalf("after the fix: %v", n)
	}
	// A refused message waiting upstream is a trouble of its own.
	r.up.add(3)
	r.p.refuse = "m3"
	r.at(36 * time.Minute)
	if n := r.sent; len(n) != 3 || n[2] != "remote_pull: account acct: messages waiting upstream" {
		t.Fatalf("no notice for a refused message: %v", n)
	}
	// notify off: nothing.
	r.acc.s.Notify = nil
	r.acc.s.Upstream = bad
	for _, m := range []time.Duration{40, 50, 60, 120} {
		r.at(m * time.Minute)
	}
	if n := r.sent; len(n) != 3 {
		t.Fatalf("notices with notify off: %v", n)
	}
}

// noticeRig is an account with notices on and a clock the test moves.
type noticeRig struct {
	*rig
	clock, t0 time.Time
	sent      []string // subjects of the notices delivered, in order
}

func newNoticeRig(t *testing.T) *noticeRig {
	t.Helper()
	r := &noticeRig{rig: newRig(t, newFake(1), true), t0: time.Now()}
	r.clock = r.t0
	r.acc.s.Notify = []string{"owner@example.org"}
	r.acc.s.Now = func() time.Time { return r.clock }
	r.p.onCommit = func(subject string) {
		if strings.HasPrefix(subject, "remote_pull: ") {
			r.sent = append(r.sent, subject)
		}
	}
	return r
}

// at moves the clock to d after t0, polls, reports and checks for
// notices, as Run does.
func (r *noticeRig) at(d time.Duration) {
	r.clock = r.t0.Add(d)
	res, err := r.acc.pollSafely(context.Background())
	r.acc.report(res, err, classify(err), time.Minute)
	r.acc.checkNotice(context.Background())
}

// restart is a new process on the same ledger and clock.
func (r *noticeRig) restart() { r.acc = New(r.acc.s) }

// downUpstream cannot be reached.
type downUpstream struct{ *fakeUpstream }

func (u downUpstream) Connect(context.Context) (source.Session, error) {
	return nil, errors.New("dial tcp 192.0.2.1:993: connect: connection refused")
}

// A refused login that does not last (several polls and some minutes) is
// not worth a mail; one that lasts is worth one.
func TestNoNoticeForAHiccup(t *testing.T) {
	r := newNoticeRig(t)
	up := r.acc.s.Upstream
	bad := &refusingUpstream{fakeUpstream: r.up}
	r.at(0)
	// One refused login, then all is well: nothing to say.
	r.acc.s.Upstream = bad
	r.at(time.Minute)
	r.acc.s.Upstream = up
	r.at(2 * time.Minute)
	if n := r.sent; len(n) != 0 {
		t.Fatalf("notices for a single refused login: %v", n)
	}
	// Refused for three polls over seven minutes: not yet.
	r.acc.s.Upstream = bad
	for _, m := range []time.Duration{10, 11, 13, 17} {
		r.at(m * time.Minute)
	}
	if n := r.sent; len(n) != 0 {
		t.Fatalf("notices after refusals for 7 minutes: %v", n)
	}
	// Over twenty minutes: one.
	r.at(25 * time.Minute)
	r.at(41 * time.Minute)
	if n := r.sent; len(n) != 1 || n[0] != "remote_pull: account acct: auth failed" {
		t.Fatalf("notices after refusals for half an hour: %v, want one", n)
	}
}

// However much an upstream flaps, an account's owner gets a few notices a
// day at most, and a restart does not start the count afresh.
func TestNoticeDailyCap(t *testing.T) {
	r := newNoticeRig(t)
	up := r.acc.s.Upstream
	bad := &refusingUpstream{fakeUpstream: r.up}
	episode := func(start time.Duration) {
		r.acc.s.Upstream = bad
		for _, m := range []time.Duration{0, 5, 10, 20, 40} {
			r.at(start + m*time.Minute)
		}
		r.acc.s.Upstream = up
		r.at(start + 41*time.Minute)
	}
	for i := range 6 {
		if i == 4 {
			r.restart()
		}
		episode(time.Duration(i) * time.Hour)
	}
	if n := r.sent; len(n) != 4 {
		t.Fatalf("%d notices in six lasting troubles within a day, want 4 (the cap): %v", len(n), n)
	}
	// A day later the trouble is told again.
	r.acc.s.Upstream = bad
	for _, m := range []time.Duration{0, 5, 10, 20, 40} {
		r.at(25*time.Hour + m*time.Minute)
	}
	if n := r.sent; len(n) != 5 {
		t.Fatalf("%d notices the next day, want 5: %v", len(n), n)
	}
}

// After a restart an account still broken says nothing new: no "works
// again" because the process forgot its last good poll.
func TestNoRecoveryNoticeAfterRestart(t *testing.T) {
	r := newNoticeRig(t)
	up := r.acc.s.Upstream
	r.at(0)
	r.acc.s.Upstream = downUpstream{r.up}
	r.at(time.Hour)
	r.at(25 * time.Hour)
	if n := r.sent; len(n) != 1 || n[0] != "remote_pull: account acct: no successful poll" {
		t.Fatalf("after a day without a good poll: %v", n)
	}
	r.restart()
	r.at(26 * time.Hour)
	if n := r.sent; len(n) != 1 {
		t.Fatalf("after a restart, still failing: %v", n)
	}
	r.acc.s.Upstream = up
	r.at(27 * time.Hour)
	if n := r.sent; len(n) != 2 || r.p.committed["remote_pull: account acct works again"] == nil {
		t.Fatalf("after the fix: %v", n)
	}
}

// A nightly restart does not hide a day without a good poll, whether the
// account worked once or never did.
func TestStalledNoticeAcrossRestarts(t *testing.T) {
	for _, worked := range []bool{true, false} {
		t.Run(fmt.Sprintf("worked=%v", worked), func(t *testing.T) {
			r := newNoticeRig(t)
			if worked {
				r.at(0)
			}
			r.acc.s.Upstream = downUpstream{r.up}
			for h := time.Duration(1); h <= 37; h += 12 {
				r.restart()
				r.at(h * time.Hour)
			}
			if n := r.sent; len(n) != 1 || n[0] != "remote_pull: account acct: no successful poll" {
				t.Fatalf("after 37 hours without a good poll, restarted every 12: %v", n)
			}
		})
	}
}
