package main

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/remote-pull/remote_pull/integration/faultproxy"
	"github.com/remote-pull/remote_pull/integration/harness"
)

// endingWeight: the endings that cut a connection at once come twice as
// often as Stall and Drip. A stall holds its account for the accounts'
// upstream timeout (accountTimeout), so an account also gets at most one
// Stall per stallCooldown; a drip (see setup) keeps a poll going slowly to
// its end.
func endingWeight(e faultproxy.Ending) int {
	switch e {
	case faultproxy.Stall, faultproxy.Drip:
		return 2
	}
	return 4
}

// accountTimeout is the accounts' 'timeout': how long a stall holds one.
const accountTimeout = 15 * time.Second

// stallCooldown is the least time between two Stalls scheduled for one
// account.
const stallCooldown = 4 * accountTimeout

func (a *account) pickEnding(r *rand.Rand, stallOK bool) faultproxy.Ending {
	var endings []faultproxy.Ending
	total := 0
	for _, e := range a.endings {
		if e == faultproxy.Stall && !stallOK {
			continue
		}
		endings = append(endings, e)
		total += endingWeight(e)
	}
	x := r.IntN(total)
	for _, e := range endings {
		if x -= endingWeight(e); x < 0 {
			return e
		}
	}
	return endings[0]
}

// pickOffset draws where the next fault strikes, in the proxy's unit
// (server→client bytes): 40% anywhere in a recent clean session of this
// account, 30% at or just after a point where the client spoke in one (the
// start of a server response: greeting, login, SELECT, FETCH, a literal,
// EXPUNGE, QUIT), 30% log-uniform up to 2 MiB (deep inside a large poll).
func (a *account) pickOffset(r *rand.Rand) int64 {
	a.mu.Lock()
	recent := append([]faultproxy.Session(nil), a.recent...)
	a.mu.Unlock()
	x := r.Float64()
	if len(recent) > 0 && x < 0.7 {
		s := recent[r.IntN(len(recent))]
		if x < 0.4 || len(s.Turns) == 0 {
			return r.Int64N(max(s.ServerBytes, 1))
		}
		t := s.Turns[r.IntN(len(s.Turns))]
		return max(0, t+int64(r.IntN(43))-2)
	}
	return int64(math.Exp(r.Float64() * math.Log(2<<20)))
}

// faultLoop schedules one random fault for the account's next connection
// every -fault-min to -fault-max, until ctx ends. A fault not yet used is
// replaced by the next one (Schedule replaces the list).
func (a *account) faultLoop(ctx context.Context, k *soak, r *rand.Rand) {
	lastStall := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(between(r, *faultMin, *faultMax)):
		}
		f := faultproxy.Fault{End: a.pickEnding(r, time.Since(lastStall) >= stallCooldown), After: a.pickOffset(r)}
		if f.End == faultproxy.Stall {
			lastStall = time.Now()
		}
		a.proxy.Schedule(f)
		a.mu.Lock()
		a.scheduled[f.End]++
		a.mu.Unlock()
		k.ev.logf(a.name, "fault scheduled for the next connection: %v", f)
	}
}

// watchProxy collects the proxy's finished sessions every 250 ms until
// done is closed.
func (a *account) watchProxy(done <-chan struct{}, k *soak) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		a.collectSessions(k)
	}
}

// collectSessions counts the faults applied in sessions that ended since
// the last call and keeps recent clean sessions for pickOffset.
func (a *account) collectSessions(k *soak) {
	all := a.proxy.Sessions()
	open := a.proxy.Cuts()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, s := range all[min(a.seen, len(all)):] {
		switch {
		case s.Cut && s.Fault != nil:
			a.applied[s.Fault.End]++
			a.endedCuts++
			k.ev.logf(a.name, "fault applied: %v, cut at %d; the session ended after %d server bytes, %d client bytes",
				*s.Fault, s.CutAt, s.ServerBytes, s.ClientBytes)
		case s.Fault != nil:
			k.ev.logf(a.name, "fault %v not reached: the session ended after %d server bytes", *s.Fault, s.ServerBytes)
			fallthrough
		default:
			a.recent = append(a.recent, s)
			if len(a.recent) > 40 {
				a.recent = a.recent[len(a.recent)-40:]
			}
		}
	}
	a.seen = len(all)
	if n := open - a.endedCuts; n != a.openCuts {
		a.openCuts = n
		if n > 0 {
			k.ev.logf(a.name, "fault applied: %d faulted connection(s) still open (a stall or a drip under way)", n)
		}
	}
}

// faultTotals: faults scheduled, and applied (ended sessions and
// connections still open after their fault).
func (a *account) faultTotals() (scheduled, applied int) {
	a.mu.Lock()
	for _, n := range a.scheduled {
		scheduled += n
	}
	a.mu.Unlock()
	return scheduled, a.proxy.Cuts()
}

// killLoop SIGKILLs maddy -kills times, spread over the run (kill i in the
// middle half of the i-th equal slice), and starts it again each time.
func (k *soak) killLoop(ctx context.Context, r *rand.Rand) {
	for i := range *kills {
		at := time.Duration(float64(*duration) * (float64(i) + 0.25 + 0.5*r.Float64()) / float64(*kills))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Until(k.start.Add(at))):
		}
		k.killOnce(r)
	}
}

// killOnce waits (up to 10 s) for maddy to log an incoming message, so
// that the kill lands while a delivery is in flight, then kills it with
// SIGKILL and starts it again after a short pause.
func (k *soak) killOnce(r *rand.Rand) {
	inFlight := harness.WaitLogFile(k.maddy.LogPath, "incoming message", 10*time.Second) == nil
	k.maddyMu.Lock()
	defer k.maddyMu.Unlock()
	if k.stopping {
		return
	}
	incoming := strings.Count(k.maddy.Log(), "incoming message")
	k.maddy.Kill(k.s)
	k.killed++
	what := "right after an \"incoming message\" line"
	if !inFlight {
		what = "(no incoming message within 10 s)"
	}
	k.ev.logf("-", "SIGKILL #%d of maddy %s, after %d incoming messages in all", k.killed, what, incoming)
	fmt.Printf("%s SIGKILL #%d of maddy %s\n", k.since(), k.killed, what)
	time.Sleep(between(r, 500*time.Millisecond, 3*time.Second))
	k.maddy.Start(k.s)
	k.ev.logf("-", "maddy started again")
}

// watchMaddy notices a maddy that exited without being killed by the soak
// (a crash: an invariant broken), records it with the end of its log, and
// starts it again so that the run goes on. It returns when done is closed.
func (k *soak) watchMaddy(done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		k.maddyMu.Lock()
		if !k.stopping && !k.maddy.Running() {
			log := strings.Split(strings.TrimRight(k.maddy.Log(), "\n"), "\n")
			msg := fmt.Sprintf("%s maddy exited on its own; the end of its log and stderr:\n    %s",
				k.since(), strings.Join(log[max(0, len(log)-30):], "\n    "))
			k.unexpected = append(k.unexpected, msg)
			k.ev.logf("-", "maddy exited on its own; starting it again")
			fmt.Println(msg)
			k.maddy.Start(k.s)
		}
		k.maddyMu.Unlock()
	}
}
