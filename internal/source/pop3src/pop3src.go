// Package pop3src is the POP3 upstream, on the project's own pop3 client:
// one session lists the maildrop (LIST and UIDL), streams the messages it is
// asked for with pipelined RETRs, and marks delivered ones with DELE, which
// the server applies only at a successful QUIT.
//
// Messages are known by UIDL. A server without UIDL can still be emptied
// (keep no): its messages are then known by a fingerprint of their header
// (TOP n 0), never trusted for a deletion, or, without TOP either, by
// session-scoped numbers, so that a connection lost before QUIT, which rolls
// the deletions back, can deliver them once more. Keep mode needs UIDL and
// says so.
package pop3src

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-sasl"

	"github.com/remote-pull/remote_pull/internal/oauth"
	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/pop3"
)

// Config says how to reach and log in to one POP3 account.
//
// Auth is source.AuthAuto, AuthPlain, AuthLogin (USER/PASS), AuthAPOP,
// AuthXOAUTH2 or AuthOAuthBearer; Timeout defaults to 2 minutes.
type Config struct {
	source.Endpoint
	// Keep: messages stay upstream, which needs UIDL to track them.
	Keep bool
	// Warn reports what an admin should know about the server (no UIDL);
	// called at most once per session.
	Warn func(msg string)
}

// Upstream is a POP3 account.
type Upstream struct{ cfg Config }

// New returns a POP3 upstream.
func New(cfg Config) *Upstream {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Minute
	}
	if cfg.Warn == nil {
		cfg.Warn = func(string) {}
	}
	return &Upstream{cfg: cfg}
}

func (u *Upstream) Protocol() string { return source.POP3 }
func (u *Upstream) Host() string     { return u.cfg.Host }

// Connect dials, secures (implicit TLS, or STLS which is then mandatory)
// and logs in; when the server refuses an OAuth2 access token, it connects
// once more with a freshly refreshed one.
func (u *Upstream) Connect(ctx context.Context) (source.Session, error) {
	s, err := u.connect(ctx, false)
	var refused *source.TokenRefusedError
	if errors.As(err, &refused) {
		s, err = u.connect(ctx, true)
	}
	return s, err
}

func (u *Upstream) connect(ctx context.Context, freshToken bool) (source.Session, error) {
	cctx, cancel := context.WithTimeout(ctx, u.cfg.Timeout)
	defer cancel()
	addr := net.JoinHostPort(u.cfg.Host, u.cfg.Port)
	conn, err := (&net.Dialer{}).DialContext(cctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	remote := conn.RemoteAddr()
	if u.cfg.ImplicitTLS && !u.cfg.Plaintext {
		tc := tls.Client(conn, u.cfg.TLSConfig())
		if err := tc.HandshakeContext(cctx); err != nil {
			conn.Close()
			return nil, err
		}
		conn = tc
	}
	c, err := pop3.NewClient(conn, &pop3.Options{Timeout: u.cfg.Timeout})
	if err != nil {
		conn.Close()
		return nil, busy(err)
	}
	s := &Session{cfg: &u.cfg, c: c, remote: remote, freshToken: freshToken}
	if err := s.setup(cctx, u.cfg.TLSConfig()); err != nil {
		c.Close()
		return nil, limited(err)
	}
	return s, nil
}

// Session is a logged-in POP3 session.
type Session struct {
	cfg        *Config
	c          *pop3.Client
	remote     net.Addr
	caps       pop3.Capabilities
	pipelining bool
	opened     bool
	freshToken bool // refresh the OAuth2 token before using it
	warned     bool
}

// warn passes msg to Config.Warn, once per session.
func (s *Session) warn(msg string) {
	if !s.warned {
		s.warned = true
		s.cfg.Warn(msg)
	}
}

func (s *Session) setup(ctx context.Context, tlsCfg *tls.Config) error {
	caps, err := s.c.Capa(ctx)
	if err != nil && !isServerErr(err) {
		return err
	}
	if !s.cfg.ImplicitTLS && !s.cfg.Plaintext {
		// STLS is mandatory on tcp://: no credentials on a plain connection.
		if caps != nil && !caps.Has("STLS") {
			return errors.New("server does not offer STLS; refusing to log in without TLS")
		}
		if err := s.c.StartTLS(ctx, tlsCfg); err != nil {
			return fmt.Errorf("STLS: %w", err)
		}
		// Capabilities may differ once the connection is secure (RFC 2595).
		if caps, err = s.c.Capa(ctx); err != nil && !isServerErr(err) {
			return err
		}
	}
	s.caps = caps
	s.pipelining = caps != nil && caps.Has("PIPELINING")

	if s.cfg.Auth == source.AuthXOAUTH2 || s.cfg.Auth == source.AuthOAuthBearer {
		return s.loginOAuth(ctx, caps)
	}
	pass, err := s.cfg.Password()
	if err != nil {
		return err
	}
	plain := caps != nil && hasSASL(caps, "PLAIN")
	switch mech := s.cfg.Auth; {
	case mech == source.AuthAPOP:
		if s.c.APOPTimestamp() == "" {
			return &source.AuthError{Err: errors.New("auth apop: the server's greeting has no APOP timestamp")}
		}
		err = s.c.APOP(ctx, s.cfg.Username, pass)
	case mech == source.AuthPlain && !plain:
		return &source.AuthError{Err: errors.New("auth plain: the server does not offer SASL PLAIN")}
	case mech == source.AuthPlain || (mech != source.AuthLogin && plain):
		err = s.c.Auth(ctx, sasl.NewPlainClient("", s.cfg.Username, pass))
	default:
		err = s.c.Login(ctx, s.cfg.Username, pass)
	}
	if err != nil {
		var perr *pop3.Error
		if errors.As(err, &perr) && !perr.Temporary() && !source.IsLimit(limited(err)) {
			if refused := s.cfg.PasswordRefused; refused != nil {
				refused()
			}
			return &source.AuthError{Err: err}
		}
		return busy(err)
	}
	return nil
}

// loginOAuth authenticates with the access token (RFC 5034 AUTH). A
// refusal of a token that was not just refreshed is a TokenRefusedError, so
// that Connect tries again with a fresh one.
func (s *Session) loginOAuth(ctx context.Context, caps pop3.Capabilities) error {
	mech := strings.ToUpper(s.cfg.Auth)
	if caps == nil || !hasSASL(caps, mech) {
		return &source.AuthError{Err: fmt.Errorf("the server does not offer SASL %s", mech)}
	}
	token, err := s.cfg.Token(ctx, s.freshToken)
	if err != nil {
		return err
	}
	client := oauth.SASLClient(s.cfg.Auth, s.cfg.Username, token, s.cfg.Host, s.cfg.Port)
	err = s.c.Auth(ctx, client)
	var perr *pop3.Error
	var bearerErr *sasl.OAuthBearerError // OAUTHBEARER's own refusal
	if err == nil || !(errors.As(err, &perr) || errors.As(err, &bearerErr)) {
		return err
	}
	if l := limited(err); l != err {
		return l // over quota or throttled: not the token
	}
	if perr != nil && perr.Temporary() {
		return &source.BusyError{Err: err} // [IN-USE], [SYS/TEMP]: not the token either
	}
	if !s.freshToken {
		return &source.TokenRefusedError{Err: err}
	}
	return &source.AuthError{Err: err}
}

func hasSASL(caps pop3.Capabilities, mech string) bool {
	for _, m := range caps["SASL"] {
		if strings.EqualFold(m, mech) {
			return true
		}
	}
	return false
}

// isServerErr: the server answered -ERR (as opposed to a broken connection).
func isServerErr(err error) bool {
	var perr *pop3.Error
	return errors.As(err, &perr) || errors.Is(err, pop3.ErrNoCapa)
}

// busy turns [IN-USE], [LOGIN-DELAY] and [SYS/TEMP] replies into a
// source.BusyError, so that the account waits instead of hammering.
func busy(err error) error {
	if l := limited(err); l != err {
		return l
	}
	var perr *pop3.Error
	if errors.As(err, &perr) && perr.Temporary() {
		return &source.BusyError{Err: err}
	}
	return err
}

// limited makes a provider's limit, whatever command it answered, the
// typed error the account acts on (source.QuotaError for an [OVERQUOTA]
// or [THROTTLED] code, source.ThrottledError for Microsoft's "Suggested
// Backoff Time"); other errors are returned as they are.
func limited(err error) error {
	var perr *pop3.Error
	if err == nil || source.IsLimit(err) || !errors.As(err, &perr) {
		return err
	}
	if l := source.Limited(perr.Code, perr.Text, err); l != nil {
		return l
	}
	return err
}

func (s *Session) RemoteAddr() string {
	if a, ok := s.remote.(*net.TCPAddr); ok {
		return a.IP.String()
	}
	return ""
}

// Describe tells how the session is connected.
func (s *Session) Describe() []string {
	cs, _ := s.c.TLSConnectionState()
	out := source.DescribeTLS(cs)
	var caps []string
	for k := range s.caps {
		caps = append(caps, k)
	}
	sort.Strings(caps)
	if s.caps == nil {
		caps = []string{"(no CAPA)"}
	}
	return append(out, "capabilities: "+strings.Join(caps, " "))
}

// Close sends QUIT: only then does the server apply the deletions.
func (s *Session) Close(ctx context.Context) error { return s.c.Quit(ctx) }

// DeferredRemoval: Remove's DELEs take effect only if Close (QUIT)
// succeeds.
func (s *Session) DeferredRemoval() {}

// Abort drops the connection; the server rolls pending deletions back.
func (s *Session) Abort() { s.c.Close() }

// Open returns the maildrop; POP3 has one mailbox, whatever its name.
func (s *Session) Open(ctx context.Context, name string) (source.Mailbox, error) {
	if s.opened {
		return nil, fmt.Errorf("POP3 has only one mailbox; folder %q is not available", name)
	}
	s.opened = true
	return &Mailbox{s: s}, nil
}

// Mailbox is the POP3 maildrop of one session.
type Mailbox struct {
	s        *Session
	byUID    map[string]int // UID → message number in this session
	sizes    map[int]int64  // message number → listed size
	dup      map[int]bool   // message numbers whose UIDL others share
	base     map[int]string // for those: the shared UIDL
	print    map[int]string // and their header fingerprint
	identity string         // how messages are told apart (Identity)
}

func (m *Mailbox) UIDValidity() uint32 { return 0 }
func (m *Mailbox) Complete() bool      { return true }

// List returns every message with its identity and size. The identity is
// the UIDL; on a server without UIDL, a fingerprint of the message's header
// fields and size (fetched with TOP n 0), so that a message delivered or
// refused in one session is recognised in the next; on a server with
// neither, the message number, which holds for this session only.
func (m *Mailbox) List(ctx context.Context, _ uint32) ([]source.Message, error) {
	infos, err := m.s.c.List(ctx)
	if err != nil {
		return nil, fmt.Errorf("LIST: %w", limited(err))
	}
	m.sizes = make(map[int]int64, len(infos))
	for _, info := range infos {
		m.sizes[info.Num] = info.Size
	}
	uids, err := m.s.c.UIDL(ctx)
	noUIDL := err != nil && isServerErr(err)
	if err != nil && !noUIDL {
		return nil, fmt.Errorf("UIDL: %w", err)
	}
	if noUIDL && m.s.cfg.Keep {
		return nil, errors.New("server has no UIDL, so remote_pull cannot tell which messages it already fetched: use 'keep no' for this account")
	}
	idOf := make(map[int]string, len(infos))
	if noUIDL {
		if idOf, err = m.identifyByHeader(ctx, infos); err != nil {
			return nil, err
		}
	} else {
		m.identity = "UIDL"
		for _, u := range uids {
			idOf[u.Num] = u.UID
		}
		if err := m.splitDuplicates(ctx, idOf); err != nil {
			return nil, err
		}
	}
	listed := make(map[string]int, len(infos))
	for _, id := range idOf {
		listed[id]++
	}
	seen := make(map[string]int, len(infos))
	session := strconv.FormatInt(time.Now().UnixNano(), 36)
	m.byUID = make(map[string]int, len(infos))
	msgs := make([]source.Message, 0, len(infos))
	for _, info := range infos {
		uid, ok := idOf[info.Num]
		if !ok && noUIDL {
			// No usable header either: a number valid for this session.
			uid, ok = "session-"+session+"-"+strconv.Itoa(info.Num), true
		}
		if !ok {
			continue // listed by LIST, not by UIDL: deleted meanwhile
		}
		// Without UIDL every identity is weak: a ledger entry may show a
		// message was seen, never that it may be deleted.
		ambiguous := noUIDL || m.dup[info.Num] || listed[uid] > 1
		if listed[uid] > 1 {
			// Messages alike in identity, header fields and size: told
			// apart by count, "ID #2", "ID #3"... (a space is never part
			// of a UIDL).
			seen[uid]++
			if seen[uid] > 1 {
				uid += " #" + strconv.Itoa(seen[uid])
			}
		}
		m.byUID[uid] = info.Num
		msg := source.Message{UID: uid, Size: info.Size, Ambiguous: ambiguous}
		if base, print := m.base[info.Num], m.print[info.Num]; base != "" || print != "" {
			msg.Extra = &source.MessageExtra{Base: base, Fingerprint: print}
		}
		msgs = append(msgs, msg)
	}
	return msgs, nil
}

// splitDuplicates gives the messages that share a UIDL (RFC 1939 forbids
// it; some servers do it) an identity of their own: the UIDL and the
// fingerprint of their header fields and size, so that a ledger entry
// follows its message whatever else the server lists under that UIDL.
// They stay Ambiguous: their entries never justify a DELE.
func (m *Mailbox) splitDuplicates(ctx context.Context, idOf map[int]string) error {
	count := make(map[string]int, len(idOf))
	for _, id := range idOf {
		count[id]++
	}
	var nums []int
	for num, id := range idOf {
		if count[id] > 1 {
			nums = append(nums, num)
		}
	}
	if len(nums) == 0 {
		return nil
	}
	sort.Ints(nums)
	m.dup = make(map[int]bool, len(nums))
	m.base = make(map[int]string, len(nums))
	m.print = make(map[int]string, len(nums))
	prints, _, err := m.headerPrints(ctx, nums)
	if err != nil {
		return err
	}
	for _, num := range nums {
		m.dup[num] = true
		if p, ok := prints[num]; ok {
			m.base[num], m.print[num] = idOf[num], p
			idOf[num] += " " + p
		}
	}
	return nil
}

// maxIdentityHeader bounds what one TOP reply may cost in memory. It is
// the spool's header limit (delivery.DefaultMaxHeaderBytes): a header that
// was delivered, and so fingerprinted, also parses here.
const maxIdentityHeader = 1 << 20

// headerPrints returns the fingerprint of the header and listed size of
// each message, from TOP n 0. A message whose TOP fails is left out; one
// whose header the server sent but that does not parse (or exceeds
// maxIdentityHeader) is in unparsable.
func (m *Mailbox) headerPrints(ctx context.Context, nums []int) (prints map[int]string, unparsable map[int]bool, err error) {
	return m.headerPrintsAt(ctx, nums, m.sizes)
}

// headerPrintsAt is headerPrints with the sizes given, by message number.
func (m *Mailbox) headerPrintsAt(ctx context.Context, nums []int, sizes map[int]int64) (prints map[int]string, unparsable map[int]bool, err error) {
	prints = make(map[int]string, len(nums))
	unparsable = map[int]bool{}
	_, err = m.s.c.TopEach(ctx, nums, m.s.pipelining, func(num int, hdr io.Reader) error {
		h, err := textproto.ReadHeader(bufio.NewReader(io.LimitReader(hdr, maxIdentityHeader)))
		if err != nil {
			unparsable[num] = true
			return nil
		}
		prints[num] = source.Fingerprint(h, sizes[num])
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("TOP: %w", err)
	}
	return prints, unparsable, nil
}

// identifyByHeader names each message of a server without UIDL by its
// header fingerprint (headerPrints), and says once per session how
// messages are told apart.
func (m *Mailbox) identifyByHeader(ctx context.Context, infos []pop3.MessageInfo) (map[int]string, error) {
	nums := make([]int, 0, len(infos))
	for _, info := range infos {
		nums = append(nums, info.Num)
	}
	ids, unparsable, err := m.headerPrints(ctx, nums)
	if err != nil {
		return nil, err
	}
	for num, p := range ids {
		ids[num] = "hdr:" + p
	}
	if len(nums) > 0 && len(ids) == 0 && len(unparsable) == 0 {
		m.identity = "message numbers, valid for one session (the server has neither UIDL nor TOP): a failed QUIT delivers messages again, and a refused message is fetched at every poll"
	} else {
		m.identity = "header fingerprints (the server has no UIDL): a message delivered but not deleted (a failed QUIT) is left upstream, not deleted on a fingerprint"
	}
	m.s.warn(m.identity)
	return ids, nil
}

// numbers are the session's message numbers of the listed uids, in order,
// and the way back; unlisted uids are left out.
func (m *Mailbox) numbers(uids []string) (nums []int, uidOf map[int]string) {
	uidOf = make(map[int]string, len(uids))
	for _, uid := range uids {
		if n, ok := m.byUID[uid]; ok {
			nums = append(nums, n)
			uidOf[n] = uid
		}
	}
	return nums, uidOf
}

// Identity says how messages are told apart, for 'remote-pull check'.
func (m *Mailbox) Identity() string { return m.identity }

// Fetch retrieves the messages, pipelined when the server allows.
func (m *Mailbox) Fetch(ctx context.Context, uids []string, spool source.SpoolFunc, deliver source.DeliverFunc) error {
	nums, uidOf := m.numbers(uids)
	// A message the server refuses to RETR (deleted meanwhile by another
	// session) is skipped: it stays unrecorded and is looked at again.
	_, err := m.s.c.RetrEach(ctx, nums, m.s.pipelining, func(num int, body io.Reader) error {
		sp, err := spool(body)
		if err != nil {
			return err
		}
		return deliver(uidOf[num], sp)
	})
	return limited(err)
}

// Fingerprints computes the fingerprint of the given messages from their
// header (TOP n 0), as source.Fingerprint does from a delivered message:
// before a removal is finished on the strength of a ledger entry, the
// message must be the one recorded. A server without TOP gives none; a
// header that does not parse gives "" (it cannot be a delivered message's:
// that one's header parsed).
func (m *Mailbox) Fingerprints(ctx context.Context, uids []string) (map[string]string, error) {
	nums, uidOf := m.numbers(uids)
	return m.fingerprints(ctx, nums, uidOf, m.sizes)
}

// FingerprintsAt is Fingerprints with each message taken at the size
// given (source.SizedFingerprinter).
func (m *Mailbox) FingerprintsAt(ctx context.Context, sizes map[string]int64) (map[string]string, error) {
	uids := make([]string, 0, len(sizes))
	for uid := range sizes {
		uids = append(uids, uid)
	}
	nums, uidOf := m.numbers(uids)
	byNum := make(map[int]int64, len(nums))
	for _, n := range nums {
		byNum[n] = sizes[uidOf[n]]
	}
	return m.fingerprints(ctx, nums, uidOf, byNum)
}

func (m *Mailbox) fingerprints(ctx context.Context, nums []int, uidOf map[int]string, sizes map[int]int64) (map[string]string, error) {
	prints, unparsable, err := m.headerPrintsAt(ctx, nums, sizes)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string, len(prints)+len(unparsable))
	for n, p := range prints {
		out[uidOf[n]] = p
	}
	for n := range unparsable {
		out[uidOf[n]] = ""
	}
	return out, nil
}

// Remove marks the messages for deletion. The server deletes them at QUIT;
// if the session ends any other way, they stay, and the ledger still knows
// they were delivered.
func (m *Mailbox) Remove(ctx context.Context, uids []string) ([]string, error) {
	nums, uidOf := m.numbers(uids)
	if len(nums) == 0 {
		return nil, nil
	}
	if err := m.s.c.Dele(ctx, nums, m.s.pipelining); err != nil {
		return nil, fmt.Errorf("DELE: %w", err)
	}
	marked := make([]string, len(nums))
	for i, n := range nums {
		marked[i] = uidOf[n]
	}
	return marked, nil
}
