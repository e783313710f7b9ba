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

// nextFloor is the smallest UID that still needs work, or one past the
// highest UID seen when none does. Messages flagged \Deleted by someone else
// hold the floor down, in case they are undeleted. states are msgs' states,
// by position.
func nextFloor(mb source.Mailbox, floor uint32, msgs []source.Message, states []ledger.State, keep bool) uint32 {
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
		if st := states[i]; !st.Final(keep) && (pending == 0 || n < pending) {
			pending = n
		}
	}
	if pending != 0 {
		return pending
	}
	return next
}
