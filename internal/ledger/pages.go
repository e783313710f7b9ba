package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// A mailbox listed a page at a time (an mbox file) keeps where its next
// page starts, so that a restart resumes there instead of reading the
// whole file again. The cursor is the source's own text; the source
// checks it against the file before it trusts it. Anything that makes
// messages on passed pages eligible again (Retry, Refetch) drops it.
const pageCursorsSchema = `
CREATE TABLE IF NOT EXISTS page_cursors (
	account TEXT NOT NULL,
	mailbox TEXT NOT NULL,
	cursor  TEXT NOT NULL,
	PRIMARY KEY (account, mailbox)
) WITHOUT ROWID;
`

// PageCursor returns where the mailbox's next page starts, or "" for its
// beginning.
func (l *Ledger) PageCursor(ctx context.Context, account, mailbox string) (string, error) {
	var cursor string
	err := l.db.QueryRowContext(ctx, `SELECT cursor FROM page_cursors WHERE account = ? AND mailbox = ?`,
		account, mailbox).Scan(&cursor)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("ledger: page cursor of %s/%s: %w", account, mailbox, err)
	}
	return cursor, nil
}

// SwapPageCursor sets the cursor to next if it still is prev (a retry
// meanwhile dropped it: the next pass starts from the beginning, as the
// retry wants). It reports whether it did.
func (l *Ledger) SwapPageCursor(ctx context.Context, account, mailbox, prev, next string) (bool, error) {
	swapped := false
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		var cur string
		err := tx.QueryRowContext(ctx, `SELECT cursor FROM page_cursors WHERE account = ? AND mailbox = ?`,
			account, mailbox).Scan(&cur)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if cur != prev {
			return nil
		}
		swapped = true
		if next == "" {
			_, err = tx.ExecContext(ctx, `DELETE FROM page_cursors WHERE account = ? AND mailbox = ?`, account, mailbox)
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO page_cursors (account, mailbox, cursor) VALUES (?, ?, ?)
			ON CONFLICT (account, mailbox) DO UPDATE SET cursor = excluded.cursor`, account, mailbox, next)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("ledger: page cursor of %s/%s: %w", account, mailbox, err)
	}
	return swapped, nil
}

// dropPageCursors makes the account's paged mailboxes start over.
func dropPageCursors(ctx context.Context, tx *sql.Tx, account string) error {
	_, err := tx.ExecContext(ctx, `DELETE FROM page_cursors WHERE account = ?`, account)
	return err
}
