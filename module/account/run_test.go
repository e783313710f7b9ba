package account

import (
	"context"
	"errors"
	"testing"
	"time"

	"remote_pull/module/source"
)

// watchingUpstream is the fake upstream with IDLE: each Watch reports
// idling, then waits for drop (returning an error, as a lost connection)
// or for ctx.
type watchingUpstream struct {
	*fakeUpstream
	drop chan struct{}
}

func (w *watchingUpstream) Watch(ctx context.Context, folder string, ev source.WatchEvents) error {
	ev.Idling()
	select {
	case <-ctx.Done():
		return nil
	case <-w.drop:
		return errors.New("connection reset")
	}
}

// The state is "idle" while an IDLE connection is up after a good poll,
// "ok" when it drops, and the status command (the ledger) sees both.
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
	waitState("ok")
}
