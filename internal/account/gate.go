package account

import (
	"context"
	"sync"
	"time"
)

// gate is an account's one back-off: polls and IDLE reconnections both
// wait for it and both feed it, so that neither can make the other log in
// more often than the back-off allows (a wrong password must not cost
// three logins a minute because three folders idle).
type gate struct {
	mu       sync.Mutex
	failures int
	until    time.Time     // no connection before this
	changed  chan struct{} // closed and replaced when until moves earlier
	// paused: no connection before this either, a time the upstream or
	// the download budget set (limits.go). A reload's reset leaves it:
	// knocking early on an over-quota Gmail prolongs the suspension.
	paused time.Time
}

func newGate() *gate { return &gate{changed: make(chan struct{})} }

// wait blocks until connecting is allowed; false if ctx ended first.
func (g *gate) wait(ctx context.Context) bool {
	for {
		g.mu.Lock()
		d, changed := time.Until(later(g.until, g.paused)), g.changed
		g.mu.Unlock()
		if d <= 0 {
			return ctx.Err() == nil
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-changed:
			t.Stop()
		case <-t.C:
		}
	}
}

// failed counts a failure and closes the gate for backoff(failures);
// it returns that delay.
func (g *gate) failed(backoff func(failures int) time.Duration) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures++
	d := backoff(g.failures)
	if until := time.Now().Add(d); until.After(g.until) {
		g.until = until
	} else {
		d = time.Until(g.until)
	}
	return d
}

// succeeded opens the gate and starts the back-off afresh.
func (g *gate) succeeded() { g.reset() }

// reset opens the gate at once (the admin fixed something).
func (g *gate) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.failures = 0
	g.until = time.Time{}
	close(g.changed)
	g.changed = make(chan struct{})
}

// pause closes the gate until t, whatever the back-off says; a later
// pause moves it later, an earlier one does not shorten it.
func (g *gate) pause(t time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.paused = later(g.paused, t)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
