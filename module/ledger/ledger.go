// Package ledger records what became of every upstream message remote_pull
// has seen: delivered, refused (with the reason) or left upstream for being
// too large.
//
// The ledger is what makes "nothing lost, nothing twice" hold across
// restarts and crashes. The account loop records a message right after
// maddy's Commit returns and before the upstream copy is touched; a message
// recorded once is never fetched again. Recording is one small SQLite
// transaction in WAL mode, which survives a crash of the process; Sync makes
// everything recorded so far survive a power loss too, and is called once per
// batch before any upstream copy is flagged or deleted.
//
// Keys: an account, a mailbox (the IMAP folder; POP3 uses "INBOX"; INBOX
// is always spelled so, RFC 3501's any-case INBOX being one folder), the
// mailbox's UIDVALIDITY (0 for POP3) and the message's UID (IMAP) or UIDL
// (POP3), both kept as text.
package ledger

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/remote-pull/remote_pull/internal/safetext"
)

// State is what became of a message.
type State string

const (
	// Delivered: maddy committed the message.
	Delivered State = "delivered"
	// Refused: maddy's pipeline refused the message for good; it stays
	// upstream and is not fetched again unless retried.
	Refused State = "refused"
	// TooLarge: the message exceeds max_message_size; it stays upstream.
	TooLarge State = "too_large"
	// Adopted: present upstream when the account was first seen with
	// first_sync new, older than max_age, or taken over after a
	// UIDVALIDITY change. Never fetched again, never removed upstream. An
	// adopted entry with a MsgID was delivered before the renumbering
	// (Entry.WasDelivered).
	Adopted State = "adopted"
	// Removed: delivered, and the upstream copy is gone for certain (IMAP
	// UID EXPUNGE returned, POP3 QUIT succeeded after DELE). A POP3 server
	// may reuse the UIDL for a later message: one listed under a removed
	// entry's UIDL is that new message.
	Removed State = "removed"
	// Duplicate: the same message (Identity) was already delivered under
	// another identity of the account (dedupe message_id); not delivered
	// again, left upstream.
	Duplicate State = "duplicate"
	// Retry: a duplicate the admin said was not one (remote-pull retry
	// --duplicates): fetched again and delivered without dedupe.
	Retry State = "retry"
)

// Final reports whether a message in this state needs no more work, given
// whether upstream copies are kept. A delivered message that is not kept
// still waits for its upstream deletion.
func (s State) Final(keep bool) bool {
	if s == Delivered {
		return keep
	}
	return s != "" && s != Retry
}

// Committed reports whether maddy committed the message (delivered, and
// maybe removed upstream since).
func (s State) Committed() bool { return s == Delivered || s == Removed }

// MailboxKey names one mailbox of one account at one UIDVALIDITY.
type MailboxKey struct {
	Account     string
	Mailbox     string
	UIDValidity uint32
}

func (k MailboxKey) String() string {
	return fmt.Sprintf("%s/%s/%d", k.Account, k.Mailbox, k.UIDValidity)
}

// Entry is one recorded message.
type Entry struct {
	UID         string
	State       State
	Reason      string // for Refused and TooLarge: the SMTP-style reason; for Adopted: ReasonMaxAge or ""
	Fingerprint string // identifies the message across a UIDVALIDITY change
	Size        int64
	// MsgID is maddy's message ID, to find the delivery in maddy's log. Set
	// only on messages handed to maddy (delivered, refused); Rekey keeps
	// it when it turns a delivered entry adopted.
	MsgID string
	// Digest is the SHA-256 (hex) of the whole message as downloaded, or
	// "" (not downloaded, or recorded before digests were): for dedupe.
	Digest string
	// GlobalID is the upstream's own ID of the message in every folder
	// (Gmail's X-GM-MSGID, source.Message.GlobalID), or "": for dedupe.
	GlobalID string
	At       time.Time
}

// WasDelivered reports whether maddy committed the message: delivered,
// removed upstream since, or adopted after a renumbering of its folder
// (Rekey keeps the MsgID, which an entry adopted without a delivery never
// has).
func (e Entry) WasDelivered() bool {
	return e.State.Committed() || (e.State == Adopted && e.MsgID != "")
}

// wasDelivered is Entry.WasDelivered in SQL.
const wasDelivered = `(state IN ('delivered', 'removed') OR (state = 'adopted' AND msg_id != ''))`

// Identity is what tells that two upstream copies are one message, for
// dedupe: the upstream's global ID (Gmail's X-GM-MSGID), the digest of the
// whole message, the header fingerprint (only for a message with a
// Message-ID: the few fields alone are too weak). Empty fields are not
// compared.
type Identity struct {
	GlobalID, Digest, Fingerprint string
}

// ReasonMaxAge is the Reason of a message adopted because it was older
// than max_age at its folder's first sync; status counts them.
const ReasonMaxAge = "older than max_age at the folder's first sync"

// Ledger is the SQLite-backed record. It is safe for concurrent use.
type Ledger struct {
	db   *sql.DB
	path string
}

const schema = `
CREATE TABLE IF NOT EXISTS messages (
	account     TEXT    NOT NULL,
	mailbox     TEXT    NOT NULL,
	uidvalidity INTEGER NOT NULL,
	uid         TEXT    NOT NULL,
	state       TEXT    NOT NULL,
	reason      TEXT    NOT NULL DEFAULT '',
	fingerprint TEXT    NOT NULL DEFAULT '',
	size        INTEGER NOT NULL DEFAULT 0,
	msg_id      TEXT    NOT NULL DEFAULT '',
	global_id   TEXT    NOT NULL DEFAULT '',
	digest      TEXT    NOT NULL DEFAULT '',
	at          INTEGER NOT NULL,
	PRIMARY KEY (account, mailbox, uidvalidity, uid)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS messages_fingerprint ON messages (account, fingerprint);
CREATE TABLE IF NOT EXISTS mailboxes (
	account     TEXT    NOT NULL,
	mailbox     TEXT    NOT NULL,
	uidvalidity INTEGER NOT NULL,
	uid_floor   INTEGER NOT NULL DEFAULT 1,
	generation  INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (account, mailbox)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS accounts (
	account     TEXT    NOT NULL PRIMARY KEY,
	config_hash TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS running_accounts (
	account     TEXT    NOT NULL PRIMARY KEY,
	since       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS account_status (
	account         TEXT    NOT NULL PRIMARY KEY,
	protocol        TEXT    NOT NULL DEFAULT '',
	host            TEXT    NOT NULL DEFAULT '',
	state           TEXT    NOT NULL DEFAULT '',
	last_success    INTEGER NOT NULL DEFAULT 0,
	last_error      TEXT    NOT NULL DEFAULT '',
	next_poll       INTEGER NOT NULL DEFAULT 0,
	delivered_total INTEGER NOT NULL DEFAULT 0,
	refused_total   INTEGER NOT NULL DEFAULT 0,
	updated         INTEGER NOT NULL DEFAULT 0,
	note            TEXT    NOT NULL DEFAULT '',
	progress_done   INTEGER NOT NULL DEFAULT 0,
	progress_total  INTEGER NOT NULL DEFAULT 0,
	progress_start  INTEGER NOT NULL DEFAULT 0,
	notice_kind     TEXT    NOT NULL DEFAULT '',
	notice_since    INTEGER NOT NULL DEFAULT 0,
	notice_sent     INTEGER NOT NULL DEFAULT 0,
	notice_window   INTEGER NOT NULL DEFAULT 0,
	notice_count    INTEGER NOT NULL DEFAULT 0,
	first_seen      INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
`

// insertMessage records one entry: account, mailbox, uidvalidity, then the
// Entry's fields in order, then the time.
const insertMessage = `INSERT OR REPLACE INTO messages
	(account, mailbox, uidvalidity, uid, state, reason, fingerprint, size, msg_id, global_id, digest, at)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// Open opens (creating if needed) the ledger database at path.
func Open(path string) (*Ledger, error) {
	dsn := "file:" + path + "?_busy_timeout=10000&_journal_mode=WAL&_synchronous=NORMAL"
	if driverName == "sqlite" {
		dsn = "file:" + path + "?_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	}
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	// One connection: writes are serialised anyway, and it keeps the
	// per-connection pragmas in force for every statement.
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(schema); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: init %s: %w", path, err)
	}
	if err := migrate(db); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: migrate %s: %w", path, err)
	}
	return &Ledger{db: db, path: path}, nil
}

// migrate brings a ledger written by an earlier version up to the schema:
// columns added since are added to existing tables.
func migrate(db *sql.DB) error {
	for _, c := range []struct{ table, column, def string }{
		{"mailboxes", "generation", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "note", "TEXT NOT NULL DEFAULT ''"},
		{"account_status", "progress_done", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "progress_total", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "progress_start", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "notice_kind", "TEXT NOT NULL DEFAULT ''"},
		{"account_status", "notice_since", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "notice_sent", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "notice_window", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "notice_count", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "first_seen", "INTEGER NOT NULL DEFAULT 0"},
		{"messages", "global_id", "TEXT NOT NULL DEFAULT ''"},
		{"messages", "digest", "TEXT NOT NULL DEFAULT ''"},
	} {
		var n int
		err := db.QueryRow(`SELECT COUNT(*) FROM pragma_table_info(?) WHERE name = ?`, c.table, c.column).Scan(&n)
		if err != nil {
			return err
		}
		if n == 0 {
			if _, err := db.Exec(`ALTER TABLE ` + c.table + ` ADD COLUMN ` + c.column + ` ` + c.def); err != nil {
				return err
			}
		}
	}
	// Indexes on added columns, once they exist.
	if _, err := db.Exec(`CREATE INDEX IF NOT EXISTS messages_global_id ON messages (account, global_id) WHERE global_id != '';
		CREATE INDEX IF NOT EXISTS messages_digest ON messages (account, digest) WHERE digest != ''`); err != nil {
		return err
	}
	return canonicalINBOX(db)
}

// canonicalINBOX moves the keys of a folder INBOX spelled another way
// ("inbox", from folders inbox before names were normalised) to "INBOX",
// merging with what is there, so that an upgrade fetches nothing again.
// Every polled folder has a mailboxes row, so that small table finds them.
func canonicalINBOX(db *sql.DB) error {
	rows, err := db.Query(`SELECT account, mailbox FROM mailboxes WHERE mailbox != 'INBOX' AND upper(mailbox) = 'INBOX'`)
	if err != nil {
		return err
	}
	type spelling struct{ account, mailbox string }
	var found []spelling
	for rows.Next() {
		var sp spelling
		if err := rows.Scan(&sp.account, &sp.mailbox); err != nil {
			rows.Close()
			return err
		}
		found = append(found, sp)
	}
	rows.Close()
	if err := rows.Err(); err != nil || len(found) == 0 {
		return err
	}
	tx, err := db.Begin()
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, sp := range found {
		// Where both spellings recorded one UID, the entry that says more
		// wins: removed (gone upstream) over delivered over the rest.
		if _, err := tx.Exec(`INSERT INTO messages
			(account, mailbox, uidvalidity, uid, state, reason, fingerprint, size, msg_id, global_id, digest, at)
			SELECT account, 'INBOX', uidvalidity, uid, state, reason, fingerprint, size, msg_id, global_id, digest, at
			FROM messages WHERE account = ? AND mailbox = ? AND true
			ON CONFLICT (account, mailbox, uidvalidity, uid) DO UPDATE SET state = excluded.state, reason = excluded.reason,
				fingerprint = excluded.fingerprint, size = excluded.size, msg_id = excluded.msg_id,
				global_id = excluded.global_id, digest = excluded.digest, at = excluded.at
			WHERE `+stateRank("excluded.state")+` > `+stateRank("messages.state"),
			sp.account, sp.mailbox); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM messages WHERE account = ? AND mailbox = ?`, sp.account, sp.mailbox); err != nil {
			return err
		}
		// The mailbox row: the lower floor of the two for one UIDVALIDITY
		// (nothing above it is skipped; what is recorded is not fetched
		// again), and a new generation, which no poll under way holds.
		if _, err := tx.Exec(`INSERT INTO mailboxes (account, mailbox, uidvalidity, uid_floor, generation)
			SELECT account, 'INBOX', uidvalidity, uid_floor, generation + 1 FROM mailboxes WHERE account = ? AND mailbox = ? AND true
			ON CONFLICT (account, mailbox) DO UPDATE SET generation = max(generation, excluded.generation) + 1,
				uid_floor = CASE WHEN uidvalidity = excluded.uidvalidity THEN min(uid_floor, excluded.uid_floor) ELSE uid_floor END`,
			sp.account, sp.mailbox); err != nil {
			return err
		}
		if _, err := tx.Exec(`DELETE FROM mailboxes WHERE account = ? AND mailbox = ?`, sp.account, sp.mailbox); err != nil {
			return err
		}
	}
	return tx.Commit()
}

// stateRank orders states by what they tell of a message, for merging
// two entries of one message.
func stateRank(column string) string {
	return `(CASE ` + column + ` WHEN 'removed' THEN 2 WHEN 'delivered' THEN 1 ELSE 0 END)`
}

// OpenReadOnly opens an existing ledger for reading while maddy may be
// writing it (the status command). It never creates the file.
func OpenReadOnly(path string) (*Ledger, error) {
	dsn := "file:" + path + "?mode=ro&_busy_timeout=10000"
	if driverName == "sqlite" {
		dsn = "file:" + path + "?mode=ro&_pragma=busy_timeout(10000)"
	}
	db, err := sql.Open(driverName, dsn)
	if err != nil {
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	if err := db.Ping(); err != nil {
		db.Close()
		return nil, fmt.Errorf("ledger: open %s: %w", path, err)
	}
	return &Ledger{db: db}, nil
}

// Close closes the database.
func (l *Ledger) Close() error { return l.db.Close() }

// Record stores what became of one message. It returns once the entry
// survives a crash of the process. A delivery or a refusal is counted in
// the account's status totals in the same transaction, so that the totals
// survive a crash as exactly as the entries do.
func (l *Ledger) Record(ctx context.Context, key MailboxKey, e Entry) error {
	if e.At.IsZero() {
		e.At = time.Now()
	}
	e.Reason = safetext.Line(e.Reason, safetext.MaxStored)
	var delivered, refused int
	switch e.State {
	case Delivered:
		delivered = 1
	case Refused:
		refused = 1
	}
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, insertMessage,
			key.Account, key.Mailbox, key.UIDValidity, e.UID, string(e.State), e.Reason,
			e.Fingerprint, e.Size, e.MsgID, e.GlobalID, e.Digest, e.At.Unix())
		if err != nil || delivered+refused == 0 {
			return err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO account_status (account, delivered_total, refused_total) VALUES (?, ?, ?)
			ON CONFLICT (account) DO UPDATE SET delivered_total = delivered_total + excluded.delivered_total,
				refused_total = refused_total + excluded.refused_total`, key.Account, delivered, refused)
		return err
	})
	if err != nil {
		return fmt.Errorf("ledger: record %s/%s: %w", key, e.UID, err)
	}
	return nil
}

// RecordMany stores many entries in one transaction (adopting a mailbox on
// first sight).
func (l *Ledger) RecordMany(ctx context.Context, key MailboxKey, entries []Entry) error {
	now := time.Now().Unix()
	return l.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, insertMessage)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range entries {
			if _, err := stmt.ExecContext(ctx, key.Account, key.Mailbox, key.UIDValidity, e.UID, string(e.State),
				safetext.Line(e.Reason, safetext.MaxStored), e.Fingerprint, e.Size, e.MsgID, e.GlobalID, e.Digest, now); err != nil {
				return err
			}
		}
		return nil
	})
}

// Retry makes entries of an account in the given states (Refused,
// TooLarge, Duplicate), or only those of the given UIDs of one mailbox,
// eligible again, and returns how many it changed. Refused and over-size
// entries are dropped, so that those messages are fetched again; a
// duplicate becomes Retry, so that it is fetched and delivered although a
// copy came from another folder (dedupe took it wrongly for a copy). The
// mailboxes' floors go back so that polls see them.
func (l *Ledger) Retry(ctx context.Context, account string, states []State, mailbox string, uids []string) (int64, error) {
	var dropped []any
	undup := false
	for _, st := range states {
		if st == Duplicate {
			undup = true
		} else {
			dropped = append(dropped, string(st))
		}
	}
	// where selects the account's entries in mailbox and uids, if given.
	where := func(q string, args []any) (string, []any) {
		q += ` WHERE account = ?`
		args = append(args, account)
		if mailbox != "" {
			q += ` AND mailbox = ?`
			args = append(args, mailbox)
		}
		if len(uids) > 0 {
			q += ` AND uid IN (?` + strings.Repeat(", ?", len(uids)-1) + `)`
			for _, u := range uids {
				args = append(args, u)
			}
		}
		return q, args
	}
	var n int64
	err := l.inTx(ctx, func(tx *sql.Tx) error {
		exec := func(q string, args []any) error {
			res, err := tx.ExecContext(ctx, q, args...)
			if err != nil {
				return err
			}
			changed, _ := res.RowsAffected()
			n += changed
			return nil
		}
		if len(dropped) > 0 {
			q, args := where(`DELETE FROM messages`, nil)
			q += ` AND state IN (?` + strings.Repeat(", ?", len(dropped)-1) + `)`
			if err := exec(q, append(args, dropped...)); err != nil {
				return err
			}
		}
		if undup {
			q, args := where(`UPDATE messages SET state = ?`, []any{string(Retry)})
			if err := exec(q+` AND state = ?`, append(args, string(Duplicate))); err != nil {
				return err
			}
		}
		// A new generation: a poll under way, which read the old floor,
		// cannot write its floor over this one (SetMailbox).
		_, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uid_floor = 1, generation = generation + 1 WHERE account = ?`, account)
		return err
	})
	return n, err
}

// StateOf returns the recorded state of one message ("" if none).
func (l *Ledger) StateOf(ctx context.Context, key MailboxKey, uid string) (State, error) {
	var st string
	err := l.db.QueryRowContext(ctx, `SELECT state FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND uid = ?`,
		key.Account, key.Mailbox, key.UIDValidity, uid).Scan(&st)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("ledger: read %s/%s: %w", key, uid, err)
	}
	return State(st), nil
}

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

// Sync makes everything recorded so far durable against a power loss.
// Called once per batch, before any upstream copy is touched.
//
// With synchronous=NORMAL a commit is in the WAL file but not yet on disk;
// SQLite syncs the WAL only at a checkpoint, and a checkpoint gives up
// without syncing while a reader (the status command) holds a snapshot.
// Syncing the WAL file ourselves does not depend on readers: every
// committed frame is in it (a checkpoint that restarts the WAL has synced
// the database file first).
func (l *Ledger) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("ledger: sync: %w", err)
	}
	// The WAL file exists while the database is open in WAL mode.
	f, err := os.OpenFile(l.path+"-wal", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("ledger: sync: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("ledger: sync: %w", err)
	}
	return nil
}

// States returns the state, recorded size and fingerprint of every
// recorded message of the mailbox, by UID. For IMAP mailboxes only UIDs at
// or above minUID are returned (0: all).
func (l *Ledger) States(ctx context.Context, key MailboxKey, minUID uint32) (map[string]Entry, error) {
	query := `SELECT uid, state, size, fingerprint FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity = ?`
	args := []any{key.Account, key.Mailbox, key.UIDValidity}
	if minUID > 0 {
		query += ` AND CAST(uid AS INTEGER) >= ?`
		args = append(args, minUID)
	}
	rows, err := l.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("ledger: read %s: %w", key, err)
	}
	defer rows.Close()
	states := make(map[string]Entry)
	for rows.Next() {
		var e Entry
		var state string
		if err := rows.Scan(&e.UID, &state, &e.Size, &e.Fingerprint); err != nil {
			return nil, fmt.Errorf("ledger: read %s: %w", key, err)
		}
		e.State = State(state)
		states[e.UID] = e
	}
	return states, rows.Err()
}

// Rename moves entries to new UIDs (renames: old → new) within one
// mailbox: a POP3 message whose identity changed because another message
// now shares, or no longer shares, its UIDL.
func (l *Ledger) Rename(ctx context.Context, key MailboxKey, renames map[string]string) error {
	return l.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE OR REPLACE messages SET uid = ?
			WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND uid = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for from, to := range renames {
			if _, err := stmt.ExecContext(ctx, to, key.Account, key.Mailbox, key.UIDValidity, from); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeliveredBefore returns the entries of the mailbox delivered (and kept
// upstream) before cutoff: the candidates of delete_after.
func (l *Ledger) DeliveredBefore(ctx context.Context, key MailboxKey, cutoff time.Time) ([]Entry, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT uid, size, fingerprint, at FROM messages
		WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND state = ? AND at < ?`,
		key.Account, key.Mailbox, key.UIDValidity, string(Delivered), cutoff.Unix())
	if err != nil {
		return nil, fmt.Errorf("ledger: read %s: %w", key, err)
	}
	defer rows.Close()
	var out []Entry
	for rows.Next() {
		e := Entry{State: Delivered}
		var at int64
		if err := rows.Scan(&e.UID, &e.Size, &e.Fingerprint, &at); err != nil {
			return nil, fmt.Errorf("ledger: read %s: %w", key, err)
		}
		e.At = time.Unix(at, 0)
		out = append(out, e)
	}
	return out, rows.Err()
}

// DeliveredElsewhere reports whether the account has the message id
// identifies delivered under another identity than uid in key: another
// folder, or another UID of the same one (a message moved out and back).
// Entries adopted after a renumbering count (Entry.WasDelivered); entries
// adopted without a delivery do not. Two messages that both have a global
// ID are one only if the IDs are equal; an entry recorded before global
// IDs were is compared by content, as a message without one is.
func (l *Ledger) DeliveredElsewhere(ctx context.Context, key MailboxKey, uid string, id Identity) (bool, error) {
	for _, c := range []struct {
		column, value       string
		onlyWithoutGlobalID bool
	}{
		{"global_id", id.GlobalID, false},
		{"digest", id.Digest, id.GlobalID != ""},
		{"fingerprint", id.Fingerprint, id.GlobalID != ""},
	} {
		if c.value == "" {
			continue
		}
		// One indexed column per query: an OR of them would scan.
		q := `SELECT EXISTS (SELECT 1 FROM messages WHERE account = ? AND ` + c.column + ` = ? AND ` + wasDelivered + `
			AND NOT (mailbox = ? AND uidvalidity = ? AND uid = ?)`
		if c.onlyWithoutGlobalID {
			q += ` AND global_id = ''`
		}
		var found bool
		err := l.db.QueryRowContext(ctx, q+`)`, key.Account, c.value, key.Mailbox, key.UIDValidity, uid).Scan(&found)
		if err != nil {
			return false, fmt.Errorf("ledger: %w", err)
		}
		if found {
			return true, nil
		}
	}
	return false, nil
}

// Resize records a new size and fingerprint for an entry: the upstream
// changed the message after it was delivered (a header field added).
func (l *Ledger) Resize(ctx context.Context, key MailboxKey, uid string, size int64, fingerprint string) error {
	_, err := l.db.ExecContext(ctx, `UPDATE messages SET size = ?, fingerprint = ?
		WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND uid = ?`,
		size, fingerprint, key.Account, key.Mailbox, key.UIDValidity, uid)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}

// MarkRemoved records that the upstream copies of these delivered
// messages are gone for certain.
func (l *Ledger) MarkRemoved(ctx context.Context, key MailboxKey, uids []string) error {
	return l.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `UPDATE messages SET state = ?
			WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND uid = ? AND state = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, uid := range uids {
			if _, err := stmt.ExecContext(ctx, string(Removed), key.Account, key.Mailbox, key.UIDValidity, uid, string(Delivered)); err != nil {
				return err
			}
		}
		return nil
	})
}

// Entries returns the recorded messages of the mailbox.
func (l *Ledger) Entries(ctx context.Context, key MailboxKey) ([]Entry, error) {
	entries, err := readEntries(ctx, l.db, key)
	if err != nil {
		return nil, fmt.Errorf("ledger: read %s: %w", key, err)
	}
	return entries, nil
}

// readEntries reads every column of the mailbox's entries, through the
// database or a transaction: the one place that lists them for reading,
// as insertMessage does for writing.
func readEntries(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, key MailboxKey) ([]Entry, error) {
	rows, err := q.QueryContext(ctx, `SELECT uid, state, reason, fingerprint, size, msg_id, global_id, digest, at
		FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity = ?`,
		key.Account, key.Mailbox, key.UIDValidity)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var entries []Entry
	for rows.Next() {
		var e Entry
		var state string
		var at int64
		if err := rows.Scan(&e.UID, &state, &e.Reason, &e.Fingerprint, &e.Size, &e.MsgID, &e.GlobalID, &e.Digest, &at); err != nil {
			return nil, err
		}
		e.State = State(state)
		e.At = time.Unix(at, 0)
		entries = append(entries, e)
	}
	return entries, rows.Err()
}

// Forget removes the entries of messages the upstream no longer has.
func (l *Ledger) Forget(ctx context.Context, key MailboxKey, uids []string) error {
	return l.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, `DELETE FROM messages
			WHERE account = ? AND mailbox = ? AND uidvalidity = ? AND uid = ?`)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, uid := range uids {
			if _, err := stmt.ExecContext(ctx, key.Account, key.Mailbox, key.UIDValidity, uid); err != nil {
				return err
			}
		}
		return nil
	})
}

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

// Rekey moves entries of an old UIDVALIDITY to the new one after the
// upstream renumbered a mailbox, using moves (old UID → new UID) found by
// matching fingerprints. toValidity may equal from's (a server restored
// from a backup reuses UIDs under the same UIDVALIDITY). Entries of the old
// numbering that did not match are dropped: those messages are gone
// upstream. A delivered entry becomes adopted: a message known only by its
// fingerprint is never fetched again, but never deleted upstream either,
// since in a freak case the fingerprint could belong to a different message.
// It keeps its MsgID, so that dedupe still counts it as delivered.
func (l *Ledger) Rekey(ctx context.Context, from MailboxKey, toValidity uint32, moves map[string]string) error {
	return l.inTx(ctx, func(tx *sql.Tx) error {
		entries, err := readEntries(ctx, tx, from)
		if err != nil {
			return err
		}
		var moved []Entry
		for _, e := range entries {
			to, ok := moves[e.UID]
			if !ok {
				continue
			}
			e.UID = to
			if e.State.Committed() {
				e.State = Adopted
			}
			moved = append(moved, e)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity = ?`,
			from.Account, from.Mailbox, from.UIDValidity); err != nil {
			return err
		}
		stmt, err := tx.PrepareContext(ctx, insertMessage)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range moved {
			if _, err := stmt.ExecContext(ctx, from.Account, from.Mailbox, toValidity, e.UID, string(e.State),
				e.Reason, e.Fingerprint, e.Size, e.MsgID, e.GlobalID, e.Digest, e.At.Unix()); err != nil {
				return err
			}
		}
		return nil
	})
}

func (l *Ledger) inTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := l.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		return fmt.Errorf("ledger: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
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
		for _, table := range []string{"mailboxes", "accounts", "account_status", "running_accounts"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE account = ?`, account); err != nil {
				return err
			}
		}
		return nil
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
	// FirstSeen is when the account's status was first saved: how long an
	// account that never worked has been failing.
	FirstSeen time.Time `json:"-"`
	// Note is what the admin should know about the upstream although
	// nothing failed (keep no on a server that can only flag messages).
	Note string `json:"note,omitempty"`
	// Progress of the poll under way; zero between polls.
	Progress Progress `json:"progress"`
}

// Progress is a poll's messages fetched (Done) of those it decided to
// fetch so far (Total), since Started.
type Progress struct {
	Done    int       `json:"done"`
	Total   int       `json:"total"`
	Started time.Time `json:"started"`
}

// SaveStatus stores an account's status. Its delivered and refused totals
// are kept by Record; FirstSeen is set once, by the first save. The last
// error and the note may quote the upstream: they are stored as one bounded
// line without control characters, as refusal reasons are.
func (l *Ledger) SaveStatus(ctx context.Context, st AccountStatus) error {
	now := time.Now().Unix()
	_, err := l.db.ExecContext(ctx, `INSERT INTO account_status
		(account, protocol, host, state, last_success, last_error, next_poll, updated, note,
			progress_done, progress_total, progress_start, first_seen)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (account) DO UPDATE SET first_seen = CASE first_seen WHEN 0 THEN excluded.first_seen ELSE first_seen END,
			protocol = excluded.protocol, host = excluded.host,
			state = excluded.state, last_success = excluded.last_success, last_error = excluded.last_error,
			next_poll = excluded.next_poll, updated = excluded.updated, note = excluded.note,
			progress_done = excluded.progress_done, progress_total = excluded.progress_total,
			progress_start = excluded.progress_start`,
		st.Account, st.Protocol, st.Host, st.State, unix(st.LastSuccess), safetext.Line(st.LastError, safetext.MaxStored),
		unix(st.NextPoll), now, safetext.Line(st.Note, safetext.MaxStored), st.Progress.Done, st.Progress.Total,
		unix(st.Progress.Started), cmp.Or(unix(st.FirstSeen), now))
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
			s.progress_done, s.progress_total, s.progress_start, s.first_seen,
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
		if err := rows.Scan(&st.Account, &st.Protocol, &st.Host, &st.State, &last, &st.LastError, &next, &updated,
			&st.Delivered, &st.Refused, &st.Note, &st.Progress.Done, &st.Progress.Total, &pstart, &first,
			&st.RefusedWaiting, &st.TooLargeWaiting, &st.AdoptedMaxAge); err != nil {
			return nil, fmt.Errorf("ledger: %w", err)
		}
		st.LastSuccess, st.NextPoll, st.Updated = fromUnix(last), fromUnix(next), fromUnix(updated)
		st.FirstSeen = fromUnix(first)
		st.Progress.Started = fromUnix(pstart)
		out = append(out, st)
	}
	return out, rows.Err()
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

// FormatUID renders an IMAP UID as ledger text.
func FormatUID(uid uint32) string { return strconv.FormatUint(uint64(uid), 10) }
