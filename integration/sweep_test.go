package integration

// The fault-space sweep (issue 11, "nothing lost, nothing twice, under every
// fault"): every way a network ends a connection (faultproxy.Endings), at
// offsets spread over a whole session and packed around every phase of it,
// for IMAP and POP3, implicit TLS and STARTTLS/STLS. Each case runs the
// account loop in process against a real Dovecot: one poll through the
// faulted connection, clean polls until one succeeds, one more that must
// find nothing to do; then nothing delivered may be partial or altered,
// nothing may be lost, nothing may arrive twice, and the upstream must hold
// what keep says.
//
// Offsets come from clean sessions measured first through the same kind of
// proxy: the transparent one (faultproxy.New: raw TLS bytes, Dovecot's own
// records, the handshake included) for every ending but CloseNotify, which
// needs the TLS-terminating one (faultproxy.NewTLS: plaintext bytes after
// the handshake). Each offset is placed relative to the client message
// whose answer it falls in (faultproxy.Fault.Anchor), so that it hits the
// same phase although sessions differ by a few bytes before it. A case
// whose faulted poll failed before its fault for another reason (a slow
// login on a busy machine) is run again on a fresh mailbox, and counted.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/foxcpp/maddy/framework/log"

	"github.com/remote-pull/remote_pull/integration/faultproxy"
	"github.com/remote-pull/remote_pull/integration/harness"
	"github.com/remote-pull/remote_pull/internal/account"
	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/source/imapsrc"
	"github.com/remote-pull/remote_pull/internal/source/pop3src"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

const (
	sweepPass = "sweep-secret"
	// sweepWorkers cases run at once, over all groups: most of a case is
	// waiting (Dovecot, a stall, a drip), not computing.
	sweepWorkers = 8
	// sweepTimeout is the upstream's command and progress timeout under
	// a stall or a drip: a stall is noticed after it.
	sweepTimeout = time.Second
	// sweepFaultedPoll bounds the faulted poll under a stall or a drip: a
	// drip makes progress, so only a deadline (as at shutdown) ends a
	// POP3 poll under one.
	sweepFaultedPoll = 3 * time.Second
	// sweepCutTimeout and sweepCutPoll are the same for the endings a
	// client sees at once (RST, FIN, close_notify). The clock tests
	// nothing there; a short one only let a slow login on a busy machine
	// end the session before its fault (CI, 2026-12-06: four FINRecord
	// cases, three times each).
	sweepCutTimeout = 15 * time.Second
	sweepCutPoll    = 30 * time.Second
	// sweepAttempts is how often a case whose session ended before its
	// fault is run, a pause longer each time, before it fails.
	sweepAttempts = 5
	// sweepCleanPolls bounds the clean polls after the fault until one
	// succeeds.
	sweepCleanPolls = 5
)

// sweepGroup is one protocol × TLS combination.
type sweepGroup struct {
	proto    string // "IMAP" or "POP3"
	implicit bool
}

var sweepGroups = []sweepGroup{{"IMAP", true}, {"IMAP", false}, {"POP3", true}, {"POP3", false}}

func (g sweepGroup) String() string {
	switch {
	case g.implicit:
		return g.proto + "/implicit"
	case g.proto == "IMAP":
		return "IMAP/starttls"
	default:
		return "POP3/stls"
	}
}

func (g sweepGroup) target(up *harness.Dovecot) string {
	switch {
	case g.proto == "IMAP" && g.implicit:
		return up.IMAPSAddr
	case g.proto == "IMAP":
		return up.IMAPAddr
	case g.implicit:
		return up.POP3SAddr
	default:
		return up.POP3Addr
	}
}

func (g sweepGroup) mode() faultproxy.Mode {
	switch {
	case g.implicit:
		return faultproxy.ImplicitTLS
	case g.proto == "IMAP":
		return faultproxy.IMAPStartTLS
	default:
		return faultproxy.POP3STLS
	}
}

// terminating: CloseNotify needs the proxy to hold the TLS session; every
// other ending cuts the real TLS stream between client and Dovecot.
func terminating(e faultproxy.Ending) bool { return e == faultproxy.CloseNotify }

// timed reports whether the client notices an ending only by its clock.
func timed(e faultproxy.Ending) bool { return e == faultproxy.Stall || e == faultproxy.Drip }

// sweepEnv is what every case shares.
type sweepEnv struct {
	up    *harness.Dovecot
	cert  tls.Certificate
	msgs  [][]byte
	index map[string]int // message bytes → index in msgs
	sem   chan struct{}

	mu       sync.Mutex
	failures map[string][]string // "group/ending" → one line per failed case
	cases    map[string]int      // "group" → cases run
	retries  int                 // inconclusive attempts run again
	users    int
}

// sweepCorpus is the mailbox of every case: six small messages of a few KB
// and one of 1.5 MiB (over the 1 MiB the spool keeps in memory) in the
// middle, so that bodies on both spool paths are crossed, with small ones
// before and after.
func sweepCorpus() [][]byte {
	sizes := []int{1800, 2600, 3400, 1536 << 10, 4200, 5100, 6300}
	msgs := make([][]byte, len(sizes))
	for i, n := range sizes {
		msgs[i] = harness.Message(i+1, n)
	}
	return msgs
}

func TestSweep(t *testing.T) {
	begin := time.Now()
	up := harness.StartDovecot(t, harness.DovecotOptions{})
	cert, err := tls.LoadX509KeyPair(up.CA.CertFile, up.CA.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	env := &sweepEnv{
		up:       up,
		cert:     cert,
		msgs:     sweepCorpus(),
		index:    map[string]int{},
		sem:      make(chan struct{}, sweepWorkers),
		failures: map[string][]string{},
		cases:    map[string]int{},
	}
	for i, m := range env.msgs {
		env.index[string(m)] = i
	}

	var wg sync.WaitGroup
	for _, g := range sweepGroups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(g.String(), func(t *testing.T) { env.group(t, g) })
		}()
	}
	wg.Wait()

	total := 0
	for _, g := range sweepGroups {
		total += env.cases[g.String()]
	}
	t.Logf("sweep: %d cases in %v (%d workers); %d inconclusive attempts run again",
		total, time.Since(begin).Round(time.Second), sweepWorkers, env.retries)
	if t.Failed() {
		keys := make([]string, 0, len(env.failures))
		for k := range env.failures {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		for _, k := range keys {
			fmt.Fprintf(&b, "\n  %s: %d failed", k, len(env.failures[k]))
			for _, f := range env.failures[k] {
				fmt.Fprintf(&b, "\n    %s", f)
			}
		}
		t.Logf("failed cases by group and ending:%s", b.String())
	}
}

// newUsers makes n fresh upstream users, in one go.
func (env *sweepEnv) newUsers(t *testing.T, g sweepGroup, n int) []string {
	env.mu.Lock()
	first := env.users
	env.users += n
	env.mu.Unlock()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("sweep-%s-%d", strings.ToLower(g.proto), first+i)
	}
	env.up.AddUsers(t, sweepPass, names...)
	return names
}

// sweepCase is one cell of the matrix.
type sweepCase struct {
	ending faultproxy.Ending
	off    int64 // in the clean session: where the fault is meant to hit
	// anchor and after place the fault relative to the client message
	// whose answer it hits (faultproxy.Fault.Anchor), so that it hits the
	// same place although sessions vary a little in length before it.
	anchor int64
	turn   int
	after  int64
	keep   bool
	user   string
}

func (c sweepCase) name() string {
	keep := "no"
	if c.keep {
		keep = "yes"
	}
	return fmt.Sprintf("off=%d,keep=%s", c.off, keep)
}

// group measures a clean session through each kind of proxy, places the
// offsets, and runs every ending at every offset.
func (env *sweepEnv) group(t *testing.T, g sweepGroup) {
	// Clean sessions: keep no (the longest, with the removal phase) and
	// keep yes, through a transparent and a TLS-terminating proxy; three
	// of each, of which the shortest is the one offsets are placed in, so
	// that they are reached in the faulted sessions, whose lengths vary a
	// little (TLS record sizes, timing texts). Not subtests: whatever -run
	// selects needs them.
	const tries = 3
	users := env.newUsers(t, g, 4*tries)
	clean := map[[2]bool]faultproxy.Session{} // {terminating, keep}
	var shapes []string
	for i, k := range [][2]bool{{false, false}, {false, true}, {true, false}, {true, true}} {
		for try := 0; try < tries; try++ {
			s, _ := env.run(t, g, sweepCase{keep: k[1], user: users[i*tries+try]}, k[0], nil)
			if t.Failed() {
				t.Fatalf("a clean session (terminating proxy %v, keep %v) fails: the sweep cannot be trusted", k[0], k[1])
			}
			if old, ok := clean[k]; !ok || s.ServerBytes < old.ServerBytes {
				clean[k] = s
			}
		}
		shapes = append(shapes, fmt.Sprintf("terminating %v, keep %v: %d bytes, turns %v", k[0], k[1], clean[k].ServerBytes, clean[k].Turns))
	}
	t.Logf("%v: clean sessions:\n%s", g, strings.Join(shapes, "\n"))

	var cases []sweepCase
	for _, e := range faultproxy.Endings {
		term := terminating(e)
		for _, p := range sweepPoints(clean[[2]bool{term, false}], clean[[2]bool{term, true}], term) {
			cases = append(cases, sweepCase{ending: e, off: p.off, anchor: p.anchor, turn: p.turn, after: p.after, keep: p.keep})
		}
	}
	names := env.newUsers(t, g, len(cases))
	for i := range cases {
		cases[i].user = names[i]
	}
	perEnding := map[faultproxy.Ending]int{}
	for _, c := range cases {
		perEnding[c.ending]++
	}
	var counts []string
	for _, e := range faultproxy.Endings {
		counts = append(counts, fmt.Sprintf("%v %d", e, perEnding[e]))
	}
	defer func() {
		env.mu.Lock()
		defer env.mu.Unlock()
		t.Logf("%v: ran %d of the group's %d cases", g, env.cases[g.String()], len(cases))
	}()
	t.Logf("%v: %d cases (%s)", g, len(cases), strings.Join(counts, ", "))

	var endings sync.WaitGroup
	for _, e := range faultproxy.Endings {
		endings.Add(1)
		go func() {
			defer endings.Done()
			t.Run(e.String(), func(t *testing.T) {
				var wg sync.WaitGroup
				for _, c := range cases {
					if c.ending != e {
						continue
					}
					wg.Add(1)
					go func() {
						defer wg.Done()
						env.sem <- struct{}{}
						defer func() { <-env.sem }()
						t.Run(c.name(), func(t *testing.T) {
							env.mu.Lock()
							env.cases[g.String()]++
							env.mu.Unlock()
							f := &faultproxy.Fault{After: c.after, Anchor: c.anchor, Turn: c.turn, End: c.ending}
							for attempt := 1; ; attempt++ {
								if _, retry := env.run(t, g, c, terminating(c.ending), f); !retry {
									break
								}
								if attempt == sweepAttempts {
									t.Errorf("inconclusive %d times: the session ended before its fault each time", attempt)
									break
								}
								env.mu.Lock()
								env.retries++
								env.mu.Unlock()
								// What ended it early (Dovecot's auth
								// process, the machine) is usually
								// busy for a few seconds.
								time.Sleep(time.Duration(attempt) * time.Second)
								c.user = env.newUsers(t, g, 1)[0]
							}
							if t.Failed() {
								env.mu.Lock()
								key := g.String() + "/" + e.String()
								env.failures[key] = append(env.failures[key], c.name())
								env.mu.Unlock()
							}
						})
					}()
				}
				wg.Wait()
			})
		}()
	}
	endings.Wait()
}

// point is one offset, where it is relative to the client's messages, and
// whether its case keeps mail upstream.
type point struct {
	off    int64 // in the clean session
	anchor int64 // faultproxy.Fault.Anchor
	turn   int   // faultproxy.Fault.Turn
	after  int64 // faultproxy.Fault.After
	keep   bool
}

// shape is what of a clean session the offsets are placed in: the server's
// bytes up to limit, and the client's turns (the start of each of the
// server's answers) before it.
type shape struct {
	limit int64
	turns []int64
	// slack keeps the points meant for the end of a long answer (the
	// last message, the tagged OK) that far before it: through the
	// transparent proxy, TLS record sizes make a 1.6 MB answer vary by
	// tens of bytes from one session to the next.
	slack int64
}

// shapeOf drops the end of a session that varies from one connection to
// the next: the last line's timing text ("(0.001 + 0.000 secs)" or
// "(0.001 + 0.000 + 0.001 secs)": 12 bytes kept clear), and, through the
// transparent proxy, the server's own close_notify (24 bytes of TLS 1.3
// alert), which may come before or after the client's closing alert (not
// a turn either).
func shapeOf(s faultproxy.Session, term bool) shape {
	sh := shape{limit: s.ServerBytes - 12}
	if !term {
		sh.limit -= 24
		sh.slack = 64
	}
	for _, t := range s.Turns {
		if t < sh.limit {
			sh.turns = append(sh.turns, t)
		}
	}
	return sh
}

// relative anchors off on the client turn that starts the server's answer
// it falls in (faultproxy.Fault.Anchor and Turn): the fault is then placed
// at the same distance into the same answer, whatever the lengths before
// it in the faulted session. Lengths vary by a few bytes in the handshake
// and the greeting, and by up to a few KB in a long answer (TLS record
// sizes, timing texts): a turn after a long answer is found as the first
// turn at or after a point well before it (halfway back to the turn
// before, at most 64 KiB back), and the turns that follow it by counting.
func (sh shape) relative(off int64, keep bool) point {
	p := point{off: off, after: off, keep: keep}
	j := -1 // the turn starting the answer off is in
	for i, t := range sh.turns {
		if t > off {
			break
		}
		j = i
	}
	if j < 0 || sh.turns[j] == 0 {
		return p // before any turn: from the start
	}
	gap := func(i int) int64 {
		if i == 0 {
			return sh.turns[0]
		}
		return sh.turns[i] - sh.turns[i-1]
	}
	base := j
	for b := j; b >= 0; b-- {
		if gap(b) >= 4096 {
			base = b
			break
		}
	}
	p.anchor = max(1, sh.turns[base]-min(gap(base)/2, 64<<10))
	p.turn = j - base
	p.after = off - sh.turns[j]
	return p
}

// sweepPoints places the offsets of one ending from its clean sessions
// (keep no, which has the removal phase, and keep yes). Up to the end of
// the answer carrying the bodies both sessions are the same, and keep
// alternates; past it, the keep-no session's removal and goodbye are cut
// with keep no, and the keep-yes session's goodbye with keep yes.
func sweepPoints(no, yes faultproxy.Session, term bool) []point {
	shNo, shYes := shapeOf(no, term), shapeOf(yes, term)
	splitNo, splitYes := shNo.afterBodies(), shYes.afterBodies()
	var out []point
	i := 0
	for _, off := range shNo.points() {
		if off < splitNo {
			out = append(out, shNo.relative(off, i%2 == 1))
			i++
		} else {
			out = append(out, shNo.relative(off, false))
		}
	}
	for _, off := range shYes.points() {
		if off >= splitYes {
			out = append(out, shYes.relative(off, true))
		}
	}
	return out
}

// afterBodies is the client turn that follows the answer carrying the
// message bodies (the last long answer): the removal (keep no) or the
// goodbye (keep yes).
func (sh shape) afterBodies() int64 {
	split := sh.limit
	for i := len(sh.turns) - 1; i > 0; i-- {
		if sh.turns[i]-sh.turns[i-1] >= 4096 {
			return sh.turns[i]
		}
	}
	return split
}

// points spreads offsets over a session: evenly; densely in the first and
// last 300 bytes (handshake or greeting, capabilities, login; removal,
// goodbye); and around every answer of the server (the stretches between
// two client turns): where it starts, its middle, inside its last line (the
// tagged OK or +OK), its last byte; and, in the long answer that carries
// the message bodies, through the small messages before and after the
// large one, and just past the first MiB of the large one (where the spool
// moves from memory to a file).
func (sh shape) points() []int64 {
	total := sh.limit
	set := map[int64]bool{}
	add := func(off int64) {
		if off >= 0 && off < total {
			set[off] = true
		}
	}
	const even = 12
	for i := int64(0); i < even; i++ {
		add(total * (2*i + 1) / (2 * even))
	}
	for _, d := range []int64{0, 10, 100, 200, 300} {
		add(d)
		add(total - 1 - d)
	}
	bounds := append([]int64{0}, sh.turns...)
	bounds = append(bounds, total)
	for j := 0; j+1 < len(bounds); j++ {
		a, b := bounds[j], bounds[j+1]
		if b <= a {
			continue
		}
		n := b - a
		add(a)
		add(a + n/2)
		end := b
		if n > 64<<10 {
			end -= sh.slack
		}
		if n > 40 {
			add(end - 20)
		}
		add(end - 1)
		if n > 64<<10 {
			for _, d := range []int64{300, 2000, 5000, 9000} {
				add(a + d)
				add(b - d)
			}
			add(b - 15000)
			add(a + 9000 + 1<<20)
		}
	}
	out := make([]int64, 0, len(set))
	for off := range set {
		out = append(out, off)
	}
	slices.Sort(out)
	return out
}

// proxy starts the case's proxy.
func (env *sweepEnv) proxy(t *testing.T, g sweepGroup, term bool) *faultproxy.Proxy {
	var (
		p   *faultproxy.Proxy
		err error
	)
	if term {
		p, err = faultproxy.NewTLS(g.target(env.up), g.mode(), env.cert, env.up.CA.ClientConfig())
	} else {
		p, err = faultproxy.New(g.target(env.up))
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// run runs one case (fault nil: a clean one) and checks the invariants. It
// returns the first session's description, and whether the case must be
// run again because the faulted poll ended before its fault for another
// reason.
func (env *sweepEnv) run(t *testing.T, g sweepGroup, c sweepCase, term bool, fault *faultproxy.Fault) (faultproxy.Session, bool) {
	home := filepath.Join(env.up.Dir, "home", c.user)
	t.Cleanup(func() { os.RemoveAll(home) })
	env.up.Seed(t, c.user, "INBOX", env.msgs...)

	px := env.proxy(t, g, term)
	if fault != nil {
		px.Schedule(*fault)
	}
	led, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	rec := &testlib.Pipeline{}
	logs := &logBuffer{}
	// A faulted poll under a stall or a drip runs with the short timeout
	// that ends it, one under a cut with a longer one; the clean polls
	// after it with a long one, so that a slow login on this
	// busy machine is not taken for a failure: they are there to finish
	// the work, not to be tested against the clock.
	timeout, limit := sweepCutTimeout, sweepCutPoll
	if fault != nil && timed(fault.End) {
		timeout, limit = sweepTimeout, sweepFaultedPoll
	}
	acct := account.New(env.settings(t, g, px, c, led, rec, logs, timeout))
	cleanAcct := account.New(env.settings(t, g, px, c, led, rec, logs, waitLong))
	if fault == nil {
		acct, limit = cleanAcct, waitLong
	}
	defer func() {
		if t.Failed() {
			t.Logf("account log:\n%s", logs.String())
		}
	}()

	res, firstErr := poll(t, acct, limit)
	idle := px.WaitIdle(10 * time.Second)
	if !idle && fault != nil && len(px.Sessions()) == 0 && errors.Is(firstErr, context.DeadlineExceeded) {
		// The faulted poll's short timeout ran out while it connected
		// (a TLS handshake slower than 1 s on a busy machine: CI,
		// 2026-12-06, a POP3/implicit Drip case). The client closed its
		// side; the proxy holds the connection until the server, as busy,
		// notices. A client that leaked it would hold it for good: the
		// bound is longer here, not gone.
		idle = px.WaitIdle(60 * time.Second)
	}
	if !idle {
		t.Errorf("the connection is still open after the poll returned: the client never closed it")
	}
	sessions := px.Sessions()
	if len(sessions) == 0 {
		t.Fatalf("the poll made no connection (%v)", firstErr)
	}
	first := sessions[0]
	switch {
	case fault == nil && firstErr != nil:
		t.Fatalf("clean poll failed: %v", firstErr)
	case fault != nil && !first.Cut && !t.Failed():
		// Something else ended the session first (a login slower than
		// the timeout, on a busy machine), or it ended cleanly
		// short of a cut in its last bytes, whose count varies from
		// session to session (the server's close_notify may or may not
		// go out before the client closes): this attempt tested
		// nothing; the caller runs the case again on a fresh mailbox,
		// and fails it if that happens sweepAttempts times.
		t.Logf("inconclusive: the session ended after %d server bytes, before its fault %v (poll: %+v, %v)",
			first.ServerBytes, *fault, res, firstErr)
		return first, true
	}

	// Clean polls until one succeeds, then one that must find nothing.
	// At least one clean poll, whatever the faulted one said: a failed
	// goodbye (QUIT) is not an error of the poll, but leaves work undone.
	ok := fault == nil && firstErr == nil
	var errs []string
	for i := 0; !ok && i < sweepCleanPolls; i++ {
		_, err := poll(t, cleanAcct, waitLong)
		if ok = err == nil; !ok {
			errs = append(errs, err.Error())
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !ok {
		t.Errorf("no clean poll succeeded in %d after the fault (%v): %s", sweepCleanPolls, firstErr, strings.Join(errs, "; "))
	} else {
		// The further poll must find nothing to do. One that cannot
		// connect (Dovecot closing a new connection before its greeting
		// while the other workers' sessions churn) says nothing either
		// way: it is tried again, as the clean polls are, and a poll that
		// connects must be idle.
		var again account.PollResult
		var err error
		for i := 0; i < sweepCleanPolls; i++ {
			if again, err = poll(t, cleanAcct, waitLong); err == nil || again != (account.PollResult{}) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || again.Fetched != 0 || again.Delivered != 0 || again.Removed != 0 {
			t.Errorf("a further poll was not idle: %+v, %v", again, err)
		}
	}
	env.check(t, rec, c)
	if t.Failed() && fault != nil {
		t.Logf("faulted poll: %+v, %v; fault %v applied at %d of the session's %d server bytes",
			res, firstErr, *fault, first.CutAt, first.ServerBytes)
	}
	return first, false
}

// poll runs one poll under a deadline of limit. A poll that has not
// returned 30 s after its deadline hangs: the case fails at once (the
// goroutine is left behind, blocked).
func poll(t *testing.T, acct *account.Account, limit time.Duration) (account.PollResult, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	type result struct {
		res account.PollResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := acct.Poll(ctx)
		done <- result{res, err}
	}()
	select {
	case r := <-done:
		return r.res, r.err
	case <-time.After(limit + 30*time.Second):
		t.Fatalf("hang: Poll has not returned 30 s after its %v deadline", limit)
		panic("unreachable")
	}
}

func (env *sweepEnv) settings(t *testing.T, g sweepGroup, px *faultproxy.Proxy, c sweepCase, led *ledger.Ledger, rec *testlib.Pipeline, logs *logBuffer, timeout time.Duration) account.Settings {
	_, port, err := net.SplitHostPort(px.Addr)
	if err != nil {
		t.Fatal(err)
	}
	ep := source.Endpoint{
		Host:        "localhost",
		Port:        port,
		ImplicitTLS: g.implicit,
		TLS:         &tls.Config{RootCAs: env.up.CA.Pool},
		Auth:        source.AuthAuto,
		Username:    c.user,
		Password:    func() (string, error) { return sweepPass, nil },
		Timeout:     timeout,
	}
	var upstream source.Upstream
	if g.proto == "POP3" {
		upstream = pop3src.New(pop3src.Config{Endpoint: ep, Keep: c.keep})
	} else {
		upstream = imapsrc.New(imapsrc.Config{Endpoint: ep, Warn: func(msg string) { logs.add("warning: " + msg) }})
	}
	l := logs.logger()
	return account.Settings{
		Name:     "sweep",
		Upstream: upstream,
		Policy:   policy.Policy{Folders: []string{"INBOX"}, Keep: c.keep},
		Ledger:   led,
		Log:      l,
		Target: &delivery.Target{
			Options:  delivery.Options{Pipeline: rec, Rcpts: []string{localUser}, Hostname: "mx.example.org"},
			SpoolDir: t.TempDir(),
			Log:      l,
		},
	}
}

// check asserts the invariants once the polls are done.
func (env *sweepEnv) check(t *testing.T, rec *testlib.Pipeline, c sweepCase) {
	t.Helper()
	got := make([]int, len(env.msgs))
	for _, d := range rec.Messages() {
		m := d.Raw
		raw := harness.StripTopReceived(m)
		if len(raw) == len(m) {
			t.Errorf("a delivered message (%d bytes) lacks remote_pull's Received field", len(m))
		}
		i, ok := env.index[string(raw)]
		if !ok {
			t.Errorf("partial or altered delivery: %s", env.describe(raw))
			continue
		}
		got[i]++
	}
	for i, n := range got {
		switch {
		case n == 0:
			t.Errorf("lost: message %d (%d bytes) was never delivered", i+1, len(env.msgs[i]))
		case n > 1:
			t.Errorf("duplicate: message %d (%d bytes) was delivered %d times", i+1, len(env.msgs[i]), n)
		}
	}

	left, trashed := env.upstream(t, c.user)
	if c.keep {
		for i := range env.msgs {
			if left[i] != 1 {
				t.Errorf("keep yes: message %d is upstream %d times, want once", i+1, left[i])
			}
		}
		if trashed > 0 {
			t.Errorf("keep yes: %d upstream messages flagged \\Deleted", trashed)
		}
	} else if n := sum(left); n > 0 {
		t.Errorf("keep no: %d messages left upstream (%d flagged \\Deleted), want none", n, trashed)
	}
	if other := left[-1]; other > 0 {
		t.Errorf("%d upstream messages are none of the seeded ones", other)
	}
}

// upstream reads the user's maildir: how many copies of each seeded message
// it holds (index -1: anything else), and how many files carry the
// Maildir T (trashed, \Deleted) flag.
func (env *sweepEnv) upstream(t *testing.T, user string) (map[int]int, int) {
	t.Helper()
	left := map[int]int{}
	trashed := 0
	dir := env.up.MaildirPath(user, "INBOX")
	for _, sub := range []string{"new", "cur"} {
		entries, err := os.ReadDir(filepath.Join(dir, sub))
		if err != nil {
			t.Fatalf("reading the upstream maildir: %v", err)
		}
		for _, e := range entries {
			data, err := os.ReadFile(filepath.Join(dir, sub, e.Name()))
			if err != nil {
				t.Fatalf("reading the upstream maildir: %v", err)
			}
			i, ok := env.index[string(data)]
			if !ok {
				i = -1
			}
			left[i]++
			if _, info, ok := strings.Cut(e.Name(), ":2,"); ok && strings.Contains(info, "T") {
				trashed++
			}
		}
	}
	return left, trashed
}

func sum(m map[int]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// describe says how a delivered message relates to the seeded ones.
func (env *sweepEnv) describe(raw []byte) string {
	best, bestLen := -1, -1
	for i, m := range env.msgs {
		n := commonPrefix(raw, m)
		if n > bestLen {
			best, bestLen = i, n
		}
	}
	m := env.msgs[best]
	switch {
	case bestLen == len(raw) && len(raw) < len(m):
		return fmt.Sprintf("%d bytes, the first %d of message %d (%d bytes): truncated", len(raw), len(raw), best+1, len(m))
	case bestLen == len(m):
		return fmt.Sprintf("%d bytes, message %d (%d bytes) with %d more bytes after it", len(raw), best+1, len(m), len(raw)-len(m))
	default:
		return fmt.Sprintf("%d bytes, differs from message %d (%d bytes) at byte %d", len(raw), best+1, len(m), bestLen)
	}
}

func commonPrefix(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// logBuffer keeps an account's log, shown when its case fails.
type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuffer) add(s string) {
	l.mu.Lock()
	l.lines = append(l.lines, s)
	l.mu.Unlock()
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

func (l *logBuffer) logger() log.Logger {
	return log.Logger{
		Name:  "sweep",
		Debug: true,
		Out: log.FuncOutput(func(_ time.Time, _ bool, s string) {
			l.add(strings.TrimRight(s, "\n"))
		}, func() error { return nil }),
	}
}
