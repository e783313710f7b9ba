package remotepull

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	parser "github.com/foxcpp/maddy/framework/cfgparser"
	maddycfg "github.com/foxcpp/maddy/framework/config"
	"github.com/foxcpp/maddy/framework/log"

	"github.com/remote-pull/remote_pull/module/account"
	"github.com/remote-pull/remote_pull/module/config"
	"github.com/remote-pull/remote_pull/module/ledger"
	"github.com/remote-pull/remote_pull/module/oauth"
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
	mu       sync.Mutex
	accounts map[string]*running
	ctx      context.Context // ends at Close
	cancel   context.CancelFunc
	ledger   *ledger.Ledger
	spoolDir string
	globals  map[string]interface{}
	log      log.Logger
	stopped  bool
}

// running is one account as the fleet runs it: its loop, the credentials a
// reload reads again, and how to stop it.
type running struct {
	*account.Account // nil while disabled
	cfg              *config.Account
	password         *config.Secret
	tokens           *oauth.Tokens // nil for password accounts
	cancel           context.CancelFunc
	done             chan struct{}
}

// init prepares the fleet for the first block; it reports true the first
// time, when the caller registers the reload hook.
func (f *fleetT) init(ldg *ledger.Ledger, spoolDir string, globals map[string]interface{}, l log.Logger) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.accounts != nil {
		return false
	}
	f.accounts = map[string]*running{}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.ledger, f.spoolDir, f.globals, f.log = ldg, spoolDir, globals, l
	return true
}

// defaultMaxParallel: enough that a few slow upstreams do not hold up the
// rest, few enough not to flood maddy's storage with concurrent writers.
const defaultMaxParallel = 8

// newSlots bounds how many of a block's accounts poll at once.
func newSlots(maxParallel int) chan struct{} {
	if maxParallel <= 0 {
		maxParallel = defaultMaxParallel
	}
	return make(chan struct{}, maxParallel)
}

// start runs an account (or records it as disabled). A changed
// configuration (recipients, pipeline, limits) first gives earlier
// refusals another chance.
func (f *fleetT) start(acc *config.Account, slots chan struct{}) error {
	ctx := context.Background()
	changed, err := f.ledger.ConfigChanged(ctx, acc.Name, acc.ConfigHash)
	if err != nil {
		return err
	}
	if changed {
		n, err := f.ledger.Retry(ctx, acc.Name, true, "", nil)
		if err != nil {
			return err
		}
		if n > 0 {
			f.log.Msg("configuration changed: refused and over-size messages will be tried again", "account", acc.Name, "messages", n)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if acc.Disabled {
		f.accounts[acc.Name] = &running{cfg: acc}
		err := f.ledger.SaveStatus(ctx, ledger.AccountStatus{Account: acc.Name, Protocol: acc.Protocol, Host: acc.Host,
			State: string(account.StateDisabled)})
		f.log.Msg("account disabled: configured, not polled", "account", acc.Name)
		return err
	}
	r := newRunning(acc, f.ledger, f.spoolDir, slots, f.log.Debug)
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
			r.Run(runCtx)
		}
	}()
	return nil
}

// stop ends an account's loop: a message in the middle of delivery is
// finished and recorded first. It reports whether the loop ended in time.
func (r *running) stop() bool {
	if r.Account == nil {
		return true
	}
	r.cancel()
	select {
	case <-r.done:
		return true
	case <-time.After(closeTimeout):
		return false
	}
}

// stopAll stops every account, once; it reports whether all ended in time.
func (f *fleetT) stopAll() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped || f.cancel == nil {
		return true
	}
	f.stopped = true
	f.cancel()
	ok := true
	for _, r := range f.accounts {
		ok = r.stop() && ok
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
		if r.Account == nil {
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
		r.RetryNow()
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
	want := map[string]*config.Account{}
	slotsOf := map[string]chan struct{}{}
	var order []string
	seen := map[string]maddycfg.Node{}
	for _, n := range nodes {
		if n.Name != "remote_pull" {
			continue
		}
		block, err := config.Parse(n, f.globals, seen)
		if err != nil {
			return err
		}
		slots := newSlots(block.MaxParallel)
		for _, acc := range block.Accounts {
			if acc.Storage != nil && !filterConfigured.Load() {
				return maddycfg.NodeErr(acc.Node, "account %s: local_folders, local_folder and keep_flags need remote_pull's imap_filter in the storage", acc.Name)
			}
			want[acc.Name], slotsOf[acc.Name] = acc, slots
			order = append(order, acc.Name)
		}
	}

	f.mu.Lock()
	var gone, changed []*running
	for name, r := range f.accounts {
		switch acc, ok := want[name]; {
		case !ok:
			gone = append(gone, r)
			delete(f.accounts, name)
		case acc.Digest != r.cfg.Digest:
			changed = append(changed, r)
			delete(f.accounts, name)
		}
	}
	var start []string
	for _, name := range order {
		if _, running := f.accounts[name]; !running {
			start = append(start, name)
		}
	}
	f.mu.Unlock()

	for _, r := range append(gone, changed...) {
		if !r.stop() {
			return fmt.Errorf("account %s did not stop in time", r.cfg.Name)
		}
		if !slices.Contains(start, r.cfg.Name) {
			f.log.Msg("reload: account removed from the configuration; stopped (its ledger is kept)", "account", r.cfg.Name)
		}
	}
	for _, name := range start {
		if err := f.start(want[name], slotsOf[name]); err != nil {
			return err
		}
		f.log.Msg("reload: account started", "account", name)
	}
	return nil
}
