package account

import (
	"context"
	"strconv"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/source"
)

// saveMailbox records the folder's UIDVALIDITY and floor. A floor reset
// by 'remote-pull retry' since the pass began is not overwritten: the
// ledger answers ledger.ErrFloorMoved, and the pass ends (poll.folder).
func (f *folderPass) saveMailbox(ctx context.Context, floor uint32) error {
	return local(f.a.s.Ledger.SetMailbox(ctx, f.a.s.Name, f.name, ledger.MailboxState{
		UIDValidity: f.key.UIDValidity, UIDFloor: floor, Generation: f.prev.Generation}))
}

// saveFloor records the floor the pass leaves: delivered messages not
// removed stay delivered in the ledger and hold the floor down, so that
// the next poll tries their removal again (FinishRemoval), once.
func (f *folderPass) saveFloor(ctx context.Context) error {
	return f.saveMailbox(ctx, nextFloor(f.mb, f.floor, f.msgs, f.states, f.a.s.Keep))
}

// floorFilter: IMAP ledger lookups start at the floor; POP3 has no floor.
func floorFilter(mb source.Mailbox, floor uint32) uint32 {
	if mb.Complete() {
		return 0
	}
	return floor
}

// progress is where a listed message stands as far as the floor is
// concerned: all that nextFloor asks of its ledger.State, in one byte
// instead of a string's sixteen (a pass holds one for every message of
// its folder).
type progress uint8

const (
	needsWork  progress = iota // no state yet, or Retry
	doneIfKept                 // Delivered: its upstream copy may still need removing
	done                       // every other state
)

func progressOf(st ledger.State) progress {
	switch {
	case st.Final(false):
		return done
	case st.Final(true):
		return doneIfKept
	}
	return needsWork
}

// final is ledger.State.Final of the state p was made of.
func (p progress) final(keep bool) bool { return p == done || (p == doneIfKept && keep) }

// nextFloor is the smallest UID that still needs work, or one past the
// highest UID seen when none does. Messages flagged \Deleted by someone else
// hold the floor down, in case they are undeleted. states are msgs' states,
// by position.
func nextFloor(mb source.Mailbox, floor uint32, msgs []source.Message, states []progress, keep bool) uint32 {
	if mb.Complete() {
		return 0
	}
	next := floor
	pending := uint32(0)
	for i, m := range msgs {
		n64, err := strconv.ParseUint(m.UID, 10, 32)
		if err != nil {
			continue
		}
		n := uint32(n64)
		if n >= next {
			next = n + 1
		}
		if st := states[i]; !st.final(keep) && (pending == 0 || n < pending) {
			pending = n
		}
	}
	if pending != 0 {
		return pending
	}
	return next
}
