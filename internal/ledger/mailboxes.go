package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// MailboxState is what the ledger knows of an IMAP mailbox between polls.
type MailboxState struct {
	UIDValidity uint32
	// UIDFloor: every message with a smaller UID is final (recorded, and
	// deleted upstream where it is not kept), so a poll searches from here.
	UIDFloor uint32
	// Generation changes when the floor is reset from outside a poll
	// (remote-pull retry); see SetMailbox.
	Generation int64
}

// ErrFloorMoved: the floor was reset (remote-pull retry) while the poll
// that read it ran; the poll's floor is not stored over the reset.
var ErrFloorMoved = errors.New("ledger: the folder's floor was reset during the poll")

// Mailbox returns the stored state of a mailbox; ok is false for a mailbox
// never polled.
func (l *Ledger) Mailbox(ctx context.Context, account, mailbox string) (st MailboxState, ok bool, err error) {
	err = l.db.QueryRowContext(ctx, `SELECT uidvalidity, uid_floor, generation FROM mailboxes WHERE account = ? AND mailbox = ?`,
		account, mailbox).Scan(&st.UIDValidity, &st.UIDFloor, &st.Generation)
	if errors.Is(err, sql.ErrNoRows) {
		return MailboxState{}, false, nil
	}
	if err != nil {
		return MailboxState{}, false, fmt.Errorf("ledger: read mailbox %s/%s: %w", account, mailbox, err)
	}
	return st, true, nil
}

// SetMailbox stores the state of a mailbox, unless the mailbox's
// generation is no longer st.Generation (the floor was reset meanwhile):
// then it stores nothing and returns ErrFloorMoved.
func (l *Ledger) SetMailbox(ctx context.Context, account, mailbox string, st MailboxState) error {
	if st.UIDFloor == 0 {
		st.UIDFloor = 1
	}
	res, err := l.db.ExecContext(ctx, `INSERT INTO mailboxes (account, mailbox, uidvalidity, uid_floor, generation)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (account, mailbox) DO UPDATE SET uidvalidity = excluded.uidvalidity, uid_floor = excluded.uid_floor
		WHERE generation = excluded.generation`, account, mailbox, st.UIDValidity, st.UIDFloor, st.Generation)
	if err != nil {
		return fmt.Errorf("ledger: write mailbox %s/%s: %w", account, mailbox, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return ErrFloorMoved
	}
	return nil
}
