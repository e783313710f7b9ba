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
	"io"
	"slices"
	"strconv"
	"strings"
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

// DeliveryTimeout bounds one message's trip through maddy. It does not
// follow the poll's cancellation: at shutdown the message in flight is
// finished and recorded rather than cut off after Commit.
const DeliveryTimeout = 30 * time.Second

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

// Action is what a poll does with one listed message.
type Action int

const (
	// Leave it: handled and final, or not ours (flagged \Deleted by
	// another client), or not safe to touch.
	Leave Action = iota
	// Fetch it and hand it to maddy.
	Fetch
	// FinishRemoval: delivered by an earlier poll whose upstream removal
	// did not complete.
	FinishRemoval
	// RecordTooLarge: over max_message_size; recorded, left upstream.
	RecordTooLarge
	// AdoptOld: older than max_age at the folder's first sync; recorded,
	// not fetched.
	AdoptOld
)

// Rules are what Decide needs to know of the account and the mailbox.
type Rules struct {
	Keep           bool
	MaxMessageSize int64 // 0: no limit
	// Reusable: the upstream may give a removed message's identity to a
	// later one (POP3 UIDLs; IMAP UIDs never come back).
	Reusable bool
	// FlagOnly: the upstream can flag \Deleted but not expunge exactly
	// our messages (IMAP without UIDPLUS).
	FlagOnly bool
	// RemovesNothing: delivered messages stay where they are (move_to
	// where the server can neither move nor expunge them).
	RemovesNothing bool
	// OlderThan: a new message that arrived upstream before this (max_age,
	// at a first sync: FirstSyncCutoff) is adopted, not fetched. Zero: no
	// bound.
	OlderThan time.Time
}

// FirstSyncCutoff is the Rules.OlderThan of a folder's first sync: max_age
// before now, or before the account's last successful poll if that is
// earlier. Later syncs have no bound: whatever arrives after the first
// sync is new mail however long the account could not poll, and so is a
// message filed with an old arrival date or made eligible by retry. A
// folder first seen after an outage (created, or newly matched by a
// pattern) keeps what arrived since the account last worked.
func FirstSyncCutoff(maxAge time.Duration, now, lastSuccess time.Time) time.Time {
	if maxAge <= 0 {
		return time.Time{}
	}
	if !lastSuccess.IsZero() && lastSuccess.Before(now) {
		now = lastSuccess
	}
	return now.Add(-maxAge)
}

// RemovalOf is how delivered messages leave mb where the account removes
// them itself (keep no): asked of the server, once per session. With keep
// yes it is the zero Removal: delete_after removes only what it confirms.
// Asked before the rules are made (RulesFor), by the poll and by 'check'
// alike.
func RemovalOf(ctx context.Context, mb source.Mailbox, keep bool) (source.Removal, error) {
	d, ok := mb.(source.MailboxDisposer)
	if !ok || keep {
		return source.Removal{}, nil
	}
	return d.Disposal(ctx)
}

// RulesFor are the Rules for one opened mailbox of an account, removing
// delivered messages as removal says (RemovalOf).
func RulesFor(mb source.Mailbox, removal source.Removal, keep bool, maxMessageSize int64) Rules {
	return Rules{Keep: keep, MaxMessageSize: maxMessageSize, Reusable: mb.Complete(),
		FlagOnly: removal.FlagOnly(), RemovesNothing: removal.RemovesNothing()}
}

// Decide is the rule for one listed message, given what the ledger
// recorded under its identity (the zero Entry if nothing). Polls act on
// it; 'remote-pull check' reports it.
//
// An identity is trusted only with the size the ledger recorded for it:
// a POP3 server may give a deleted message's UIDL to a later one, and a
// buggy one lists two messages under one UIDL (m.Ambiguous). Nothing is
// removed upstream on the strength of an entry unless the identity is
// unambiguous and the size matches.
func Decide(m source.Message, known ledger.Entry, r Rules) Action {
	if known.State != "" && known.Size != m.Size && r.Reusable {
		// A different message under a reused identity.
		known = ledger.Entry{}
	}
	switch {
	case known.State == ledger.Removed && r.Reusable:
		// The copy delivered under this identity is gone for certain:
		// this is a later message that was given the same UIDL.
	case known.State == ledger.Retry:
		// The admin said this duplicate was none (retry --duplicates).
	case known.State == ledger.Delivered && !r.Keep:
		if m.Ambiguous || known.Size != m.Size || (m.Deleted && r.FlagOnly) || r.RemovesNothing {
			return Leave
		}
		// Ours even when flagged \Deleted: our own STORE may have been
		// cut before its EXPUNGE.
		return FinishRemoval
	case known.State != "":
		return Leave
	}
	switch {
	case m.Deleted:
		return Leave
	case !r.OlderThan.IsZero() && !m.Date.IsZero() && m.Date.Before(r.OlderThan):
		return AdoptOld
	case r.MaxMessageSize > 0 && m.Size > r.MaxMessageSize:
		return RecordTooLarge
	}
	return Fetch
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

// deleteExpired removes upstream what was delivered more than
// delete_after ago (keep yes). A UID is trusted no more than a UIDL: a
// server restored from a backup gives delivered messages' UIDs to new mail
// under the same UIDVALIDITY. So each message is asked for its size and
// fingerprint, below the floor too, and removed only if they are the ones
// recorded; what differs stays upstream, and what is gone is recorded as
// removed.
func (p *poll) deleteExpired(ctx context.Context, mb source.Mailbox, key ledger.MailboxKey, folder string,
	msgs []source.Message, states map[string]ledger.State) (int, error) {
	a := p.a
	expired, err := a.s.Ledger.DeliveredBefore(ctx, key, time.Now().Add(-a.s.DeleteAfter))
	if err != nil || len(expired) == 0 {
		return 0, local(err)
	}
	listed := make(map[string]source.Message, len(msgs))
	for _, m := range msgs {
		listed[m.UID] = m
	}
	recorded := make(map[string]ledger.Entry, len(expired))
	var ask []string
	for _, e := range expired {
		m, isListed := listed[e.UID]
		switch {
		case isListed && (m.Ambiguous || m.Size != e.Size):
			// Another message under the identity, or one that cannot tell.
		case !isListed && mb.Complete():
			// Gone (POP3): forgetVanished dropped the entry.
		case e.Fingerprint == "":
			a.warnOnce("unconfirmed "+folder+"\x00"+e.UID, "delete_after: the ledger has no fingerprint to confirm a delivered message by: left upstream",
				"folder", folder, "uid", e.UID)
		default:
			recorded[e.UID] = e
			ask = append(ask, e.UID)
		}
	}
	if len(ask) == 0 {
		return 0, nil
	}
	prints, err := mb.Fingerprints(ctx, ask)
	if err != nil {
		return 0, err
	}
	var confirmed, gone []string
	for _, uid := range ask {
		got, answered := prints[uid]
		_, isListed := listed[uid]
		switch {
		case got == recorded[uid].Fingerprint:
			confirmed = append(confirmed, uid)
		case !answered && !isListed:
			gone = append(gone, uid)
		default:
			a.warnOnce("differs "+folder+"\x00"+uid, "delete_after: the message under a delivered message's UID is another one (a server restored from a backup?): left upstream",
				"folder", folder, "uid", uid)
		}
	}
	if len(gone) > 0 {
		// Deleted upstream by someone else: nothing left to do for them.
		if err := a.s.Ledger.MarkRemoved(ctx, key, gone); err != nil {
			return 0, local(err)
		}
	}
	if len(confirmed) == 0 {
		return 0, nil
	}
	return p.remove(ctx, mb, key, confirmed, states)
}

// uidsOf lists the messages' UIDs.
func uidsOf(msgs []source.Message) []string {
	uids := make([]string, len(msgs))
	for i, m := range msgs {
		uids[i] = m.UID
	}
	return uids
}

// record records msgs in state, with their fingerprints so that a
// renumbering recognises them (adopted entries are never fetched again).
func (a *Account) record(ctx context.Context, mb source.Mailbox, key ledger.MailboxKey, msgs []source.Message, state ledger.State, reason string) error {
	uids := uidsOf(msgs)
	prints, err := mb.Fingerprints(ctx, uids)
	if err != nil {
		return err
	}
	entries := make([]ledger.Entry, len(msgs))
	for i, m := range msgs {
		entries[i] = ledger.Entry{UID: m.UID, State: state, Size: m.Size, Fingerprint: prints[m.UID], Reason: reason}
	}
	if err := a.s.Ledger.RecordMany(ctx, key, entries); err != nil {
		return local(err)
	}
	outcome := string(state)
	if reason == ledger.ReasonMaxAge {
		outcome = "adopted_max_age"
	}
	messagesTotal.WithLabelValues(a.s.Name, outcome).Add(float64(len(msgs)))
	return nil
}

// verifyRemovals checks, before an interrupted removal is finished, that
// each message is the one the ledger recorded: the size matched already;
// the fingerprint of its header fields must match too. A POP3 server may
// give a removed message's UIDL to a new message of the same size; deleting
// that on the strength of the old entry would lose it. Where the upstream
// cannot give fingerprints (POP3 without TOP) nothing is removed. others
// are messages found to differ: on a source that reuses identities they
// are new mail, to fetch; elsewhere they are left alone, and logged.
func (a *Account) verifyRemovals(ctx context.Context, mb source.Mailbox, folder string, uids []string, known map[string]ledger.Entry) (verified, others []string, err error) {
	prints, err := mb.Fingerprints(ctx, uids)
	if err != nil {
		return nil, nil, err
	}
	for _, uid := range uids {
		recorded := known[uid].Fingerprint
		got, answered := prints[uid]
		switch {
		case recorded != "" && got == recorded:
			verified = append(verified, uid)
		case recorded == "" && got == "" && !mb.Complete():
			// An IMAP entry from before fingerprints were recorded: UIDs
			// are not reused within a UIDVALIDITY, and the size matched.
			verified = append(verified, uid)
		case answered && mb.Complete():
			// A different header, or one that does not parse (the
			// delivered message's did): not the recorded message.
			others = append(others, uid)
			a.s.Log.Msg("a message listed under a delivered message's identity differs from it: fetching it as new mail",
				"folder", folder, "uid", uid)
		default:
			a.s.Log.Msg("cannot confirm a delivered message is the one listed: left upstream",
				"folder", folder, "uid", uid)
		}
	}
	return verified, others, nil
}

// placement is where the messages of an upstream folder go locally:
// local_folder's mapping, or with local_folders mirror the same-named
// folder, or for a SPECIAL-USE folder the local folder with that
// attribute (named as upstream if the user has none); INBOX otherwise.
// A mirrored name keeps the upstream's hierarchy delimiter, for the
// imap_filter to translate.
func (a *Account) placement(ctx context.Context, mb source.Mailbox, folder string) (delivery.Placement, error) {
	var p delivery.Placement
	if local, ok := a.s.LocalFolder[folder]; ok {
		p.Folder = local
		return p, nil
	}
	if !a.s.MirrorFolders || strings.EqualFold(folder, "INBOX") {
		return p, nil
	}
	p.Folder = folder
	if su, ok := mb.(source.SpecialUser); ok {
		use, err := su.SpecialUse(ctx)
		if err != nil {
			return p, err
		}
		p.SpecialUse = use
	}
	if d, ok := mb.(source.Delimited); ok {
		delim, err := d.HierarchyDelimiter(ctx)
		if err != nil {
			return p, err
		}
		p.Delimiter = delim
	}
	return p, nil
}

// mirrorClash is a folder error when local_folders mirror would put the
// folder's messages in the same local folder as another folder of the
// poll ("a.b" and "a_b" upstream, a "." inside a part becoming "_"):
// neither is fetched, rather than two folders silently merged, until a
// local_folder maps one of them elsewhere. Names are compared as the
// storage does, case-sensitively but for INBOX, which is never mirrored.
func (p *poll) mirrorClash(ctx context.Context, mb source.Mailbox, folder string) error {
	a := p.a
	if _, mapped := a.s.LocalFolder[folder]; mapped || !a.s.MirrorFolders || folder == "INBOX" {
		return nil
	}
	var delim string
	if d, ok := mb.(source.Delimited); ok {
		var err error
		if delim, err = d.HierarchyDelimiter(ctx); err != nil {
			return err // as placement's: the LIST failed
		}
	}
	names, ok := p.mirrored[delim]
	if !ok {
		names = map[string][]string{}
		for _, f := range p.folders {
			if _, mapped := a.s.LocalFolder[f]; !mapped && f != "INBOX" {
				local := delivery.MirrorPath(f, delim, delivery.StorageDelimiter)
				names[local] = append(names[local], f)
			}
		}
		if p.mirrored == nil {
			p.mirrored = map[string]map[string][]string{}
		}
		p.mirrored[delim] = names
	}
	local := delivery.MirrorPath(folder, delim, delivery.StorageDelimiter)
	for _, other := range names[local] {
		if other != folder {
			return &source.FolderError{Err: fmt.Errorf("local_folders mirror would put folders %q and %q in one local folder, %q: "+
				"neither is fetched until local_folder maps one of them elsewhere", folder, other, local)}
		}
	}
	return nil
}

// floorErr: a floor reset by 'remote-pull retry' during the poll is not an
// error (the next poll starts from the reset floor); anything else is.
func floorErr(err error) error {
	if errors.Is(err, ledger.ErrFloorMoved) {
		return nil
	}
	return local(err)
}

// uidNext is the mailbox's UIDNEXT where the source knows it (IMAP).
func uidNext(mb source.Mailbox) uint32 {
	if n, ok := mb.(source.UIDNexter); ok {
		return n.UIDNext()
	}
	return 0
}

// warnAmbiguous logs, once per identity, an upstream that lists several
// messages under one UIDL.
func (a *Account) warnAmbiguous(folder string, msgs []source.Message) {
	var dups []string
	for _, m := range msgs {
		if m.Ambiguous {
			dups = append(dups, m.UID)
		}
	}
	if len(dups) == 0 {
		return
	}
	a.warnOnce(folder+"\x00"+strings.Join(dups, " "),
		"the upstream lists several messages under one identity (UIDL): they are fetched, but never removed upstream on the strength of the ledger",
		"folder", folder, "identities", strings.Join(dups, " "))
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

// recordIfDuplicate records entry as a duplicate if the account has the
// message id identifies delivered under another identity (dedupe).
func (a *Account) recordIfDuplicate(ctx context.Context, key ledger.MailboxKey, entry ledger.Entry, id ledger.Identity) (bool, error) {
	dup, err := a.s.Ledger.DeliveredElsewhere(ctx, key, entry.UID, id)
	if err != nil || !dup {
		return false, local(err)
	}
	// A copy the admin said was none (retry --duplicates) is delivered.
	// Asked only here, where a copy was found: rare, one lookup.
	if st, err := a.s.Ledger.StateOf(ctx, key, entry.UID); err != nil || st == ledger.Retry {
		return false, local(err)
	}
	entry.State = ledger.Duplicate
	if err := a.s.Ledger.Record(ctx, key, entry); err != nil {
		return false, local(err)
	}
	messagesTotal.WithLabelValues(a.s.Name, string(ledger.Duplicate)).Inc()
	a.s.Log.DebugMsg("already delivered under another identity (folder or UID): recorded as a duplicate", "folder", key.Mailbox, "uid", entry.UID)
	return true, nil
}

// dedupeByGlobalID records as duplicates, without downloading them, the
// messages of uids whose global ID (Gmail's X-GM-MSGID) the account has
// delivered from another folder, and returns the others.
func (a *Account) dedupeByGlobalID(ctx context.Context, key ledger.MailboxKey, uids []string,
	listed map[string]source.Message, states map[string]ledger.State) ([]string, error) {
	if !a.s.Dedupe {
		return uids, nil
	}
	rest := uids[:0:0]
	for _, uid := range uids {
		m := listed[uid]
		if m.GlobalID != "" {
			dup, err := a.recordIfDuplicate(ctx, key, ledger.Entry{UID: uid, Size: m.Size, GlobalID: m.GlobalID},
				ledger.Identity{GlobalID: m.GlobalID})
			if err != nil {
				return nil, err
			}
			if dup {
				states[uid] = ledger.Duplicate
				a.fetched() // done, for the progress, without a download
				continue
			}
		}
		rest = append(rest, uid)
	}
	return rest, nil
}

// fetchBatch streams one batch into maddy and records each outcome. It
// returns the UIDs delivered and recorded.
func (a *Account) fetchBatch(ctx context.Context, sess source.Session, mb source.Mailbox, key ledger.MailboxKey,
	uids []string, listed map[string]source.Message, place delivery.Placement, states map[string]ledger.State) ([]string, PollResult, error) {
	var (
		res       PollResult
		delivered []string
	)
	uids, err := a.dedupeByGlobalID(ctx, key, uids, listed, states)
	if err != nil || len(uids) == 0 {
		return nil, res, err
	}
	wanted := make(map[string]bool, len(uids))
	for _, uid := range uids {
		wanted[uid] = true
	}
	spool := func(body io.Reader) (source.Spooled, error) {
		return a.s.Target.Spool(body)
	}
	deliver := func(uid string, sp source.Spooled) error {
		defer sp.Discard()
		if !wanted[uid] {
			return nil // the server sent a message we did not ask for
		}
		delete(wanted, uid)
		res.Fetched++
		a.fetched()
		m := listed[uid]
		if a.s.KeepFlags {
			place.Flags = m.Flags
		}
		state, err := a.deliverOne(ctx, sess, key, uid, m, place, sp.(*delivery.Spooled))
		if err != nil {
			return err
		}
		states[uid] = state
		switch state {
		case ledger.Delivered:
			res.Delivered++
			delivered = append(delivered, uid)
		case ledger.Refused:
			res.Refused++
		}
		return nil
	}
	err = mb.Fetch(ctx, uids, spool, deliver)
	return delivered, res, err
}

// deliverOne hands one spooled message to maddy and records the outcome.
// A temporary failure records nothing and is returned, ending the poll.
func (a *Account) deliverOne(ctx context.Context, sess source.Session, key ledger.MailboxKey,
	uid string, m source.Message, place delivery.Placement, sp *delivery.Spooled) (ledger.State, error) {
	origin := delivery.Origin{
		Placement:   place,
		Quarantine:  slices.Contains(a.s.QuarantineFolders, key.Mailbox),
		Protocol:    a.s.Upstream.Protocol(),
		Host:        a.s.Upstream.Host(),
		Addr:        sess.RemoteAddr(),
		Account:     a.s.Name,
		Folder:      key.Mailbox,
		UIDValidity: key.UIDValidity,
		UID:         uid,
	}
	// Neither the delivery nor the record after it follows the poll's
	// cancellation: a message committed must be recorded.
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), DeliveryTimeout)
	defer cancel()

	entry := ledger.Entry{UID: uid, Size: m.Size, Fingerprint: source.Fingerprint(sp.Header, m.Size), GlobalID: m.GlobalID,
		Digest: sp.Digest}
	if a.s.Dedupe {
		// A global ID was looked up before the download (dedupeByGlobalID);
		// now the content: the bytes, and the header fingerprint if the
		// message has a Message-ID (without one, the few fields are too
		// weak). Entries that have a global ID are not matched by content
		// with a message that has one (DeliveredElsewhere).
		id := ledger.Identity{GlobalID: m.GlobalID, Digest: sp.Digest}
		if strings.TrimSpace(sp.Header.Get("Message-Id")) != "" {
			id.Fingerprint = entry.Fingerprint
		}
		dup, err := a.recordIfDuplicate(dctx, key, entry, id)
		if err != nil {
			return "", err
		}
		if dup {
			return ledger.Duplicate, nil
		}
	}
	msgID, err := a.s.Target.Deliver(dctx, sp, origin)
	entry.MsgID = msgID
	switch {
	case err == nil:
		entry.State = ledger.Delivered
	case delivery.IsPermanent(err):
		entry.State = ledger.Refused
		entry.Reason = delivery.Reason(err)
		a.s.Log.Msg("message refused, left upstream", "folder", key.Mailbox,
			"uid", uid, "msg_id", msgID, "reason", entry.Reason)
	default:
		return "", &deliveryError{fmt.Errorf("delivery of UID %s failed temporarily, will retry: %w", uid, err)}
	}
	if err := a.s.Ledger.Record(dctx, key, entry); err != nil {
		if entry.State == ledger.Delivered {
			// The one way to a duplicate: said loudly, with what finds it.
			a.s.Log.Error("message committed to maddy but not recorded in the ledger: it will be delivered again", err,
				"folder", key.Mailbox, "uid", uid, "msg_id", msgID)
		} else {
			a.s.Log.Error("refusal not recorded in the ledger: the message will be tried again", err,
				"folder", key.Mailbox, "uid", uid, "msg_id", msgID)
		}
		return "", local(err)
	}
	messagesTotal.WithLabelValues(a.s.Name, string(entry.State)).Inc()
	if entry.State == ledger.Delivered {
		bytesDelivered.WithLabelValues(a.s.Name).Add(float64(sp.Size))
	}
	return entry.State, nil
}

// adopt records everything in a mailbox seen for the first time without
// downloading it (first_sync new). The entries carry fingerprints, so that
// after a UIDVALIDITY change the adopted messages are recognised, not
// imported after all.
func (a *Account) adopt(ctx context.Context, mb source.Mailbox, key ledger.MailboxKey, msgs []source.Message) (PollResult, error) {
	if err := a.record(ctx, mb, key, msgs, ledger.Adopted, ""); err != nil {
		return PollResult{}, err
	}
	states := make(map[string]ledger.State, len(msgs))
	for _, m := range msgs {
		states[m.UID] = ledger.Adopted
	}
	if err := a.s.Ledger.SetMailbox(ctx, a.s.Name, key.Mailbox, ledger.MailboxState{
		UIDValidity: key.UIDValidity,
		UIDFloor:    nextFloor(mb, 1, msgs, states, true),
	}); err != nil {
		return PollResult{}, floorErr(err)
	}
	a.s.Log.Msg("first sync: adopted what is upstream without fetching it (first_sync new)",
		"folder", key.Mailbox, "messages", len(msgs))
	return PollResult{Adopted: len(msgs)}, nil
}

// durable makes what was recorded and committed so far survive a power
// cut: the ledger's WAL, and maddy's storage (Settings.SyncStorage).
func (a *Account) durable(ctx context.Context) error {
	if err := a.s.Ledger.Sync(ctx); err != nil {
		return err
	}
	if a.s.SyncStorage != nil {
		if err := a.s.SyncStorage(); err != nil {
			return fmt.Errorf("syncing maddy's storage to disk: %w", err)
		}
	}
	return nil
}

// remove makes the ledger and maddy's storage durable, then removes
// delivered messages upstream. What is removed for certain is recorded as
// removed; what a good end of the session will remove (POP3) is recorded
// then (poll.close).
func (p *poll) remove(ctx context.Context, mb source.Mailbox, key ledger.MailboxKey, uids []string, states map[string]ledger.State) (int, error) {
	if err := p.a.durable(ctx); err != nil {
		return 0, local(err)
	}
	removed, err := mb.Remove(ctx, uids)
	for _, uid := range removed {
		// Gone upstream (or going, at QUIT): nothing is left to do for it.
		states[uid] = ledger.Removed
	}
	if len(removed) > 0 {
		if _, deferred := p.sess.(source.DeferredRemover); deferred {
			if p.deferred == nil {
				p.deferred = map[ledger.MailboxKey][]string{}
			}
			p.deferred[key] = append(p.deferred[key], removed...)
		} else if merr := p.a.s.Ledger.MarkRemoved(ctx, key, removed); merr != nil && err == nil {
			err = local(merr)
		}
	}
	return len(removed), err
}

// followIdentities moves ledger entries to where their messages are now
// listed, when a POP3 message's identity changed because another message
// came to share its UIDL ("UIDL" → "UIDL FP"), or stopped sharing it
// ("UIDL FP" → "UIDL"). An entry moves only to a message with its
// recorded fingerprint; known is updated to match.
func (a *Account) followIdentities(ctx context.Context, mb source.Mailbox, key ledger.MailboxKey, msgs []source.Message, known map[string]ledger.Entry) error {
	renames := map[string]string{}
	var alone []string // listed alone under a UIDL some entries hold with a fingerprint
	split := map[string]bool{}
	for uid := range known {
		if base, _, ok := strings.Cut(uid, " "); ok {
			split[base] = true
		}
	}
	for _, m := range msgs {
		if _, ok := known[m.UID]; ok {
			continue
		}
		if e, ok := known[m.Base]; ok && m.Base != "" && e.Fingerprint != "" && e.Fingerprint == m.Fingerprint {
			renames[m.Base] = m.UID
		} else if m.Base == "" && split[m.UID] {
			alone = append(alone, m.UID)
		}
	}
	if len(alone) > 0 {
		prints, err := mb.Fingerprints(ctx, alone)
		if err != nil {
			return err
		}
		for _, uid := range alone {
			if p := prints[uid]; p != "" {
				if _, ok := known[uid+" "+p]; ok {
					renames[uid+" "+p] = uid
				}
			}
		}
	}
	if len(renames) == 0 {
		return nil
	}
	if err := a.s.Ledger.Rename(ctx, key, renames); err != nil {
		return local(err)
	}
	for from, to := range renames {
		e := known[from]
		delete(known, from)
		e.UID = to
		known[to] = e
	}
	return nil
}

// followGrowth recognises messages the server changed after serving them:
// listed under a recorded UIDL at another size, with the header the ledger
// fingerprinted when they were delivered (GNU Mailutils pop3d adds an
// X-UIDL field at the first RETR). Their entries take the new size and
// fingerprint; without this they would pass for new messages under a
// reused UIDL and be delivered again.
func (a *Account) followGrowth(ctx context.Context, mb source.Mailbox, key ledger.MailboxKey, folder string, msgs []source.Message, known map[string]ledger.Entry) error {
	sf, ok := mb.(source.SizedFingerprinter)
	if !ok {
		return nil
	}
	recorded := map[string]int64{}
	listed := map[string]int64{}
	for _, m := range msgs {
		if e, ok := known[m.UID]; ok && e.Size != m.Size && e.Fingerprint != "" && !m.Ambiguous {
			recorded[m.UID], listed[m.UID] = e.Size, m.Size
		}
	}
	if len(recorded) == 0 {
		return nil
	}
	was, err := sf.FingerprintsAt(ctx, recorded)
	if err != nil {
		return err
	}
	now, err := sf.FingerprintsAt(ctx, listed)
	if err != nil {
		return err
	}
	grown := 0
	for uid := range recorded {
		e := known[uid]
		if was[uid] == "" || was[uid] != e.Fingerprint || now[uid] == "" {
			continue // another message under a reused UIDL
		}
		if err := a.s.Ledger.Resize(ctx, key, uid, listed[uid], now[uid]); err != nil {
			return local(err)
		}
		e.Size, e.Fingerprint = listed[uid], now[uid]
		known[uid] = e
		grown++
	}
	if grown > 0 {
		a.warnOnce("grown "+folder, "the upstream changed messages after serving them (a header field added): recognised by their header, not fetched again",
			"folder", folder, "messages", grown)
	}
	return nil
}

// forgetVanished drops ledger entries of messages the upstream no longer
// lists (POP3, whose UIDLs may in principle be reused by a later message).
func (a *Account) forgetVanished(ctx context.Context, key ledger.MailboxKey, msgs []source.Message, states map[string]ledger.Entry) error {
	present := make(map[string]bool, len(msgs))
	for _, m := range msgs {
		present[m.UID] = true
	}
	var gone []string
	for uid := range states {
		if !present[uid] {
			gone = append(gone, uid)
			delete(states, uid)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return a.s.Ledger.Forget(ctx, key, gone)
}

// adoptAfterRenumbering handles a UIDVALIDITY change: the upstream renumbered
// the mailbox, so the recorded UIDs mean nothing any more. Messages are
// matched to old entries by fingerprint (a few header fields and the size,
// fetched without bodies) and the entries move to the new UIDs; only what
// matches nothing is fetched as new.
func (a *Account) adoptAfterRenumbering(ctx context.Context, mb source.Mailbox, old, cur ledger.MailboxKey, msgs []source.Message) error {
	entries, err := a.s.Ledger.Entries(ctx, old)
	if err != nil {
		return local(err)
	}
	byPrint := make(map[string][]string)
	for _, e := range entries {
		if e.Fingerprint != "" {
			byPrint[e.Fingerprint] = append(byPrint[e.Fingerprint], e.UID)
		}
	}
	uids := uidsOf(msgs)
	prints, err := mb.Fingerprints(ctx, uids)
	if err != nil {
		return err
	}
	moves := make(map[string]string)
	for _, uid := range uids {
		olds := byPrint[prints[uid]]
		if len(olds) == 0 {
			continue
		}
		moves[olds[0]] = uid
		byPrint[prints[uid]] = olds[1:]
	}
	a.s.Log.Msg("UIDVALIDITY changed upstream, matched known messages by fingerprint",
		"folder", cur.Mailbox, "old_uidvalidity", old.UIDValidity,
		"new_uidvalidity", cur.UIDValidity, "known", len(entries), "matched", len(moves))
	if err := a.s.Ledger.Rekey(ctx, old, cur.UIDValidity, moves); err != nil {
		return local(err)
	}
	return nil
}

// floorFilter: IMAP ledger lookups start at the floor; POP3 has no floor.
func floorFilter(mb source.Mailbox, floor uint32) uint32 {
	if mb.Complete() {
		return 0
	}
	return floor
}

// nextFloor is the smallest UID that still needs work, or one past the
// highest UID seen when none does. Messages flagged \Deleted by someone else
// hold the floor down, in case they are undeleted.
func nextFloor(mb source.Mailbox, floor uint32, msgs []source.Message, states map[string]ledger.State, keep bool) uint32 {
	if mb.Complete() {
		return 0
	}
	next := floor
	pending := uint32(0)
	for _, m := range msgs {
		n64, err := strconv.ParseUint(m.UID, 10, 32)
		if err != nil {
			continue
		}
		n := uint32(n64)
		if n >= next {
			next = n + 1
		}
		if st := states[m.UID]; !st.Final(keep) && (pending == 0 || n < pending) {
			pending = n
		}
	}
	if pending != 0 {
		return pending
	}
	return next
}
