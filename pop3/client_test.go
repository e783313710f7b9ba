package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// fakeServer is a scripted POP3 server on loopback, for what a real server
// will not do on demand. handle gets each command line and the session to
// answer on; it returns false to hang up.
type fakeServer struct {
	t        *testing.T
	addr     string
	greeting string
	handle   func(s *session, cmd string) bool
	// trickle writes replies one byte at a time, so that replies arrive
	// split across many TCP reads.
	trickle bool
	tlsCfg  *tls.Config

	mu       sync.Mutex
	commands []string
}

type session struct {
	srv  *fakeServer
	conn net.Conn
	br   *bufio.Reader
}

func (s *session) send(text string) {
	if s.srv.trickle {
		for i := 0; i < len(text); i++ {
			s.conn.Write([]byte{text[i]})
		}
		return
	}
	io.WriteString(s.conn, text)
}

// newServer starts a server; configure sets fields such as trickle before
// it accepts anything.
func newServer(t *testing.T, greeting string, handle func(s *session, cmd string) bool, configure ...func(*fakeServer)) *fakeServer {
	t.Helper()
	srv := &fakeServer{t: t, greeting: greeting, handle: handle}
	for _, f := range configure {
		f(srv)
	}
	srv.addr = testlib.Serve(t, nil, srv.serve)
	return srv
}

func (srv *fakeServer) serve(conn net.Conn) {
	s := &session{srv: srv, conn: conn, br: bufio.NewReader(conn)}
	s.send(srv.greeting)
	for {
		line, err := s.br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		srv.mu.Lock()
		srv.commands = append(srv.commands, cmd)
		srv.mu.Unlock()
		if cmd == "STLS" && srv.tlsCfg != nil {
			s.send("+OK begin TLS\r\n")
			tc := tls.Server(conn, srv.tlsCfg)
			if err := tc.Handshake(); err != nil {
				return
			}
			s.conn, s.br = tc, bufio.NewReader(tc)
			continue
		}
		if !srv.handle(s, cmd) {
			return
		}
	}
}

func (srv *fakeServer) received() string {
	srv.mu.Lock()
	defer srv.mu.Unlock()
	return strings.Join(srv.commands, "\n")
}

func (srv *fakeServer) dial(t *testing.T, opts *Options) *Client {
	t.Helper()
	conn, err := net.Dial("tcp", srv.addr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(conn, opts)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

// mailbox serves numbered messages with RFC 1939 framing (dot-stuffed,
// CRLF.CRLF terminator).
type mailbox map[int]string

func stuff(msg string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(msg, "\n") {
		if strings.HasPrefix(line, ".") {
			b.WriteString(".")
		}
		b.WriteString(line)
	}
	if !strings.HasSuffix(msg, "\n") {
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.String()
}

func (mb mailbox) handler(extra func(s *session, cmd string) bool) func(*session, string) bool {
	return func(s *session, cmd string) bool {
		if extra != nil && extra(s, cmd) {
			return true
		}
		f := strings.Fields(cmd)
		switch strings.ToUpper(f[0]) {
		case "USER", "PASS", "NOOP", "RSET":
			s.send("+OK\r\n")
		case "QUIT":
			s.send("+OK bye\r\n")
			return false
		case "RETR":
			var n int
			fmt.Sscan(f[1], &n)
			msg, ok := mb[n]
			if !ok {
				s.send("-ERR no such message\r\n")
				return true
			}
			s.send("+OK message follows\r\n" + stuff(msg))
		case "TOP":
			var n, lines int
			fmt.Sscan(f[1], &n)
			fmt.Sscan(f[2], &lines)
			msg, ok := mb[n]
			if !ok || lines != 0 {
				s.send("-ERR no such message\r\n")
				return true
			}
			header, _, _ := strings.Cut(msg, "\r\n\r\n")
			s.send("+OK\r\n" + stuff(header+"\r\n\r\n"))
		case "DELE":
			s.send("+OK deleted\r\n")
		case "LIST":
			s.send("+OK\r\n")
			for i := 1; i <= len(mb); i++ {
				s.send(fmt.Sprintf("%d %d\r\n", i, len(mb[i])))
			}
			s.send(".\r\n")
		default:
			s.send("-ERR unknown command\r\n")
		}
		return true
	}
}

func readAll(t *testing.T, c *Client, n int) string {
	t.Helper()
	r, err := c.Retr(ctx(t), n)
	if err != nil {
		t.Fatalf("RETR %d: %v", n, err)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("RETR %d: read: %v", n, err)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRetrDotStuffing(t *testing.T) {
	long8k := strings.Repeat("x", 8192)
	long2m := strings.Repeat("y", 2<<20)
	mb := mailbox{
		1: "Subject: dots\r\n\r\n.one dot\r\n..two dots\r\n.\r\n..\r\nend\r\n",
		2: "Subject: lone dot body\r\n\r\nbefore\r\n.\r\nafter\r\n",
		3: "Subject: 8k\r\n\r\n" + long8k + "\r\n",
		4: "Subject: 2m\r\n\r\n" + long2m + "\r\n.after a long line\r\n",
		5: "Subject: bare LF\n\nline\n.dot\n",
	}
	for _, trickle := range []bool{false, true} {
		t.Run(fmt.Sprintf("trickle=%v", trickle), func(t *testing.T) {
			srv := newServer(t, "+OK ready\r\n", mb.handler(nil), func(s *fakeServer) { s.trickle = trickle })
			c := srv.dial(t, nil)
			for n := 1; n <= len(mb); n++ {
				if trickle && n == 4 {
					continue // 2 MB byte by byte is slow and proves nothing more
				}
				if got := readAll(t, c, n); got != mb[n] {
					t.Errorf("message %d: got %q..., want %q...", n, clip(got), clip(mb[n]))
				}
			}
		})
	}
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80]
	}
	return s
}

// A message whose last line has no CRLF: the server must add one before
// the terminator (RFC 1939), and it is part of what we deliver.
func TestRetrNoFinalNewline(t *testing.T) {
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		s.send("+OK\r\nSubject: x\r\n\r\nlast line\r\n.\r\n")
		return true
	})
	if got := readAll(t, srv.dial(t, nil), 1); got != "Subject: x\r\n\r\nlast line\r\n" {
		t.Fatalf("got %q", got)
	}
}

// A connection cut in the middle of a message is an error, never EOF.
func TestRetrCutMidMessage(t *testing.T) {
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		s.send("+OK\r\nSubject: cut\r\n\r\nhalf a mess")
		return false
	})
	c := srv.dial(t, nil)
	r, err := c.Retr(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err == nil {
		t.Fatalf("read %q and a clean EOF from a cut connection", got)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("error %v, want io.ErrUnexpectedEOF", err)
	}
	r.Close()
	if _, _, err := c.Stat(ctx(t)); err == nil {
		t.Fatal("the session is still usable after a cut")
	}
}

// With PIPELINING all RETRs go out before the replies are read; a -ERR in
// the middle fails only that message.
func TestRetrEachPipelined(t *testing.T) {
	mb := mailbox{}
	for i := 1; i <= 150; i++ {
		mb[i] = fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i)
	}
	var (
		mu          sync.Mutex
		maxInFlight int
		inFlight    int
	)
	srv := newServer(t, "+OK\r\n", mb.handler(func(s *session, cmd string) bool {
		if !strings.HasPrefix(cmd, "RETR") {
			return false
		}
		mu.Lock()
		inFlight = s.br.Buffered()/len("RETR 100\r\n") + 1
		maxInFlight = max(maxInFlight, inFlight)
		mu.Unlock()
		if cmd == "RETR 7" {
			s.send("-ERR [SYS/TEMP] try later\r\n")
			return true
		}
		return false
	}))
	c := srv.dial(t, nil)
	nums := make([]int, 0, 150)
	for i := 1; i <= 150; i++ {
		nums = append(nums, i)
	}
	var got []int
	failed, err := c.RetrEach(ctx(t), nums, true, func(num int, body io.Reader) error {
		b, err := io.ReadAll(body)
		if err != nil {
			return err
		}
		if string(b) != mb[num] {
			t.Errorf("message %d: %q", num, b)
		}
		got = append(got, num)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 149 || failed[7] == nil {
		t.Fatalf("delivered %d, failed %v", len(got), failed)
	}
	var perr *Error
	if !errors.As(failed[7], &perr) || perr.Code != "SYS/TEMP" || !perr.Temporary() {
		t.Fatalf("failed[7] = %#v", failed[7])
	}
	if maxInFlight < 10 {
		t.Errorf("at most %d commands were in flight: not pipelined", maxInFlight)
	}
	// The session is still in step.
	if err := c.Noop(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

// When the caller's function fails, the outstanding replies are read and
// the session stays usable (QUIT can still commit earlier DELEs).
func TestRetrEachCallerError(t *testing.T) {
	mb := mailbox{1: "a\r\n", 2: "b\r\n", 3: "c\r\n", 4: "d\r\n"}
	srv := newServer(t, "+OK\r\n", mb.handler(nil))
	c := srv.dial(t, nil)
	stop := errors.New("maddy is busy")
	calls := 0
	_, err := c.RetrEach(ctx(t), []int{1, 2, 3, 4}, true, func(num int, body io.Reader) error {
		calls++
		if num == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Fatalf("err %v after %d calls", err, calls)
	}
	if err := c.Quit(ctx(t)); err != nil {
		t.Fatalf("QUIT after a caller error: %v", err)
	}
}

func TestDelePipelined(t *testing.T) {
	mb := mailbox{1: "a\r\n", 2: "b\r\n", 3: "c\r\n"}
	srv := newServer(t, "+OK\r\n", mb.handler(func(s *session, cmd string) bool {
		if cmd == "DELE 2" {
			s.send("-ERR message 2 already deleted\r\n")
			return true
		}
		return false
	}))
	c := srv.dial(t, nil)
	err := c.Dele(ctx(t), []int{1, 2, 3}, true)
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("err = %v, want the -ERR for message 2", err)
	}
	if !strings.Contains(srv.received(), "DELE 3") {
		t.Fatal("DELE 3 not sent after the -ERR")
	}
	if err := c.Noop(ctx(t)); err != nil {
		t.Fatalf("session out of step: %v", err)
	}
}

// A server without CAPA and without UIDL: Login with USER/PASS works, Capa
// and UIDL report the server's -ERR.
func TestOldServer(t *testing.T) {
	mb := mailbox{1: "a\r\n"}
	srv := newServer(t, "+OK old server\r\n", mb.handler(nil))
	c := srv.dial(t, nil)
	if _, err := c.Capa(ctx(t)); !errors.Is(err, ErrNoCapa) {
		t.Fatalf("Capa: %v, want ErrNoCapa", err)
	}
	if err := c.Login(ctx(t), "bob", "secret"); err != nil {
		t.Fatal(err)
	}
	_, err := c.UIDL(ctx(t))
	var perr *Error
	if !errors.As(err, &perr) {
		t.Fatalf("UIDL: %v, want a server -ERR", err)
	}
	list, err := c.List(ctx(t))
	if err != nil || len(list) != 1 || list[0] != (MessageInfo{1, 3}) {
		t.Fatalf("List: %v %v", list, err)
	}
}

func TestCapaAndListings(t *testing.T) {
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		switch cmd {
		case "CAPA":
			s.send("+OK\r\nTOP\r\nUIDL\r\nPIPELINING\r\nSASL PLAIN XOAUTH2\r\nRESP-CODES\r\nLOGIN-DELAY 900\r\n.\r\n")
		case "UIDL":
			s.send("+OK\r\n1 whqtswO00WBw418f9t5JxYwZ\r\n2   QhdPYR:00WBw1Ph7x7\r\n.\r\n")
		case "STAT":
			s.send("+OK 2 320\r\n")
		}
		return true
	}, func(s *fakeServer) { s.trickle = true })
	c := srv.dial(t, nil)
	caps, err := c.Capa(ctx(t))
	if err != nil || !caps.Has("pipelining") || strings.Join(caps["SASL"], ",") != "PLAIN,XOAUTH2" || caps["LOGIN-DELAY"][0] != "900" {
		t.Fatalf("caps %v, %v", caps, err)
	}
	uids, err := c.UIDL(ctx(t))
	if err != nil || len(uids) != 2 || uids[1].UID != "QhdPYR:00WBw1Ph7x7" {
		t.Fatalf("UIDL %v, %v", uids, err)
	}
	n, size, err := c.Stat(ctx(t))
	if err != nil || n != 2 || size != 320 {
		t.Fatalf("STAT %d %d %v", n, size, err)
	}
}

func TestResponseCodes(t *testing.T) {
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		switch {
		case strings.HasPrefix(cmd, "USER"):
			s.send("+OK\r\n")
		case strings.HasPrefix(cmd, "PASS"):
			s.send("-ERR [IN-USE] mailbox locked by another session\r\n")
		}
		return true
	})
	err := srv.dial(t, nil).Login(ctx(t), "bob", "pw")
	var perr *Error
	if !errors.As(err, &perr) || perr.Code != "IN-USE" || !perr.Temporary() || perr.Text != "mailbox locked by another session" {
		t.Fatalf("err %#v", err)
	}
	for code, temp := range map[string]bool{"LOGIN-DELAY": true, "SYS/TEMP": true, "SYS/PERM": false, "AUTH": false} {
		if got := (&Error{Code: code}).Temporary(); got != temp {
			t.Errorf("%s temporary = %v", code, got)
		}
	}
}

// RFC 1939's own APOP example.
func TestAPOP(t *testing.T) {
	srv := newServer(t, "+OK POP3 server ready <1896.697170952@dbc.mtview.ca.us>\r\n", func(s *session, cmd string) bool {
		if cmd == "APOP mrose c4c9334bac560ecc979e58001b3e22fb" {
			s.send("+OK maildrop has 1 message\r\n")
		} else {
			s.send("-ERR permission denied\r\n")
		}
		return true
	})
	var trace bytes.Buffer
	c := srv.dial(t, &Options{Trace: &trace})
	if c.APOPTimestamp() != "<1896.697170952@dbc.mtview.ca.us>" {
		t.Fatalf("timestamp %q", c.APOPTimestamp())
	}
	if err := c.APOP(ctx(t), "mrose", "tanstaaf"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(trace.String(), "c4c9334b") {
		t.Fatal("the APOP digest is in the trace")
	}
}

func TestAuthPlainWithChallenge(t *testing.T) {
	want := base64.StdEncoding.EncodeToString([]byte("\x00bob\x00s3cret"))
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		switch cmd {
		case "AUTH PLAIN":
			s.send("+ \r\n") // empty challenge: send the response now
		case want:
			s.send("+OK logged in\r\n")
		default:
			s.send("-ERR [AUTH] bad credentials\r\n")
		}
		return true
	})
	var trace bytes.Buffer
	c := srv.dial(t, &Options{Trace: &trace})
	// A client without an initial response exercises the challenge path.
	if err := c.Auth(ctx(t), noIR{sasl.NewPlainClient("", "bob", "s3cret")}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(trace.String(), "s3cret") || strings.Contains(trace.String(), want) {
		t.Fatalf("secret in the trace:\n%s", trace.String())
	}
}

func TestAuthPlainInitialResponse(t *testing.T) {
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		if cmd == "AUTH PLAIN "+base64.StdEncoding.EncodeToString([]byte("\x00bob\x00pw")) {
			s.send("+OK\r\n")
		} else {
			s.send("-ERR [AUTH] no\r\n")
		}
		return true
	})
	if err := srv.dial(t, nil).Auth(ctx(t), sasl.NewPlainClient("", "bob", "pw")); err != nil {
		t.Fatal(err)
	}
}

// noIR hides a mechanism's initial response.
type noIR struct{ sasl.Client }

func (n noIR) Start() (string, []byte, error) {
	mech, _, err := n.Client.Start()
	return mech, nil, err
}

func (n noIR) Next(challenge []byte) ([]byte, error) {
	_, ir, err := n.Client.Start()
	return ir, err
}

func TestTraceRedactsPass(t *testing.T) {
	srv := newServer(t, "+OK\r\n", mailbox{}.handler(nil))
	var trace bytes.Buffer
	c := srv.dial(t, &Options{Trace: &trace})
	if err := c.Login(ctx(t), "bob", "hunter2"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(trace.String(), "hunter2") || !strings.Contains(trace.String(), "PASS <redacted>") {
		t.Fatalf("trace:\n%s", trace.String())
	}
}

func TestSTLS(t *testing.T) {
	tlsCfg := selfSigned(t)
	srv := newServer(t, "+OK\r\n", mailbox{1: "secret mail\r\n"}.handler(nil), func(s *fakeServer) { s.tlsCfg = tlsCfg })
	c := srv.dial(t, nil)
	pool := x509.NewCertPool()
	pool.AddCert(srv.tlsCfg.Certificates[0].Leaf)
	if err := c.StartTLS(ctx(t), &tls.Config{ServerName: "localhost", RootCAs: pool}); err != nil {
		t.Fatal(err)
	}
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("not TLS after StartTLS")
	}
	if got := readAll(t, c, 1); got != "secret mail\r\n" {
		t.Fatalf("over TLS: %q", got)
	}

	// A certificate the client does not trust fails the handshake.
	c2 := srv.dial(t, nil)
	if err := c2.StartTLS(ctx(t), &tls.Config{ServerName: "localhost"}); err == nil {
		t.Fatal("an untrusted certificate was accepted")
	}
}

func selfSigned(t *testing.T) *tls.Config {
	cert, _ := testlib.SelfSigned(t, "localhost")
	return &tls.Config{Certificates: []tls.Certificate{cert}}
}

// A server that stalls in the middle of a message cannot block the caller
// past its context.
func TestStallHonoursContext(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		s.send("+OK\r\nSubject: stall\r\n\r\nfirst half")
		<-release
		return false
	})
	c := srv.dial(t, nil)
	cctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r, err := c.Retr(cctx, 1)
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if err == nil {
		t.Fatal("a stalled read returned no error")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("blocked for %v past a 300ms context", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want context.DeadlineExceeded", err)
	}
	// And the per-read timeout alone (no context deadline) ends it too.
	c2 := srv.dial(t, &Options{Timeout: 300 * time.Millisecond})
	start = time.Now()
	r, err = c2.Retr(context.Background(), 1)
	if err == nil {
		_, err = io.ReadAll(r)
	}
	if err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
}

func TestBadGreetingAndGarbage(t *testing.T) {
	for _, greeting := range []string{"* OK this is IMAP\r\n", "-ERR [SYS/TEMP] go away\r\n", ""} {
		srv := newServer(t, greeting, func(*session, string) bool { return false })
		conn, err := net.Dial("tcp", srv.addr)
		if err != nil {
			t.Fatal(err)
		}
		if c, err := NewClient(conn, &Options{Timeout: time.Second}); err == nil {
			c.Close()
			t.Errorf("greeting %q accepted", greeting)
		}
	}
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		s.send("+OK\r\n1 2\r\nnot a listing line\r\n.\r\n")
		return true
	})
	if _, err := srv.dial(t, nil).List(ctx(t)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("garbage listing: %v", err)
	}
}

// TopEach reads each message's header with TOP n 0, pipelined, and leaves
// the session in step.
func TestTopEach(t *testing.T) {
	mb := mailbox{1: "Subject: one\r\nX: .dotted\r\n\r\nbody 1\r\n", 2: "Subject: two\r\n\r\nbody 2\r\n"}
	srv := newServer(t, "+OK\r\n", mb.handler(nil))
	c := srv.dial(t, nil)
	got := map[int]string{}
	failed, err := c.TopEach(ctx(t), []int{1, 2, 3}, true, func(num int, header io.Reader) error {
		b, err := io.ReadAll(header)
		got[num] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if got[1] != "Subject: one\r\nX: .dotted\r\n\r\n" || got[2] != "Subject: two\r\n\r\n" || failed[3] == nil {
		t.Fatalf("got %q, failed %v", got, failed)
	}
	if err := c.Noop(ctx(t)); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if !slices.Contains(srv.commands, "TOP 1 0") {
		t.Fatalf("commands %q", srv.commands)
	}
}
