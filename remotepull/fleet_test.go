package remotepull

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/foxcpp/maddy" // registers the dummy target the configurations deliver to
	"github.com/foxcpp/maddy/framework/log"

	"github.com/remote-pull/remote_pull/internal/account"
	"github.com/remote-pull/remote_pull/internal/config"
	"github.com/remote-pull/remote_pull/internal/ledger"
)

// fleetRig is a fleet over a real ledger and configuration file whose
// accounts run fakeLoops: each holds its block's slot while it polls and,
// once cancelled, ends only when the test releases it (a delivery that
// outlasts the stop).
type fleetRig struct {
	t      *testing.T
	f      *fleetT
	ldg    *ledger.Ledger
	logged chan string

	mu    sync.Mutex
	loops map[string][]*fakeLoop // by account, in start order
	inUse int                    // slots held right now
	most  int                    // the most ever held at once
	event chan string
}

type fakeLoop struct {
	name    string
	slots   account.Slots
	release chan struct{}
	rig     *fleetRig
}

func (l *fakeLoop) Run(ctx context.Context) {
	if l.slots.Acquire(ctx) == nil {
		l.rig.hold(+1)
		l.rig.event <- "polling " + l.name
		<-ctx.Done()
		<-l.release
		l.rig.hold(-1)
		l.slots.Release()
	} else {
		<-l.release
	}
}

func (l *fakeLoop) RetryNow() {}

func (r *fleetRig) hold(d int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.inUse += d
	r.most = max(r.most, r.inUse)
}

func newFleetRig(t *testing.T) *fleetRig {
	t.Helper()
	dir := t.TempDir()
	ldg, err := ledger.Open(filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	r := &fleetRig{t: t, ldg: ldg, logged: make(chan string, 100), loops: map[string][]*fakeLoop{}, event: make(chan string, 100)}
	l := log.Logger{Name: "remote_pull", Out: log.FuncOutput(func(_ time.Time, _ bool, line string) {
		r.logged <- line
	}, func() error { return nil })}
	r.f = &fleetT{newLoop: func(acc *config.Account, slots account.Slots) *running {
		loop := &fakeLoop{name: acc.Name, slots: slots, release: make(chan struct{}), rig: r}
		r.mu.Lock()
		r.loops[acc.Name] = append(r.loops[acc.Name], loop)
		r.mu.Unlock()
		return &running{cfg: acc, password: acc.Secret, loop: loop}
	}}
	r.f.init(ldg, filepath.Join(dir, "spool"), map[string]interface{}{"hostname": "mx.example.org"}, l)
	ConfigPath = filepath.Join(dir, "maddy.conf")
	t.Cleanup(func() {
		ConfigPath = ""
		r.mu.Lock()
		for _, ls := range r.loops {
			for _, l := range ls {
				select {
				case <-l.release:
				default:
					close(l.release)
				}
			}
		}
		r.mu.Unlock()
		r.f.stopAll()
		ldg.Close()
	})
	return r
}

// reload writes the configuration (remote_pull blocks, each a list of
// accounts "name" or "name:username") and applies it as SIGUSR2 does.
func (r *fleetRig) reload(blocks ...string) {
	r.t.Helper()
	var conf strings.Builder
	for _, b := range blocks {
		maxParallel, accounts, _ := strings.Cut(b, "|")
		fmt.Fprintf(&conf, "remote_pull {\n    max_parallel %s\n    deliver_to dummy\n", maxParallel)
		for _, a := range strings.Fields(accounts) {
			name, extra, _ := strings.Cut(a, ":")
			user := "u-" + name
			if strings.HasPrefix(extra, "user=") {
				user, extra = strings.TrimPrefix(extra, "user="), ""
			}
			fmt.Fprintf(&conf, "    account %s {\n        imap tls://imap.example.org\n        username %s\n        password secret\n        rcpt_to a@example.org\n        poll_interval 1h\n        %s\n    }\n",
				name, user, strings.TrimSpace(strings.ReplaceAll(extra, "_", " ")))
		}
		conf.WriteString("}\n")
	}
	if err := os.WriteFile(ConfigPath, []byte(conf.String()), 0o600); err != nil {
		r.t.Fatal(err)
	}
	if err := r.f.reloadConfig(); err != nil {
		r.t.Fatalf("reload: %v", err)
	}
}

// waitLog waits for a log line containing every part; the timeout only
// ends a test that would hang.
func (r *fleetRig) waitLog(parts ...string) {
	r.t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case line := <-r.logged:
			if containsAll(line, parts) {
				return
			}
		case <-timeout:
			r.t.Fatalf("no log line with %q", parts)
		}
	}
}

func (r *fleetRig) waitEvent(want string) {
	r.t.Helper()
	select {
	case e := <-r.event:
		if e != want {
			r.t.Fatalf("event %q, want %q", e, want)
		}
	case <-time.After(time.Minute):
		r.t.Fatalf("no event %q", want)
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

func (r *fleetRig) started(name string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.loops[name])
}

func (r *fleetRig) releaseLoop(name string, i int) {
	r.mu.Lock()
	l := r.loops[name][i]
	r.mu.Unlock()
	close(l.release)
}

// A reload that changes an account whose stop outlasts the reload (a
// delivery in flight) keeps the old loop in the fleet and starts the new
// one only once the old one has ended: never two loops on one account,
// never a loop nobody stops. A removed account that is still stopping is
// still run by this maddy as far as forget is concerned.
func TestReloadWaitsForAStoppingAccount(t *testing.T) {
	r := newFleetRig(t)
	r.reload("8|a")
	r.waitEvent("polling a")

	r.reload("8|a:_idle_no") // changed: a restarts
	r.waitLog("still stopping", `"account":"a"`)
	if n := r.started("a"); n != 1 {
		t.Fatalf("%d loops of a started while the first is still stopping", n)
	}
	if _, err := r.ldg.ForgetAccount(context.Background(), "a", true); !errors.Is(err, ledger.ErrAccountRunning) {
		t.Fatalf("forget while a restarts: %v", err)
	}
	r.releaseLoop("a", 0)
	r.waitLog("reload: account started", `"account":"a"`)
	r.waitEvent("polling a")
	if n := r.started("a"); n != 2 {
		t.Fatalf("%d loops of a after the first ended, want 2", n)
	}

	// Removed, and stuck in its stop: still run by this maddy.
	r.reload("8|b")
	r.waitEvent("polling b")
	if _, err := r.ldg.ForgetAccount(context.Background(), "a", true); !errors.Is(err, ledger.ErrAccountRunning) {
		t.Fatalf("forget of a removed account still stopping: %v", err)
	}
	// Added back while still stopping: waits; removed again: never starts.
	r.reload("8|a b")
	r.waitLog("still stopping", `"account":"a"`)
	r.reload("8|b")
	r.releaseLoop("a", 1)
	r.waitLog("account removed from the configuration; stopped", `"account":"a"`)
	if n := r.started("a"); n != 2 {
		t.Fatalf("a started %d times, want 2: removed again before its namesake stopped", n)
	}
	if n, err := r.ldg.ForgetAccount(context.Background(), "a", true); err != nil {
		t.Fatalf("forget once maddy stopped the account: %d %v", n, err)
	}
}

// max_parallel bounds the pollers started before and after a reload
// together, and a reload that raises it lets a waiting account poll.
func TestMaxParallelAcrossReloads(t *testing.T) {
	r := newFleetRig(t)
	r.reload("1|a")
	r.waitEvent("polling a")
	r.reload("1|a b")
	r.waitLog("reload: account started", `"account":"b"`)
	r.f.mu.Lock()
	same := r.f.accounts["a"].slots == r.f.accounts["b"].slots
	r.f.mu.Unlock()
	if !same {
		t.Fatal("b polls on other slots than a: with max_parallel 1 both poll at once")
	}
	r.reload("2|a b") // raised: b, waiting for a slot, polls
	r.waitEvent("polling b")
	r.mu.Lock()
	most := r.most
	r.mu.Unlock()
	if most != 2 {
		t.Fatalf("at most %d polled at once, want 2 after raising max_parallel", most)
	}
}

// The slots themselves: a full set blocks until a release or a raised
// limit, and a cancelled wait gives up.
func TestSlots(t *testing.T) {
	s := newSlots()
	s.setLimit(1)
	ctx := context.Background()
	if err := s.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Acquire(cancelled); err == nil {
		t.Fatal("a second slot of one")
	}
	got := make(chan error)
	go func() { got <- s.Acquire(ctx) }()
	s.Release()
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	go func() { got <- s.Acquire(ctx) }()
	s.setLimit(2)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
}

// A reload that starts an account on an upstream mailbox another account
// polls warns as a start does.
func TestReloadWarnsSharedMailbox(t *testing.T) {
	r := newFleetRig(t)
	r.reload("8|a:user=alice")
	r.waitEvent("polling a")
	r.reload("8|a:user=alice b:user=alice")
	r.waitLog("two accounts poll the same upstream mailbox", "b (", "a (")
}
