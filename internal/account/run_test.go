package account

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
)

// watchingUpstream is the fake upstream with IDLE: each Watch reports
// idling, then waits for drop (returning an error, as a lost connection)
// or for ctx.
type watchingUpstream struct {
	*fakeUpstream
	drop chan struct{}

	mu      sync.Mutex
	polls   int   // Connect calls (polls)
	watches []int // polls done when each Watch started
}

func (w *watchingUpstream) Connect(ctx context.Context) (source.Session, error) {
	w.mu.Lock()
	w.polls++
	w.mu.Unlock()
	return w.fakeUpstream.Connect(ctx)
}

func (w *watchingUpstream) Watch(ctx context.Context, folder string, ev source.WatchEvents) error {
	w.mu.Lock()
	w.watches = append(w.watches, w.polls)
	w.mu.Unlock()
	ev.Idling()
	select {
	case <-ctx.Done():
		return nil
	case <-w.drop:
		return errors.New("connection reset")
	}
}

// The state is "idle" while an IDLE connection is up after a good poll,
// and the status command (the ledger) sees it. A dropped IDLE connection
// is re-established only after a poll has worked again, so that polls and
// reconnections share one back-off.
func TestIdleState(t *testing.T) {
	up := &watchingUpstream{fakeUpstream: newFake(2), drop: make(chan struct{})}
	r := newRig(t, up.fakeUpstream, true)
	r.acc.s.Upstream = up
	r.acc.s.Idle = true
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.acc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	waitState := func(want string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			sts, err := r.l.Statuses(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if r.acc.Status().State == want && len(sts) == 1 && sts[0].State == want {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("state %q (ledger %+v), want %q", r.acc.Status().State, sts, want)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitState("idle")
	if len(r.p.committed) != 2 {
		t.Fatalf("%d messages delivered, want 2", len(r.p.committed))
	}
	up.drop <- struct{}{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		up.mu.Lock()
		watches := append([]int(nil), up.watches...)
		up.mu.Unlock()
		if len(watches) == 2 {
			if watches[0] < 1 || watches[1] <= watches[0] {
				t.Fatalf("polls before each Watch: %v; want a good poll before the first and another before the reconnection", watches)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no reconnection after the drop (watches %v)", watches)
		}
		time.Sleep(10 * time.Millisecond)
	}
	waitState("idle")
}

// refusingUpstream refuses every login, by poll or by IDLE connection.
type refusingUpstream struct {
	*fakeUpstream
	mu     sync.Mutex
	logins int
}

func (u *refusingUpstream) login() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.logins++
	return &source.AuthError{Err: errors.New("NO [AUTHENTICATIONFAILED] wrong password")}
}

func (u *refusingUpstream) Connect(context.Context) (source.Session, error) { return nil, u.login() }
func (u *refusingUpstream) Watch(context.Context, string, source.WatchEvents) error {
	return u.login()
}

func (u *refusingUpstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.logins
}

// One back-off governs polls and IDLE reconnections: with a wrong password
// and three watched folders, one login at start, and one per retry the
// admin asks for; not one per folder.
func TestBackoffHoldsForIdle(t *testing.T) {
	up := &refusingUpstream{fakeUpstream: newFake(0)}
	r := newRig(t, up.fakeUpstream, true)
	r.acc.s.Upstream = up
	r.acc.s.Idle = true
	r.acc.s.Folders = []string{"INBOX", "Archive", "Sent"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.acc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	time.Sleep(300 * time.Millisecond)
	if n := up.count(); n != 1 {
		t.Fatalf("%d logins at start, want 1", n)
	}
	r.acc.RetryNow()
	time.Sleep(300 * time.Millisecond)
	if n := up.count(); n != 2 {
		t.Fatalf("%d logins after one retry, want 2", n)
	}
	if st := r.acc.Status().State; st != string(StateAuthFailed) {
		t.Fatalf("state %q", st)
	}
}

// A failure is logged once per kind, not at every retry, although its text
// changes (the local port of a reset connection).
func TestFailureLoggedOncePerKind(t *testing.T) {
	r := newRig(t, newFake(0), true)
	var logged strings.Builder
	r.acc.s.Log.Out = logOutput(&logged)
	for port := 40000; port < 40003; port++ {
		err := fmt.Errorf("connect: read tcp 127.0.0.1:%d->192.0.2.1:993: connection reset by peer", port)
		r.acc.report(PollResult{}, err, classify(err), time.Second)
	}
	auth := &source.AuthError{Err: errors.New("NO")}
	r.acc.report(PollResult{}, auth, classify(auth), time.Minute)
	if n := strings.Count(logged.String(), "poll failed"); n != 2 {
		t.Fatalf("%d 'poll failed' lines, want 2 (one per kind):\n%s", n, logged.String())
	}
}
