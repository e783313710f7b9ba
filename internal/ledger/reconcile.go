package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Located is an entry with the mailbox it belongs to.
type Located struct {
	Key MailboxKey
	Entry
}

// CommittedSince returns the account's entries of messages maddy committed
// (delivered, or removed upstream since), recorded at or after since, and
// how many adopted entries of messages delivered before a renumbering
// (WasDelivered, but under an old identity) it leaves out: reconcile
// cannot find those in maddy's storage by their current identity.
func (l *Ledger) CommittedSince(ctx context.Context, account string, since time.Time) (committed []Located, renumbered int, err error) {
	rows, err := l.db.QueryContext(ctx, `SELECT mailbox, uidvalidity, `+entryColumns+`
		FROM messages WHERE account = ? AND at >= ? AND `+wasDelivered+`
		ORDER BY mailbox, uidvalidity, CAST(uid AS INTEGER), uid`, account, since.Unix())
	if err != nil {
		return nil, 0, fmt.Errorf("ledger: read %s: %w", account, err)
	}
	defer rows.Close()
	for rows.Next() {
		e := Located{Key: MailboxKey{Account: account}}
		var state string
		var at int64
		if err := rows.Scan(&e.Key.Mailbox, &e.Key.UIDValidity, &e.UID, &state, &e.Reason, &e.Fingerprint, &e.Size,
			&e.MsgID, &e.GlobalID, &e.Digest, &at); err != nil {
			return nil, 0, fmt.Errorf("ledger: read %s: %w", account, err)
		}
		e.State = State(state)
		e.At = time.Unix(at, 0)
		if !e.State.Committed() {
			renumbered++
			continue
		}
		committed = append(committed, e)
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("ledger: read %s: %w", account, err)
	}
	return committed, renumbered, nil
}

// Refetch drops the entries of delivered messages (state Delivered, the
// upstream copy still there) so that the next poll fetches them again, and
// returns how many it dropped: for messages maddy's storage lost (restored
// from an older backup). An entry that is no longer Delivered (removed
// upstream meanwhile) is left alone. The mailboxes' floors go back, as in
// Retry, so that the poll sees UIDs below them.
func (l *Ledger) Refetch(ctx context.Context, key MailboxKey, uids []string) (int64, error) {
	var n int64
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `DELETE FROM messages
			WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND uid = ? AND state = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, uid := range uids {
			res, err := stmt.ExecContext(ctx, key.Account, key.Mailbox, key.UIDValidity, uid, string(Delivered))
			if err != nil {
				return err
			}
			changed, _ := res.RowsAffected()
			n += changed
		}
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uid_floor = 1, generation = generation + 1
			WHERE account = ? AND mailbox = ?`, key.Account, key.Mailbox); err != nil {
			return err
		}
		return dropPageCursors(ctx, tx, key.Account)
	})
	if err != nil {
		return 0, fmt.Errorf("ledger: refetch in %s: %w", key, err)
	}
	return n, nil
}
