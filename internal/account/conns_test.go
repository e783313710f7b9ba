package account

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source"
)

// countingUpstream is the fake upstream with IDLE that counts its open
// connections, as a provider does: a poll's from Connect until its
// session is closed or aborted, a watch's for as long as Watch runs. A
// connection takes closeDelay to close, as a LOGOUT over the network does.
type countingUpstream struct {
	*fakeUpstream
	drop       chan struct{} // each receive ends one watch with an error
	noPush     map[string]bool
	closeDelay time.Duration

	mu      sync.Mutex
	open    int
	peak    int
	watched map[string]int // folder → Watch calls
}

func newCounting(fake *fakeUpstream) *countingUpstream {
	return &countingUpstream{fakeUpstream: fake, drop: make(chan struct{}), watched: map[string]int{}}
}

func (u *countingUpstream) opened() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.open++
	u.peak = max(u.peak, u.open)
}

func (u *countingUpstream) closed() {
	time.Sleep(u.closeDelay)
	u.mu.Lock()
	defer u.mu.Unlock()
	u.open--
}

func (u *countingUpstream) counts() (open, peak int) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.open, u.peak
}

func (u *countingUpstream) folders() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	var out []string
	for f := range u.watched {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}

func (u *countingUpstream) Connect(ctx context.Context) (source.Session, error) {
	u.opened()
	s, err := u.fakeUpstream.Connect(ctx)
	if err != nil {
		u.closed()
		return nil, err
	}
	return &countedSession{fakeSession: s.(*fakeSession), u: u}, nil
}

type countedSession struct {
	*fakeSession
	u    *countingUpstream
	once sync.Once
}

func (s *countedSession) Close(context.Context) error { s.once.Do(s.u.closed); return nil }
func (s *countedSession) Abort()                      { s.once.Do(s.u.closed) }

func (u *countingUpstream) Watch(ctx context.Context, folder string, ev source.WatchEvents) error {
	u.opened()
	defer u.closed()
	u.mu.Lock()
	u.watched[folder]++
	u.mu.Unlock()
	if u.noPush[folder] {
		return source.ErrNoPush
	}
	ev.Idling()
	select {
	case <-ctx.Done():
		return nil
	case <-u.drop:
		return errors.New("connection reset by peer")
	}
}

// runFor starts the account's loop; stop ends it and waits for Run.
func runFor(r *rig) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.acc.Run(ctx); close(done) }()
	return func() { cancel(); <-done }
}

// restartWith makes the rig's account again with changed settings, as the
// configuration would give them.
func (r *rig) restartWith(change func(s *Settings)) {
	s := r.acc.s
	change(&s)
	r.acc = New(s)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Polls (with their removals) and IDLE connections of one account never
// exceed max_connections together, however many folders it watches and
// however often the watches drop and reconnect: the poll keeps its one,
// IDLE gets the rest, in order (INBOX first, then as 'folders' names
// them), and the folders left over are polled, as the status says.
func TestConnectionBudgetNeverExceeded(t *testing.T) {
	const maxConns = 4
	var folders []string
	for i := range 20 {
		folders = append(folders, fmt.Sprintf("Label%02d", i))
	}
	folders = append(folders, "INBOX") // last named, first watched
	up := newCounting(newFake(30))
	up.closeDelay = 2 * time.Millisecond
	r := newRig(t, up.fakeUpstream, false) // keep no: removals too
	r.restartWith(func(s *Settings) {
		s.Upstream, s.Idle, s.Folders, s.MaxConnections = up, true, folders, maxConns
	})
	stop := runFor(r)
	defer stop()

	wantWatched := []string{"INBOX", "Label00", "Label01"}
	waitFor(t, "the watches", func() bool { return len(up.folders()) >= len(wantWatched) && r.acc.Status().State == "idle" })
	if r.up.removes == 0 {
		t.Fatal("the polls removed nothing: the test does not cover removals")
	}
	// Reconnections: every drop ends a watch, which polls, then reconnects.
	for range 30 {
		select {
		case up.drop <- struct{}{}:
		case <-time.After(10 * time.Second):
			t.Fatal("no watch took the drop")
		}
		if _, peak := up.counts(); peak > maxConns {
			t.Fatalf("%d connections at once, max_connections %d", peak, maxConns)
		}
	}
	waitFor(t, "idle again", func() bool { return r.acc.Status().State == "idle" })
	stop()
	open, peak := up.counts()
	if peak > maxConns || open != 0 {
		t.Fatalf("peak %d connections (max_connections %d), %d open after Run returned", peak, maxConns, open)
	}
	if got := up.folders(); !slices.Equal(got, wantWatched) {
		t.Fatalf("watched %v, want %v", got, wantWatched)
	}
	c := r.acc.Status().Connections
	if c.Max != maxConns || !slices.Equal(c.Watched, wantWatched) || len(c.Polled) != 18 || c.Polled[0] != "Label02" {
		t.Fatalf("status connections %+v", c)
	}
	sts, err := r.l.Statuses(context.Background())
	if err != nil || len(sts) != 1 || !slices.Equal(sts[0].Connections.Watched, wantWatched) || len(sts[0].Connections.Polled) != 18 {
		t.Fatalf("ledger status %+v %v", sts, err)
	}
}

// Run returns only once every connection it opened is closed, so that an
// account a reload restarts cannot open its connections on top of the
// old ones still saying LOGOUT.
func TestRunEndsAfterItsConnectionsClose(t *testing.T) {
	up := newCounting(newFake(1))
	up.closeDelay = 100 * time.Millisecond
	r := newRig(t, up.fakeUpstream, true)
	r.restartWith(func(s *Settings) {
		s.Upstream, s.Idle, s.Folders, s.MaxConnections = up, true, []string{"INBOX", "Work", "Lists"}, 10
	})
	stop := runFor(r)
	waitFor(t, "the watches", func() bool { return len(up.folders()) == 3 })
	stop()
	if open, _ := up.counts(); open != 0 {
		t.Fatalf("%d connections still open when Run returned", open)
	}
}

// A watch that ends for good (the server refuses IDLE on that folder)
// frees its connection and shows the folder as polled.
func TestEndedWatchIsPolled(t *testing.T) {
	up := newCounting(newFake(1))
	up.noPush = map[string]bool{"Work": true}
	r := newRig(t, up.fakeUpstream, true)
	r.restartWith(func(s *Settings) {
		s.Upstream, s.Idle, s.Folders, s.MaxConnections = up, true, []string{"INBOX", "Work", "Lists"}, 3
	})
	stop := runFor(r)
	defer stop()
	waitFor(t, "Work polled", func() bool {
		c := r.acc.Status().Connections
		return slices.Equal(c.Watched, []string{"INBOX"}) && slices.Equal(c.Polled, []string{"Lists", "Work"})
	})
	waitFor(t, "its connection freed", func() bool { open, _ := up.counts(); return open == 1 })
}

// The budget holds a connection's place until it is released; one more
// waits for it, or for its context.
func TestConnBudget(t *testing.T) {
	b := newConnBudget("acct", 2)
	ctx := context.Background()
	r1, err := b.take(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.take(ctx); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := b.take(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a third connection: %v, want to wait until the deadline", err)
	}
	got := make(chan error, 1)
	go func() { _, err := b.take(ctx); got <- err }()
	r1()
	r1() // twice is once
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if len(b.sem) != 2 {
		t.Fatalf("%d places taken, want 2", len(b.sem))
	}
}

func TestPlanConnections(t *testing.T) {
	pol := func(maxConns int, idle bool, folders ...string) policy.Policy {
		return policy.Policy{Folders: folders, Idle: idle, MaxConnections: maxConns}
	}
	for _, c := range []struct {
		name            string
		pol             policy.Policy
		push            bool
		watched, polled []string
	}{
		{"INBOX first, then in order", pol(10, true, "Work", "INBOX", "Lists"), true, []string{"INBOX", "Work", "Lists"}, nil},
		{"past the budget", pol(3, true, "Work", "INBOX", "Lists", "Old"), true, []string{"INBOX", "Work"}, []string{"Lists", "Old"}},
		{"one: the poll alone", pol(1, true, "INBOX", "Work"), true, nil, []string{"INBOX", "Work"}},
		{"no bound", pol(0, true, "INBOX", "Work"), true, []string{"INBOX", "Work"}, nil},
		{"a pattern takes INBOX in", pol(3, true, "Work", "*"), true, []string{"INBOX", "Work"}, nil},
		{"idle no", pol(3, false, "INBOX", "Work"), true, nil, nil},
		{"no IDLE upstream (POP3)", pol(3, true, "INBOX"), false, nil, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := PlanConnections(c.pol, c.push)
			if !slices.Equal(p.Watched, c.watched) || !slices.Equal(p.Polled, c.polled) || p.Max != c.pol.MaxConnections {
				t.Fatalf("plan %+v, want watched %v polled %v", p, c.watched, c.polled)
			}
		})
	}
	p := PlanConnections(pol(3, true, "Work", "INBOX", "Lists", "Old"), true)
	if got, want := p.String(), "3 connections (max_connections 3): poll + 2 IDLE (INBOX, Work); polled every poll_interval instead of watched: Lists, Old"; got != want {
		t.Fatalf("%q\nwant %q", got, want)
	}
}
