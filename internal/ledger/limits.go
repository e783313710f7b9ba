package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Provider limits kept across restarts: a pause the upstream imposed (over
// quota, throttled), so that restarting maddy does not knock on Gmail's
// door again, and the bytes downloaded per minute, so that a download
// budget's rolling 24 hours survive a restart.
const limitsSchema = `
CREATE TABLE IF NOT EXISTS account_limits (
	account       TEXT    NOT NULL PRIMARY KEY,
	pause_state   TEXT    NOT NULL DEFAULT '',
	pause_until   INTEGER NOT NULL DEFAULT 0,
	episodes      INTEGER NOT NULL DEFAULT 0,
	budget        INTEGER NOT NULL DEFAULT 0,
	budget_left   INTEGER NOT NULL DEFAULT 0,
	pending_bytes INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS downloads (
	account TEXT    NOT NULL,
	minute  INTEGER NOT NULL,
	bytes   INTEGER NOT NULL,
	PRIMARY KEY (account, minute)
) WITHOUT ROWID;
`

// DownloadBucket is how long one row of downloads counts: the bytes
// downloaded in one minute are kept together, so a day is at most 1,440
// rows per account whatever the number of messages.
const DownloadBucket = time.Minute

// Pause is a stop the upstream imposed on an account: its State ("over
// quota", "throttled"), no connection before Until; Episodes counts the
// over-quota pauses in a row without a good poll between, which the next
// one grows with.
type Pause struct {
	State    string
	Until    time.Time
	Episodes int
}

// Pause returns an account's saved Pause (the zero Pause if none).
func (l *Ledger) Pause(ctx context.Context, account string) (Pause, error) {
	var p Pause
	var until int64
	err := l.db.QueryRowContext(ctx, `SELECT pause_state, pause_until, episodes FROM account_limits WHERE account = ?`,
		account).Scan(&p.State, &until, &p.Episodes)
	if errors.Is(err, sql.ErrNoRows) {
		return Pause{}, nil
	}
	if err != nil {
		return Pause{}, fmt.Errorf("ledger: %w", err)
	}
	p.Until = fromUnix(until)
	return p, nil
}

// SetPause saves an account's Pause; the zero Pause clears it.
func (l *Ledger) SetPause(ctx context.Context, account string, p Pause) error {
	_, err := l.db.ExecContext(ctx, `INSERT INTO account_limits (account, pause_state, pause_until, episodes) VALUES (?, ?, ?, ?)
		ON CONFLICT (account) DO UPDATE SET pause_state = excluded.pause_state, pause_until = excluded.pause_until,
			episodes = excluded.episodes`, account, p.State, unixCeil(p.Until), p.Episodes)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// unixCeil is unix rounded up: a pause saved must not end before it was
// meant to.
func unixCeil(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if t.Nanosecond() > 0 {
		return t.Unix() + 1
	}
	return t.Unix()
}

// Budget is what the status shows of an account's download budget: the
// Budget per 24 hours (0: none), what is Left of it now, and the bytes
// known to wait upstream for a download (from the listings).
type Budget struct {
	Budget, Left, Pending int64
}

// SaveBudget saves an account's Budget for the status command.
func (l *Ledger) SaveBudget(ctx context.Context, account string, b Budget) error {
	_, err := l.db.ExecContext(ctx, `INSERT INTO account_limits (account, budget, budget_left, pending_bytes) VALUES (?, ?, ?, ?)
		ON CONFLICT (account) DO UPDATE SET budget = excluded.budget, budget_left = excluded.budget_left,
			pending_bytes = excluded.pending_bytes`, account, b.Budget, b.Left, b.Pending)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// AddDownload counts bytes downloaded for account at time at.
func (l *Ledger) AddDownload(ctx context.Context, account string, at time.Time, bytes int64) error {
	_, err := l.db.ExecContext(ctx, `INSERT INTO downloads (account, minute, bytes) VALUES (?, ?, ?)
		ON CONFLICT (account, minute) DO UPDATE SET bytes = bytes + excluded.bytes`,
		account, at.Truncate(DownloadBucket).Unix(), bytes)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// Download is the bytes downloaded in the DownloadBucket starting At.
type Download struct {
	At    time.Time
	Bytes int64
}

// Downloads returns an account's downloads in buckets that end after
// since, oldest first, and forgets older ones.
func (l *Ledger) Downloads(ctx context.Context, account string, since time.Time) ([]Download, error) {
	from := since.Add(-DownloadBucket).Unix()
	if _, err := l.db.ExecContext(ctx, `DELETE FROM downloads WHERE account = ? AND minute <= ?`, account, from); err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	rows, err := l.db.QueryContext(ctx, `SELECT minute, bytes FROM downloads WHERE account = ? AND minute > ? ORDER BY minute`,
		account, from)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	defer rows.Close()
	var out []Download
	for rows.Next() {
		var at, n int64
		if err := rows.Scan(&at, &n); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		out = append(out, Download{At: time.Unix(at, 0), Bytes: n})
	}
	return out, rows.Err()
}

// limitsInto fills the pause and budget fields of sts. A ledger written
// before the table existed, opened read-only by the status command, has
// none: the fields stay zero.
func (l *Ledger) limitsInto(ctx context.Context, sts []AccountStatus) error {
	rows, err := l.db.QueryContext(ctx, `SELECT account, pause_state, pause_until, budget, budget_left, pending_bytes FROM account_limits`)
	if err != nil {
		if strings.Contains(err.Error(), "no such table") {
			return nil
		}
		return fmt.Errorf("ledger: %w", err)
	}
	defer rows.Close()
	byName := map[string]*AccountStatus{}
	for i := range sts {
		byName[sts[i].Account] = &sts[i]
	}
	for rows.Next() {
		var name, state string
		var until, budget, left, pending int64
		if err := rows.Scan(&name, &state, &until, &budget, &left, &pending); err != nil {
			return fmt.Errorf("ledger: %w", err)
		}
		if st := byName[name]; st != nil {
			if state != "" {
				st.ResumeAt = fromUnix(until)
			}
			st.Budget, st.BudgetLeft, st.PendingBytes = budget, left, pending
		}
	}
	return rows.Err()
}

// forgetLimits drops what ForgetAccount may of an account's limits. The
// downloads of the last day and a pause that has not ended stay: they
// are the provider's count and the provider's suspension, which the
// account added back under its name would meet again. They age out.
func forgetLimits(ctx context.Context, tx *sql.Tx, account string) error {
	now := time.Now()
	if _, err := tx.ExecContext(ctx, `DELETE FROM downloads WHERE account = ? AND minute <= ?`,
		account, now.Add(-25*time.Hour).Unix()); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `DELETE FROM account_limits WHERE account = ? AND pause_until <= ?`, account, now.Unix())
	return err
}
