package account

import (
	"context"
	"time"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source"
)

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
	return Rules{Keep: keep, MaxMessageSize: maxMessageSize, Reusable: reusable(mb),
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
