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
//
// The ledger is also the status channel between the running maddy and the
// CLI, which reads it from another process (OpenReadOnly): the running
// maddy saves each account's status and which accounts it runs, for
// `remote-pull status` and `remote-pull forget`.
package ledger

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"strings"
)

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
CREATE INDEX IF NOT EXISTS messages_uid_number ON messages (account, mailbox, uidvalidity, CAST(uid AS INTEGER));
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
	progress_bytes_done  INTEGER NOT NULL DEFAULT 0,
	progress_bytes_total INTEGER NOT NULL DEFAULT 0,
	notice_kind     TEXT    NOT NULL DEFAULT '',
	notice_since    INTEGER NOT NULL DEFAULT 0,
	notice_sent     INTEGER NOT NULL DEFAULT 0,
	notice_window   INTEGER NOT NULL DEFAULT 0,
	notice_count    INTEGER NOT NULL DEFAULT 0,
	first_seen      INTEGER NOT NULL DEFAULT 0,
	connections     TEXT    NOT NULL DEFAULT ''
) WITHOUT ROWID;
`

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
	if _, err := db.Exec(schema + placementsSchema + limitsSchema + pageCursorsSchema); err != nil {
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
		{"account_status", "progress_bytes_done", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "progress_bytes_total", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "notice_kind", "TEXT NOT NULL DEFAULT ''"},
		{"account_status", "notice_since", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "notice_sent", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "notice_window", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "notice_count", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "first_seen", "INTEGER NOT NULL DEFAULT 0"},
		{"account_status", "connections", "TEXT NOT NULL DEFAULT ''"},
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
		if _, err := tx.Exec(`INSERT INTO messages (account, mailbox, uidvalidity, `+entryColumns+`)
			SELECT account, 'INBOX', uidvalidity, `+entryColumns+`
			FROM messages WHERE account = ? AND mailbox = ? AND true
			ON CONFLICT (account, mailbox, uidvalidity, uid) DO UPDATE SET `+takeExcluded()+`
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

// takeExcluded is the SET clause of an upsert of entries that takes every
// column but the UID (part of the key) from the row it would have inserted.
func takeExcluded() string {
	var set []string
	for _, c := range strings.Split(entryColumns, ", ") {
		if c != "uid" {
			set = append(set, c+" = excluded."+c)
		}
	}
	return strings.Join(set, ", ")
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
