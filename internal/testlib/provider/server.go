// Package provider is a pair of scripted IMAP servers for tests that
// behave as Gmail and Microsoft 365 do where remote_pull meets their
// limits: Gmail's labels as folders (X-GM-EXT-1), its [OVERQUOTA]
// suspension after a download budget and its connection cap; Microsoft's
// XOAUTH2-only login and its throttling reply followed by a disconnect.
//
// It is a fake for what real providers will not do on demand, not an IMAP
// server: it speaks, correctly, the subset IMAP clients (go-imap v2,
// remote_pull's imapsrc) send. Facts and sources:
// /work/shared/notes/providers.md and the comments at each reply.
//
// Choices where the providers' behaviour is unclear or not worth copying:
//   - X-GM-LABELS leaves out the label of the selected folder, as users
//     report of Gmail (dlech/gmailbuttons#10); in All Mail every label
//     shows. System labels come first, quoted: ("\\Important" "\\Inbox" Work).
//   - \Flagged is the Starred folder; \Deleted is per folder (expunging
//     in a label folder takes the label off, the message stays in All
//     Mail; in All Mail, Spam and Trash it deletes). Messages in Spam or
//     Trash show in no other folder.
//   - Gmail refuses the login past MaxConns with "NO [ALERT] Too many
//     simultaneous connections. (Failure)" (wildduck#35, runt#1);
//     Microsoft accepts it and answers every later command "BAD User is
//     authenticated but not connected." (node-imap#523, #689).
//   - Over quota, LOGOUT still works; everything else answers [OVERQUOTA].
//   - Only implemented capabilities are announced: Gmail's QUOTA, XLIST,
//     COMPRESS=DEFLATE, CONDSTORE, ESEARCH, UTF8=ACCEPT, LIST-STATUS,
//     APPENDLIMIT and AUTH=PLAIN-CLIENTTOKEN are left out. APPEND is not
//     implemented (use Server.Append).
package provider

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"strings"
	"sync"
	"time"
)

// Kind is the provider a Server behaves as.
type Kind int

const (
	Gmail Kind = iota
	Microsoft
)

// Config describes the account a Server holds and its limits.
type Config struct {
	Kind Kind
	User string
	// Password is the (app) password Gmail accepts by LOGIN and
	// AUTHENTICATE PLAIN. Microsoft refuses every password login.
	Password string
	// Token is the access token AUTHENTICATE XOAUTH2 accepts.
	Token string
	// ByteBudget (Gmail): once more body bytes than this were downloaded
	// within BudgetWindow, every command answers [OVERQUOTA] until the
	// window has room again. 0: unlimited.
	ByteBudget   int64
	BudgetWindow time.Duration // default 24h
	// MaxConns is the number of simultaneous logged-in connections
	// (default 15 Gmail, 20 Microsoft).
	MaxConns int
	// TLS: implicit TLS with a test certificate for 127.0.0.1 and
	// localhost (trust RootCAs).
	TLS bool
	// Now is the server's clock (quota window, throttling); default
	// time.Now.
	Now func() time.Time
	// IdleTimeout closes a connection whose client sends nothing, or
	// reads nothing we send, for this long (default 10 minutes: longer
	// than imapsrc's 5-minute IDLE keep-alive). Start's cleanup closes
	// every connection at the end of the test in any case.
	IdleTimeout time.Duration
}

// Server is a running provider double.
type Server struct {
	cfg     Config
	ln      net.Listener
	rootCAs *x509.CertPool

	mu         sync.Mutex
	changed    *sync.Cond // broadcast on every change of the store (IDLE)
	store      *store
	conns      map[*conn]bool
	authed     int
	peak       int
	log        []string
	bytes      int64
	downloads  int
	spent      []spending // body bytes sent, by time, for the quota window
	sent       []spending // every body sent, never pruned (WindowBytes)
	overQuotas int        // [OVERQUOTA] replies sent
	overUntil  time.Time
	throttleTo time.Time
	closed     bool
	wg         sync.WaitGroup
}

type spending struct {
	at time.Time
	n  int64
}

// T is what Start needs of a test: *testing.T and *testing.B satisfy it,
// and so does a program's stand-in (integration/harness.Script, for the
// benchmarks).
type T interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// Start runs a server on 127.0.0.1:0 until the end of the test.
func Start(t T, cfg Config) *Server {
	t.Helper()
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 15
		if cfg.Kind == Microsoft {
			cfg.MaxConns = 20
		}
	}
	if cfg.BudgetWindow == 0 {
		cfg.BudgetWindow = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.IdleTimeout == 0 {
		cfg.IdleTimeout = 10 * time.Minute
	}
	s := &Server{cfg: cfg, conns: map[*conn]bool{}}
	s.changed = sync.NewCond(&s.mu)
	s.store = newStore(cfg.Kind)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TLS {
		cert, pool, err := testCert()
		if err != nil {
			t.Fatal(err)
		}
		s.rootCAs = pool
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})
	}
	s.ln = ln
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.stop)
	return s
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &conn{s: s, nc: nc, r: bufio.NewReader(nc), w: bufio.NewWriterSize(deadlineWriter{nc, s.cfg.IdleTimeout}, 64<<10)}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = true
		s.peak = max(s.peak, len(s.conns))
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			c.run()
		}()
	}
}

func (s *Server) stop() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.nc.Close()
	}
	s.changed.Broadcast()
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

// Addr is the server's address, 127.0.0.1:PORT.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// RootCAs trusts the server's certificate; nil unless Config.TLS.
func (s *Server) RootCAs() *x509.CertPool { return s.rootCAs }

// BytesDownloaded is the number of body bytes sent in BODY[], BODY.PEEK[]
// and RFC822 (header-only sections not counted).
func (s *Server) BytesDownloaded() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Downloads is the number of whole-body fetches answered.
func (s *Server) Downloads() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.downloads
}

// WindowBytes is the number of body bytes (as BytesDownloaded counts them)
// sent in the budget window that begins at start: from start, for
// Config.BudgetWindow.
func (s *Server) WindowBytes(start time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	end := start.Add(s.cfg.BudgetWindow)
	var n int64
	for _, sp := range s.sent {
		if !sp.at.Before(start) && sp.at.Before(end) {
			n += sp.n
		}
	}
	return n
}

// FirstDownload is when the first body was sent; zero before.
func (s *Server) FirstDownload() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.sent) == 0 {
		return time.Time{}
	}
	return s.sent[0].at
}

// OverQuotaReplies is the number of commands answered [OVERQUOTA].
func (s *Server) OverQuotaReplies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.overQuotas
}

// SetByteBudget changes Config.ByteBudget from now on; what was sent in
// the window still counts.
func (s *Server) SetByteBudget(n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cfg.ByteBudget = n
}

// PeakConns is the most connections open at once.
func (s *Server) PeakConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.peak
}

// Conns is the number of connections open now.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// Throttle (Microsoft): the next command, on any connection, and every
// command within backoff answers "NO Request is throttled. Suggested
// Backoff Time: N milliseconds", and the server then closes that
// connection.
func (s *Server) Throttle(backoff time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttleTo = s.cfg.Now().Add(backoff)
}

// SetOverQuota (Gmail) forces the [OVERQUOTA] state until then.
func (s *Server) SetOverQuota(until time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.overUntil = until
}

// Log is the commands received, without tags; literals and credentials
// are elided.
func (s *Server) Log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

// overQuota says whether Gmail suspends the account now; s.mu held.
func (s *Server) overQuota() bool {
	now := s.cfg.Now()
	if now.Before(s.overUntil) {
		return true
	}
	if s.cfg.ByteBudget <= 0 {
		return false
	}
	var used int64
	keep := s.spent[:0]
	for _, sp := range s.spent {
		if now.Sub(sp.at) < s.cfg.BudgetWindow {
			keep = append(keep, sp)
			used += sp.n
		}
	}
	s.spent = keep
	return used > s.cfg.ByteBudget
}

// spend records n body bytes sent, a whole message's unless partial;
// s.mu held.
func (s *Server) spend(n int64, partial bool) {
	sp := spending{s.cfg.Now(), n}
	s.bytes += n
	if !partial {
		s.downloads++
	}
	s.spent = append(s.spent, sp)
	s.sent = append(s.sent, sp)
}

var errClosed = errors.New("connection closed")

// deadlineWriter gives every write its own deadline: a long FETCH is
// fine as long as the client keeps reading.
type deadlineWriter struct {
	nc      net.Conn
	timeout time.Duration
}

func (w deadlineWriter) Write(p []byte) (int, error) {
	w.nc.SetWriteDeadline(time.Now().Add(w.timeout))
	return w.nc.Write(p)
}

func quote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}
