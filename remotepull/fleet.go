package remotepull

import (
	"context"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	parser "github.com/foxcpp/maddy/framework/cfgparser"
	maddycfg "github.com/foxcpp/maddy/framework/config"
	"github.com/foxcpp/maddy/framework/log"

	"github.com/remote-pull/remote_pull/internal/account"
	"github.com/remote-pull/remote_pull/internal/config"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/oauth"
)

// ConfigPath is maddy's configuration file, set by the binary before
// maddy.Run, so that a reload can read the remote_pull blocks again.
// Empty: a reload reads password and token files only.
var ConfigPath string

// fleet is every account of every remote_pull block as the process runs
// them: started at Init, changed by reloads (SIGUSR2) without restarting
// anything else of maddy, stopped at Close.
var fleet = &fleetT{}

type fleetT struct {
	mu sync.Mutex
	// accounts: what the configuration asks for, running or disabled.
	accounts map[string]*running
	// stopping: accounts a reload stopped whose loop has not ended yet (a
	// delivery in flight is finished first). They stay here, managed and
	// recorded as running in the ledger, until it has ended; an account of
	// the same name waits in pending until then.
	stopping map[string]*running
	pending  map[string]placement
	// slots: one per remote_pull block, in file order, kept across
	// reloads so that max_parallel bounds old and new pollers together.
	slots      []*slots
	initBlocks int             // blocks Init has started so far
	ctx        context.Context // ends at Close
	cancel     context.CancelFunc
	ledger     *ledger.Ledger
	spoolDir   string
	globals    map[string]interface{}
	log        log.Logger
	stopped    bool
	// newLoop makes an account's loop: newRunning; tests replace it.
	newLoop func(acc *config.Account, slots account.Slots) *running
}

// placement is an account to start and its block's slots.
type placement struct {
	acc   *config.Account
	slots *slots
}

// loop is what the fleet runs for an account: account.Account.
type loop interface {
	Run(ctx context.Context)
	RetryNow()
}

// running is one account as the fleet runs it: its loop, the credentials a
// reload reads again, and how to stop it.
type running struct {
	loop     loop // nil while disabled
	cfg      *config.Account
	slots    *slots
	password *config.Secret
	tokens   *oauth.Tokens // nil for password accounts
	cancel   context.CancelFunc
	done     chan struct{} // closed when the loop has ended
}

// init prepares the fleet for the first block; it reports true the first
// time, when the caller registers the reload hook.
func (f *fleetT) init(ldg *ledger.Ledger, spoolDir string, globals map[string]interface{}, l log.Logger) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.accounts != nil {
		return false
	}
	f.accounts, f.stopping, f.pending = map[string]*running{}, map[string]*running{}, map[string]placement{}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.ledger, f.spoolDir, f.globals, f.log = ldg, spoolDir, globals, l
	if f.newLoop == nil {
		f.newLoop = func(acc *config.Account, slots account.Slots) *running {
			return newRunning(acc, f.ledger, f.spoolDir, slots, f.log.Debug)
		}
	}
	return true
}

// defaultMaxParallel: enough that a few slow upstreams do not hold up the
// rest, few enough not to flood maddy's storage with concurrent writers.
const defaultMaxParallel = 8

// addBlock returns the slots of the next remote_pull block Init starts.
func (f *fleetT) addBlock(maxParallel int) *slots {
	f.mu.Lock()
	i := f.initBlocks
	f.initBlocks++
	f.mu.Unlock()
	return f.blockSlots(i, maxParallel)
}

// blockSlots returns the slots of the i-th remote_pull block (in file
// order), made at its first use and set to maxParallel: a reload changes
// the limit of the slots the running pollers hold, never swaps them.
func (f *fleetT) blockSlots(i, maxParallel int) *slots {
	if maxParallel <= 0 {
		maxParallel = defaultMaxParallel
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for len(f.slots) <= i {
		f.slots = append(f.slots, newSlots())
	}
	f.slots[i].setLimit(maxParallel)
	return f.slots[i]
}

// slots bounds how many accounts poll at once (account.Slots), with a
// limit a reload may change while polls hold slots.
type slots struct {
	mu    sync.Mutex
	limit int
	used  int
	freed chan struct{} // closed (and replaced) when a slot may have come free
}

func newSlots() *slots { return &slots{freed: make(chan struct{})} }

func (s *slots) Acquire(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.used < s.limit {
			s.used++
			s.mu.Unlock()
			return nil
		}
		freed := s.freed
		s.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

func (s *slots) Release() {
	s.mu.Lock()
	s.used--
	s.wakeLocked()
	s.mu.Unlock()
}

func (s *slots) setLimit(n int) {
	s.mu.Lock()
	s.limit = n
	s.wakeLocked()
	s.mu.Unlock()
}

func (s *slots) wakeLocked() {
	close(s.freed)
	s.freed = make(chan struct{})
}

// prepare does what precedes an account's start in the ledger: a changed
// configuration (recipients, pipeline, limits) first gives earlier
// refusals another chance.
func (f *fleetT) prepare(acc *config.Account) error {
	ctx := context.Background()
	changed, err := f.ledger.ConfigChanged(ctx, acc.Name, acc.ConfigHash)
	if err != nil {
		return err
	}
	if changed {
		n, err := f.ledger.Retry(ctx, acc.Name, []ledger.State{ledger.Refused, ledger.TooLarge}, "", nil)
		if err != nil {
			return err
		}
		if n > 0 {
			f.log.Msg("configuration changed: refused and over-size messages will be tried again", "account", acc.Name, "messages", n)
		}
	}
	return nil
}

// start runs an account (or records it as disabled), at Init.
func (f *fleetT) start(acc *config.Account, slots *slots) error {
	if err := f.prepare(acc); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.placeLocked(placement{acc, slots})
	return err
}

// placeLocked starts an account, unless an account of its name is still
// stopping: then it starts once that one has ended (whenStopped), so that
// two loops never poll one account. It reports whether it started now.
func (f *fleetT) placeLocked(p placement) (bool, error) {
	if f.stopped {
		return false, nil
	}
	if _, busy := f.stopping[p.acc.Name]; busy {
		f.pending[p.acc.Name] = p
		f.log.Msg("reload: account still stopping; it starts again once it has stopped", "account", p.acc.Name)
		return false, nil
	}
	return true, f.launchLocked(p)
}

// launchLocked runs an account's loop, or records it as disabled. The
// ledger records it as run by this maddy, so that forget refuses it until
// whenStopped records it stopped (both under f.mu: they never cross).
func (f *fleetT) launchLocked(p placement) error {
	acc := p.acc
	if err := f.ledger.SetRunning(context.Background(), acc.Name, true); err != nil {
		return err
	}
	if acc.Disabled {
		done := make(chan struct{})
		close(done)
		f.accounts[acc.Name] = &running{cfg: acc, slots: p.slots, cancel: func() {}, done: done}
		err := f.ledger.SaveStatus(context.Background(), ledger.AccountStatus{Account: acc.Name, Protocol: acc.Protocol, Host: acc.Host,
			State: string(account.StateDisabled)})
		f.log.Msg("account disabled: configured, not polled", "account", acc.Name)
		return err
	}
	r := f.newLoop(acc, p.slots)
	r.slots = p.slots
	runCtx, cancel := context.WithCancel(f.ctx)
	r.cancel, r.done = cancel, make(chan struct{})
	f.accounts[acc.Name] = r
	go func() {
		defer close(r.done)
		defer func() {
			if p := recover(); p != nil {
				f.log.Printf("panic in account %s: %v\n%s", acc.Name, p, debug.Stack())
			}
		}()
		if waitStart(runCtx) {
			r.loop.Run(runCtx)
		}
	}()
	return nil
}

// retireLocked stops an account a reload removed or changed, without
// waiting for it: it moves to stopping until its loop has ended.
func (f *fleetT) retireLocked(r *running) {
	delete(f.accounts, r.cfg.Name)
	f.stopping[r.cfg.Name] = r
	r.cancel()
	go f.whenStopped(r)
}

// whenStopped waits for a retired account's loop to end, however long a
// delivery in flight takes, then starts the account's new configuration
// if a reload asked for one, or records the account as stopped.
func (f *fleetT) whenStopped(r *running) {
	name := r.cfg.Name
	defer func() {
		if p := recover(); p != nil {
			f.log.Printf("panic stopping account %s: %v\n%s", name, p, debug.Stack())
		}
	}()
	select {
	case <-r.done:
	case <-time.After(closeTimeout):
		f.log.Msg("reload: account has not stopped yet; it is kept, and not started again, until it has", "account", name)
		<-r.done
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return // Close waited for it
	}
	delete(f.stopping, name)
	if p, ok := f.pending[name]; ok {
		delete(f.pending, name)
		if err := f.launchLocked(p); err != nil {
			f.log.Error("reload: account not started", err, "account", name)
			return
		}
		f.log.Msg("reload: account started", "account", name)
		return
	}
	if err := f.ledger.SetRunning(context.Background(), name, false); err != nil {
		f.log.Error("reload: recording the account as stopped", err, "account", name)
	}
	f.log.Msg("reload: account removed from the configuration; stopped (its ledger is kept)", "account", name)
}

// stopAll stops every account, once, retired ones included; it reports
// whether all ended in time. A message in the middle of delivery is
// finished and recorded first.
func (f *fleetT) stopAll() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || f.cancel == nil {
		return true
	}
	f.stopped = true
	f.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
	defer cancel()
	ok := true
	for _, rs := range []map[string]*running{f.accounts, f.stopping} {
		for _, r := range rs {
			select {
			case <-r.done:
			case <-ctx.Done():
				ok = false
			}
		}
	}
	return ok
}

// reload runs on maddy's reload signal (SIGUSR2). Password and token files
// are read again and every account retries at once, even one backing off
// after a refused login. Then the remote_pull blocks of the configuration
// are read again: accounts added start, removed ones stop (their ledger
// kept), changed ones restart; a mistake keeps the running accounts.
func (f *fleetT) reload() {
	f.mu.Lock()
	for name, r := range f.accounts {
		if r.loop == nil {
			continue
		}
		if err := r.password.Reload(); err != nil {
			f.log.Error("reload: keeping the old password", err, "account", name)
		}
		if r.tokens != nil {
			// oauth2-login may have written a new token file.
			if err := r.tokens.Load(); err != nil {
				f.log.Error("reload: OAuth2 token file", err, "account", name)
			}
		}
		r.loop.RetryNow()
	}
	stopped := f.stopped
	f.mu.Unlock()
	f.log.Msg("reloaded password files; polling every account now")
	if ConfigPath == "" || stopped {
		return
	}
	if err := f.reloadConfig(); err != nil {
		f.log.Error("reload: the remote_pull configuration has a mistake; the running accounts are kept as they were", err)
	}
}

// reloadConfig reads the remote_pull blocks again and applies the changes.
func (f *fleetT) reloadConfig() error {
	file, err := os.Open(ConfigPath)
	if err != nil {
		return err
	}
	nodes, err := parser.Read(file, file.Name())
	file.Close()
	if err != nil {
		return err
	}
	want := map[string]placement{}
	var order []string
	seen := map[string]maddycfg.Node{}
	blocks := 0
	for _, n := range nodes {
		if n.Name != "remote_pull" {
			continue
		}
		block, err := config.Parse(n, f.globals, seen)
		if err != nil {
			return err
		}
		for _, acc := range block.Accounts {
			if acc.Storage != nil && !filterConfigured.Load() {
				return maddycfg.NodeErr(acc.Node, "account %s: local_folders, local_folder and keep_flags need remote_pull's imap_filter in the storage", acc.Name)
			}
			want[acc.Name] = placement{acc: acc, slots: f.blockSlots(blocks, block.MaxParallel)}
			order = append(order, acc.Name)
		}
		blocks++
	}

	// What to start: new and changed accounts (an account moved to another
	// block changes slots and restarts too).
	f.mu.Lock()
	var start []string
	for _, name := range order {
		r, ok := f.accounts[name]
		if !ok || r.cfg.Digest != want[name].acc.Digest || r.slots != want[name].slots {
			start = append(start, name)
		}
	}
	f.mu.Unlock()
	f.warnShared(order, want, start)
	for _, name := range start {
		if err := f.prepare(want[name].acc); err != nil {
			return err
		}
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	for name, r := range f.accounts {
		if _, ok := want[name]; !ok || slices.Contains(start, name) {
			f.retireLocked(r)
		}
	}
	for name := range f.pending {
		if _, ok := want[name]; !ok {
			delete(f.pending, name) // removed again before it could start
		}
	}
	for _, name := range start {
		started, err := f.placeLocked(want[name])
		if err != nil {
			return err
		}
		if started {
			f.log.Msg("reload: account started", "account", name)
		}
	}
	return nil
}

// warnShared warns, as Init does, about accounts that start now and poll
// an upstream mailbox another account polls.
func (f *fleetT) warnShared(order []string, want map[string]placement, start []string) {
	index := mailboxIndex{}
	for _, name := range order {
		index.add(want[name].acc, func(folder, other string) {
			if slices.Contains(start, name) || slices.Contains(start, other) {
				f.log.Msg(sharedMailboxWarning, "account", where(want[name].acc), "other", where(want[other].acc), "folder", folder)
			}
		})
	}
}
