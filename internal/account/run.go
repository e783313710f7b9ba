package account

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/safetext"
	"github.com/remote-pull/remote_pull/internal/source"
)

// Account is one fetched account and its poll loop.
type Account struct {
	s     Settings
	wake  chan struct{}
	gate  *gate       // the back-off shared by polls and IDLE reconnections
	conns *connBudget // max_connections, shared by polls and IDLE (conns.go)
	// firstSeen is when the account was first started on this ledger
	// (persisted): 'no successful poll since' for one that never worked.
	firstSeen time.Time

	pubMu     sync.Mutex // one publish at a time (publish)
	mu        sync.Mutex
	status    Status
	idleNow   int             // folders idling right now: with a good last poll, the state is "idle"
	warned    map[string]bool // upstream oddities already logged
	lastClass errClass        // the kind of the last poll's outcome, to log changes only
	failing   int             // polls that failed in a row (backed off), for the notices
	capLogged bool            // a notice was held back by the daily cap, and logged
	ensured   map[string]bool // mirrored folders made locally (ensureFolder)

	// Provider limits (limits.go, budget.go).
	episodes   int           // over-quota pauses in a row without a good poll
	pauseSaved bool          // the ledger holds a pause to clear at the next good poll
	drop       chan struct{} // closed to close the IDLE connections (dropWatches)
	budget     budgetState

	progress      ledger.Progress // the poll under way (progress.go)
	progressSaved time.Time       // when progress was last published
	// progressUnlisted: bytes of a paged mailbox after the page under
	// way, counted into the progress's total (progress.go).
	progressUnlisted int64

	okMu sync.Mutex
	okAt time.Time     // when the last successful poll ended
	okCh chan struct{} // closed at the next successful poll
}

// Status is what the account is doing, for logs and the status command.
type Status struct {
	State       string // one of the State constants (errors.go)
	Note        string // what the admin should know although nothing failed
	Progress    ledger.Progress
	LastSuccess time.Time
	LastError   string
	NextPoll    time.Time
	Delivered   int
	Refused     int
	// Connections: which folders are watched, which polled instead.
	Connections ledger.Connections
}

// Slots bounds how many accounts poll at once (max_parallel). Acquire
// waits for a slot, or returns ctx's error; Release gives it back.
type Slots interface {
	Acquire(ctx context.Context) error
	Release()
}

// New returns an account; Run starts it. What the ledger kept of the
// account's status (its last successful poll, when it was first started)
// carries over a restart, so that the notices measure from there.
func New(s Settings) *Account {
	if s.Now == nil {
		s.Now = time.Now
	}
	a := &Account{s: s, wake: make(chan struct{}, 1), gate: newGate(), status: Status{State: string(StateStarting)},
		firstSeen: s.Now(), conns: newConnBudget(s.Name, s.MaxConnections)}
	if s.Ledger != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		saved, ok, err := s.Ledger.Status(ctx, s.Name)
		switch {
		case err != nil:
			s.Log.Error("reading the account's saved status; its last success is taken as unknown", err)
		case ok:
			a.status.LastSuccess = saved.LastSuccess
			if !saved.FirstSeen.IsZero() {
				a.firstSeen = saved.FirstSeen
			}
		}
		a.restorePause(ctx)
	}
	return a
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
	st.Progress = a.progress
	st.Progress.BytesTotal += a.progressUnlisted
	if st.State == string(StateOK) && a.idleNow > 0 {
		st.State = string(StateIdle)
	}
	return st
}

// publish shows the current status in the metrics and saves it to the
// ledger, where the status command reads it (the ledger counts deliveries
// itself, as it records them).
// Publishers take turns and each saves the status as it is when its turn
// comes, so that the last one saved is never a stale one.
func (a *Account) publish() {
	a.pubMu.Lock()
	defer a.pubMu.Unlock()
	a.mu.Lock()
	st := a.statusLocked()
	a.mu.Unlock()
	setStateMetric(a.s.Name, st.State)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.publishLimits(ctx, st)
	err := a.s.Ledger.SaveStatus(ctx, ledger.AccountStatus{
		Account: a.s.Name, Protocol: a.s.Upstream.Protocol(), Host: a.s.Upstream.Host(),
		State: st.State, LastSuccess: st.LastSuccess, LastError: st.LastError, NextPoll: st.NextPoll, Note: st.Note,
		Progress: st.Progress, FirstSeen: a.firstSeen, Connections: st.Connections,
	})
	if err != nil {
		a.s.Log.Error("saving status", err)
	}
}

// Note shows msg in the status until the next Note: something about the
// upstream the admin should know although nothing failed.
func (a *Account) Note(msg string) {
	a.mu.Lock()
	changed := a.status.Note != msg
	a.status.Note = msg
	a.mu.Unlock()
	if changed {
		a.publish()
	}
}

// RetryNow polls at once and starts any back-off afresh: the admin fixed
// something (maddy's reload signal).
func (a *Account) RetryNow() {
	a.gate.reset()
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
	// Run ends once every connection it opened is closed: an account a
	// reload restarts must not open its own on top of them.
	var watchers sync.WaitGroup
	defer watchers.Wait()
	a.startWatchers(ctx, &watchers)
	for {
		// Woken early (new mail, a lost IDLE connection) or not, no poll
		// before the back-off allows.
		if !a.gate.wait(ctx) {
			return
		}
		res, err := a.pollSafely(ctx)
		if ctx.Err() != nil {
			return
		}
		wait := a.settle(ctx, res, err)

		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-a.wake:
			timer.Stop()
		case <-timer.C:
		}
	}
}

// settle acts on a poll's outcome: the back-off, a pause, the status and
// the notices. It returns how long to wait before the next poll.
func (a *Account) settle(ctx context.Context, res PollResult, err error) time.Duration {
	class := classify(err)
	wait := a.s.PollInterval
	switch {
	case class == classPaced:
		a.gate.succeeded()
		a.mu.Lock()
		a.episodes = 0 // the upstream served us: a later quota starts afresh
		a.mu.Unlock()
		wait = a.pause(err, class)
	case class.pauses():
		wait = a.pause(err, class)
	case class.backsOff():
		wait = a.gate.failed(func(n int) time.Duration { return a.backoff(class, n) })
	case res.More:
		a.gate.succeeded()
		wait = 0 // max_messages_per_poll left some: go on at once
	default:
		a.gate.succeeded()
	}
	if !class.backsOff() && class != classPaced {
		a.unpause()
		a.goodPoll()
	}
	a.report(res, err, class, wait)
	a.checkNotice(ctx)
	return wait
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
		if err != nil || !res.More {
			a.progressDone()
		}
		pollDuration.WithLabelValues(a.s.Name).Observe(time.Since(start).Seconds())
		pollsTotal.WithLabelValues(a.s.Name, classify(err).metric()).Inc()
		if err == nil {
			lastSuccess.WithLabelValues(a.s.Name).SetToCurrentTime()
		}
	}()
	if a.s.Slots != nil {
		if err := a.s.Slots.Acquire(ctx); err != nil {
			return res, err
		}
		defer a.s.Slots.Release()
	}
	a.setPolling()
	res, err = a.Poll(ctx)
	if res != (PollResult{}) {
		a.s.Log.Msg("poll done", "fetched", res.Fetched, "delivered", res.Delivered,
			"refused", res.Refused, "too_large", res.TooLarge, "removed", res.Removed, "label_copies", res.LabelCopies, "more", res.More,
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
		a.mu.Unlock()
		a.publish()
	}()
	prevState, prevClass := a.status.State, a.lastClass
	a.lastClass = class
	a.status.Delivered += res.Delivered
	a.status.Refused += res.Refused
	a.status.NextPoll = a.s.Now().Add(wait)
	a.status.State = string(class.state())
	if class == classOK || class == classFolder || class == classPaced {
		a.status.LastSuccess = a.s.Now()
	}
	if class.backsOff() {
		a.failing++
	} else {
		a.failing = 0
	}
	if class == classPaced {
		a.status.LastError = ""
		if prevClass != classPaced {
			a.s.Log.Msg("download budget spent for now: paced, no connection until it allows the next message",
				"reason", err.Error(), "retry_in", wait.Round(time.Second).String())
		}
		return
	}
	if err == nil {
		a.status.LastError = ""
		if prevState != string(StateOK) && prevState != string(StatePolling) && prevState != string(StateStarting) &&
			prevState != string(StatePaced) {
			a.s.Log.Msg("account recovered")
		}
		return
	}
	// The text may quote the upstream: kept as one bounded line, and
	// logged so (maddy's log escapes it; the bound is ours).
	a.status.LastError = safetext.Line(err.Error(), safetext.MaxStored)
	// Once per kind of failure, not at every retry: the text may carry a
	// changing detail (the local port of a reset connection).
	if class != prevClass {
		logged := err // with its fields (an SMTP code), unless it needed cleaning
		if a.status.LastError != err.Error() {
			logged = errors.New(a.status.LastError)
		}
		a.s.Log.Error("poll failed", logged, "state", a.status.State,
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
	a.mu.Unlock()
	a.publish()
}

// startWatchers watches the folders PlanConnections gives a connection
// of their own, and shows the plan in the status.
func (a *Account) startWatchers(ctx context.Context, wg *sync.WaitGroup) {
	w, push := a.s.Upstream.(source.Watcher)
	plan := PlanConnections(a.s.Policy, push)
	a.mu.Lock()
	a.status.Connections = ledger.Connections{Max: plan.Max, Watched: plan.Watched, Polled: plan.Polled}
	a.mu.Unlock()
	if len(plan.Polled) > 0 {
		a.s.Log.Msg("max_connections leaves folders to the polls instead of IDLE", "max_connections", plan.Max,
			"watched", strings.Join(plan.Watched, ", "), "polled", strings.Join(plan.Polled, ", "))
	}
	for _, folder := range plan.Watched {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.watch(ctx, w, folder)
		}()
	}
}

// unwatched moves a folder whose watch has ended for good to the polled
// ones in the status; its connection is free.
func (a *Account) unwatched(folder string) {
	a.mu.Lock()
	c := &a.status.Connections
	c.Watched = slices.DeleteFunc(slices.Clone(c.Watched), func(f string) bool { return f == folder })
	c.Polled = append(slices.Clone(c.Polled), folder)
	a.mu.Unlock()
	a.publish()
}

// setIdling counts a folder's IDLE connection up (+1) or down (-1) and
// publishes the status when the account starts or stops idling.
func (a *Account) setIdling(delta int) {
	a.mu.Lock()
	was := a.statusLocked().State
	a.idleNow += delta
	now := a.statusLocked().State
	a.mu.Unlock()
	if now != was {
		a.publish()
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
		if ctx.Err() == nil {
			a.unwatched(folder) // polled from now on
		}
	}()
	logged := classOK // the kind of failure last logged
	// Connect only after a poll succeeded, the first time and after every
	// failure: the poll alone probes a broken account, at the back-off's
	// pace, so that a wrong password costs one login per back-off, not one
	// per watched folder.
	var since time.Time
	for a.waitGoodPoll(ctx, since) {
		// A pause (limits.go) may have begun since that poll: no
		// connection before it ends; one that begins while the
		// connection is up closes it (watchOnce).
		if !a.gate.wait(ctx) {
			return
		}
		dropped, err := a.watchOnce(ctx, w, folder)
		if ctx.Err() != nil {
			return
		}
		if class := classify(err); class.pauses() && !dropped {
			// The IDLE connection heard of the limit first: the account
			// pauses (and this connection's siblings close) as for a poll.
			wait := a.pause(err, class)
			a.report(PollResult{}, err, class, wait)
			a.checkNotice(ctx)
			dropped = true
		}
		if dropped {
			// Paused: back after the next good poll, which the pause
			// holds back.
			since = time.Now()
			a.Wake()
			continue
		}
		if errors.Is(err, source.ErrNoPush) {
			a.s.Log.Msg("server offers no IDLE; polling every poll_interval", "folder", folder)
			return
		}
		if class := classify(err); class != logged {
			// Once per kind of failure: the text may carry a changing
			// detail (a local port) that would log every retry.
			logged = class
			a.s.Log.Error("IDLE connection lost; reconnecting after the next good poll", err,
				"folder", folder)
		}
		// New mail may have come while the watch was down: poll (when the
		// back-off allows), and reconnect once that poll has worked.
		since = time.Now()
		a.Wake()
	}
}

// watchOnce watches folder on one connection until it ends, within the
// account's connection budget. dropped: a pause (limits.go) closed it.
func (a *Account) watchOnce(ctx context.Context, w source.Watcher, folder string) (dropped bool, err error) {
	release, err := a.conns.take(ctx)
	if err != nil {
		return false, err
	}
	defer release() // once Watch has returned, its connection is closed
	var idling atomic.Bool
	defer func() {
		if idling.Load() && ctx.Err() == nil {
			a.setIdling(-1) // not at shutdown: the ledger may be closing
		}
	}()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	drop := a.dropSignal()
	go func() {
		select {
		case <-drop:
			cancel()
		case <-wctx.Done():
		}
	}()
	err = w.Watch(wctx, folder, source.WatchEvents{
		Idling: func() {
			if !idling.Swap(true) {
				a.setIdling(+1)
			}
		},
		NewMail: a.Wake,
	})
	return wctx.Err() != nil && ctx.Err() == nil, err
}

// goodPoll records a successful poll for waitGoodPoll.
func (a *Account) goodPoll() {
	a.okMu.Lock()
	defer a.okMu.Unlock()
	a.okAt = time.Now()
	if a.okCh != nil {
		close(a.okCh)
		a.okCh = nil
	}
}

// waitGoodPoll returns once a poll that started after since has succeeded
// (since zero: any), or false when ctx ends.
func (a *Account) waitGoodPoll(ctx context.Context, since time.Time) bool {
	for {
		a.okMu.Lock()
		if !a.okAt.IsZero() && a.okAt.After(since) {
			a.okMu.Unlock()
			return ctx.Err() == nil
		}
		if a.okCh == nil {
			a.okCh = make(chan struct{})
		}
		ch := a.okCh
		a.okMu.Unlock()
		select {
		case <-ctx.Done():
			return false
		case <-ch:
		}
	}
}
