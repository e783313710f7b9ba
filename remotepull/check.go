package remotepull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	maddycfg "github.com/foxcpp/maddy/framework/config"
	"github.com/foxcpp/maddy/framework/log"

	"github.com/remote-pull/remote_pull/internal/account"
	"github.com/remote-pull/remote_pull/internal/config"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/oauth"
	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/safetext"
	"github.com/remote-pull/remote_pull/internal/source"
)

// LedgerPath is where the ledger of this maddy lives.
func LedgerPath() string {
	return filepath.Join(StateDir(), "ledger.db")
}

// StateDir is remote_pull's directory in maddy's state_dir.
func StateDir() string {
	return filepath.Join(maddycfg.StateDirectory, "remote_pull")
}

// AccountNames parses the remote_pull blocks and returns the names of the
// configured accounts, in order.
func AccountNames(blocks []maddycfg.Node, globals map[string]interface{}) ([]string, error) {
	seen := map[string]maddycfg.Node{}
	var names []string
	for _, b := range blocks {
		parsed, err := config.Parse(b, globals, seen)
		if err != nil {
			return nil, err
		}
		for _, a := range parsed.Accounts {
			names = append(names, a.Name)
		}
	}
	return names, nil
}

// CheckAccount is 'maddy remote-pull check': it connects to one account's
// upstream as a poll would (TLS verified, logged in), reports the TLS
// details and capabilities, and counts what the next poll would fetch. It
// delivers nothing and changes nothing upstream: folders are opened
// read-only and the ledger is only read. blocks are the remote_pull blocks
// of the configuration, parsed with modules registered and module.NoRun set.
func CheckAccount(ctx context.Context, blocks []maddycfg.Node, globals map[string]interface{}, name string, out io.Writer) error {
	acc, err := FindAccount(blocks, globals, name)
	if err != nil {
		return err
	}
	if acc.IsFile() {
		fmt.Fprintf(out, "account %s: %s %s\n", acc.Name, acc.Protocol, acc.File)
	} else {
		fmt.Fprintf(out, "account %s: %s %s:%s (%s)\n", acc.Name, acc.Protocol, acc.Host, acc.Port, tlsMode(acc))
	}
	if err := checkLimits(ctx, out, acc, LedgerPath()); err != nil {
		return err
	}

	var tokens *oauth.Tokens
	quiet := log.Logger{Name: "github.com/remote-pull/remote_pull/" + acc.Name, Out: log.FuncOutput(func(time.Time, bool, string) {}, func() error { return nil })}
	if acc.OAuth2 != nil {
		tokens = newTokens(acc, quiet)
	}
	up := newUpstream(acc, tokens, quiet, nil)
	var sess source.Session
	if ro, ok := up.(source.ReadOnlyConnector); ok {
		sess, err = ro.ConnectReadOnly(ctx)
	} else {
		sess, err = up.Connect(ctx)
	}
	if err != nil {
		return fmt.Errorf("connecting and logging in: %w", err)
	}
	defer sess.Close(context.WithoutCancel(ctx))
	if d, ok := sess.(source.Describer); ok {
		for _, line := range d.Describe() {
			fmt.Fprintf(out, "  %s\n", line)
		}
	}
	if !acc.IsFile() {
		fmt.Fprintf(out, "  logged in as %s\n", acc.Username)
		checkConnections(out, acc, up)
	}

	var ldg *ledger.Ledger
	if _, err := os.Stat(LedgerPath()); err == nil {
		if ldg, err = ledger.OpenReadOnly(LedgerPath()); err != nil {
			return err
		}
		defer ldg.Close()
	}
	folders := policy.NewFolderSet(acc.Folders, acc.ExcludeFolders)
	names := folders.Literal()
	if l, ok := sess.(source.FolderLister); ok && folders.Dynamic() {
		listed, err := l.Folders(ctx)
		if err != nil {
			return fmt.Errorf("listing folders: %w", err)
		}
		names = folders.Resolve(listed)
		fmt.Fprintf(out, "  folders: %s\n", strings.Join(names, ", "))
	}
	names, disposal, err := account.WithoutDisposal(ctx, sess, names, !acc.Keep || acc.DeleteAfter > 0)
	if err != nil {
		return fmt.Errorf("finding where removed messages go: %w", err)
	}
	if disposal != "" {
		fmt.Fprintf(out, "  %s: not polled: delivered messages are moved there\n", disposal)
	}
	if ldg != nil {
		// What a read-only session cannot try: the removals and \Seen
		// flags the last poll was refused.
		sts, err := ldg.Statuses(ctx)
		if err != nil {
			return err
		}
		for _, st := range sts {
			if st.Account == acc.Name && st.State == string(account.StateFolderFailing) {
				fmt.Fprintf(out, "  last poll: %s: %s\n", st.State, safetext.Line(st.LastError, safetext.MaxStored))
			}
		}
	}
	var errs []error
	for _, folder := range names {
		if err := checkFolder(ctx, out, acc, sess, ldg, folder); err != nil {
			fmt.Fprintf(out, "  %s: %v\n", folder, err)
			errs = append(errs, fmt.Errorf("folder %q: %w", folder, err))
		}
	}
	return errors.Join(errs...)
}

// FindAccount parses the remote_pull blocks and returns the named account.
func FindAccount(blocks []maddycfg.Node, globals map[string]interface{}, name string) (*config.Account, error) {
	seen := map[string]maddycfg.Node{}
	for _, b := range blocks {
		parsed, err := config.Parse(b, globals, seen)
		if err != nil {
			return nil, err
		}
		for _, a := range parsed.Accounts {
			if a.Name == name {
				return a, nil
			}
		}
	}
	return nil, fmt.Errorf("no account %q in the configuration", name)
}

func checkFolder(ctx context.Context, out io.Writer, acc *config.Account, sess source.Session, ldg *ledger.Ledger, folder string) error {
	mb, err := sess.Open(ctx, folder)
	if err != nil {
		return err
	}
	adopt := acc.FirstSyncNew // until the ledger shows the folder was seen
	firstSync := true
	var lastSuccess time.Time
	known := map[string]ledger.Entry{}
	if ldg != nil {
		_, seen, err := ldg.Mailbox(ctx, acc.Name, folder)
		if err != nil {
			return err
		}
		adopt = adopt && !seen
		firstSync = !seen
		st, _, err := ldg.Status(ctx, acc.Name)
		if err != nil {
			return err
		}
		lastSuccess = st.LastSuccess
		key := ledger.MailboxKey{Account: acc.Name, Mailbox: folder, UIDValidity: mb.UIDValidity()}
		if known, err = ldg.States(ctx, key, 0); err != nil {
			return err
		}
	}
	// The poll's own rule, so that check cannot disagree with it.
	removal, err := account.RemovalOf(ctx, mb, acc.Keep)
	if err != nil {
		return fmt.Errorf("finding how delivered messages leave: %w", err)
	}
	rules := account.RulesFor(mb, removal, acc.Keep, acc.MaxMessageSize)
	if firstSync {
		rules.OlderThan = account.FirstSyncCutoff(acc.MaxAge, time.Now(), lastSuccess)
	}
	var listed, fetch, handled, large, foreign, remove, old int
	for {
		msgs, err := mb.List(ctx, 1)
		if err != nil {
			return err
		}
		listed += len(msgs)
		for _, m := range msgs {
			switch account.Decide(m, known[m.UID], rules) {
			case account.Fetch:
				fetch++
			case account.RecordTooLarge:
				large++
			case account.FinishRemoval:
				remove++
			case account.AdoptOld:
				old++
			case account.Leave:
				if known[m.UID].State == "" && m.Deleted {
					foreign++
				} else {
					handled++
				}
			}
		}
		// A file is listed a page at a time; this check's own reader
		// goes through them all.
		pg, paged := mb.(source.Paged)
		if !paged || !pg.PagesLeft() {
			break
		}
		pg.Advance()
	}
	if adopt {
		fmt.Fprintf(out, "  %s: %d messages; 0 would be fetched: the first poll adopts them all (first_sync new)\n", folder, listed)
		return nil
	}
	fmt.Fprintf(out, "  %s: %d messages; %d would be fetched, %d already handled, %d too large, %d flagged \\Deleted by others",
		folder, listed, fetch, handled, large, foreign)
	if remove > 0 {
		fmt.Fprintf(out, ", %d delivered and still to be removed upstream", remove)
	}
	if old > 0 {
		fmt.Fprintf(out, ", %d older than max_age at this first sync (recorded, not fetched)", old)
	}
	fmt.Fprintln(out)
	if _, ok := mb.(source.MailboxDisposer); ok && !acc.Keep {
		fmt.Fprintf(out, "  %s: with keep no, delivered messages are %s\n", folder, removal.Mode)
	}
	if id, ok := mb.(source.Identifier); ok && id.Identity() != "" {
		fmt.Fprintf(out, "  %s: messages are told apart by %s\n", folder, id.Identity())
	}
	return nil
}

// checkConnections reports how the account shares out its connections
// (max_connections): the poll's, one per folder IDLE watches, and the
// folders polled instead. The poll's own plan (account.PlanConnections).
func checkConnections(out io.Writer, acc *config.Account, up source.Upstream) {
	_, push := up.(source.Watcher)
	plan := account.PlanConnections(acc.Policy, push)
	fmt.Fprintf(out, "  connections: %s\n", plan)
	if push && acc.Idle {
		fmt.Fprintf(out, "  connections: IDLE where the server offers it (capabilities above); this check holds one more while it runs\n")
	}
}

func tlsMode(acc *config.Account) string {
	if acc.Plaintext {
		return "no TLS: insecure_plaintext"
	}
	if acc.ImplicitTLS {
		return "implicit TLS"
	}
	return "STARTTLS"
}
