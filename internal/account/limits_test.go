package account

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source"
)

var errOverQuota = &source.QuotaError{Err: errors.New("NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)")}

// limitedUpstream is the watching fake whose logins can be answered with
// a provider's limit (limit, until the test clears it); it counts logins
// (polls and IDLE connections alike) and the IDLE connections open now.
type limitedUpstream struct {
	*fakeUpstream
	mu      sync.Mutex
	limit   error
	logins  int
	idleNow int
	at      []time.Time // when each poll logged in (real time)
}

func (u *limitedUpstream) setLimit(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.limit = err
}

func (u *limitedUpstream) counts() (logins, idleNow int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.logins, u.idleNow
}

func (u *limitedUpstream) Connect(ctx context.Context) (source.Session, error) {
	u.mu.Lock()
	u.logins++
	u.at = append(u.at, time.Now())
	err := u.limit
	u.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return u.fakeUpstream.Connect(ctx)
}

func (u *limitedUpstream) Watch(ctx context.Context, folder string, ev source.WatchEvents) error {
	u.mu.Lock()
	u.logins++
	err := u.limit
	if err == nil {
		u.idleNow++
	}
	u.mu.Unlock()
	if err != nil {
		return err
	}
	defer func() {
		u.mu.Lock()
		u.idleNow--
		u.mu.Unlock()
	}()
	ev.Idling()
	<-ctx.Done()
	return ctx.Err()
}

// running runs a until the test ends, or stop is called.
func running(t *testing.T, a *Account) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// Over quota, the account pauses entirely: its IDLE connection closes,
// no login follows however often it is woken, the status says "over
// quota" with the time it tries again (an hour on), the owner gets one
// notice, and a restart keeps the pause.
func TestOverQuotaPausesEverything(t *testing.T) {
	r := newNoticeRig(t)
	up := &limitedUpstream{fakeUpstream: r.up}
	r.acc.s.Upstream = up
	r.acc.s.Idle = true
	stop := running(t, r.acc)
	waitFor(t, "the IDLE connection", func() bool { _, idle := up.counts(); return idle == 1 })

	up.setLimit(errOverQuota)
	r.acc.Wake() // new mail announced: the poll meets the quota
	waitFor(t, "the over quota state", func() bool { return r.acc.Status().State == string(StateOverQuota) })
	waitFor(t, "the IDLE connection to close", func() bool { _, idle := up.counts(); return idle == 0 })
	logins, _ := up.counts()
	for range 20 {
		r.acc.Wake()
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if now, _ := up.counts(); now != logins {
		t.Fatalf("%d logins during the pause, want none", now-logins)
	}
	st := r.acc.Status()
	if want := r.clock.Add(quotaPauseMin); !st.NextPoll.Equal(want) {
		t.Fatalf("next poll %v, want an hour on (%v)", st.NextPoll, want)
	}
	saved, _, err := r.l.Status(context.Background(), "acct")
	if err != nil || saved.State != string(StateOverQuota) || saved.ResumeAt.Before(st.NextPoll) {
		t.Fatalf("status as the CLI reads it: %+v %v", saved, err)
	}
	if len(r.sent) != 1 || r.sent[0] != "remote_pull: account acct: over quota" {
		t.Fatalf("notices %v, want one over quota notice", r.sent)
	}

	// A restart an hour early: still over quota, and no login.
	stop()
	r.clock = r.clock.Add(59 * time.Minute)
	r.restart()
	if st := r.acc.Status(); st.State != string(StateOverQuota) {
		t.Fatalf("after a restart: state %q", st.State)
	}
	running(t, r.acc)
	r.acc.RetryNow() // a reload's retry does not end the pause either
	time.Sleep(300 * time.Millisecond)
	if now, _ := up.counts(); now != logins {
		t.Fatalf("%d logins after a restart during the pause, want none", now-logins)
	}
	if len(r.sent) != 1 {
		t.Fatalf("notices after a restart %v, want still one", r.sent)
	}
}

// Each over-quota pause in a row doubles, from an hour to a day at most;
// a good poll starts again from an hour, and so does one that the budget
// paced. The owner hears once per suspension, not at each pause, and not
// of its end.
func TestOverQuotaPauseGrows(t *testing.T) {
	r := newNoticeRig(t)
	up := &limitedUpstream{fakeUpstream: r.up}
	r.acc.s.Upstream = up
	up.setLimit(errOverQuota)
	var got []time.Duration
	for range 7 {
		res, err := r.acc.pollSafely(context.Background())
		got = append(got, r.acc.settle(context.Background(), res, err))
		r.clock = r.clock.Add(got[len(got)-1])
	}
	want := []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour, 8 * time.Hour, 16 * time.Hour, 24 * time.Hour, 24 * time.Hour}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("pauses %v, want %v", got, want)
		}
	}
	if len(r.sent) != 1 {
		t.Fatalf("notices %v, want one for the whole suspension", r.sent)
	}
	up.setLimit(nil)
	res, err := r.acc.pollSafely(context.Background())
	if wait := r.acc.settle(context.Background(), res, err); err != nil || wait != r.acc.s.PollInterval {
		t.Fatalf("good poll: %v, wait %v", err, wait)
	}
	if p, err := r.l.Pause(context.Background(), "acct"); err != nil || p != (ledger.Pause{}) {
		t.Fatalf("saved pause after a good poll: %+v %v", p, err)
	}
	up.setLimit(errOverQuota)
	res, err = r.acc.pollSafely(context.Background())
	if wait := r.acc.settle(context.Background(), res, err); wait != time.Hour {
		t.Fatalf("pause after a good poll %v, want an hour", wait)
	}
	if len(r.sent) != 2 || r.sent[1] != "remote_pull: account acct: over quota" {
		t.Fatalf("notices %v, want a second over quota notice for the second suspension", r.sent)
	}
}

// Throttled with a suggested backoff, the account makes no connection
// before it has passed, then goes on; the status says "throttled" with
// the time it resumes.
func TestThrottledHonoursBackoff(t *testing.T) {
	r := newRig(t, newFake(2), true)
	up := &limitedUpstream{fakeUpstream: r.up}
	r.acc.s.Upstream = up
	const backoff = 1500 * time.Millisecond
	up.setLimit(&source.ThrottledError{Backoff: backoff, Err: errors.New("NO Request is throttled.")})
	running(t, r.acc)
	waitFor(t, "the throttled state", func() bool { return r.acc.Status().State == string(StateThrottled) })
	if st := r.acc.Status(); st.NextPoll.Sub(time.Now()) > backoff || st.NextPoll.Before(time.Now()) {
		t.Fatalf("next poll %v, want within %v", st.NextPoll, backoff)
	}
	up.setLimit(nil)
	for range 10 {
		r.acc.Wake()
	}
	waitFor(t, "the poll after the backoff", func() bool { return r.acc.Status().State == string(StateOK) })
	up.mu.Lock()
	at := up.at
	up.mu.Unlock()
	// The first login was throttled; every other one (the wakes may ask
	// for one more poll) came after the backoff.
	for _, t1 := range at[1:] {
		if gap := t1.Sub(at[0]); gap < backoff {
			t.Fatalf("a login %v after the throttled one, want none before %v", gap, backoff)
		}
	}
	if len(r.p.committed) != 2 {
		t.Fatalf("%d delivered after the backoff, want 2", len(r.p.committed))
	}
}
