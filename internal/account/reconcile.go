package account

import (
	"context"
	"slices"
	"strings"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source"
)

// open selects the folder, reads what the ledger recorded of it, and lists
// its messages from the floor up; after a renumbering (UIDVALIDITY, or
// recorded UIDs handed out again under the same one) it first moves the
// ledger's entries to the new UIDs.
func (f *folderPass) open(ctx context.Context) error {
	a := f.a
	mb, err := f.p.sess.Open(ctx, f.name)
	if err != nil {
		return err
	}
	f.mb = mb
	if err := f.p.mirrorClash(ctx, mb, f.name); err != nil {
		return err
	}
	f.key = ledger.MailboxKey{Account: a.s.Name, Mailbox: f.name, UIDValidity: mb.UIDValidity()}
	if f.prev, f.seen, err = a.s.Ledger.Mailbox(ctx, a.s.Name, f.name); err != nil {
		return local(err)
	}
	if err := f.resumePages(ctx); err != nil {
		return err
	}
	renumbered, err := f.renumbering(ctx)
	if err != nil {
		return err
	}
	if f.msgs, err = mb.List(ctx, f.from); err != nil {
		return err
	}
	if !renumbered {
		if err := f.readKnown(ctx); err != nil {
			return err
		}
		if renumbered, err = f.reused(ctx); err != nil || !renumbered {
			return err
		}
		f.floor, f.from = 1, 1
		if f.msgs, err = mb.List(ctx, f.from); err != nil {
			return err
		}
	}
	if err := f.adoptAfterRenumbering(ctx); err != nil {
		return err
	}
	if err := f.readKnown(ctx); err != nil {
		return err
	}
	// Record the UIDVALIDITY now, not only at the end of a successful
	// poll: if this one fails midway and the server renumbers before the
	// next, the entries recorded meanwhile must still be matched. (A
	// first sync does it in recordPlanned.)
	return f.saveMailbox(ctx, f.floor)
}

// renumbering sets the floor, and the UID this pass lists from, and
// reports whether the upstream renumbered the folder since the ledger last
// saw it: then everything is matched by fingerprint, from UID 1.
//
// Under the same UIDVALIDITY, a UIDNEXT that is not above every UID
// recorded (nor the floor) means a server restored from a backup: it
// hands out, or has handed out, UIDs the ledger holds to new mail. Where
// UIDNEXT is above them, the listing starts at the highest recorded UID
// (1 if none) when that is below the floor: for reused to look at that
// UID, and because what is listed above it and below the floor cannot be
// recorded, and can only be new mail under a UID reused (the floor was
// held up by a message never recorded, flagged \Deleted by another
// client, then expunged). Without a restore nothing is listed there.
func (f *folderPass) renumbering(ctx context.Context) (bool, error) {
	f.floor, f.from = 1, 1
	if !f.seen {
		return false, nil
	}
	if f.prev.UIDValidity != f.key.UIDValidity {
		return true, nil
	}
	f.floor, f.from = f.prev.UIDFloor, f.prev.UIDFloor
	if f.mb.Complete() {
		return false, nil
	}
	highest, err := f.a.s.Ledger.HighestUID(ctx, f.key)
	if err != nil {
		return false, local(err)
	}
	f.highest = highest
	if next := uidNext(f.mb); next != 0 && (next < f.floor || next <= highest) {
		f.a.s.Log.Msg("UIDNEXT is not above what was already seen although UIDVALIDITY is unchanged: treating the folder as renumbered",
			"folder", f.name, "uidnext", next, "floor", f.floor, "highest_recorded", highest)
		f.floor, f.from = 1, 1
		return true, nil
	}
	f.from = min(f.floor, max(highest, 1))
	return false, nil
}

// reused reports whether UIDs the ledger recorded name other messages
// although UIDNEXT passed them all: after a restore from backup, enough
// new mail arrived before this poll. An IMAP message never changes, so a
// recorded UID listed at another size is another message. A restore
// loses the newest messages first, so new mail that passed the highest
// recorded UID was given it: if that UID is listed at its recorded size,
// its fingerprint tells. That costs one FETCH of a few header fields of
// one message per folder and poll, where that message is still upstream
// (keep yes). If it is not listed (removed by keep no, or expunged by
// another client) it tells nothing: with keep no the new message under it
// is listed unless another client expunged it before this poll, which
// docs/guarantees.md's Limits names.
func (f *folderPass) reused(ctx context.Context) (bool, error) {
	if f.mb.Complete() || !f.seen {
		return false, nil
	}
	highest := ledger.FormatUID(f.highest)
	witness := false
	for _, m := range f.msgs {
		e, recorded := f.known[m.UID]
		if !recorded {
			continue
		}
		if e.Size != m.Size {
			f.a.s.Log.Msg("a recorded UID is listed at another size although UIDVALIDITY is unchanged (a server restored from a backup): treating the folder as renumbered",
				"folder", f.name, "uid", m.UID, "recorded_size", e.Size, "size", m.Size)
			return true, nil
		}
		witness = witness || (m.UID == highest && e.Fingerprint != "")
	}
	if !witness {
		return false, nil
	}
	prints, err := f.mb.Fingerprints(ctx, []string{highest})
	if err != nil {
		return false, err
	}
	if got, answered := prints[highest]; answered && got != f.known[highest].Fingerprint {
		f.a.s.Log.Msg("the highest recorded UID names another message although UIDVALIDITY is unchanged (a server restored from a backup): treating the folder as renumbered",
			"folder", f.name, "uid", highest)
		return true, nil
	}
	return false, nil
}

// readKnown reads what the ledger recorded under the UIDs this pass lists
// (IMAP: from f.from up; POP3: everything).
func (f *folderPass) readKnown(ctx context.Context) error {
	var known map[string]ledger.Entry
	var err error
	if _, paged := f.mb.(source.Paged); paged {
		known, err = f.a.s.Ledger.StatesOf(ctx, f.key, uidsOf(f.msgs))
	} else {
		known, err = f.a.s.Ledger.States(ctx, f.key, floorFilter(f.mb, f.from))
	}
	if err != nil {
		return local(err)
	}
	f.known = known
	return nil
}

// reconcile, where the upstream lists the whole mailbox under identities
// it may reuse (POP3), follows messages whose identity or size changed and
// forgets those gone; then it sets out where each listed message stands.
func (f *folderPass) reconcile(ctx context.Context) error {
	if reusable(f.mb) {
		if err := f.followIdentities(ctx); err != nil {
			return err
		}
		if err := f.followGrowth(ctx); err != nil {
			return err
		}
		if err := f.forgetVanished(ctx); err != nil {
			return local(err)
		}
	}
	f.a.warnAmbiguous(f.name, f.msgs)

	f.indexListing()
	f.states = make([]progress, len(f.msgs))
	for i, m := range f.msgs {
		f.states[i] = progressOf(f.known[m.UID].State)
	}
	return nil
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
// It goes a batch at a time, so that the fingerprints and entries held
// at once do not grow with the folder (first_sync new adopts a whole
// folder); a pass cut between two batches leaves the first recorded and
// the folder still in its first sync, and the next pass records the rest
// (entries are replaced, not duplicated).
func (f *folderPass) record(ctx context.Context, msgs []source.Message, state ledger.State, reason string) error {
	a := f.a
	outcome := string(state)
	if reason == ledger.ReasonMaxAge {
		outcome = "adopted_max_age"
	}
	for batch := range slices.Chunk(msgs, batchSize) {
		prints, err := f.mb.Fingerprints(ctx, uidsOf(batch))
		if err != nil {
			return err
		}
		entries := make([]ledger.Entry, len(batch))
		for i, m := range batch {
			entries[i] = ledger.Entry{UID: m.UID, State: state, Size: m.Size, Fingerprint: prints[m.UID], Reason: reason}
		}
		if err := a.s.Ledger.RecordMany(ctx, f.key, entries); err != nil {
			return local(err)
		}
		messagesTotal.WithLabelValues(a.s.Name, outcome).Add(float64(len(batch)))
	}
	return nil
}

// reusable: the mailbox is listed whole under identities that a later
// message may be given (POP3 UIDLs), unlike IMAP UIDs and the identities
// of a source.StableIdentities.
func reusable(mb source.Mailbox) bool {
	_, stable := mb.(source.StableIdentities)
	return mb.Complete() && !stable
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

// adoptAll records everything in a mailbox seen for the first time without
// downloading it (first_sync new). The entries carry fingerprints, so that
// after a UIDVALIDITY change the adopted messages are recognised, not
// imported after all.
func (f *folderPass) adoptAll(ctx context.Context) error {
	a := f.a
	if err := f.record(ctx, f.msgs, ledger.Adopted, ""); err != nil {
		return err
	}
	f.states = make([]progress, len(f.msgs))
	for i := range f.states {
		f.states[i] = progressOf(ledger.Adopted)
	}
	if !f.firstSyncGoesOn() {
		if err := a.s.Ledger.SetMailbox(ctx, a.s.Name, f.name, ledger.MailboxState{
			UIDValidity: f.key.UIDValidity,
			UIDFloor:    nextFloor(f.mb, 1, f.msgs, f.states, true),
		}); err != nil {
			return local(err)
		}
	}
	a.s.Log.Msg("first sync: adopted what is upstream without fetching it (first_sync new)",
		"folder", f.name, "messages", len(f.msgs))
	f.res.Adopted = len(f.msgs)
	return f.pageDone(ctx)
}

// followIdentities moves ledger entries to where their messages are now
// listed, when a POP3 message's identity changed because another message
// came to share its UIDL ("UIDL" → "UIDL FP"), or stopped sharing it
// ("UIDL FP" → "UIDL"). An entry moves only to a message with its
// recorded fingerprint; known is updated to match.
func (f *folderPass) followIdentities(ctx context.Context) error {
	known := f.known
	renames := map[string]string{}
	var alone []string // listed alone under a UIDL some entries hold with a fingerprint
	split := map[string]bool{}
	for uid := range known {
		if base, _, ok := strings.Cut(uid, " "); ok {
			split[base] = true
		}
	}
	for _, m := range f.msgs {
		if _, ok := known[m.UID]; ok {
			continue
		}
		if e, ok := known[m.Base()]; ok && m.Base() != "" && e.Fingerprint != "" && e.Fingerprint == m.Fingerprint() {
			renames[m.Base()] = m.UID
		} else if m.Base() == "" && split[m.UID] {
			alone = append(alone, m.UID)
		}
	}
	if len(alone) > 0 {
		prints, err := f.mb.Fingerprints(ctx, alone)
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
	if err := f.a.s.Ledger.Rename(ctx, f.key, renames); err != nil {
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
func (f *folderPass) followGrowth(ctx context.Context) error {
	known := f.known
	sf, ok := f.mb.(source.SizedFingerprinter)
	if !ok {
		return nil
	}
	recorded := map[string]int64{}
	listed := map[string]int64{}
	for _, m := range f.msgs {
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
		if err := f.a.s.Ledger.Resize(ctx, f.key, uid, listed[uid], now[uid]); err != nil {
			return local(err)
		}
		e.Size, e.Fingerprint = listed[uid], now[uid]
		known[uid] = e
		grown++
	}
	if grown > 0 {
		f.a.warnOnce("grown "+f.name, "the upstream changed messages after serving them (a header field added): recognised by their header, not fetched again",
			"folder", f.name, "messages", grown)
	}
	return nil
}

// forgetVanished drops ledger entries of messages the upstream no longer
// lists (POP3, whose UIDLs may in principle be reused by a later message).
func (f *folderPass) forgetVanished(ctx context.Context) error {
	present := make(map[string]bool, len(f.msgs))
	for _, m := range f.msgs {
		present[m.UID] = true
	}
	var gone []string
	for uid := range f.known {
		if !present[uid] {
			gone = append(gone, uid)
			delete(f.known, uid)
		}
	}
	if len(gone) == 0 {
		return nil
	}
	return f.a.s.Ledger.Forget(ctx, f.key, gone)
}

// adoptAfterRenumbering handles a UIDVALIDITY change: the upstream renumbered
// the mailbox, so the recorded UIDs mean nothing any more. Messages are
// matched to old entries by fingerprint (a few header fields and the size,
// fetched without bodies) and the entries move to the new UIDs; only what
// matches nothing is fetched as new.
func (f *folderPass) adoptAfterRenumbering(ctx context.Context) error {
	a, cur := f.a, f.key
	old := ledger.MailboxKey{Account: a.s.Name, Mailbox: f.name, UIDValidity: f.prev.UIDValidity}
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
	uids := uidsOf(f.msgs)
	prints, err := f.mb.Fingerprints(ctx, uids)
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
