// Package policy is what an account does with what it finds upstream:
// its options (Policy, which internal/config reads the account's directives
// straight into) and the grammar of its folders (names, patterns, INBOX
// in any case). It knows nothing of the poll loop, so that the
// configuration can be read and checked without it.
package policy

import "time"

// Policy is what an account does with its messages: which folders it
// polls, when, what it keeps, where delivered messages go. internal/config
// reads an account's directives straight into it (config.Account embeds
// it), so a new option is a field here, its directive there, and the docs.
type Policy struct {
	// Folders are names and patterns (folders.go); ExcludeFolders are
	// patterns taken out of what they match.
	Folders        []string
	ExcludeFolders []string
	Keep           bool
	// Idle: watch each folder for new mail (IMAP IDLE) where the server
	// can, polling at once when it announces some.
	Idle         bool
	PollInterval time.Duration
	// MaxConnections bounds the account's simultaneous upstream
	// connections: the poll's, IDLE's and any other (max_connections).
	// 0: no bound.
	MaxConnections int

	// MaxMessageSize: larger messages are not downloaded; they stay
	// upstream, recorded as too large.
	MaxMessageSize int64
	// MaxMessagesPerPoll bounds one poll (0: no bound); the next poll
	// follows at once.
	MaxMessagesPerPoll int
	// FirstSyncNew: a mailbox seen for the first time is adopted as it is
	// (recorded, not downloaded); only later mail is fetched.
	FirstSyncNew bool
	// QuarantineFolders are delivered with maddy's quarantine flag.
	QuarantineFolders []string
	// MaxAge: at a folder's first sync, a message older than this
	// (INTERNALDATE) is recorded as adopted, not fetched (FirstSyncCutoff).
	// 0: no bound.
	MaxAge time.Duration
	// MarkSeen (keep yes): \Seen is set upstream on delivered messages.
	MarkSeen bool
	// DeleteAfter (keep yes): delivered messages are removed upstream this
	// long after their delivery. 0: never.
	DeleteAfter time.Duration
	// MirrorFolders: each folder's messages go to the same-named local
	// folder (SPECIAL-USE ones to the local folder with the attribute);
	// LocalFolder maps upstream folders to local ones, over it.
	MirrorFolders bool
	LocalFolder   map[string]string
	// KeepFlags: the upstream copy's flags are set on the delivered one.
	KeepFlags bool
	// Dedupe (dedupe message_id): a message the account already delivered
	// under another identity (another folder, or another UID: moved out and
	// back) is recorded as a duplicate, not delivered again: the same
	// upstream global ID, or else the same bytes (SHA-256) or the same
	// Message-ID and fingerprint (ledger.Identity).
	Dedupe bool
	// Notify: where notices about the account go (notice.go); empty: none.
	Notify []string
	// DownloadBudget: bytes the account downloads in any 24 hours at most
	// (download_budget); the import is paced to stay under it. 0: no
	// budget.
	DownloadBudget int64
}
