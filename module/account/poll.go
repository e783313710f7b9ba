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
	"slices"
	"time"

	"github.com/foxcpp/maddy/framework/log"

	"github.com/remote-pull/remote_pull/module/delivery"
	"github.com/remote-pull/remote_pull/module/ledger"
	"github.com/remote-pull/remote_pull/module/source"
)

// Settings is one account's configuration, as parsed by module/config.
type Settings struct {
	Name     string
	Upstream source.Upstream
	// Folders are names and patterns (folders.go); ExcludeFolders are
	// patterns taken out of what they match.
	Folders        []string
	ExcludeFolders []string
	Keep           bool
	// Idle: watch each folder for new mail (IMAP IDLE) where the server
	// can, polling at once when it announces some.
	Idle         bool
	PollInterval time.Duration
	Target       *delivery.Target
	Ledger       *ledger.Ledger
	Log          log.Logger
	// Slots bounds how many accounts poll at once (max_parallel): a poll
	// takes a slot for its duration. Nil means no bound.
	Slots Slots

	// MaxMessageSize: larger messages are not downloaded; they stay
	// upstream, recorded as too large.
	MaxMessageSize int64
	// MaxMessagesPerPoll bounds one poll (0: no bound); the next poll
	// follows at once.
	MaxMessagesPerPoll int
	// FirstSyncNew: a mailbox seen for the first time is adopted as it is
	// (recorded, not downloaded); only later mail is fetched.
	FirstSyncNew bool
	// QuarantineFolders are delivered with maddy's quarantine flag.
	QuarantineFolders []string
	// SyncStorage makes maddy's committed deliveries durable (a syncfs of
	// the file system of its storage); called once per batch, before any
	// upstream copy is removed. Nil: nothing to do.
	SyncStorage func() error
	// MaxAge: at a folder's first sync, a message older than this
	// (INTERNALDATE) is recorded as adopted, not fetched (FirstSyncCutoff).
	// 0: no bound.
	MaxAge time.Duration
	// MarkSeen (keep yes): \Seen is set upstream on delivered messages.
	MarkSeen bool
	// DeleteAfter (keep yes): delivered messages are removed upstream this
	// long after their delivery. 0: never.
	DeleteAfter time.Duration
	// MirrorFolders: each folder's messages go to the same-named local
	// folder (SPECIAL-USE ones to the local folder with the attribute);
	// LocalFolder maps upstream folders to local ones, over it.
	MirrorFolders bool
	LocalFolder   map[string]string
	// KeepFlags: the upstream copy's flags are set on the delivered one.
	KeepFlags bool
	// Dedupe (dedupe message_id): a message the account already delivered
	// under another identity (another folder, or another UID: moved out and
	// back) is recorded as a duplicate, not delivered again: the same
	// upstream global ID, or else the same bytes (SHA-256) or the same
	// Message-ID and fingerprint (ledger.Identity).
	Dedupe bool
	// Notify: where notices about the account go (notice.go); empty: none.
	Notify []string
	// Now is the clock for what is measured in hours and days (max_age,
	// notices); nil: time.Now. Tests move it instead of sleeping.
	Now func() time.Time
}

// batchSize is how many messages are fetched between two ledger syncs and
// upstream removals. Each batch costs the upstream's round trip once more
// before its first message arrives.
const batchSize = 500

// PollResult counts what one poll did.
type PollResult struct {
	Fetched, Delivered, Refused, Removed, TooLarge, Adopted int
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

func (a *Account) folderSet() *FolderSet { return NewFolderSet(a.s.Folders, a.s.ExcludeFolders) }

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

// folder processes one folder: list, decide, fetch and deliver in batches,
// make each batch durable, then remove what is not kept.
func (p *poll) folder(ctx context.Context, folder string, budget int) (PollResult, error) {
	a := p.a
	var res PollResult
	mb, err := p.sess.Open(ctx, folder)
	if err != nil {
		return res, err
	}
	if err := p.mirrorClash(ctx, mb, folder); err != nil {
		return res, err
	}
	key := ledger.MailboxKey{Account: a.s.Name, Mailbox: folder, UIDValidity: mb.UIDValidity()}

	prev, seen, err := a.s.Ledger.Mailbox(ctx, a.s.Name, folder)
	if err != nil {
		return res, local(err)
	}
	renumbered := seen && prev.UIDValidity != key.UIDValidity
	floor := uint32(1)
	if seen && !renumbered {
		floor = prev.UIDFloor
		if next := uidNext(mb); next != 0 && next < floor {
			// Same UIDVALIDITY, but UIDs went backwards (a server restored
			// from a backup): what is recorded above UIDNEXT would hide new
			// mail. Match everything by fingerprint, as after a change of
			// UIDVALIDITY.
			a.s.Log.Msg("UIDNEXT is below what was already seen although UIDVALIDITY is unchanged: treating the folder as renumbered",
				"folder", folder, "uidnext", next, "floor", floor)
			renumbered, floor = true, 1
		}
	}
	msgs, err := mb.List(ctx, floor)
	if err != nil {
		return res, err
	}
	if renumbered {
		old := ledger.MailboxKey{Account: a.s.Name, Mailbox: folder, UIDValidity: prev.UIDValidity}
		if err := a.adoptAfterRenumbering(ctx, mb, old, key, msgs); err != nil {
			return res, err
		}
	}

	if !seen && a.s.FirstSyncNew {
		return a.adopt(ctx, mb, key, msgs)
	}
	// Record the UIDVALIDITY now, not only at the end of a successful
	// poll: if this one fails midway and the server renumbers before the
	// next, the entries recorded meanwhile must still be matched. A first
	// sync does it once its messages too old for max_age are recorded: a
	// folder stays in its first sync until then.
	setMailbox := func() error {
		return a.s.Ledger.SetMailbox(ctx, a.s.Name, folder, ledger.MailboxState{
			UIDValidity: key.UIDValidity, UIDFloor: floor, Generation: prev.Generation})
	}
	if renumbered {
		if err := setMailbox(); err != nil {
			return res, floorErr(err)
		}
	}

	known, err := a.s.Ledger.States(ctx, key, floorFilter(mb, floor))
	if err != nil {
		return res, local(err)
	}
	if mb.Complete() {
		if err := a.followIdentities(ctx, mb, key, msgs, known); err != nil {
			return res, err
		}
		if err := a.followGrowth(ctx, mb, key, folder, msgs, known); err != nil {
			return res, err
		}
		if err := a.forgetVanished(ctx, key, msgs, known); err != nil {
			return res, local(err)
		}
	}
	a.warnAmbiguous(folder, msgs)

	states := make(map[string]ledger.State, len(known))
	for uid, e := range known {
		states[uid] = e.State
	}
	var toFetch, toRemove []string
	// How this server lets delivered messages go (IMAP without UIDPLUS:
	// MOVE to Trash, or only a flag), before deciding.
	removal, err := RemovalOf(ctx, mb, a.s.Keep)
	if err != nil {
		return res, err
	}
	rules := RulesFor(mb, removal, a.s.Keep, a.s.MaxMessageSize)
	if !seen {
		rules.OlderThan = FirstSyncCutoff(a.s.MaxAge, a.s.Now(), a.Status().LastSuccess)
	}
	var toAdopt []source.Message
	for _, m := range msgs {
		switch Decide(m, known[m.UID], rules) {
		case AdoptOld:
			toAdopt = append(toAdopt, m)
			states[m.UID] = ledger.Adopted
		case FinishRemoval:
			toRemove = append(toRemove, m.UID)
		case Fetch:
			toFetch = append(toFetch, m.UID)
			// Whatever the ledger held under this identity was another
			// message; until this one is recorded, it has no state.
			delete(states, m.UID)
		case RecordTooLarge:
			reason := delivery.TooLarge(m.Size, a.s.MaxMessageSize)
			if err := a.s.Ledger.Record(ctx, key, ledger.Entry{UID: m.UID, State: ledger.TooLarge, Size: m.Size, Reason: reason}); err != nil {
				return res, local(err)
			}
			states[m.UID] = ledger.TooLarge
			res.TooLarge++
			messagesTotal.WithLabelValues(a.s.Name, string(ledger.TooLarge)).Inc()
			a.s.Log.Msg("message too large, left upstream", "folder", folder,
				"uid", m.UID, "size", m.Size, "max_message_size", a.s.MaxMessageSize)
		}
	}
	if len(toAdopt) > 0 {
		if err := a.record(ctx, mb, key, toAdopt, ledger.Adopted, ledger.ReasonMaxAge); err != nil {
			return res, err
		}
		res.Adopted += len(toAdopt)
		a.s.Log.Msg("older than max_age at the folder's first sync: recorded, not fetched", "folder", folder,
			"messages", len(toAdopt), "cutoff", rules.OlderThan.UTC().Format(time.RFC3339))
	}
	if !seen {
		if err := setMailbox(); err != nil {
			return res, floorErr(err)
		}
	}
	if !a.s.Keep && len(toRemove) > 0 {
		verified, others, err := a.verifyRemovals(ctx, mb, folder, toRemove, known)
		if err != nil {
			return res, err
		}
		for _, uid := range others {
			// Another message under a recorded identity: new mail.
			delete(states, uid)
		}
		toFetch = append(others, toFetch...)
		toRemove = verified
	}
	if a.s.MaxMessagesPerPoll > 0 && len(toFetch) > budget {
		toFetch = toFetch[:max(budget, 0)]
		res.More = true
	}
	a.planned(len(toFetch))

	// refused: the server refused a removal or \Seen here. The folder's
	// new mail is fetched all the same, nothing more is asked of the server
	// for it this poll, and the refusal is the folder's error.
	var refused error
	if !a.s.Keep && len(toRemove) > 0 {
		n, err := p.remove(ctx, mb, key, toRemove, states)
		res.Removed += n
		if refused = refusal(err); err != nil && refused == nil {
			return res, err
		}
	}

	listed := make(map[string]source.Message, len(msgs))
	for _, m := range msgs {
		listed[m.UID] = m
	}
	place, err := a.placement(ctx, mb, folder)
	if err != nil {
		return res, err
	}
	for batch := range slices.Chunk(toFetch, batchSize) {
		delivered, br, err := a.fetchBatch(ctx, p.sess, mb, key, batch, listed, place, states)
		res.add(br)
		if err != nil {
			return res, err
		}
		// Durable before anything is done upstream, and with keep yes too:
		// a ledger entry lost to a power cut means a duplicate. A removal
		// makes the batch durable itself, first.
		removing := !a.s.Keep && len(delivered) > 0 && refused == nil
		if !removing {
			if err := a.durable(ctx); err != nil {
				return res, local(err)
			}
		}
		if sm, ok := mb.(source.SeenMarker); ok && a.s.Keep && a.s.MarkSeen && len(delivered) > 0 && refused == nil {
			if err := sm.MarkSeen(ctx, delivered); err != nil {
				if refused = refusal(err); refused == nil {
					return res, err
				}
			}
		}
		if removing {
			n, err := p.remove(ctx, mb, key, delivered, states)
			res.Removed += n
			if refused = refusal(err); err != nil && refused == nil {
				return res, err
			}
		}
	}

	if a.s.Keep && a.s.DeleteAfter > 0 && refused == nil {
		n, err := p.deleteExpired(ctx, mb, key, folder, msgs, states)
		res.Removed += n
		if refused = refusal(err); err != nil && refused == nil {
			return res, err
		}
	}

	if err := a.s.Ledger.SetMailbox(ctx, a.s.Name, folder, ledger.MailboxState{
		UIDValidity: key.UIDValidity,
		UIDFloor:    nextFloor(mb, floor, msgs, states, a.s.Keep),
		Generation:  prev.Generation,
	}); err != nil {
		return res, floorErr(err)
	}
	// Delivered messages not removed stay delivered in the ledger and hold
	// the floor down: the next poll tries their removal again
	// (FinishRemoval), once.
	return res, refused
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
