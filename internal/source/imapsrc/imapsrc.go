// Package imapsrc is the IMAP upstream: a go-imap v2 client that lists a
// mailbox with one UID FETCH, streams bodies with BODY.PEEK[] (upstream
// flags stay as they were) and removes only the messages it is told to, by
// UID.
//
// go-imap v2 takes no context, so every command runs under a watchdog that
// closes the connection when the context ends or the server stops making
// progress (Timeout without a byte read, not counting the time maddy takes
// to deliver); the blocked call then returns.
package imapsrc

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-sasl"

	"github.com/remote-pull/remote_pull/internal/oauth"
	"github.com/remote-pull/remote_pull/internal/source"
)

// Config says how to reach and log in to one IMAP account.
//
// Auth is source.AuthAuto, AuthPlain, AuthLogin, AuthXOAUTH2 or
// AuthOAuthBearer; Timeout defaults to 2 minutes.
type Config struct {
	source.Endpoint
	// Warn reports things an admin should know, such as a server without
	// UIDPLUS; it is called at most once per session per kind.
	Warn func(msg string)
	// MoveTo (move_to): delivered messages are moved to this folder
	// instead of being deleted.
	MoveTo string
}

// Upstream is an IMAP account.
type Upstream struct{ cfg Config }

// New returns an IMAP upstream.
func New(cfg Config) *Upstream {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Warn == nil {
		cfg.Warn = func(string) {}
	}
	return &Upstream{cfg: cfg}
}

func (u *Upstream) Protocol() string { return source.IMAP }
func (u *Upstream) Host() string     { return u.cfg.Host }

// Connect dials, secures the connection (implicit TLS or mandatory
// STARTTLS, certificate always verified) and logs in.
func (u *Upstream) Connect(ctx context.Context) (source.Session, error) {
	return u.dial(ctx, clientOptions())
}

// ConnectReadOnly is Connect for inspection: folders are opened with
// EXAMINE, which changes nothing upstream, not even \Recent.
func (u *Upstream) ConnectReadOnly(ctx context.Context) (source.Session, error) {
	s, err := u.dial(ctx, clientOptions())
	if err != nil {
		return nil, err
	}
	s.readOnly = true
	return s, nil
}

// dial connects and logs in. When the server refuses an OAuth2 access
// token, it connects once more with a freshly refreshed one: after a refused
// SASL exchange some servers do not take a second one on the same
// connection.
func (u *Upstream) dial(ctx context.Context, opts *imapclient.Options) (*Session, error) {
	s, err := u.dialOnce(ctx, opts, false)
	var refused *source.TokenRefusedError
	if errors.As(err, &refused) {
		s, err = u.dialOnce(ctx, opts, true)
	}
	return s, err
}

func (u *Upstream) dialOnce(ctx context.Context, opts *imapclient.Options, freshToken bool) (*Session, error) {
	ctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()

	addr := net.JoinHostPort(u.cfg.Host, u.cfg.Port)
	raw, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	tlsCfg := u.cfg.TLSConfig()
	s := &Session{cfg: &u.cfg, raw: raw}
	s.touch()
	// Every byte read is progress; the watchdog measures stalls, not work.
	conn := net.Conn(&progressConn{Conn: raw, s: s})
	verify := tlsCfg.VerifyConnection
	tlsCfg.VerifyConnection = func(cs tls.ConnectionState) error {
		// Runs after the standard chain and host name checks passed.
		s.tlsState = cs
		if verify != nil {
			return verify(cs)
		}
		return nil
	}
	opts.TLSConfig = tlsCfg

	err = s.guard(ctx, func() error {
		// What go-imap reads into memory is bounded by opts (bounds.go).
		if u.cfg.Plaintext {
			s.c = imapclient.New(conn, opts)
		} else if u.cfg.ImplicitTLS {
			tc := tls.Client(conn, tlsCfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				return err
			}
			s.c = imapclient.New(tc, opts)
		} else {
			// STARTTLS is mandatory: a server that refuses it never sees
			// credentials.
			tc, err := startTLS(ctx, conn, tlsCfg)
			if err != nil {
				return fmt.Errorf("STARTTLS: %w", err)
			}
			s.c = imapclient.New(tc, opts)
		}
		if err := s.c.WaitGreeting(); err != nil {
			return err
		}
		return s.login(ctx, freshToken)
	})
	if err != nil {
		raw.Close()
		return nil, err
	}
	return s, nil
}

func (s *Session) login(ctx context.Context, freshToken bool) error {
	if s.cfg.Auth == source.AuthXOAUTH2 || s.cfg.Auth == source.AuthOAuthBearer {
		return s.loginOAuth(ctx, freshToken)
	}
	pass, err := s.cfg.Password()
	if err != nil {
		return err
	}
	caps, err := s.capabilities()
	if err != nil {
		return err
	}
	plain, saslLogin := caps.Has(imap.Cap("AUTH=PLAIN")), caps.Has(imap.Cap("AUTH=LOGIN"))
	// auto: SASL PLAIN, else SASL LOGIN, else the LOGIN command.
	switch mech := s.cfg.Auth; {
	case mech == source.AuthPlain && !plain:
		return &source.AuthError{Err: errors.New("auth plain: the server does not offer AUTH=PLAIN")}
	case mech == source.AuthPlain || (mech != source.AuthLogin && plain):
		err = s.c.Authenticate(sasl.NewPlainClient("", s.cfg.Username, pass))
	case saslLogin:
		err = s.c.Authenticate(newLoginClient(s.cfg.Username, pass))
	case caps.Has(imap.CapLoginDisabled):
		return &source.AuthError{Err: errors.New("the server offers no password login (LOGINDISABLED, no AUTH=PLAIN or AUTH=LOGIN)")}
	default:
		err = s.c.Login(s.cfg.Username, pass).Wait()
	}
	var imapErr *imap.Error
	switch {
	case limited(err) != err:
		return limited(err) // over quota or throttled: not the credentials
	case errors.As(err, &imapErr) && loginUnavailable(imapErr):
		return &source.BusyError{Err: imapErr}
	case imapErr != nil:
		if refused := s.cfg.PasswordRefused; refused != nil {
			refused()
		}
		return &source.AuthError{Err: imapErr}
	}
	return err
}

// capabilities are the server's, before the login. A server that answered
// CAPABILITY with NO is not one that offers nothing: its reply is the
// error (Microsoft throttles that command too, then hangs up).
func (s *Session) capabilities() (imap.CapSet, error) {
	caps := s.c.Caps()
	if caps == nil {
		if err := s.c.CapsErr(); err != nil {
			return nil, fmt.Errorf("CAPABILITY: %w", err)
		}
	}
	return caps, nil
}

// loginUnavailable reads a login's NO by its RFC 5530 code: the server
// could not log us in now ([UNAVAILABLE], [SERVERBUG], [LIMIT], [INUSE]),
// to wait for. Anything else ([AUTHENTICATIONFAILED],
// [AUTHORIZATIONFAILED], [EXPIRED], no code) is a refusal for the owner
// to fix. Gmail answers the login past its cap of simultaneous
// connections with [ALERT] and a text, not a temporary code; that too is a
// wait, not a wrong password.
func loginUnavailable(e *imap.Error) bool {
	switch e.Code {
	case imap.ResponseCodeUnavailable, imap.ResponseCodeServerBug, imap.ResponseCodeLimit, imap.ResponseCodeInUse:
		return true
	}
	return strings.Contains(strings.ToLower(e.Text), "too many simultaneous connections")
}

// loginOAuth authenticates with the access token. A refusal of a token
// that was not just refreshed is a TokenRefusedError, so that dial tries
// again with a fresh one.
func (s *Session) loginOAuth(ctx context.Context, freshToken bool) error {
	mech := strings.ToUpper(s.cfg.Auth)
	caps, err := s.capabilities()
	if err != nil {
		return err
	}
	if !caps.Has(imap.Cap("AUTH=" + mech)) {
		return &source.AuthError{Err: fmt.Errorf("the server does not offer AUTH=%s", mech)}
	}
	token, err := s.cfg.Token(ctx, freshToken)
	if err != nil {
		return err
	}
	client := oauth.SASLClient(s.cfg.Auth, s.cfg.Username, token, s.cfg.Host, s.cfg.Port)
	err = s.c.Authenticate(client)
	var imapErr *imap.Error
	var bearerErr *sasl.OAuthBearerError // OAUTHBEARER's own refusal
	if err == nil || !(errors.As(err, &imapErr) || errors.As(err, &bearerErr)) {
		return err
	}
	if l := limited(err); l != err {
		return l // over quota or throttled: not the token
	}
	if imapErr != nil && loginUnavailable(imapErr) {
		return &source.BusyError{Err: imapErr}
	}
	if !freshToken {
		return &source.TokenRefusedError{Err: err}
	}
	return &source.AuthError{Err: err}
}

// Session is a logged-in IMAP connection.
type Session struct {
	cfg *Config
	raw net.Conn
	c   *imapclient.Client

	decided  *source.Removal       // how delivered messages leave, once decided (remove.go)
	folders  map[string]folderInfo // from LIST, once per session (folders.go)
	tlsState tls.ConnectionState
	readOnly bool

	lastRead atomic.Int64 // UnixNano of the last byte read from the server
	paused   atomic.Int32 // > 0 while maddy delivers: not the server's time
}

// progressConn marks every read that returned data as progress.
type progressConn struct {
	net.Conn
	s *Session
}

func (c *progressConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.s.touch()
	}
	return n, err
}

func (s *Session) touch() { s.lastRead.Store(time.Now().UnixNano()) }

// errStalled: the server sent nothing for Timeout while a command waited.
var errStalled = errors.New("upstream stalled")

// Describe tells how the session is connected.
func (s *Session) Describe() []string {
	return append(source.DescribeTLS(s.tlsState), "capabilities: "+strings.Join(capNames(s.c.Caps()), " "))
}

func capNames(caps imap.CapSet) []string {
	var out []string
	for c := range caps {
		out = append(out, string(c))
	}
	slices.Sort(out)
	return out
}

// guard runs fn, closing the connection if ctx ends first, so that fn
// returns. It returns ctx's error in that case.
func (s *Session) guard(ctx context.Context, fn func() error) error {
	stop := context.AfterFunc(ctx, func() { s.raw.Close() })
	err := fn()
	if !stop() {
		return fmt.Errorf("%w (connection closed)", context.Cause(ctx))
	}
	return limited(err)
}

// limited makes a provider's limit, whatever command it answered
// (greeting, login, SELECT, FETCH, ...), the typed error the account
// acts on (source.QuotaError, source.ThrottledError); other errors are
// returned as they are.
func limited(err error) error {
	var imapErr *imap.Error
	if err == nil || source.IsLimit(err) || !errors.As(err, &imapErr) {
		return err
	}
	if l := source.Limited(string(imapErr.Code), imapErr.Text, err); l != nil {
		return l
	}
	return err
}

// command runs one command under the stall watchdog: it may take as long
// as the server keeps sending (a large listing on a slow link), but not
// Timeout without a byte, maddy's delivery time excluded.
func (s *Session) command(ctx context.Context, fn func() error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.touch() // the server's time to answer starts now
	stop := make(chan struct{})
	defer close(stop)
	go s.watchdog(stop, cancel)
	return s.guard(ctx, fn)
}

// watchdog cancels with errStalled when nothing was read for Timeout,
// except while paused.
func (s *Session) watchdog(stop <-chan struct{}, cancel context.CancelCauseFunc) {
	defer func() {
		if p := recover(); p != nil {
			cancel(fmt.Errorf("imapsrc watchdog panic: %v", p))
		}
	}()
	tick := time.NewTicker(max(s.cfg.Timeout/8, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			if s.paused.Load() > 0 {
				s.touch()
				continue
			}
			if time.Since(time.Unix(0, s.lastRead.Load())) > s.cfg.Timeout {
				cancel(errStalled)
				return
			}
		}
	}
}

func (s *Session) RemoteAddr() string {
	if a, ok := s.raw.RemoteAddr().(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}

// Close logs out, bounded by ctx and the command timeout, then waits a
// moment for the server to end the connection, as it does after its
// LOGOUT reply (RFC 9051, 6.1.3): the server has then ended the session,
// and a connection that replaces this one is not counted with it against
// the provider's connection limit (max_connections).
func (s *Session) Close(ctx context.Context) error {
	err := s.command(ctx, func() error { return s.c.Logout().Wait() })
	if err == nil {
		wait := time.NewTimer(logoutGrace)
		select {
		case <-s.c.Closed():
		case <-ctx.Done():
		case <-wait.C:
		}
		wait.Stop()
	}
	s.c.Close()
	s.raw.Close()
	return err
}

// logoutGrace bounds the wait for the server to hang up after LOGOUT.
const logoutGrace = 2 * time.Second

// Abort drops the connection.
func (s *Session) Abort() { s.raw.Close() }

// Open selects a mailbox.
func (s *Session) Open(ctx context.Context, name string) (source.Mailbox, error) {
	var sel *imap.SelectData
	err := s.command(ctx, func() error {
		var err error
		sel, err = s.c.Select(name, &imap.SelectOptions{ReadOnly: s.readOnly}).Wait()
		return err
	})
	var imapErr *imap.Error
	if errors.As(err, &imapErr) && !source.IsLimit(err) {
		// The server answered, about this folder only.
		return nil, &source.FolderError{Err: fmt.Errorf("SELECT %q: %w", name, err)}
	}
	if err != nil {
		return nil, fmt.Errorf("SELECT %q: %w", name, err)
	}
	return &Mailbox{s: s, name: name, sel: sel}, nil
}

// List returns the messages with UID >= floor in one round trip, with the
// size (to skip oversized ones unfetched) and the flags (to leave alone what
// another client marked \Deleted).
func (m *Mailbox) List(ctx context.Context, floor uint32) ([]source.Message, error) {
	floor = max(floor, 1)
	if m.sel.NumMessages == 0 || (m.sel.UIDNext != 0 && uint32(m.sel.UIDNext) <= floor) {
		return nil, nil
	}
	msgs := make([]source.Message, 0, m.listCapacity(floor))
	var flags flagSets
	dates := zones{}
	gmail := m.s.c.Caps().Has(capGmail)
	var own string // the folder's own label, which Gmail may leave out
	if gmail {
		info, err := m.folderInfo(ctx)
		if err != nil {
			return nil, err
		}
		own = info.label
	}
	err := m.s.command(ctx, func() error {
		cmd := m.s.c.Fetch(imap.UIDSet{{Start: imap.UID(floor), Stop: 0}},
			&imap.FetchOptions{UID: true, RFC822Size: true, Flags: true, InternalDate: true, GmailMsgID: gmail, GmailLabels: gmail})
		n := 0
		for {
			msg := cmd.Next()
			if msg == nil {
				break
			}
			// No more messages than the folder has: a listing is kept
			// whole. The session is given up rather than drained (the
			// server may go on without end).
			if n++; n > int(m.exists()) {
				m.s.raw.Close()
				return fmt.Errorf("%w: more FETCH responses than the %d messages EXISTS announced", errOversized, m.exists())
			}
			buf, err := collect(msg)
			if err != nil {
				m.s.raw.Close()
				return err
			}
			// "floor:*" includes the last message even below the floor.
			if uint32(buf.UID) < floor {
				continue
			}
			listed := source.Message{
				UID:     strconv.FormatUint(uint64(buf.UID), 10),
				Size:    buf.RFC822Size,
				Deleted: slices.Contains(buf.Flags, imap.FlagDeleted),
				Date:    dates.shared(buf.InternalDate),
				Flags:   flags.kept(buf.Flags),
			}
			if buf.GmailMsgID != 0 || buf.GmailLabels != nil {
				listed.Extra = &source.MessageExtra{}
			}
			if buf.GmailMsgID != 0 {
				listed.Extra.GlobalID = "gm:" + strconv.FormatUint(buf.GmailMsgID, 10)
			}
			if buf.GmailLabels != nil {
				listed.Extra.Labels = keptLabels(buf.GmailLabels, own)
			}
			msgs = append(msgs, listed)
		}
		return cmd.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("listing %q: %w", m.name, err)
	}
	return trimListing(msgs), nil
}

// exists is the number of messages in the folder: EXISTS at SELECT, or
// since, if the server announced more.
func (m *Mailbox) exists() uint32 {
	n := m.sel.NumMessages
	if cur := m.s.c.Mailbox(); cur != nil {
		n = max(n, cur.NumMessages)
	}
	return n
}

// collect is FetchMessageData.Collect within the bounds (bounds.go): the
// flags are checked, and a body section larger than maxLiteral is refused
// before it is read.
func collect(msg *imapclient.FetchMessageData) (*imapclient.FetchMessageBuffer, error) {
	buf := &imapclient.FetchMessageBuffer{SeqNum: msg.SeqNum}
	for item := msg.Next(); item != nil; item = msg.Next() {
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			buf.UID = item.UID
		case imapclient.FetchItemDataRFC822Size:
			buf.RFC822Size = item.Size
		case imapclient.FetchItemDataInternalDate:
			buf.InternalDate = item.Time
		case imapclient.FetchItemDataGmailMsgID:
			buf.GmailMsgID = item.MsgID
		case imapclient.FetchItemDataGmailLabels:
			buf.GmailLabels = item.Labels
		case imapclient.FetchItemDataFlags:
			if err := checkFlags(item.Flags); err != nil {
				return nil, err
			}
			buf.Flags = item.Flags
		case imapclient.FetchItemDataBodySection:
			b, err := sectionLiteral(item.Literal)
			if err != nil {
				return nil, err
			}
			buf.BodySection = append(buf.BodySection, imapclient.FetchBodySectionBuffer{Section: item.Section, Bytes: b})
		case imapclient.FetchItemDataBinarySection:
			if _, err := sectionLiteral(item.Literal); err != nil {
				return nil, err
			}
		}
	}
	return buf, nil
}

// capGmail is Gmail's IMAP extension: X-GM-MSGID, its ID of a message in
// every label (folder), and X-GM-LABELS, the message's labels, in FETCH
// (go-imap v2 patched: third_party/).
const capGmail imap.Cap = "X-GM-EXT-1"

// Bounds on a message's labels: each becomes a local folder name.
const (
	maxLabels     = 100
	maxLabelBytes = 255
)

// keptLabels are the labels a message may be filed under locally: at most
// maxLabels, none longer than maxLabelBytes or with control characters
// (the upstream's text is not trusted; such a label is left out), and
// own, the label of the folder listed, which Gmail leaves out of
// X-GM-LABELS there (as users report). Never nil: an empty list is a
// message with no label (archived).
func keptLabels(labels []string, own string) []string {
	out := make([]string, 0, min(len(labels)+1, maxLabels))
	if own != "" {
		out = append(out, own)
	}
	for _, l := range labels {
		if len(out) == maxLabels {
			break
		}
		if l == "" || l == own || len(l) > maxLabelBytes || strings.ContainsFunc(l, unicode.IsControl) || !utf8.ValidString(l) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// Mailbox is a selected IMAP mailbox.
type Mailbox struct {
	s    *Session
	name string
	sel  *imap.SelectData
}

func (m *Mailbox) UIDValidity() uint32 { return m.sel.UIDValidity }

// UIDNext is the UIDNEXT the server gave at SELECT (0 if none).
func (m *Mailbox) UIDNext() uint32 { return uint32(m.sel.UIDNext) }
func (m *Mailbox) Complete() bool  { return false }

// Fetch streams the messages with one UID FETCH (the account loop has
// already cut the work into batches). Bodies are read from the connection
// as they arrive; nothing holds a whole message but the spool.
func (m *Mailbox) Fetch(ctx context.Context, uids []string, spool source.SpoolFunc, deliver source.DeliverFunc) error {
	return m.fetchBatch(ctx, uids, spool, deliver)
}

func (m *Mailbox) fetchBatch(ctx context.Context, uids []string, spool source.SpoolFunc, deliver source.DeliverFunc) error {
	set, err := uidSet(uids)
	if err != nil {
		return err
	}
	// The time maddy takes to deliver is not the server's stall.
	paused := func(uid string, sp source.Spooled) error {
		m.s.paused.Add(1)
		defer func() { m.s.paused.Add(-1); m.s.touch() }()
		return deliver(uid, sp)
	}
	return m.s.command(ctx, func() error {
		cmd := m.s.c.Fetch(set, &imap.FetchOptions{
			UID:         true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}},
		})
		for {
			msg := cmd.Next()
			if msg == nil {
				break
			}
			if err := m.fetchOne(msg, spool, paused); err != nil {
				// The session is given up rather than drained: after a
				// literal that ended early, go-imap's Close would read the
				// connection from two goroutines at once. The poll ends
				// here anyway.
				m.s.raw.Close()
				return err
			}
		}
		return cmd.Close()
	})
}

func (m *Mailbox) fetchOne(msg *imapclient.FetchMessageData, spool source.SpoolFunc, deliver source.DeliverFunc) error {
	var (
		uid     imap.UID
		spooled source.Spooled
	)
	for {
		item := msg.Next()
		if item == nil {
			break
		}
		switch item := item.(type) {
		case imapclient.FetchItemDataUID:
			uid = item.UID
		case imapclient.FetchItemDataBodySection:
			if item.Literal == nil || spooled != nil || !wholeBody(item.Section) {
				// Not the message: bounded like any literal read into
				// memory, and dropped.
				if _, err := sectionLiteral(item.Literal); err != nil {
					return err
				}
				continue
			}
			// The literal reader ends with a plain io.EOF when the
			// connection closes inside it; only its size tells.
			sp, err := spool(source.ExactReader(item.Literal, item.Literal.Size()))
			if err != nil {
				return err
			}
			spooled = sp
		case imapclient.FetchItemDataBinarySection:
			if _, err := sectionLiteral(item.Literal); err != nil {
				return err
			}
		}
	}
	if spooled == nil {
		// A flag update or a message expunged meanwhile: nothing to deliver.
		return nil
	}
	if uid == 0 {
		spooled.Discard()
		return errors.New("server sent a message body without its UID")
	}
	return deliver(strconv.FormatUint(uint64(uid), 10), spooled)
}

// wholeBody: the section is BODY[], the whole message, the only literal of
// unbounded size the client accepts.
func wholeBody(s *imap.FetchItemBodySection) bool {
	return s != nil && s.Specifier == imap.PartSpecifierNone && len(s.Part) == 0 && len(s.HeaderFields) == 0 &&
		len(s.HeaderFieldsNot) == 0 && s.Partial == nil
}

// fingerprintBatch bounds one UID FETCH of fingerprint header fields,
// which go-imap collects in memory: a few hundred bytes each.
const fingerprintBatch = 1000

// Fingerprints fetches only the fingerprint header fields.
func (m *Mailbox) Fingerprints(ctx context.Context, uids []string) (map[string]string, error) {
	out := make(map[string]string, len(uids))
	section := &imap.FetchItemBodySection{
		Specifier:    imap.PartSpecifierHeader,
		HeaderFields: source.FingerprintFields,
		Peek:         true,
	}
	for len(uids) > 0 {
		n := min(len(uids), fingerprintBatch)
		set, err := uidSet(uids[:n])
		if err != nil {
			return nil, err
		}
		uids = uids[n:]
		err = m.s.command(ctx, func() error {
			cmd := m.s.c.Fetch(set, &imap.FetchOptions{UID: true, RFC822Size: true, BodySection: []*imap.FetchItemBodySection{section}})
			for {
				msg := cmd.Next()
				if msg == nil {
					break
				}
				buf, err := collect(msg)
				if err != nil {
					m.s.raw.Close() // not drained: see List
					return err
				}
				raw := buf.FindBodySection(section)
				h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(raw)))
				if err != nil {
					continue // unrecognisable: it will be fetched like a new message
				}
				out[strconv.FormatUint(uint64(buf.UID), 10)] = source.Fingerprint(h, buf.RFC822Size)
			}
			return cmd.Close()
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func uidSet(uids []string) (imap.UIDSet, error) {
	var set imap.UIDSet
	for _, s := range uids {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("invalid IMAP UID %q", s)
		}
		set.AddNum(imap.UID(n))
	}
	return set, nil
}
