// Package account runs one fetched account: it polls the upstream, hands
// every new message to maddy, records the outcome in the ledger, and only
// then removes upstream copies that are not to be kept.
//
// The order of those steps is the whole guarantee:
//
//  1. A message is fetched only if Decide says so: no entry for its
//     identity, or one that belongs to another message (size, fingerprint).
//  2. maddy commits it (or refuses it for good, or fails temporarily). A
//     body cut short is an error, never a message.
//  3. The ledger records a commit or a refusal; a temporary failure records
//     nothing and ends the poll, so the message is fetched again next time.
//  4. Once per batch the ledger's WAL and maddy's storage are synced to
//     disk, and only then are the batch's delivered messages removed
//     upstream (keep no) and, once that is certain, recorded as removed.
//
// A crash between 2 and 3 is the one case that can deliver a message twice.
// A crash between 3 and 4 leaves delivered messages upstream; the next poll
// sees them in the ledger and removes them without delivering them again,
// once their size and fingerprint show they are the recorded ones.
package account

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source"
)

// batchSize is how many messages are fetched between two ledger syncs and
// upstream removals. Each batch costs the upstream's round trip once more
// before its first message arrives.
const batchSize = 500

// PollResult counts what one poll did.
type PollResult struct {
	Fetched, Delivered, Refused, Removed, TooLarge, Adopted int
	// LabelCopies: local copies made for further Gmail labels, without a
	// download.
	LabelCopies int
	// More: max_messages_per_poll left messages for the next poll.
	More bool
}

func (r *PollResult) add(o PollResult) {
	r.Fetched += o.Fetched
	r.Delivered += o.Delivered
	r.Refused += o.Refused
	r.Removed += o.Removed
	r.TooLarge += o.TooLarge
	r.Adopted += o.Adopted
	r.LabelCopies += o.LabelCopies
	r.More = r.More || o.More
}

// poll is one connection's worth of work on the account.
type poll struct {
	a    *Account
	sess source.Session
	// deferred are removals that take effect only if the session ends
	// well (POP3: DELE applies at QUIT), by mailbox.
	deferred map[ledger.MailboxKey][]string
	// folders are the folders this poll visits; mirrored their local
	// names under local_folders mirror, by upstream delimiter (mirrorClash).
	folders  []string
	mirrored map[string]map[string][]string
}

// Poll connects once and processes every folder of the account.
func (a *Account) Poll(ctx context.Context) (PollResult, error) {
	var total PollResult
	// Not even a connection when nothing is left of the download budget.
	if err := a.loadBudget(ctx); err != nil {
		return total, err
	}
	if err := a.budgetSpent(); err != nil {
		return total, err
	}
	// The connection counts until Poll returns: every path closes or
	// aborts the session first.
	release, err := a.conns.take(ctx)
	if err != nil {
		return total, err
	}
	defer release()
	sess, err := a.s.Upstream.Connect(ctx)
	if err != nil {
		return total, fmt.Errorf("connect: %w", err)
	}
	p := &poll{a: a, sess: sess}

	folders, err := a.folders(ctx, sess)
	if err != nil {
		sess.Abort()
		return total, fmt.Errorf("listing folders: %w", err)
	}
	polled, disposal, err := WithoutDisposal(ctx, sess, folders, !a.s.Keep || a.s.DeleteAfter > 0)
	if err != nil {
		sess.Abort()
		return total, err
	}
	if len(polled) < len(folders) {
		a.warnOnce("disposal "+disposal, "not polled: delivered messages are moved to this folder", "folder", disposal)
	}
	folders = polled
	p.folders = folders
	var errs []error
	budget := a.s.MaxMessagesPerPoll
	for _, folder := range folders {
		if a.s.MaxMessagesPerPoll > 0 && budget <= 0 {
			total.More = true
			break
		}
		res, err := p.folder(ctx, folder, budget)
		budget -= res.Fetched
		total.add(res)
		if err != nil {
			errs = append(errs, fmt.Errorf("folder %q: %w", folder, err))
			// Only an error about this one folder leaves the others to
			// poll (errors.go).
			if refusal(err) == nil || ctx.Err() != nil {
				break
			}
		}
	}
	if err := p.close(ctx); err != nil {
		errs = append(errs, err)
	}
	return total, errors.Join(errs...)
}

// folders is the folders this poll visits: the named ones, and where
// folders has patterns, the upstream's selectable folders they match.
func (a *Account) folders(ctx context.Context, sess source.Session) ([]string, error) {
	fs := a.folderSet()
	if !fs.Dynamic() {
		return fs.Literal(), nil
	}
	l, ok := sess.(source.FolderLister)
	if !ok {
		return fs.Literal(), nil
	}
	listed, err := l.Folders(ctx)
	if err != nil {
		return nil, err
	}
	return fs.Resolve(listed), nil
}

func (a *Account) folderSet() *policy.FolderSet {
	return policy.NewFolderSet(a.s.Folders, a.s.ExcludeFolders)
}

// close ends the session politely. Removals that only a good end makes
// real (POP3 QUIT) are recorded as done only then.
func (p *poll) close(ctx context.Context) error {
	closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := p.sess.Close(closeCtx); err != nil {
		p.a.s.Log.DebugMsg("closing upstream session", "reason", err.Error())
		return nil // nothing was removed; the next poll finds the messages again
	}
	for key, uids := range p.deferred {
		if err := p.a.s.Ledger.MarkRemoved(closeCtx, key, uids); err != nil {
			// The entries stay "delivered": safe, since a reused UIDL
			// must also match the recorded size and fingerprint before
			// anything is removed on its strength.
			p.a.s.Log.Error("recording upstream removals", err, "folder", key.Mailbox)
			return local(err)
		}
	}
	return nil
}

// folderPass is one folder's work in one poll. Its methods are the steps
// of run, in order; what they share is kept here, each part with one
// owner.
type folderPass struct {
	p    *poll
	a    *Account
	name string
	mb   source.Mailbox
	key  ledger.MailboxKey
	// prev is the folder as the ledger last recorded it, and seen whether
	// it did at all (if not, this is the folder's first sync); floor is
	// where the folder's work starts, from the UID this pass lists from
	// (below the floor to list highest, the highest UID the ledger
	// recorded here: renumbering, reused).
	prev    ledger.MailboxState
	seen    bool
	floor   uint32
	from    uint32
	highest uint32
	msgs    []source.Message
	// index finds a message of msgs by identity (listing.go); known is
	// what the ledger recorded under the listed identities; states is
	// where each message of msgs stands as the pass goes on, by position
	// (as much of its ledger.State as the floor needs).
	index  map[string]int32
	known  map[string]ledger.Entry
	states []progress
	// pageCursor is where a paged folder's page started, as the ledger
	// kept it (pages.go).
	pageCursor string
	rules      Rules
	res        PollResult
	// refused: the server refused a removal or \Seen here. The folder's
	// new mail is fetched all the same, nothing more is asked of the
	// server for it this pass, and the refusal is the folder's error.
	refused error
}

// todo is what Decide made of a folder's listed messages.
type todo struct {
	fetch, remove   []string
	adopt, tooLarge []source.Message
}

// folder processes one folder. A floor reset by 'remote-pull retry'
// during the pass ends it without error: the next poll starts from the
// reset floor.
func (p *poll) folder(ctx context.Context, name string, budget int) (PollResult, error) {
	f := &folderPass{p: p, a: p.a, name: name}
	err := f.run(ctx, budget)
	if errors.Is(err, ledger.ErrFloorMoved) {
		err = nil
	}
	return f.res, err
}

// run lists the folder, reconciles it with the ledger, decides, finishes
// interrupted removals, fetches and delivers in batches (each made durable
// before anything is done upstream), expires what delete_after says, and
// saves the floor.
func (f *folderPass) run(ctx context.Context, budget int) error {
	if err := f.open(ctx); err != nil {
		return err
	}
	if err := f.ensureFolder(ctx); err != nil {
		return err
	}
	if !f.seen && f.a.s.FirstSyncNew {
		return f.adoptAll(ctx)
	}
	if err := f.reconcile(ctx); err != nil {
		return err
	}
	t, err := f.plan(ctx)
	if err != nil {
		return err
	}
	if err := f.recordPlanned(ctx, t); err != nil {
		return err
	}
	if err := f.verifyRemovals(ctx, &t); err != nil {
		return err
	}
	f.a.setPending(f.name, f.sizeOf(t.fetch))
	if f.a.s.MaxMessagesPerPoll > 0 && len(t.fetch) > budget {
		t.fetch = t.fetch[:max(budget, 0)]
		f.res.More = true
	}
	var bytes int64
	for _, uid := range t.fetch {
		m, _ := f.listed(uid)
		bytes += m.Size
	}
	f.a.planned(len(t.fetch), bytes)
	if err := f.finishRemovals(ctx, t.remove); err != nil {
		return err
	}
	if err := f.fetchAll(ctx, t.fetch); err != nil {
		return err
	}
	if err := f.expire(ctx); err != nil {
		return err
	}
	if !f.firstSyncGoesOn() {
		if err := f.saveFloor(ctx); err != nil {
			return err
		}
	}
	if err := f.pageDone(ctx); err != nil {
		return err
	}
	return f.refused
}

// plan asks Decide about every listed message, with the rules of this
// folder and server.
func (f *folderPass) plan(ctx context.Context) (todo, error) {
	// How this server lets delivered messages go (IMAP without UIDPLUS:
	// MOVE to Trash, or only a flag), before deciding.
	removal, err := RemovalOf(ctx, f.mb, f.a.s.Keep)
	if err != nil {
		return todo{}, err
	}
	f.rules = RulesFor(f.mb, removal, f.a.s.Keep, f.a.s.MaxMessageSize)
	if !f.seen {
		f.rules.OlderThan = FirstSyncCutoff(f.a.s.MaxAge, f.a.s.Now(), f.a.Status().LastSuccess)
	}
	var t todo
	for i, m := range f.msgs {
		switch Decide(m, f.known[m.UID], f.rules) {
		case AdoptOld:
			t.adopt = append(t.adopt, m)
		case FinishRemoval:
			t.remove = append(t.remove, m.UID)
		case Fetch:
			t.fetch = append(t.fetch, m.UID)
			// Whatever the ledger held under this identity was another
			// message; until this one is recorded, it has no state.
			f.states[i] = progressOf("")
		case RecordTooLarge:
			t.tooLarge = append(t.tooLarge, m)
		}
	}
	return t, nil
}

// recordPlanned records what is decided without a download: messages too
// large, and at a first sync those older than max_age. Then a first sync
// is over: the folder is recorded, with its UIDVALIDITY (a folder stays in
// its first sync until its messages too old for max_age are recorded).
func (f *folderPass) recordPlanned(ctx context.Context, t todo) error {
	a := f.a
	for _, m := range t.tooLarge {
		reason := delivery.TooLarge(m.Size, a.s.MaxMessageSize)
		if err := a.s.Ledger.Record(ctx, f.key, ledger.Entry{UID: m.UID, State: ledger.TooLarge, Size: m.Size, Reason: reason}); err != nil {
			return local(err)
		}
		f.setState(m.UID, ledger.TooLarge)
		f.res.TooLarge++
		messagesTotal.WithLabelValues(a.s.Name, string(ledger.TooLarge)).Inc()
		a.s.Log.Msg("message too large, left upstream", "folder", f.name,
			"uid", m.UID, "size", m.Size, "max_message_size", a.s.MaxMessageSize)
	}
	if len(t.adopt) > 0 {
		for _, m := range t.adopt {
			f.setState(m.UID, ledger.Adopted)
		}
		if err := f.record(ctx, t.adopt, ledger.Adopted, ledger.ReasonMaxAge); err != nil {
			return err
		}
		f.res.Adopted += len(t.adopt)
		a.s.Log.Msg("older than max_age at the folder's first sync: recorded, not fetched", "folder", f.name,
			"messages", len(t.adopt), "cutoff", f.rules.OlderThan.UTC().Format(time.RFC3339))
	}
	if !f.seen && !f.firstSyncGoesOn() {
		return f.saveMailbox(ctx, f.floor)
	}
	return nil
}

// onlyRefused keeps a refusal of the server's about this folder as the
// pass's error (refused) and returns nil, so that the pass goes on; any
// other error is returned, ending the poll.
func (f *folderPass) onlyRefused(err error) error {
	if r := refusal(err); r != nil {
		f.refused = r
		return nil
	}
	return err
}

// warnOnce logs msg the first time key is seen in the account's life.
func (a *Account) warnOnce(key, msg string, fields ...interface{}) {
	a.mu.Lock()
	again := a.warned[key]
	if a.warned == nil {
		a.warned = map[string]bool{}
	}
	a.warned[key] = true
	a.mu.Unlock()
	if !again {
		a.s.Log.Msg(msg, fields...)
	}
}
