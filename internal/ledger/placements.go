package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The placements table remembers, for a message with Gmail labels
// (local_folders mirror on an upstream with X-GM-LABELS), which local
// folders have a copy of it, by the message's global ID: a label added
// upstream later is then stored as one more local copy, made from the
// delivered one, without a download. A label removed upstream removes
// nothing locally, and its row stays (the copy is not made again if the
// label comes back).
const placementsSchema = `
CREATE TABLE IF NOT EXISTS placements (
	account   TEXT    NOT NULL,
	global_id TEXT    NOT NULL,
	place     TEXT    NOT NULL,
	origin    TEXT    NOT NULL DEFAULT '',
	accounts  TEXT    NOT NULL DEFAULT '',
	at        INTEGER NOT NULL,
	PRIMARY KEY (account, global_id, place)
) WITHOUT ROWID;
`

// Placed is what the ledger knows of one message's local copies.
type Placed struct {
	// Origin is the id clause of the Received field of the delivered
	// copy (delivery.Origin.ID), by which the copies are found locally.
	Origin string
	// Accounts are the local accounts (maddy's names) holding copies.
	Accounts []string
	// Places are the local folders holding a copy (delivery.Placement.Key).
	Places []string
}

// RecordPlaced records that the message with globalID has a copy in
// each of places for the local accounts.
func (l *Ledger) RecordPlaced(ctx context.Context, account, globalID, origin string, accounts, places []string) error {
	if globalID == "" || len(places) == 0 {
		return nil
	}
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	defer tx.Rollback()
	now := time.Now().Unix()
	for _, p := range places {
		if _, err := tx.ExecContext(ctx, `INSERT INTO placements (account, global_id, place, origin, accounts, at)
			VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
			account, globalID, p, origin, strings.Join(accounts, "\n"), now); err != nil {
			return fmt.Errorf("ledger: placement: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ledger: placement: %w", err)
	}
	return nil
}

// PlacedOf returns the local copies recorded for globalID; ok is false
// if none is.
func (l *Ledger) PlacedOf(ctx context.Context, account, globalID string) (p Placed, ok bool, err error) {
	rows, err := l.db.QueryContext(ctx, `SELECT place, origin, accounts FROM placements
		WHERE account = ? AND global_id = ? ORDER BY at, place`, account, globalID)
	if err != nil {
		return p, false, fmt.Errorf("ledger: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var place, origin, accounts string
		if err := rows.Scan(&place, &origin, &accounts); err != nil {
			return p, false, fmt.Errorf("ledger: %w", err)
		}
		p.Places = append(p.Places, place)
		if p.Origin == "" {
			p.Origin = origin
		}
		if p.Accounts == nil && accounts != "" {
			p.Accounts = strings.Split(accounts, "\n")
		}
	}
	if err := rows.Err(); err != nil {
		return p, false, fmt.Errorf("ledger: %w", err)
	}
	return p, len(p.Places) > 0, nil
}

// labelCopies counts the local copies made for labels beyond the one
// delivered per message, for the status.
func labelCopies(ctx context.Context, q interface {
	QueryRowContext(context.Context, string, ...any) *sql.Row
}, account string) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, `SELECT COUNT(*) - COUNT(DISTINCT global_id) FROM placements WHERE account = ?`, account).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	return n, err
}
