// Command soak runs remote_pull for a long stretch under every kind of
// network fault and two crashes, then checks that nothing was lost and
// nothing arrived twice (issue 11).
//
// One Dovecot upstream, one maddy with three remote_pull accounts (IMAP
// keep yes with IDLE, IMAP keep no, POP3 keep no), each reaching Dovecot
// through its own integration/faultproxy. For -duration, messages are
// APPENDed upstream to all three accounts (mostly a few KB, some around
// 1.5 MiB), every few seconds a random fault (RST, FIN at a TLS record
// boundary or inside one, close_notify, stall, drip) at a random byte
// offset is scheduled for an account's next connection, and maddy is
// SIGKILLed -kills times (and started again). Then the faults stop, the
// run waits until every account has settled, and checks:
//
//   - every appended message is in maddy exactly once, byte for byte (one
//     duplicate allowed per SIGKILL per account: the Commit→ledger window
//     of docs/guarantees.md);
//   - nothing else is in maddy;
//   - keep yes: everything appended is still upstream, flags untouched;
//     keep no: nothing is left upstream.
//
// It prints the counts per account and exits non-zero if an invariant is
// broken. Logs (maddy, Dovecot, the soak's own event log) and the summary
// are copied to -o at the end.
//
//	make soak                              # 10 minutes
//	make soak SOAKFLAGS='-duration 2m'     # shorter
//	make soak SOAKFLAGS='-seed 42 -rate 4' # replay a seed, more mail
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

var (
	duration  = flag.Duration("duration", 10*time.Minute, "how long mail is appended and faults are injected")
	rate      = flag.Float64("rate", 2, "APPENDs per second per account")
	largeFrac = flag.Float64("large", 0.03, "fraction of messages of about 1.5 MiB (past maddy's 1 MiB in-memory spool)")
	faultMin  = flag.Duration("fault-min", 2*time.Second, "shortest pause between two faults scheduled for one account")
	faultMax  = flag.Duration("fault-max", 6*time.Second, "longest pause between two faults scheduled for one account")
	kills     = flag.Int("kills", 2, "SIGKILLs of maddy during the run (each followed by a restart)")
	quiesce   = flag.Duration("quiesce", 8*time.Minute, "how long to wait, once the faults stop, for every account to settle")
	seed      = flag.Uint64("seed", 0, "random seed (0: from the clock); printed at start")
	outDir    = flag.String("o", "out/soak", "where the logs and the summary are copied at the end")
)

const localPass = "soak-local-password"

// soak is the whole run.
type soak struct {
	s     *harness.Script
	start time.Time
	up    *harness.Dovecot
	maddy *harness.Maddy
	accts []*account
	ev    *events

	maddyMu    sync.Mutex // held while maddy is killed and restarted
	killed     int        // SIGKILLs done
	unexpected []string   // maddy exits the soak did not cause
	stopping   bool       // guarded by maddyMu: no more restarts
}

func main() {
	flag.Parse()
	if *duration <= 0 || *rate <= 0 || *faultMin <= 0 || *faultMax < *faultMin || *kills < 0 {
		fmt.Fprintln(os.Stderr, "soak: -duration, -rate and -fault-min must be positive, -fault-max at least -fault-min, -kills not negative")
		os.Exit(2)
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano())
	}
	s := &harness.Script{}
	k := &soak{s: s, start: time.Now()}

	// Ctrl-C (or SIGTERM): stop maddy, the proxies and Dovecot, remove the
	// temporary directories, keep what logs there are.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		fmt.Fprintf(os.Stderr, "\nsoak: %v: stopping maddy and Dovecot, removing temporary files\n", sig)
		k.maddyMu.Lock()
		k.stopping = true
		k.maddyMu.Unlock()
		k.saveLogs("")
		s.Close()
		os.Exit(130)
	}()

	fmt.Printf("soak: seed %d, %v of appends (%.1f/s per account, %.0f%% large), a fault every %v–%v per account, %d SIGKILLs\n",
		*seed, *duration, *rate, 100**largeFrac, *faultMin, *faultMax, *kills)
	k.setup()
	code := k.run()
	s.Close()
	os.Exit(code)
}

// rng returns an independent generator for one goroutine, derived from the
// seed.
func rng(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(*seed, stream)) }

// between returns a random duration in [lo, hi].
func between(r *rand.Rand, lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(r.Int64N(int64(hi-lo)+1))
}

// since is the time since the start, for logs.
func (k *soak) since() string { return fmtDur(time.Since(k.start)) }

func fmtDur(d time.Duration) string {
	return fmt.Sprintf("T+%s", d.Round(100*time.Millisecond))
}

// run is the soak after set-up; it returns the exit status.
func (k *soak) run() int {
	ctx, stop := context.WithTimeout(context.Background(), *duration)
	defer stop()
	// Watchers run on through the settling, until the final check.
	watching := make(chan struct{})
	var watchers sync.WaitGroup
	watchers.Add(1)
	go func() { defer watchers.Done(); k.watchMaddy(watching) }()
	var wg sync.WaitGroup
	for i, a := range k.accts {
		wg.Add(2)
		go func() { defer wg.Done(); a.appendLoop(ctx, k, rng(uint64(10*i+1))) }()
		go func() { defer wg.Done(); a.faultLoop(ctx, k, rng(uint64(10*i+2))) }()
		watchers.Add(1)
		go func() { defer watchers.Done(); a.watchProxy(watching, k) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); k.killLoop(ctx, rng(1000)) }()
	k.progressLoop(ctx)
	wg.Wait()

	// The faults stop: nothing more is scheduled (a stall or a drip under
	// way ends when maddy's client gives up on it or finishes).
	for _, a := range k.accts {
		a.proxy.Schedule()
	}
	k.ev.logf("-", "appends and faults stopped; waiting for the accounts to settle")
	fmt.Printf("%s appends and faults stopped; waiting up to %v for every account to settle\n", k.since(), *quiesce)
	settled := k.settle()
	close(watching)
	watchers.Wait()

	k.maddyMu.Lock()
	k.stopping = true
	k.maddyMu.Unlock()
	res := k.check(settled)
	fmt.Print(res.text)
	k.saveLogs(res.text) // before status, which could end the run on a harness error
	st := k.status()
	fmt.Print(st)
	k.saveLogs(res.text + st)
	if res.failed {
		fmt.Printf("\nsoak: FAILED (logs in %s)\n", *outDir)
		return 1
	}
	fmt.Printf("\nsoak: every invariant held (logs in %s)\n", *outDir)
	return 0
}

// saveLogs copies maddy's and Dovecot's logs, the event log and the summary
// to -o, best effort.
func (k *soak) saveLogs(summary string) {
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		return
	}
	write := func(name, data string) {
		if err := os.WriteFile(filepath.Join(*outDir, name), []byte(data), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "soak: %v\n", err)
		}
	}
	if k.maddy != nil {
		write("maddy.log", k.maddy.Log())
	}
	if k.up != nil {
		write("dovecot.log", k.up.Log())
	}
	if k.ev != nil {
		write("events.log", k.ev.text())
	}
	if summary != "" {
		write("summary.txt", summary)
	}
}

// progressLoop prints a line every 30 s until ctx ends.
func (k *soak) progressLoop(ctx context.Context) {
	t := time.NewTicker(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var parts []string
		for _, a := range k.accts {
			a.refresh(k) // errors: maddy may be restarting; the next tick tries again
			appended, missing, _ := a.progress()
			sched, applied := a.faultTotals()
			parts = append(parts, fmt.Sprintf("%s %d appended, %d in maddy, faults %d/%d", a.name, appended, appended-missing, applied, sched))
		}
		k.maddyMu.Lock()
		killed := k.killed
		k.maddyMu.Unlock()
		fmt.Printf("%s %s; kills %d\n", k.since(), strings.Join(parts, "; "), killed)
	}
}

// events is the soak's own timeline, written to events.log.
type events struct {
	start time.Time
	mu    sync.Mutex
	list  []event
}

type event struct {
	at   time.Duration // since the start
	acct string        // account name, "-" for the whole soak
	text string
}

func (e event) String() string { return fmt.Sprintf("%s %-11s %s", fmtDur(e.at), e.acct, e.text) }

func (e *events) logf(acct, format string, args ...any) {
	ev := event{at: time.Since(e.start), acct: acct, text: fmt.Sprintf(format, args...)}
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
}

func (e *events) text() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, ev := range e.list {
		b.WriteString(ev.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// between returns the events of acct (and of the whole soak) from one time
// to another whose text contains one of substrs.
func (e *events) between(acct string, from, to time.Duration, substrs ...string) []event {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []event
	for _, ev := range e.list {
		if ev.at < from || ev.at > to || (ev.acct != acct && ev.acct != "-") {
			continue
		}
		for _, s := range substrs {
			if strings.Contains(ev.text, s) {
				out = append(out, ev)
				break
			}
		}
	}
	return out
}
