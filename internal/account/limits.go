package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source"
)

// Provider limits. An upstream that says the account is over its quota
// (Gmail's [OVERQUOTA] and [THROTTLED]) or asks for no connection for a
// while (Microsoft's "Suggested Backoff Time") pauses the account: no
// poll, no IDLE connection (those open are closed) until the pause ends.
// Over quota, Gmail says not for how long and knocking meanwhile prolongs
// the suspension: the pause is quotaPauseMin, doubled at each pause in a
// row without a good poll between, up to quotaPauseMax. Throttled, the
// pause is the time the server suggested (bounded by the source). The
// download budget pauses the same way, until enough of its 24 hours has
// passed (budget.go).
//
// The pause is kept in the ledger, so that a restart or a reload does not
// connect before it ends.

const (
	quotaPauseMin = time.Hour
	quotaPauseMax = 24 * time.Hour
)

// quotaPause is the pause after the n-th over-quota answer in a row.
func quotaPause(n int) time.Duration {
	d := quotaPauseMin << min(max(n-1, 0), 10)
	return min(d, quotaPauseMax)
}

// pacedError ends a poll whose next download would overspend the budget:
// nothing failed, the account goes on at until.
type pacedError struct {
	until        time.Time
	used, budget int64
	next         int64 // the size of the message that did not fit
}

func (e *pacedError) Error() string {
	return fmt.Sprintf("download budget spent for now: %d of %d bytes in the last 24 hours, next message %d bytes; going on at %s",
		e.used, e.budget, e.next, e.until.UTC().Format(time.RFC3339))
}

// restorePause takes up a pause saved before a restart, if it has not
// ended; called by New.
func (a *Account) restorePause(ctx context.Context) {
	p, err := a.s.Ledger.Pause(ctx, a.s.Name)
	if err != nil {
		a.s.Log.Error("reading the account's saved pause; none is assumed", err)
		return
	}
	a.episodes = p.Episodes
	a.pauseSaved = p != (ledger.Pause{})
	left := p.Until.Sub(a.s.Now())
	if p.State == "" || p.State == string(StatePaced) || left <= 0 {
		// The budget's pause is worked out again from the downloads
		// kept (budget.go): the budget may have changed meanwhile.
		return
	}
	a.gate.pause(time.Now().Add(left))
	a.status.State = p.State
	a.status.NextPoll = p.Until
	a.s.Log.Msg("account paused before the restart: no connection until the pause ends", "state", p.State,
		"until", p.Until.UTC().Format(time.RFC3339))
}

// pause stops every connection of the account until the limit err
// reports ends, saves the pause, and returns how long it is.
func (a *Account) pause(err error, class errClass) time.Duration {
	now := a.s.Now()
	var d time.Duration
	var (
		throttled *source.ThrottledError
		paced     *pacedError
	)
	switch {
	case class == classQuota:
		a.mu.Lock()
		a.episodes++
		d = quotaPause(a.episodes)
		a.mu.Unlock()
	case errors.As(err, &throttled):
		d = throttled.Backoff
	case errors.As(err, &paced):
		d = max(paced.until.Sub(now), 0)
	}
	until := now.Add(d)
	a.gate.pause(time.Now().Add(d))
	a.dropWatches()
	a.mu.Lock()
	p := ledger.Pause{State: string(class.state()), Until: until, Episodes: a.episodes}
	a.pauseSaved = true
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.s.Ledger.SetPause(ctx, a.s.Name, p); err != nil {
		a.s.Log.Error("saving the account's pause; a restart may connect before it ends", err)
	}
	return d
}

// unpause forgets a saved pause after a good poll: the next over-quota
// answer starts again from quotaPauseMin.
func (a *Account) unpause() {
	a.mu.Lock()
	saved := a.pauseSaved
	a.pauseSaved, a.episodes = false, 0
	a.mu.Unlock()
	if !saved {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.s.Ledger.SetPause(ctx, a.s.Name, ledger.Pause{}); err != nil {
		a.s.Log.Error("clearing the account's pause", err)
	}
}

// dropWatches closes the account's IDLE connections: they reconnect after
// the next good poll, which the pause holds back.
func (a *Account) dropWatches() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.drop != nil {
		close(a.drop)
	}
	a.drop = make(chan struct{})
}

// dropSignal is closed when the account's IDLE connections are to close.
func (a *Account) dropSignal() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.drop == nil {
		a.drop = make(chan struct{})
	}
	return a.drop
}

// publishLimits shows when a paused account connects again, and its
// download budget, in the metrics (and the budget in the ledger).
func (a *Account) publishLimits(ctx context.Context, st Status) {
	switch State(st.State) {
	case StateOverQuota, StateThrottled, StatePaced:
		resumeAt.WithLabelValues(a.s.Name).Set(float64(st.NextPoll.Unix()))
	default:
		resumeAt.WithLabelValues(a.s.Name).Set(0)
	}
	a.publishBudget(ctx)
}
