package remotepull

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/textproto"
	"regexp"
	"strings"
	"time"

	"github.com/emersion/go-imap"
	maddycfg "github.com/foxcpp/maddy/framework/config"
	"github.com/foxcpp/maddy/framework/module"

	"github.com/remote-pull/remote_pull/internal/config"
	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/ledger"
)

// ReconcileOptions are reconcile's flags.
type ReconcileOptions struct {
	// Since: only messages the ledger recorded as delivered at or after
	// this time (the time of the restored backup) are checked, so that
	// mail deleted locally on purpose before it does not come back.
	Since time.Time
	// DryRun reports and changes nothing.
	DryRun bool
}

// ReconcileReport is what reconcile found.
type ReconcileReport struct {
	Checked    int // committed entries since Since
	Present    int // found in maddy's storage
	Refetch    int // missing, upstream copy kept: fetched again at the next poll
	Renumbered int // delivered before a renumbering upstream: not checkable
	// Gone are the missing messages whose upstream copy remote_pull
	// deleted: they cannot be fetched again (folder/uidvalidity/uid and
	// maddy's msg ID).
	Gone []string
}

// ErrUpstreamDeleted is returned (wrapped) when some missing messages were
// already deleted upstream.
var ErrUpstreamDeleted = errors.New("missing locally and deleted upstream: cannot be fetched again")

// Reconcile is 'maddy remote-pull reconcile': after maddy's storage was
// restored from a backup older than the ledger, the ledger calls messages
// delivered that the storage lacks, and no poll would fetch them again. It
// reads the account's committed entries from the ledger (first: what is
// recorded was committed before, so a delivery in flight is never taken
// for missing), looks for each in maddy's storage by the id clause of the
// Received field remote_pull wrote (<account/folder/uidvalidity/uid>,
// delivery.Origin.ID) in every folder of every user of the storage, and
// drops the entries of the missing ones whose upstream copy is kept, so
// that the next poll fetches them. What is present is never touched.
// blocks and globals are the configuration as the other commands load it
// (module.NoRun set).
func Reconcile(ctx context.Context, blocks []maddycfg.Node, globals map[string]interface{}, name string,
	ldg *ledger.Ledger, opts ReconcileOptions) (ReconcileReport, error) {
	var rep ReconcileReport
	acc, err := FindAccount(blocks, globals, name)
	if err != nil {
		return rep, err
	}
	stores, err := accountStorages(acc)
	if err != nil {
		return rep, err
	}
	committed, renumbered, err := ldg.CommittedSince(ctx, acc.Name, opts.Since)
	if err != nil {
		return rep, err
	}
	rep.Checked, rep.Renumbered = len(committed), renumbered
	present := map[string]bool{}
	for _, s := range stores {
		if err := traceIDs(ctx, s, acc.Name, present); err != nil {
			return rep, err
		}
	}
	missing := map[ledger.MailboxKey][]string{}
	for _, e := range committed {
		id := delivery.Origin{Account: e.Key.Account, Folder: e.Key.Mailbox, UIDValidity: e.Key.UIDValidity, UID: e.UID}.ID()
		switch {
		case present[id]:
			rep.Present++
		case e.State == ledger.Removed:
			rep.Gone = append(rep.Gone, fmt.Sprintf("%s/%d/%s (maddy msg_id %s)", e.Key.Mailbox, e.Key.UIDValidity, e.UID, e.MsgID))
		default:
			missing[e.Key] = append(missing[e.Key], e.UID)
		}
	}
	for key, uids := range missing {
		if opts.DryRun {
			rep.Refetch += len(uids)
			continue
		}
		n, err := ldg.Refetch(ctx, key, uids)
		rep.Refetch += int(n)
		if err != nil {
			return rep, err
		}
	}
	if len(rep.Gone) > 0 {
		return rep, fmt.Errorf("%d message(s) %w", len(rep.Gone), ErrUpstreamDeleted)
	}
	return rep, nil
}

// accountStorages returns the maddy storages the account's pipeline
// delivers into.
func accountStorages(acc *config.Account) ([]module.ManageableStorage, error) {
	targets, ok := config.PipelineTargets(acc.Pipeline)
	if !ok {
		return nil, fmt.Errorf("account %s: cannot read its pipeline's delivery targets (unknown maddy version)", acc.Name)
	}
	var stores []module.ManageableStorage
	for _, t := range targets {
		if s, ok := t.(module.ManageableStorage); ok {
			stores = append(stores, s)
		}
	}
	if len(stores) == 0 || len(stores) != len(targets) {
		return nil, fmt.Errorf("account %s: reconcile reads maddy's storage, and the account's pipeline delivers elsewhere too (%d targets, %d storage.imapsql)",
			acc.Name, len(targets), len(stores))
	}
	return stores, nil
}

// receivedID matches remote_pull's own Received field and its id clause.
var receivedID = regexp.MustCompile(`\(maddy remote_pull\) with \S+ id <([^>]*)>`)

// traceIDs adds to ids the id clause of every remote_pull Received field
// of account's messages in every folder of every user of s. Only the
// Received fields are read (BODY.PEEK: nothing is marked \Seen).
func traceIDs(ctx context.Context, s module.ManageableStorage, account string, ids map[string]bool) error {
	users, err := s.ListIMAPAccts()
	if err != nil {
		return fmt.Errorf("listing maddy's IMAP accounts: %w", err)
	}
	prefix := delivery.Origin{Account: account}.ID()
	prefix = prefix[:strings.Index(prefix, "/")+1]
	section, err := imap.ParseBodySectionName("BODY.PEEK[HEADER.FIELDS (RECEIVED)]")
	if err != nil {
		return err
	}
	items := []imap.FetchItem{section.FetchItem()}
	for _, name := range users {
		if err := ctx.Err(); err != nil {
			return err
		}
		u, err := s.GetIMAPAcct(name)
		if err != nil {
			return fmt.Errorf("maddy account %s: %w", name, err)
		}
		folders, err := u.ListMailboxes(false)
		if err != nil {
			return fmt.Errorf("maddy account %s: %w", name, err)
		}
		for _, f := range folders {
			_, mbox, err := u.GetMailbox(f.Name, true, nil)
			if err != nil {
				return fmt.Errorf("maddy account %s, folder %s: %w", name, f.Name, err)
			}
			seq := new(imap.SeqSet)
			seq.AddRange(1, 0) // 1:*
			ch := make(chan *imap.Message, 64)
			done := make(chan error, 1)
			go func() { done <- mbox.ListMessages(true, seq, items, ch) }()
			for msg := range ch {
				// The one section asked for; go-imap-sql keys it as asked
				// (with Peek), which GetBody does not match.
				for _, lit := range msg.Body {
					if lit != nil {
						addTraceIDs(lit, prefix, ids)
					}
				}
			}
			err = <-done
			mbox.Close()
			if err != nil {
				return fmt.Errorf("maddy account %s, folder %s: %w", name, f.Name, err)
			}
		}
		_ = u.Logout()
	}
	return nil
}

// addTraceIDs reads a header block of Received fields and adds the id
// clauses of remote_pull's own that start with prefix ("account/").
func addTraceIDs(r io.Reader, prefix string, ids map[string]bool) {
	h, err := textproto.NewReader(bufio.NewReader(io.LimitReader(r, 1<<20))).ReadMIMEHeader()
	if err != nil && len(h) == 0 {
		return
	}
	for _, v := range h.Values("Received") {
		for _, m := range receivedID.FindAllStringSubmatch(v, -1) {
			if strings.HasPrefix(m[1], prefix) {
				ids[m[1]] = true
			}
		}
	}
}
