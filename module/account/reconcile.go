package account

import (
	"context"
	"strings"

	"github.com/remote-pull/remote_pull/module/ledger"
	"github.com/remote-pull/remote_pull/module/source"
)

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
