package ledger

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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

// FormatUID renders an IMAP UID as ledger text.
func FormatUID(uid uint32) string { return strconv.FormatUint(uint64(uid), 10) }

// entryColumns are an Entry's columns: the one list of them, in the
// order of insertArgs and of readEntries' Scan.
const entryColumns = `uid, state, reason, fingerprint, size, msg_id, global_id, digest, at`

// insertMessage records one entry, with the values of insertArgs.
const insertMessage = `INSERT OR REPLACE INTO messages (account, mailbox, uidvalidity, ` + entryColumns + `)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// insertArgs are the values of insertMessage for e in key.
func insertArgs(key MailboxKey, e Entry) []any {
	return []any{key.Account, key.Mailbox, key.UIDValidity,
		e.UID, string(e.State), e.Reason, e.Fingerprint, e.Size, e.MsgID, e.GlobalID, e.Digest, e.At.Unix()}
}

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
		_, err := tx.ExecContext(ctx, insertMessage, insertArgs(key, e)...)
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
	now := time.Now()
	return l.inTx(ctx, func(tx *sql.Tx) error {
		stmt, err := tx.PrepareContext(ctx, insertMessage)
		if err != nil {
			return err
		}
		defer stmt.Close()
		for _, e := range entries {
			e.Reason = safetext.Line(e.Reason, safetext.MaxStored)
			e.At = now
			if _, err := stmt.ExecContext(ctx, insertArgs(key, e)...); err != nil {
				return err
			}
		}
		return nil
	})
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

// States returns the state, recorded size and fingerprint of every
// recorded message of the mailbox, by UID. For IMAP mailboxes only UIDs at
// or above minUID are returned (0: all).
func (l *Ledger) States(ctx context.Context, key MailboxKey, minUID uint32) (map[string]Entry, error) {
	query := `SELECT uid, state, size, fingerprint FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity = ?`
	args := []any{key.Account, key.Mailbox, key.UIDValidity}
	if minUID > 0 {
		query += ` AND ` + uidNumber + ` >= ?`
		args = append(args, minUID)
	}
	states := make(map[string]Entry)
	if err := l.readStates(ctx, key, states, query, args); err != nil {
		return nil, err
	}
	return states, nil
}

// StatesOf is States for the given UIDs only: a mailbox listed a page at
// a time (source.Paged) looks up its page, not every entry it ever had.
func (l *Ledger) StatesOf(ctx context.Context, key MailboxKey, uids []string) (map[string]Entry, error) {
	states := make(map[string]Entry, len(uids))
	for chunk := range slices.Chunk(uids, 500) {
		query := `SELECT uid, state, size, fingerprint FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity = ?
			AND uid IN (?` + strings.Repeat(", ?", len(chunk)-1) + `)`
		args := []any{key.Account, key.Mailbox, key.UIDValidity}
		for _, uid := range chunk {
			args = append(args, uid)
		}
		if err := l.readStates(ctx, key, states, query, args); err != nil {
			return nil, err
		}
	}
	return states, nil
}

func (l *Ledger) readStates(ctx context.Context, key MailboxKey, states map[string]Entry, query string, args []any) error {
	rows, err := l.db.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("ledger: read %s: %w", key, err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Entry
		var state string
		if err := rows.Scan(&e.UID, &state, &e.Size, &e.Fingerprint); err != nil {
			return fmt.Errorf("ledger: read %s: %w", key, err)
		}
		e.State = State(state)
		states[e.UID] = e
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("ledger: read %s: %w", key, err)
	}
	return nil
}

// uidNumber is an IMAP UID as a number, as the messages_uid_number
// index holds it: a UID is stored as text, and "9" > "10" as text.
const uidNumber = `CAST(uid AS INTEGER)`

// HighestUID returns the highest UID recorded in an IMAP mailbox, in any
// state, or 0 if none: a server that has handed out that UID must report
// a higher UIDNEXT, and the message under it is the one the loop checks
// for a restore from backup (account's folderPass.renumbering). One
// lookup in the messages_uid_number index, whatever the mailbox's size.
func (l *Ledger) HighestUID(ctx context.Context, key MailboxKey) (uint32, error) {
	var highest sql.NullInt64
	err := l.db.QueryRowContext(ctx, `SELECT MAX(`+uidNumber+`) FROM messages WHERE account = ? AND mailbox = ? AND uidvalidity = ?`,
		key.Account, key.Mailbox, key.UIDValidity).Scan(&highest)
	if err != nil {
		return 0, fmt.Errorf("ledger: read %s: %w", key, err)
	}
	if highest.Int64 <= 0 || highest.Int64 > 1<<32-1 {
		return 0, nil // none, or not an IMAP UID
	}
	return uint32(highest.Int64), nil
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
// database or a transaction.
func readEntries(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, key MailboxKey) ([]Entry, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+entryColumns+`
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
	for _, c := range identityColumns(id) {
		var found bool
		err := l.db.QueryRowContext(ctx, deliveredElsewhereQuery(c),
			key.Account, c.value, key.Mailbox, key.UIDValidity, uid).Scan(&found)
		if err != nil {
			return false, fmt.Errorf("ledger: %w", err)
		}
		if found {
			return true, nil
		}
	}
	return false, nil
}

// identityColumn is one column an Identity is looked up by, and its index.
type identityColumn struct {
	column, index, value string
	onlyWithoutGlobalID  bool
}

// identityColumns are id's non-empty columns, in the order DeliveredElsewhere
// asks: a copy with a global ID is matched by content only with entries
// that have none.
func identityColumns(id Identity) []identityColumn {
	var cols []identityColumn
	for _, c := range []identityColumn{
		{"global_id", "messages_global_id", id.GlobalID, false},
		{"digest", "messages_digest", id.Digest, id.GlobalID != ""},
		{"fingerprint", "messages_fingerprint", id.Fingerprint, id.GlobalID != ""},
	} {
		if c.value != "" {
			cols = append(cols, c)
		}
	}
	return cols
}

// deliveredElsewhereQuery asks for a delivered entry with one column's
// value under another identity, one indexed column per query (an OR of
// them would scan). The index is named: left to itself, SQLite reads all
// of the account's entries by the primary key instead, once the state
// and identity terms make the column's index not a covering one, and
// every delivery of a dedupe account then cost time in proportion to the
// entries recorded. The column is also said to be non-empty in so many
// words: the global_id and digest indexes are partial (WHERE ... != ”),
// and SQLite uses a partial index only where the query implies its WHERE.
func deliveredElsewhereQuery(c identityColumn) string {
	q := `SELECT EXISTS (SELECT 1 FROM messages INDEXED BY ` + c.index + `
		WHERE account = ? AND ` + c.column + ` = ? AND ` + c.column + ` != '' AND ` + wasDelivered + `
		AND NOT (mailbox = ? AND uidvalidity = ? AND uid = ?)`
	if c.onlyWithoutGlobalID {
		q += ` AND global_id = ''`
	}
	return q + `)`
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

// lostUIDValidity keys the entries of delivered messages a renumbering
// took out of their IMAP folder ("OLDVALIDITY/UID"): no server gives it
// (RFC 3501 2.3.1.1: UIDVALIDITY is nonzero), so no poll reads them;
// only DeliveredElsewhere, which looks across the account, finds them.
const lostUIDValidity = 0

// Rekey moves entries of an old UIDVALIDITY to the new one after the
// upstream renumbered a mailbox, using moves (old UID → new UID) found by
// matching fingerprints. toValidity may equal from's (a server restored
// from a backup reuses UIDs under the same UIDVALIDITY). Entries of the old
// numbering that did not match are dropped: those messages are gone
// upstream, and their UIDs may name new mail. A delivered one is kept as a
// tombstone (lostUIDValidity), for dedupe: a copy of it elsewhere is still
// one. A delivered entry that matched becomes adopted: a message known only by its
// fingerprint is never fetched again, but never deleted upstream either,
// since in a freak case the fingerprint could belong to a different message.
// It keeps its MsgID, so that dedupe still counts it as delivered.
func (l *Ledger) Rekey(ctx context.Context, from MailboxKey, toValidity uint32, moves map[string]string) error {
	return l.inTx(ctx, func(tx *sql.Tx) error {
		entries, err := readEntries(ctx, tx, from)
		if err != nil {
			return err
		}
		var moved, lost []Entry
		for _, e := range entries {
			to, ok := moves[e.UID]
			if !ok {
				if e.State.Committed() || (e.State == Adopted && e.MsgID != "") {
					e.UID = fmt.Sprintf("%d/%s", from.UIDValidity, e.UID)
					e.State = Removed
					lost = append(lost, e)
				}
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
		toKey := from
		toKey.UIDValidity = toValidity
		for _, e := range moved {
			if _, err := stmt.ExecContext(ctx, insertArgs(toKey, e)...); err != nil {
				return err
			}
		}
		lostKey := from
		lostKey.UIDValidity = lostUIDValidity
		for _, e := range lost {
			if _, err := stmt.ExecContext(ctx, insertArgs(lostKey, e)...); err != nil {
				return err
			}
		}
		return nil
	})
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
		if _, err := tx.ExecContext(ctx, `UPDATE mailboxes SET uid_floor = 1, generation = generation + 1 WHERE account = ?`, account); err != nil {
			return err
		}
		return dropPageCursors(ctx, tx, account)
	})
	return n, err
}
