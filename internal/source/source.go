// Package source defines what the account loop needs from an upstream
// mailbox, whatever the protocol: list what is there, stream the messages it
// asks for, and remove the ones it has finished with. The IMAP
// implementation is in imapsrc, the POP3 one in pop3src, mbox files and
// Maildir trees in filesrc.
//
// A source knows nothing of maddy or the ledger. It never removes or flags
// a message on its own: Remove is called by the account loop, and only for
// messages that maddy committed and the ledger recorded.
package source

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
)

// Protocol names, spelt as trace fields, logs, status and metrics show
// them. (The configuration's directives are their lower-case forms.)
const (
	IMAP    = "IMAP"
	POP3    = "POP3"
	Mbox    = "mbox"
	Maildir = "Maildir"
)

// Upstream is a configured upstream server and account.
type Upstream interface {
	// Connect dials, secures and authenticates a session.
	Connect(ctx context.Context) (Session, error)
	// Protocol is IMAP or POP3, for trace fields and logs.
	Protocol() string
	// Host is the configured host name.
	Host() string
}

// Session is one authenticated connection.
type Session interface {
	// Open selects a mailbox.
	Open(ctx context.Context, mailbox string) (Mailbox, error)
	// RemoteAddr is the upstream IP address, for the trace field.
	RemoteAddr() string
	// Close ends the session politely (LOGOUT, QUIT). For POP3, QUIT is
	// what makes deletions take effect; a Close that fails leaves them
	// undone, which is safe.
	Close(ctx context.Context) error
	// Abort drops the connection at once, without a goodbye.
	Abort()
}

// Message is one upstream message as listed. A folder pass holds one for
// every message of its folder until it ends, so it is kept small: what
// only some upstreams list is in Extra, nil where none of it is set.
type Message struct {
	UID  string // IMAP UID in decimal, or POP3 UIDL
	Size int64  // as the server reports it: RFC822.SIZE or LIST
	// Date is the server's arrival time (IMAP INTERNALDATE); zero if the
	// protocol has none (POP3).
	Date time.Time
	// Flags are the message's flags and keywords upstream as listed (IMAP;
	// \Recent and \Deleted left out), for keep_flags. Read only: a source
	// may give messages with the same flags one shared slice.
	Flags []string
	// Extra holds what only some upstreams list; read it through
	// GlobalID, Labels, Base and Fingerprint.
	Extra   *MessageExtra
	Deleted bool // flagged \Deleted by some client: not ours to fetch
	// Ambiguous: a ledger entry under UID cannot prove it was this message
	// (a POP3 UIDL the server gave several messages; no UIDL at all).
	Ambiguous bool
}

// MessageExtra is what only some upstreams list about a message.
type MessageExtra struct {
	// Base is the identity the server gave, when UID was made from it and
	// Fingerprint because other messages share it (POP3: "UIDL FP"). The
	// ledger may hold this message under Base, recorded while it was alone.
	Base        string
	Fingerprint string
	// GlobalID is the upstream's own ID of the message, the same in every
	// folder that holds it (Gmail's X-GM-MSGID as "gm:ID"), or "": dedupe
	// recognises a copy by it before the download.
	GlobalID string
	// Labels are the message's Gmail labels as X-GM-LABELS lists them
	// (system labels with a backslash: `\Inbox`, `\Sent`, `\Starred`...;
	// user labels as named), or nil where the upstream has no labels. A
	// Google Takeout mbox carries them in X-Gmail-Labels (filesrc).
	// With local_folders mirror, a message with labels is downloaded once
	// and stored in each label's local folder (delivery.GmailPlacements).
	Labels []string
}

// Base is MessageExtra.Base, or "".
func (m Message) Base() string {
	if m.Extra == nil {
		return ""
	}
	return m.Extra.Base
}

// Fingerprint is MessageExtra.Fingerprint, or "".
func (m Message) Fingerprint() string {
	if m.Extra == nil {
		return ""
	}
	return m.Extra.Fingerprint
}

// GlobalID is MessageExtra.GlobalID, or "".
func (m Message) GlobalID() string {
	if m.Extra == nil {
		return ""
	}
	return m.Extra.GlobalID
}

// Labels are MessageExtra.Labels, or nil.
func (m Message) Labels() []string {
	if m.Extra == nil {
		return nil
	}
	return m.Extra.Labels
}

// Mailbox is an opened upstream mailbox.
type Mailbox interface {
	// UIDValidity of the mailbox; 0 for POP3.
	UIDValidity() uint32
	// List returns the messages at or above floor, the ledger's "everything
	// below is final" mark (IMAP UIDs; POP3 ignores it and lists all).
	List(ctx context.Context, floor uint32) ([]Message, error)
	// Complete reports whether List returns the whole mailbox, so that
	// ledger entries of messages not in it may be forgotten (POP3). IMAP
	// lists from the floor up and never needs to forget: UIDs are not
	// reused.
	Complete() bool
	// Fetch streams the given messages. spool is called with each message's
	// body and must read it to its end; deliver is then called with the
	// message and spool's result. The split exists because an IMAP server may
	// send a message's UID after its body. An error from spool or deliver
	// stops the fetch and is returned.
	Fetch(ctx context.Context, uids []string, spool SpoolFunc, deliver DeliverFunc) error
	// Fingerprints returns the fingerprint of each listed message, by UID,
	// computed as Fingerprint does from the header. Used to recognise
	// messages after a UIDVALIDITY change without downloading them, and to
	// confirm a message is the one recorded before its removal is finished.
	// A UID is absent when the server gave nothing for it, and maps to ""
	// when the header it gave does not parse.
	Fingerprints(ctx context.Context, uids []string) (map[string]string, error)
	// Remove deletes the given messages upstream, and only them. It reports
	// which were removed for certain (or, for a DeferredRemover session,
	// will be at a good Close); a server that cannot do that safely (IMAP
	// without UIDPLUS) flags them and removes none.
	Remove(ctx context.Context, uids []string) (removed []string, err error)
}

// StableIdentities is a mailbox that lists the whole mailbox (Complete)
// under identities no other message is ever given (a file source: a hash
// of the content, a Maildir file's unique name). An entry whose message is
// not listed is kept, not forgotten as a POP3 one is: the message may come
// back (a file restored, or read while another program rewrote it), and
// is then the message delivered.
type StableIdentities interface {
	StableIdentities()
}

// Paged is a mailbox listed a page at a time, so that a listing is never
// held whole (a file source: an mbox of millions of messages). List
// returns the page that starts at the cursor; Advance, called once a pass
// has done all it decided for its page, moves the cursor past it. Cursor
// is the cursor as text for the ledger to keep; SetCursor puts such a
// text back ("": the beginning), and the mailbox checks it against what
// it reads before trusting it. PagesLeft reports that the listing stopped
// short of the end, BytesLeft how much lies after it (for progress). Its
// identities are stable (StableIdentities): an entry not on this page is
// not gone.
type Paged interface {
	PagesLeft() bool
	BytesLeft() int64
	Advance()
	Cursor() string
	SetCursor(string)
}

// DeferredRemover is a session whose removals take effect only when Close
// succeeds (POP3 applies DELE at QUIT; a session that ends any other way
// rolls them back).
type DeferredRemover interface {
	DeferredRemoval()
}

// Spooled is what a SpoolFunc made of a message body; Discard frees it.
type Spooled interface{ Discard() }

// SpoolFunc reads a message body to its end.
type SpoolFunc func(body io.Reader) (Spooled, error)

// DeliverFunc takes a spooled message; it owns s from then on.
type DeliverFunc func(uid string, s Spooled) error

// FingerprintFields are the header fields a fingerprint is made of.
var FingerprintFields = []string{"Message-Id", "Date", "From", "Subject"}

// Fingerprint identifies a message by a few header fields and its size, so
// that the same message can be recognised under a new UID without
// downloading it again.
func Fingerprint(h textproto.Header, size int64) string {
	sum := sha256.New()
	for _, k := range FingerprintFields {
		io.WriteString(sum, k)
		io.WriteString(sum, ":")
		io.WriteString(sum, strings.TrimSpace(h.Get(k)))
		io.WriteString(sum, "\n")
	}
	io.WriteString(sum, strconv.FormatInt(size, 10))
	return hex.EncodeToString(sum.Sum(nil)[:16])
}

// SizedFingerprinter is a mailbox that can compute fingerprints taking
// each message at a given size rather than the listed one: to recognise a
// message the server changed after serving it (GNU Mailutils pop3d adds an
// X-UIDL field, so the same UIDL is listed larger in the next session).
type SizedFingerprinter interface {
	FingerprintsAt(ctx context.Context, sizes map[string]int64) (map[string]string, error)
}

// SpecialUser is a mailbox that can tell its SPECIAL-USE attribute
// (RFC 6154: \Sent, \Drafts, \Junk, \Trash, \Archive), or "".
type SpecialUser interface {
	SpecialUse(ctx context.Context) (string, error)
}

// Delimited is a mailbox whose name is a path in the upstream's folder
// hierarchy: it tells the delimiter between the parts ("/" on Gmail and
// Cyrus with unixhierarchysep, "." on Courier and Dovecot's Maildir++),
// or "" for a flat name, so that local_folders mirror can rebuild the
// same tree under maddy's own delimiter.
type Delimited interface {
	HierarchyDelimiter(ctx context.Context) (string, error)
}

// VirtualFolder is a mailbox that can tell whether it is a view of
// messages kept in other folders (IMAP \All, \Flagged, \Important:
// Gmail's All Mail, Starred, Important), which local_folders mirror does
// not make locally.
type VirtualFolder interface {
	Virtual(ctx context.Context) (bool, error)
}

// SeenMarker is a mailbox that can set \Seen on messages (mark_seen).
type SeenMarker interface {
	MarkSeen(ctx context.Context, uids []string) error
}

// Disposer is a session that moves the messages it removes into a folder
// (IMAP move_to, or the Trash of a server without UIDPLUS): the account
// never polls that folder, or every message would arrive twice.
// DisposalFolder names it, or is "" where messages are not moved.
type Disposer interface {
	DisposalFolder(ctx context.Context) (string, error)
}

// MailboxDisposer is a mailbox that can say how delivered messages leave
// it (IMAP: expunged, moved, only flagged, or left in place), asking the
// server what it can do once per session. A mailbox that is not one
// removes exactly what it is asked to (the zero Removal: POP3).
type MailboxDisposer interface {
	Disposal(ctx context.Context) (Removal, error)
}

// Removal is how delivered messages leave one upstream folder: a value
// the account's rules take (account.RulesFor) and 'check' shows.
type Removal struct {
	Mode RemovalMode
	// Folder is where removed messages are moved (the Trash, or move_to),
	// or "".
	Folder string
}

// FlagOnly: delivered messages can only be flagged \Deleted here, so one
// already flagged needs nothing more.
func (r Removal) FlagOnly() bool { return r.Mode == RemoveFlagOnly }

// RemovesNothing: delivered messages stay where they are, untouched.
func (r Removal) RemovesNothing() bool { return r.Mode == RemoveNothing }

// RemovalMode is a way delivered messages leave a folder, in order of
// preference. None of them can touch a message remote_pull did not name.
type RemovalMode int

const (
	// RemoveExpunge: deleted exactly: IMAP UID STORE \Deleted, then UID
	// EXPUNGE of exactly those UIDs (UIDPLUS, or IMAP4rev2); POP3 DELE.
	RemoveExpunge RemovalMode = iota
	// RemoveToTrash: without UIDPLUS but with MOVE, UID MOVE to the
	// folder marked \Trash (SPECIAL-USE). A plain EXPUNGE could take
	// messages other clients flagged.
	RemoveToTrash
	// RemoveFlagOnly: neither: flagged \Deleted only, and left for
	// another client to expunge; the upstream folder grows.
	RemoveFlagOnly
	// RemoveMoveTo: UID MOVE to the move_to folder.
	RemoveMoveTo
	// RemoveCopyTo: UID COPY to the move_to folder, \Deleted and UID
	// EXPUNGE of exactly those UIDs; never a bare EXPUNGE.
	RemoveCopyTo
	// RemoveNothing: left in place (move_to on a server that can neither
	// move nor expunge exactly, or the disposal folder itself).
	RemoveNothing
)

// String completes "delivered messages are ...", as logs and 'check'
// say it.
func (m RemovalMode) String() string {
	switch m {
	case RemoveExpunge:
		return "deleted (UID EXPUNGE)"
	case RemoveToTrash:
		return "moved to the Trash folder (the server lacks UIDPLUS; UID MOVE)"
	case RemoveFlagOnly:
		return "flagged \\Deleted but not removed (the server lacks UIDPLUS and MOVE, or has no Trash folder; move_to names one): the upstream folder grows until another client expunges it"
	case RemoveMoveTo:
		return "moved to the move_to folder"
	case RemoveCopyTo:
		return "copied to the move_to folder, then deleted (UID COPY, UID EXPUNGE)"
	case RemoveNothing:
		return "left in place: move_to needs MOVE or UIDPLUS, and the server has neither"
	}
	return fmt.Sprintf("RemovalMode(%d)", int(m))
}

// UIDNexter is a mailbox that knows the UID the server will give the
// next message (IMAP UIDNEXT at SELECT), or 0.
type UIDNexter interface {
	UIDNext() uint32
}

// Identifier is a mailbox that can say how its messages are told apart
// (POP3: UIDL, or UIDL and fingerprint), for 'check'; "" if by UID.
type Identifier interface {
	Identity() string
}

// FolderLister is a session that can list the upstream's selectable
// folders (IMAP LIST), for folder patterns.
type FolderLister interface {
	Folders(ctx context.Context) ([]string, error)
}

// ReadOnlyConnector is an upstream that can open sessions that change
// nothing at all upstream (IMAP EXAMINE), for 'maddy remote-pull check'.
type ReadOnlyConnector interface {
	ConnectReadOnly(ctx context.Context) (Session, error)
}

// Describer is a session that can say how it is connected, for
// 'maddy remote-pull check': TLS version and cipher, certificate subject,
// server capabilities. Nothing secret.
type Describer interface {
	Describe() []string
}

// Watcher is an upstream that can announce new mail as it arrives (IMAP
// IDLE). Watch blocks until ctx ends (returning nil) or the connection fails
// (returning an error, after which the caller reconnects). ErrNoPush means
// the server cannot do it: poll instead.
type Watcher interface {
	Watch(ctx context.Context, folder string, ev WatchEvents) error
}

// WatchEvents are what a Watcher reports while it watches; neither
// function may block.
type WatchEvents struct {
	Idling  func() // the connection is up and idling on the folder
	NewMail func() // the server announced more messages than before
}

// ErrNoPush: the upstream offers no way to announce new mail.
var ErrNoPush = errors.New("server offers no IDLE: polling only")

// BusyError is an upstream asking to come back later (POP3 [IN-USE],
// [LOGIN-DELAY], [SYS/TEMP]; IMAP [UNAVAILABLE], [SERVERBUG], [LIMIT],
// [INUSE] at login): the account waits without logging an error at every
// try, and its owner is not told of a refused login.
type BusyError struct{ Err error }

func (e *BusyError) Error() string { return "upstream busy: " + e.Err.Error() }
func (e *BusyError) Unwrap() error { return e.Err }

// ReconsentError: the OAuth2 token endpoint refused the refresh token
// (consent revoked, grant expired). Only a new consent helps, so the account
// waits for the admin instead of retrying.
// With AppOnly the refusal is of an application's own credentials (client
// credentials grant): the admin fixes the secret or the permissions instead.
type ReconsentError struct {
	Err     error
	AppOnly bool
}

// AppOnlyRefused is in the text of a refused client credentials grant,
// which the status keeps and the owner's notice recognises.
const AppOnlyRefused = "OAuth2 client credentials refused"

func (e *ReconsentError) Error() string {
	if e.AppOnly {
		return AppOnlyRefused + " (check client_secret_file, tenant and the application's permissions): " + e.Err.Error()
	}
	return "OAuth2 refresh refused, re-consent needed (maddy remote-pull oauth2-login): " + e.Err.Error()
}
func (e *ReconsentError) Unwrap() error { return e.Err }

// TokenRefusedError: the server refused an OAuth2 access token that was
// not just refreshed; the source refreshes it and connects again.
type TokenRefusedError struct{ Err error }

func (e *TokenRefusedError) Error() string { return "access token refused: " + e.Err.Error() }
func (e *TokenRefusedError) Unwrap() error { return e.Err }

// FolderError: the server refused one folder (SELECT answered NO: renamed
// or deleted upstream). The account's other folders go on as usual.
type FolderError struct{ Err error }

func (e *FolderError) Error() string { return e.Err.Error() }
func (e *FolderError) Unwrap() error { return e.Err }

// AuthError is a login the server refused. Retrying soon will not help and
// may get the upstream account locked, so the account loop backs off longer.
type AuthError struct{ Err error }

func (e *AuthError) Error() string { return "authentication failed: " + e.Err.Error() }
func (e *AuthError) Unwrap() error { return e.Err }

// DescribeTLS renders the parts of a TLS connection an admin checks.
func DescribeTLS(cs tls.ConnectionState) []string {
	if cs.Version == 0 {
		return []string{"TLS: none"}
	}
	out := []string{fmt.Sprintf("TLS: %s, %s", tls.VersionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite))}
	if len(cs.PeerCertificates) > 0 {
		c := cs.PeerCertificates[0]
		out = append(out, fmt.Sprintf("certificate: %s, issued by %s, valid until %s (verified)",
			c.Subject.CommonName, c.Issuer.CommonName, c.NotAfter.Format("2006-01-02")))
	}
	return out
}

// Endpoint says how to reach and log in to one upstream account, whatever
// the protocol; imapsrc and pop3src embed it in their configurations.
type Endpoint struct {
	Host        string // for TLS verification and the trace field
	Port        string
	ImplicitTLS bool        // tls://; otherwise STARTTLS/STLS is mandatory
	TLS         *tls.Config // maddy's tls_client settings (may be nil)
	// Plaintext: no TLS at all (insecure_plaintext yes, checked by the
	// config to be loopback or an explicitly listed host).
	Plaintext bool
	// Pins are tls_pin SPKI pins, checked on top of normal verification.
	Pins []string
	// Auth is the mechanism to use: AuthAuto or one the protocol knows.
	Auth string
	// Token gives OAuth2 access tokens (XOAUTH2, OAUTHBEARER).
	Token    TokenFunc
	Username string
	// Password is asked for at every login, so that a reload of a
	// password file takes effect at the next connection.
	Password func() (string, error)
	// PasswordRefused, if set, is told when the upstream refused the
	// password, so that a password_command runs again for the next login.
	PasswordRefused func()
	// Timeout bounds each command, and each stretch without progress while
	// streaming messages.
	Timeout time.Duration
}

// TLSConfig is the client TLS configuration for the endpoint: the
// tls_client settings, the host name always verified, TLS 1.2 at least,
// and tls_pin pins on top.
func (e *Endpoint) TLSConfig() *tls.Config {
	cfg := &tls.Config{}
	if e.TLS != nil {
		cfg = e.TLS.Clone()
	}
	cfg.ServerName = e.Host
	cfg.InsecureSkipVerify = false
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if len(e.Pins) > 0 {
		cfg.VerifyConnection = VerifyPins(e.Pins)
	}
	return cfg
}

// VerifyPins returns a tls.Config.VerifyConnection function that accepts
// the connection only if the server's leaf certificate has one of the
// given SHA-256 SPKI pins ("sha256/BASE64", as in HPKP and curl's
// --pinnedpubkey). It runs after, and in addition to, the normal chain and
// host name verification.
func VerifyPins(pins []string) func(tls.ConnectionState) error {
	return func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("tls_pin: the server sent no certificate")
		}
		sum := sha256.Sum256(cs.PeerCertificates[0].RawSubjectPublicKeyInfo)
		got := "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
		for _, p := range pins {
			if p == got {
				return nil
			}
		}
		return fmt.Errorf("tls_pin: the server's key %s matches no configured pin", got)
	}
}

// Auth mechanisms an account may ask for (the auth directive).
const (
	AuthAuto  = "auto"  // SASL PLAIN where offered, else SASL LOGIN or the LOGIN command (IMAP), USER/PASS (POP3)
	AuthPlain = "plain" // SASL PLAIN only
	AuthLogin = "login" // IMAP: SASL LOGIN where offered, else the LOGIN command; POP3: USER/PASS
	AuthAPOP  = "apop"  // POP3 APOP
	// XOAUTH2 and OAUTHBEARER (RFC 7628) carry an OAuth2 access token.
	AuthXOAUTH2     = "xoauth2"
	AuthOAuthBearer = "oauthbearer"
)

// TokenFunc returns an OAuth2 access token; force asks for a fresh one
// because the server refused the last.
type TokenFunc func(ctx context.Context, force bool) (string, error)

// ErrTruncated: the upstream ended a message before its announced end (a
// cut connection, a FIN or a TLS close_notify inside an IMAP literal). It is
// a temporary upstream error: what was read is dropped, never delivered.
var ErrTruncated = errors.New("message truncated: the upstream ended it before its announced size")

// ExactReader reads exactly size bytes from r. An end of r before that is
// ErrTruncated, never io.EOF, so that a short read cannot pass for the end
// of a message: go-imap's literal reader reports a connection closed inside
// a literal as a plain io.EOF after a short read.
func ExactReader(r io.Reader, size int64) io.Reader {
	return &exactReader{r: r, left: size}
}

type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case e.left == 0 && (err == nil || err == io.EOF):
		return n, io.EOF
	case err == io.EOF:
		return n, fmt.Errorf("%w (%d bytes missing)", ErrTruncated, e.left)
	}
	return n, err
}
