package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/remote-pull/remote_pull/internal/safetext"
)

// ConfigChanged stores the account's configuration digest and reports
// whether it differs from the one stored before (false the first time).
func (l *Ledger) ConfigChanged(ctx context.Context, account, hash string) (bool, error) {
	var old string
	err := l.db.QueryRowContext(ctx, `SELECT config_hash FROM accounts WHERE account = ?`, account).Scan(&old)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("ledger: %w", err)
	}
	if old == hash {
		return false, nil
	}
	if _, err := l.db.ExecContext(ctx, `INSERT OR REPLACE INTO accounts (account, config_hash) VALUES (?, ?)`, account, hash); err != nil {
		return false, fmt.Errorf("ledger: %w", err)
	}
	return old != "", nil
}

// ErrAccountRunning: the running maddy still runs the account (it is
// still in the configuration it runs, or is still stopping).
var ErrAccountRunning = errors.New("the running maddy still runs this account")

// SetRunning records that this process runs an account (running), or
// that it has stopped it: the ledger is how `remote-pull forget`, in
// another process, learns what the running maddy does, as opposed to what
// the configuration file says.
func (l *Ledger) SetRunning(ctx context.Context, account string, running bool) error {
	q, args := `DELETE FROM running_accounts WHERE account = ?`, []any{account}
	if running {
		q, args = `INSERT OR REPLACE INTO running_accounts (account, since) VALUES (?, ?)`, []any{account, time.Now().Unix()}
	}
	if _, err := l.db.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// ResetRunning clears what an earlier process recorded with SetRunning:
// called at start, under the state directory's lock, since a process
// that crashed could not clear it.
func (l *Ledger) ResetRunning(ctx context.Context) error {
	if _, err := l.db.ExecContext(ctx, `DELETE FROM running_accounts`); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// ForgetAccount drops everything the ledger holds about an account that
// is no longer configured. It returns how many message entries it dropped.
// When maddyRunning (a maddy holds the state directory's lock), an account
// that maddy still runs is refused with ErrAccountRunning: its poller
// would carry on without a ledger and fetch everything again. The check
// and the deletion are one transaction, so a reload cannot start the
// account in between.
func (l *Ledger) ForgetAccount(ctx context.Context, account string, maddyRunning bool) (int64, error) {
	var n int64
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		if maddyRunning {
			var running int
			if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM running_accounts WHERE account = ?`, account).Scan(&running); err != nil {
				return err
			}
			if running > 0 {
				return ErrAccountRunning
			}
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE account = ?`, account)
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		for _, table := range []string{"mailboxes", "accounts", "account_status", "running_accounts", "placements", "page_cursors"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE account = ?`, account); err != nil {
				return err
			}
		}
		return forgetLimits(ctx, tx, account)
	})
	return n, err
}

// NoticeState is the trouble an account's owner was last told about by
// mail (empty: none, or told of the recovery), since when, and when the
// last notice went; and how many notices went since Window began (the
// daily cap).
type NoticeState struct {
	Kind                string
	Since, Sent, Window time.Time
	Count               int
}

// Notice returns an account's NoticeState.
func (l *Ledger) Notice(ctx context.Context, account string) (NoticeState, error) {
	var st NoticeState
	var since, sent, window int64
	err := l.db.QueryRowContext(ctx, `SELECT notice_kind, notice_since, notice_sent, notice_window, notice_count
		FROM account_status WHERE account = ?`, account).Scan(&st.Kind, &since, &sent, &window, &st.Count)
	if errors.Is(err, sql.ErrNoRows) {
		return NoticeState{}, nil
	}
	if err != nil {
		return NoticeState{}, fmt.Errorf("ledger: %w", err)
	}
	st.Since, st.Sent, st.Window = fromUnix(since), fromUnix(sent), fromUnix(window)
	return st, nil
}

// SetNotice stores an account's NoticeState.
func (l *Ledger) SetNotice(ctx context.Context, account string, st NoticeState) error {
	_, err := l.db.ExecContext(ctx, `INSERT INTO account_status
		(account, notice_kind, notice_since, notice_sent, notice_window, notice_count) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (account) DO UPDATE SET notice_kind = excluded.notice_kind, notice_since = excluded.notice_since,
			notice_sent = excluded.notice_sent, notice_window = excluded.notice_window, notice_count = excluded.notice_count`,
		account, st.Kind, unix(st.Since), unix(st.Sent), unix(st.Window), st.Count)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// Waiting counts an account's messages left upstream as refused and as
// too large.
func (l *Ledger) Waiting(ctx context.Context, account string) (refused, tooLarge int64, err error) {
	err = l.db.QueryRowContext(ctx, `SELECT
		(SELECT COUNT(*) FROM messages WHERE account = ? AND state = ?),
		(SELECT COUNT(*) FROM messages WHERE account = ? AND state = ?)`,
		account, string(Refused), account, string(TooLarge)).Scan(&refused, &tooLarge)
	if err != nil {
		return 0, 0, fmt.Errorf("ledger: %w", err)
	}
	return refused, tooLarge, nil
}

// AccountStatus is what the running maddy last reported of an account, for
// the status command, which reads it from another process.
type AccountStatus struct {
	Account     string    `json:"account"`
	Protocol    string    `json:"protocol"`
	Host        string    `json:"host"`
	State       string    `json:"state"`
	LastSuccess time.Time `json:"last_success"`
	LastError   string    `json:"last_error"`
	NextPoll    time.Time `json:"next_poll"`
	Updated     time.Time `json:"updated"`
	// Delivered and Refused count since the account was first seen.
	Delivered int64 `json:"delivered"`
	Refused   int64 `json:"refused"`
	// Waiting upstream now, recorded as refused or too large.
	RefusedWaiting  int64 `json:"refused_waiting"`
	TooLargeWaiting int64 `json:"too_large_waiting"`
	// AdoptedMaxAge: recorded, never fetched, for being older than
	// max_age at their folder's first sync (ReasonMaxAge).
	AdoptedMaxAge int64 `json:"adopted_max_age"`
	// LabelCopies: local copies of delivered messages made for their
	// further Gmail labels, without a download (Delivered counts the
	// downloads delivered).
	LabelCopies int64 `json:"label_copies"`
	// FirstSeen is when the account's status was first saved: how long an
	// account that never worked has been failing.
	FirstSeen time.Time `json:"-"`
	// Note is what the admin should know about the upstream although
	// nothing failed (keep no on a server that can only flag messages).
	Note string `json:"note,omitempty"`
	// Progress of the poll under way; zero between polls.
	Progress Progress `json:"progress"`
	// Connections: how the account shares out its upstream connections.
	Connections Connections `json:"connections"`
	// ResumeAt: the upstream imposed a pause (over quota, throttled) and
	// the account connects again at this time; zero when none.
	ResumeAt time.Time `json:"resume_at,omitzero"`
	// Budget is the download budget per 24 hours (0: none), BudgetLeft
	// what is left of it now, PendingBytes the bytes the listings showed
	// waiting for a download (limits.go).
	Budget       int64 `json:"download_budget,omitempty"`
	BudgetLeft   int64 `json:"download_budget_left"`
	PendingBytes int64 `json:"pending_bytes,omitempty"`
}

// Connections is how an account shares out its upstream connections
// (max_connections): the poll's, and one per folder IDLE watches.
type Connections struct {
	Max int `json:"max"` // 0: no bound
	// Watched: the folders watched with IDLE now.
	Watched []string `json:"watched"`
	// Polled: folders IDLE would watch that are polled instead, every
	// poll_interval: past max_connections, or the server refused IDLE.
	Polled []string `json:"polled"`
}

// Progress is a poll's messages fetched (Done) of those it decided to
// fetch so far (Total), since Started.
type Progress struct {
	Done    int       `json:"done"`
	Total   int       `json:"total"`
	Started time.Time `json:"started"`
	// BytesDone of BytesTotal: the same messages by their listed sizes,
	// for an estimate that a few large messages do not skew.
	BytesDone  int64 `json:"bytes_done"`
	BytesTotal int64 `json:"bytes_total"`
}

// SaveStatus stores an account's status. Its delivered and refused totals
// are kept by Record; FirstSeen is set once, by the first save. The last
// error and the note may quote the upstream: they are stored as one bounded
// line without control characters, as refusal reasons are.
func (l *Ledger) SaveStatus(ctx context.Context, st AccountStatus) error {
	now := time.Now().Unix()
	conns, err := json.Marshal(st.Connections)
	if err != nil {
		return fmt.Errorf("ledger: status of %s: %w", st.Account, err)
	}
	_, err = l.db.ExecContext(ctx, `INSERT INTO account_status
		(account, protocol, host, state, last_success, last_error, next_poll, updated, note,
			progress_done, progress_total, progress_start, first_seen, connections, progress_bytes_done, progress_bytes_total)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (account) DO UPDATE SET first_seen = CASE first_seen WHEN 0 THEN excluded.first_seen ELSE first_seen END,
			protocol = excluded.protocol, host = excluded.host,
			state = excluded.state, last_success = excluded.last_success, last_error = excluded.last_error,
			next_poll = excluded.next_poll, updated = excluded.updated, note = excluded.note,
			progress_done = excluded.progress_done, progress_total = excluded.progress_total,
			progress_start = excluded.progress_start, connections = excluded.connections,
			progress_bytes_done = excluded.progress_bytes_done, progress_bytes_total = excluded.progress_bytes_total`,
		st.Account, st.Protocol, st.Host, st.State, unix(st.LastSuccess), safetext.Line(st.LastError, safetext.MaxStored),
		unix(st.NextPoll), now, safetext.Line(st.Note, safetext.MaxStored), st.Progress.Done, st.Progress.Total,
		unix(st.Progress.Started), cmp.Or(unix(st.FirstSeen), now), conns, st.Progress.BytesDone, st.Progress.BytesTotal)
	if err != nil {
		return fmt.Errorf("ledger: status of %s: %w", st.Account, err)
	}
	return nil
}

// Statuses returns every account's last reported status.
func (l *Ledger) Statuses(ctx context.Context) ([]AccountStatus, error) {
	return l.statuses(ctx, "")
}

// Status returns one account's last reported status; ok is false if none
// was ever saved.
func (l *Ledger) Status(ctx context.Context, account string) (st AccountStatus, ok bool, err error) {
	sts, err := l.statuses(ctx, account)
	if err != nil || len(sts) == 0 {
		return AccountStatus{}, false, err
	}
	return sts[0], true, nil
}

// statuses reads the status of account, or of every account if "".
func (l *Ledger) statuses(ctx context.Context, account string) ([]AccountStatus, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT s.account, s.protocol, s.host, s.state, s.last_success, s.last_error,
			s.next_poll, s.updated, s.delivered_total, s.refused_total, s.note,
			s.progress_done, s.progress_total, s.progress_start, s.first_seen, s.connections,
			s.progress_bytes_done, s.progress_bytes_total,
			(SELECT COUNT(*) FROM messages m WHERE m.account = s.account AND m.state = ?),
			(SELECT COUNT(*) FROM messages m WHERE m.account = s.account AND m.state = ?),
			(SELECT COUNT(*) FROM messages m WHERE m.account = s.account AND m.state = ? AND m.reason = ?)
		FROM account_status s WHERE ? IN ('', s.account) ORDER BY s.account`,
		string(Refused), string(TooLarge), string(Adopted), ReasonMaxAge, account)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	defer rows.Close()
	var out []AccountStatus
	for rows.Next() {
		var st AccountStatus
		var last, next, updated, pstart, first int64
		var conns string
		if err := rows.Scan(&st.Account, &st.Protocol, &st.Host, &st.State, &last, &st.LastError, &next, &updated,
			&st.Delivered, &st.Refused, &st.Note, &st.Progress.Done, &st.Progress.Total, &pstart, &first, &conns,
			&st.Progress.BytesDone, &st.Progress.BytesTotal,
			&st.RefusedWaiting, &st.TooLargeWaiting, &st.AdoptedMaxAge); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		st.LastSuccess, st.NextPoll, st.Updated = fromUnix(last), fromUnix(next), fromUnix(updated)
		st.FirstSeen = fromUnix(first)
		st.Progress.Started = fromUnix(pstart)
		if conns != "" {
			// Written by this ledger code; an unreadable value shows none.
			_ = json.Unmarshal([]byte(conns), &st.Connections)
		}
		out = append(out, st)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	rows.Close()
	for i := range out {
		n, err := labelCopies(ctx, l.db, out[i].Account)
		if err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		out[i].LabelCopies = n
	}
	return out, l.limitsInto(ctx, out)
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func fromUnix(s int64) time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(s, 0)
}
