package account

import (
	"errors"
	"strconv"

	"github.com/remote-pull/remote_pull/module/ledger"
	"github.com/remote-pull/remote_pull/module/source"
)

// floorErr: a floor reset by 'remote-pull retry' during the poll is not an
// error (the next poll starts from the reset floor); anything else is.
func floorErr(err error) error {
	if errors.Is(err, ledger.ErrFloorMoved) {
		return nil
	}
	return local(err)
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
