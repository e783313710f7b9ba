package account

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"remote_pull/module/ledger"
	"remote_pull/module/source"
)

// Account is one fetched account and its poll loop.
type Account struct {
	s     Settings
	wake  chan struct{}
	retry atomic.Bool // RetryNow was called: forget the back-off

	mu      sync.Mutex
	status  Status
	idleNow int             // folders idling right now: with a good last poll, the state is "idle"
	warned  map[string]bool // upstream oddities already logged
}

// Status is what the account is doing, for logs and the status command.
type Status struct {
	State       string // one of the State constants (classify.go)
	LastSuccess time.Time
	LastError   string
	NextPoll    time.Time
	Delivered   int
	Refused     int
}

// New returns an account; Run starts it.
func New(s Settings) *Account {
	return &Account{s: s, wake: make(chan struct{}, 1), status: Status{State: string(StateStarting)}}
}

// Name is the account's configured name.
func (a *Account) Name() string { return a.s.Name }

// Status returns a snapshot of the account's status.
func (a *Account) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.statusLocked()
}

// statusLocked is the status as shown: "ok" becomes "idle" while IDLE
// connections wait for new mail.
func (a *Account) statusLocked() Status {
	st := a.status
	if st.State == string(StateOK) && a.idleNow > 0 {
		st.State = string(StateIdle)
	}
	return st
}

// publish shows the status in the metrics and saves it to the ledger,
// where the status command reads it, adding the counts of a poll.
func (a *Account) publish(st Status, delivered, refused int) {
	setStateMetric(a.s.Name, st.State)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := a.s.Ledger.SaveStatus(ctx, ledger.AccountStatus{
		Account: a.s.Name, Protocol: a.s.Upstream.Protocol(), Host: a.s.Upstream.Host(),
		State: st.State, LastSuccess: st.LastSuccess, LastError: st.LastError, NextPoll: st.NextPoll,
	}, delivered, refused)
	if err != nil {
		a.s.Log.Error("saving status", err, "account", a.s.Name)
	}
}

// RetryNow polls at once and starts any back-off afresh: the admin fixed
// something (maddy's reload signal).
func (a *Account) RetryNow() {
	a.retry.Store(true)
	a.Wake()
}

// Wake asks for a poll now (new mail announced, reload, admin request).
func (a *Account) Wake() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

const (
	backoffMin     = 5 * time.Second
	authBackoffMin = time.Minute
	backoffCap     = time.Hour
)

// Run polls until ctx ends: at start, then every poll interval, and sooner
// when woken. Failures back off with jitter, doubling from a few seconds
// (or the poll interval, if shorter; a minute after a refused login, so that a wrong password cannot lock
// the upstream account) to the larger of the poll interval and an hour.
func (a *Account) Run(ctx context.Context) {
	if w, ok := a.s.Upstream.(source.Watcher); ok && a.s.Idle {
		for _, folder := range a.s.Folders {
			go a.watch(ctx, w, folder)
		}
	}
	var failures int
	for {
		res, err := a.pollSafely(ctx)
		if ctx.Err() != nil {
			return
		}
		class := classify(err)
		wait := a.s.PollInterval
		switch {
		case class.backsOff():
			failures++
			wait = a.backoff(class, failures)
		case res.More:
			failures = 0
			wait = 0 // max_messages_per_poll left some: go on at once
		default:
			failures = 0
		}
		a.report(res, err, class, wait)

		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-a.wake:
			timer.Stop()
		case <-timer.C:
		}
		if a.retry.Swap(false) {
			failures = 0
		}
	}
}

// pollSafely runs one poll and turns a panic into an error: a bug must not
// take maddy down, and the aborted poll has removed nothing upstream that
// was not already recorded.
func (a *Account) pollSafely(ctx context.Context) (res PollResult, err error) {
	start := time.Now()
	defer func() {
		if p := recover(); p != nil {
			a.s.Log.Printf("panic during poll of account %s: %v\n%s", a.s.Name, p, debug.Stack())
			err = fmt.Errorf("%w: %v", errInternal, p)
		}
		pollDuration.WithLabelValues(a.s.Name).Observe(time.Since(start).Seconds())
		pollsTotal.WithLabelValues(a.s.Name, classify(err).metric()).Inc()
		if err == nil {
			lastSuccess.WithLabelValues(a.s.Name).SetToCurrentTime()
		}
	}()
	if a.s.Slots != nil {
		select {
		case a.s.Slots <- struct{}{}:
			defer func() { <-a.s.Slots }()
		case <-ctx.Done():
			return res, ctx.Err()
		}
	}
	a.setPolling()
	res, err = a.Poll(ctx)
	if res != (PollResult{}) {
		a.s.Log.Msg("poll done", "account", a.s.Name, "fetched", res.Fetched, "delivered", res.Delivered,
			"refused", res.Refused, "too_large", res.TooLarge, "removed", res.Removed, "more", res.More,
			"duration", time.Since(start).Round(time.Millisecond).String())
	}
	return res, err
}

func (a *Account) backoff(class errClass, failures int) time.Duration {
	lo := min(backoffMin, a.s.PollInterval)
	if class == classAuth || class == classBusy {
		// A refused login must not be retried until the upstream locks the
		// account; a busy maildrop ([IN-USE], [LOGIN-DELAY]) wants time.
		lo = authBackoffMin
	}
	hi := max(a.s.PollInterval, backoffCap)
	if class == classReconsent {
		return hi // nothing but the admin can fix it; a reload retries at once
	}
	d := lo << min(failures-1, 20)
	if d > hi || d <= 0 {
		d = hi
	}
	// ±20% jitter, so that accounts on one provider do not retry in step.
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// errInternal marks a poll that ended in a panic.
var errInternal = errors.New("internal error")

// report updates the status, in memory, in the metrics and in the ledger
// (where the status command reads it), and logs state changes once, not
// at every retry.
func (a *Account) report(res PollResult, err error, class errClass, wait time.Duration) {
	a.mu.Lock()
	defer func() {
		st := a.statusLocked()
		a.mu.Unlock()
		a.publish(st, res.Delivered, res.Refused)
	}()
	prevState, prevErr := a.status.State, a.status.LastError
	a.status.Delivered += res.Delivered
	a.status.Refused += res.Refused
	a.status.NextPoll = time.Now().Add(wait)
	a.status.State = string(class.state())
	if class == classOK || class == classFolder {
		a.status.LastSuccess = time.Now()
	}
	if err == nil {
		a.status.LastError = ""
		if prevState != string(StateOK) && prevState != string(StatePolling) && prevState != string(StateStarting) {
			a.s.Log.Msg("account recovered", "account", a.s.Name)
		}
		return
	}
	a.status.LastError = err.Error()
	if a.status.State != prevState || a.status.LastError != prevErr {
		a.s.Log.Error("poll failed", err, "account", a.s.Name, "state", a.status.State,
			"retry_in", wait.Round(time.Second).String())
	}
}

// setPolling shows a poll under way, unless the account is in trouble:
// then the trouble stays on show until a poll succeeds.
func (a *Account) setPolling() {
	a.mu.Lock()
	if a.status.State == string(StateOK) || a.status.State == string(StateStarting) {
		a.status.State = string(StatePolling)
	}
	st := a.statusLocked()
	a.mu.Unlock()
	a.publish(st, 0, 0)
}

// setIdling counts a folder's IDLE connection up (+1) or down (-1) and
// publishes the status when the account starts or stops idling.
func (a *Account) setIdling(delta int) {
	a.mu.Lock()
	was := a.statusLocked().State
	a.idleNow += delta
	st := a.statusLocked()
	a.mu.Unlock()
	if st.State != was {
		a.publish(st, 0, 0)
	}
}

// watch keeps one folder under IDLE for the account's lifetime, waking the
// poll loop when new mail is announced. Connection failures back off like
// polls; a server without IDLE ends the watch and leaves polling to Run.
func (a *Account) watch(ctx context.Context, w source.Watcher, folder string) {
	defer func() {
		if p := recover(); p != nil {
			a.s.Log.Printf("panic watching %s/%s: %v\n%s", a.s.Name, folder, p, debug.Stack())
		}
	}()
	failures := 0
	var lastErr string
	for ctx.Err() == nil {
		start := time.Now()
		var idling atomic.Bool
		err := w.Watch(ctx, folder, source.WatchEvents{
			Idling: func() {
				if !idling.Swap(true) {
					a.setIdling(+1)
				}
			},
			NewMail: a.Wake,
		})
		if idling.Load() && ctx.Err() == nil {
			a.setIdling(-1) // not at shutdown: the ledger may be closing
		}
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, source.ErrNoPush) {
			a.s.Log.Msg("server offers no IDLE; polling every poll_interval", "account", a.s.Name, "folder", folder)
			return
		}
		if time.Since(start) > 5*time.Minute {
			failures = 0 // it worked for a while: start the back-off afresh
		}
		failures++
		wait := a.backoff(classify(err), failures)
		if msg := fmt.Sprint(err); msg != lastErr {
			lastErr = msg
			a.s.Log.Error("IDLE connection lost", err, "account", a.s.Name, "folder", folder,
				"retry_in", wait.Round(time.Second).String())
		}
		// New mail may have come while the watch was down.
		a.Wake()
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}
