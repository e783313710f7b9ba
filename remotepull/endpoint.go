package remotepull

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	maddycfg "github.com/foxcpp/maddy/framework/config"
	"github.com/foxcpp/maddy/framework/hooks"
	"github.com/foxcpp/maddy/framework/log"
	"github.com/foxcpp/maddy/framework/module"
	"golang.org/x/oauth2"

	"github.com/remote-pull/remote_pull/internal/account"
	"github.com/remote-pull/remote_pull/internal/config"
	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/oauth"
	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/source/filesrc"
	"github.com/remote-pull/remote_pull/internal/source/imapsrc"
	"github.com/remote-pull/remote_pull/internal/source/pop3src"
)

// This file and internal/config are where remote_pull meets maddy's module
// API (registration, Init, Close); delivery/ holds the delivery API.

func init() {
	module.RegisterEndpoint("remote_pull", New)
}

// Endpoint is one remote_pull block. Its accounts run in the fleet
// (fleet.go), which a reload can change without restarting maddy.
type Endpoint struct {
	args  []string
	log   log.Logger
	names []string // the accounts this block started
}

// New is called by maddy for every remote_pull block.
func New(_ string, args []string) (module.Module, error) {
	return &Endpoint{args: args, log: log.Logger{Name: "remote_pull"}}, nil
}

func (e *Endpoint) Name() string         { return "remote_pull" }
func (e *Endpoint) InstanceName() string { return "remote_pull" }

// Account names must be unique across all remote_pull blocks: they key the
// ledger. Two accounts on one upstream mailbox are allowed (a second rcpt_to,
// say) but warned about, at start and at a reload: each fetches every
// message.
var (
	namesMu   sync.Mutex
	names     = map[string]maddycfg.Node{}
	mailboxes = mailboxIndex{}
)

const sharedMailboxWarning = "warning: two accounts poll the same upstream mailbox: each fetches every message, and with keep no they race to delete"

// mailboxIndex maps an upstream mailbox (protocol://user@host:port/folder)
// to the first account that polls it.
type mailboxIndex map[string]string

// add records acc's mailboxes, calling shared with the folder and the
// other account's name for every one another account polls already.
func (m mailboxIndex) add(acc *config.Account, shared func(folder, other string)) {
	for _, folder := range acc.Folders {
		key := fmt.Sprintf("%s://%s@%s:%s/%s", acc.Protocol, acc.Username, acc.Host, acc.Port, folder)
		if other, ok := m[key]; ok {
			shared(folder, other)
			continue
		}
		m[key] = acc.Name
	}
}

// where names an account and its place in the configuration.
func where(acc *config.Account) string {
	return fmt.Sprintf("%s (%s:%d)", acc.Name, acc.Node.File, acc.Node.Line)
}

// Init parses the block and, unless maddy runs a management command, starts
// every account.
func (e *Endpoint) Init(cfg *maddycfg.Map) error {
	var blockDebug bool
	for _, n := range cfg.Block.Children {
		if n.Name == "debug" && len(n.Args) == 1 {
			blockDebug, _ = maddycfg.ParseBool(n.Args[0])
		}
	}
	e.log.Debug = blockDebug || log.DefaultLogger.Debug

	namesMu.Lock()
	block, err := config.Parse(cfg.Block, cfg.Globals, names)
	if err == nil && !module.NoRun {
		for _, acc := range block.Accounts {
			mailboxes.add(acc, func(folder, other string) {
				e.log.Msg(sharedMailboxWarning, "account", where(acc), "other", other, "folder", folder)
			})
		}
	}
	namesMu.Unlock()
	if err != nil {
		return err
	}
	if module.NoRun {
		return nil
	}

	stateDir := StateDir()
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return fmt.Errorf("remote_pull: %w", err)
	}
	spoolDir := filepath.Join(stateDir, "spool")
	ldg, err := openShared(stateDir, LedgerPath(), spoolDir)
	if err != nil {
		return fmt.Errorf("remote_pull: %w", err)
	}

	for _, acc := range block.Accounts {
		if acc.Storage != nil && !filterConfigured.Load() {
			return maddycfg.NodeErr(acc.Node, "account %s: local_folders, local_folder and keep_flags need remote_pull's imap_filter in the storage: add 'imap_filter { remote_pull }' to its block (storage.imapsql)", acc.Name)
		}
		for _, w := range acc.Warnings {
			e.log.Msg("warning: "+w, "account", acc.Name)
		}
	}
	if fleet.init(ldg, spoolDir, cfg.Globals, e.log) {
		hooks.AddHook(hooks.EventReload, fleet.reload)
	}
	slots := fleet.addBlock(block.MaxParallel)
	for _, acc := range block.Accounts {
		if err := fleet.start(acc, slots); err != nil {
			return fmt.Errorf("remote_pull: %w", err)
		}
		e.names = append(e.names, acc.Name)
	}
	return nil
}

// newRunning makes an account's loop from its configuration.
func newRunning(acc *config.Account, ldg *ledger.Ledger, spoolDir string, slots account.Slots, debug bool) *running {
	r := &running{cfg: acc, password: acc.Secret}
	l := log.Logger{Name: "github.com/remote-pull/remote_pull/" + acc.Name, Debug: acc.Debug || debug,
		Fields: map[string]interface{}{"account": acc.Name}}
	if acc.OAuth2 != nil {
		r.tokens = newTokens(acc, l)
	}
	// What a source warns about (a server without UIDPLUS or UIDL) is
	// logged, and shown in the account's status.
	var acct *account.Account
	note := func(msg string) {
		if acct != nil {
			acct.Note(msg)
		}
	}
	acct = account.New(account.Settings{
		Name:     acc.Name,
		Policy:   acc.Policy,
		Upstream: newUpstream(acc, r.tokens, l, note),
		Target: &delivery.Target{Options: acc.Options, SpoolDir: spoolDir, Log: l,
			MaxMessageSize: acc.MaxMessageSize},
		Ledger:      ldg,
		Log:         l,
		Slots:       slots,
		SyncStorage: storageSync(acc),
	})
	r.loop = acct
	return r
}

// newTokens makes an OAuth2 account's token keeper and loads its token
// file; a missing file is the re-consent state, not a start failure. An
// app-only account (client_credentials) has no file: its token is asked
// for at the first login.
func newTokens(acc *config.Account, l log.Logger) *oauth.Tokens {
	o := acc.OAuth2
	if o.ClientCredentials {
		// config requires client_secret_file with client_credentials.
		return oauth.NewAppOnly(oauth.AppOnly{TokenURL: o.TokenURL, ClientID: o.ClientID, Scopes: o.Scopes,
			Secret: o.ClientSecret.Value, Reload: o.ClientSecret.Reload})
	}
	cfg := &oauth2.Config{
		ClientID: o.ClientID,
		Endpoint: oauth2.Endpoint{AuthURL: o.AuthURL, TokenURL: o.TokenURL},
		Scopes:   o.Scopes,
	}
	if o.ClientSecret != nil {
		cfg.ClientSecret = o.ClientSecret.Value()
	}
	tokens := oauth.New(cfg, o.TokenFile)
	if err := tokens.Load(); err != nil && !module.NoRun {
		l.Error("OAuth2 token not loaded", err)
	}
	return tokens
}

// newUpstream makes the account's IMAP, POP3 or file upstream; what it warns
// about is logged and passed to note (nil: logged only).
func newUpstream(acc *config.Account, tokens *oauth.Tokens, l log.Logger, note func(string)) source.Upstream {
	ep := acc.Endpoint
	ep.TLS = cloneTLS(ep.TLS)
	if acc.Secret != nil {
		ep.PasswordRefused = acc.Secret.Refused
	}
	if tokens != nil {
		ep.Token = func(ctx context.Context, force bool) (string, error) {
			return tokens.AccessToken(ctx, force)
		}
	}
	// Sources warn once per session; the log says it once per account
	// (each distinct message), the status keeps the latest.
	var warnMu sync.Mutex
	warned := map[string]bool{}
	warn := func(msg string) {
		warnMu.Lock()
		again := warned[msg]
		warned[msg] = true
		warnMu.Unlock()
		if !again {
			l.Msg(msg)
		}
		if note != nil {
			note(msg)
		}
	}
	switch acc.Protocol {
	case source.Mbox:
		v := filesrc.MboxRD
		if acc.MboxVariant == "mboxo" {
			v = filesrc.MboxO
		}
		return filesrc.NewMbox(filesrc.MboxConfig{Path: acc.File, Variant: v, Warn: warn})
	case source.Maildir:
		return filesrc.NewMaildir(filesrc.MaildirConfig{Path: acc.File})
	case source.POP3:
		return pop3src.New(pop3src.Config{Endpoint: ep, Keep: acc.Keep, Warn: warn})
	}
	return imapsrc.New(imapsrc.Config{
		Endpoint: ep,
		Warn:     warn,
		MoveTo:   acc.MoveTo,
	})
}

func cloneTLS(c *tls.Config) *tls.Config {
	if c == nil {
		return &tls.Config{}
	}
	return c.Clone()
}

// closeTimeout bounds Close. It is longer than a delivery may take, so that
// a message in flight is committed and recorded before the ledger closes;
// maddy's second SIGTERM exits hard anyway.
const closeTimeout = account.DeliveryTimeout + 15*time.Second

// Close stops every account (of every block: the first Close stops the
// fleet). A message in the middle of delivery is finished and recorded;
// fetching stops; connections are closed.
func (e *Endpoint) Close() error {
	if e.names == nil {
		return nil
	}
	if !fleet.stopAll() {
		// The ledger stays open under the delivery still running: closing
		// it would lose that delivery's record. The process exits next.
		e.log.Msg("accounts did not stop in time; leaving the ledger open for the delivery still in flight")
		return errors.New("remote_pull: accounts did not stop in time")
	}
	return closeLedger()
}

// All remote_pull blocks share one ledger database and one spool
// directory.
var (
	ledgerMu   sync.Mutex
	ledgerRefs int
	sharedLdg  *ledger.Ledger
)

// openShared opens the ledger for the first block and, before that, takes
// the state directory's lock (one maddy per state_dir: two pollers on one
// ledger would fetch everything twice) and cleans the spool of what a crash
// left: only then, since later blocks start while the first block's
// accounts may be delivering from it.
func openShared(stateDir, path, spoolDir string) (*ledger.Ledger, error) {
	ledgerMu.Lock()
	defer ledgerMu.Unlock()
	if sharedLdg == nil {
		if err := lockStateDir(stateDir); err != nil {
			return nil, err
		}
		if err := delivery.CleanSpool(spoolDir); err != nil {
			return nil, fmt.Errorf("cleaning %s: %w", spoolDir, err)
		}
		l, err := ledger.Open(path)
		if err != nil {
			return nil, err
		}
		// What a maddy that crashed recorded as running is stale: this
		// one holds the lock now.
		if err := l.ResetRunning(context.Background()); err != nil {
			l.Close()
			return nil, err
		}
		sharedLdg = l
	}
	ledgerRefs++
	return sharedLdg, nil
}

func closeLedger() error {
	ledgerMu.Lock()
	defer ledgerMu.Unlock()
	ledgerRefs--
	if ledgerRefs > 0 || sharedLdg == nil {
		return nil
	}
	err := sharedLdg.Close()
	sharedLdg = nil
	unlockStateDir()
	return err
}
