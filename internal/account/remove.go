package account

import (
	"context"
	"fmt"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source"
)

// finishRemovals removes the delivered messages an earlier poll did not
// remove (FinishRemoval, verified).
func (f *folderPass) finishRemovals(ctx context.Context, uids []string) error {
	if f.a.s.Keep || len(uids) == 0 {
		return nil
	}
	return f.onlyRefused(f.remove(ctx, uids))
}

// expire is delete_after's step (keep yes), unless the server refused a
// removal here already.
func (f *folderPass) expire(ctx context.Context) error {
	if !f.a.s.Keep || f.a.s.DeleteAfter <= 0 || f.refused != nil {
		return nil
	}
	return f.onlyRefused(f.deleteExpired(ctx))
}

// deleteExpired removes upstream what was delivered more than
// delete_after ago (keep yes). A UID is trusted no more than a UIDL: a
// server restored from a backup gives delivered messages' UIDs to new mail
// under the same UIDVALIDITY. So each message is asked for its size and
// fingerprint, below the floor too, and removed only if they are the ones
// recorded; what differs stays upstream, and what is gone is recorded as
// removed.
func (f *folderPass) deleteExpired(ctx context.Context) error {
	a, mb, folder := f.a, f.mb, f.name
	expired, err := a.s.Ledger.DeliveredBefore(ctx, f.key, a.s.Now().Add(-a.s.DeleteAfter))
	if err != nil || len(expired) == 0 {
		return local(err)
	}
	recorded := make(map[string]ledger.Entry, len(expired))
	var ask []string
	for _, e := range expired {
		m, isListed := f.listed(e.UID)
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
		return nil
	}
	prints, err := mb.Fingerprints(ctx, ask)
	if err != nil {
		return err
	}
	var confirmed, gone []string
	for _, uid := range ask {
		got, answered := prints[uid]
		_, isListed := f.listed(uid)
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
		if err := a.s.Ledger.MarkRemoved(ctx, f.key, gone); err != nil {
			return local(err)
		}
	}
	if len(confirmed) == 0 {
		return nil
	}
	if err := f.remove(ctx, confirmed); err != nil {
		return err
	}
	// delete_after removes as keep no would: on a server with neither
	// UIDPLUS nor MOVE that is a \Deleted flag for another client to
	// expunge, all that will ever be done. Recorded as removed, or the
	// messages would be flagged again at every poll: below the floor,
	// their flag is never listed.
	removal, err := RemovalOf(ctx, f.mb, false)
	if err != nil || !removal.FlagOnly() {
		return err
	}
	return local(a.s.Ledger.MarkRemoved(ctx, f.key, confirmed))
}

// verifyRemovals checks, before an interrupted removal is finished, that
// each message is the one the ledger recorded: the size matched already;
// the fingerprint of its header fields must match too. A POP3 server may
// give a removed message's UIDL to a new message of the same size; deleting
// that on the strength of the old entry would lose it. Where the upstream
// cannot give fingerprints (POP3 without TOP) nothing is removed. others
// are messages found to differ: on a source that reuses identities they
// are new mail, to fetch first; elsewhere they are left alone, and logged.
func (f *folderPass) verifyRemovals(ctx context.Context, t *todo) error {
	if f.a.s.Keep || len(t.remove) == 0 {
		return nil
	}
	a, mb, folder := f.a, f.mb, f.name
	prints, err := mb.Fingerprints(ctx, t.remove)
	if err != nil {
		return err
	}
	var verified, others []string
	for _, uid := range t.remove {
		recorded := f.known[uid].Fingerprint
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
	for _, uid := range others {
		// Another message under a recorded identity: new mail.
		f.setState(uid, "")
	}
	t.fetch = append(others, t.fetch...)
	t.remove = verified
	return nil
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
func (f *folderPass) remove(ctx context.Context, uids []string) error {
	p := f.p
	if err := f.a.durable(ctx); err != nil {
		return local(err)
	}
	removed, err := f.mb.Remove(ctx, uids)
	f.res.Removed += len(removed)
	for _, uid := range removed {
		// Gone upstream (or going, at QUIT): nothing is left to do for it.
		f.setState(uid, ledger.Removed)
	}
	if len(removed) > 0 {
		if _, deferred := p.sess.(source.DeferredRemover); deferred {
			if p.deferred == nil {
				p.deferred = map[ledger.MailboxKey][]string{}
			}
			p.deferred[f.key] = append(p.deferred[f.key], removed...)
		} else if merr := f.a.s.Ledger.MarkRemoved(ctx, f.key, removed); merr != nil && err == nil {
			err = local(merr)
		}
	}
	return err
}
