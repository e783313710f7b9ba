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
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-sasl"
)

func TestDotReaderCases(t *testing.T) {
	for _, tc := range []struct{ in, want, rest string }{
		{".\r\n", "", ""},
		{"a\r\n.\r\nnext", "a\r\n", "next"},
		{"..\r\n.\r\n", ".\r\n", ""},
		{".x\r\n.\r\n", "x\r\n", ""},
		{"a\n.\nnext", "a\n", "next"}, // bare LF
		{".\rx\r\n.\r\n", "\rx\r\n", ""},
		{"a.\r\n . \r\n.\r\n", "a.\r\n . \r\n", ""},
		{"\r\n.\r\n", "\r\n", ""},
	} {
		for _, oneByte := range []bool{false, true} {
			var src io.Reader = strings.NewReader(tc.in)
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			br := bufio.NewReaderSize(src, 16)
			got, err := io.ReadAll(newDotReader(br))
			rest, _ := io.ReadAll(br)
			if err != nil || string(got) != tc.want || string(rest) != tc.rest {
				t.Errorf("%q (one byte %v): got %q, %v, rest %q", tc.in, oneByte, got, err, rest)
			}
		}
	}
	for _, cut := range []string{"", "abc", "abc\r\n", "abc\r\n.", "abc\r\n.\r", "..\r\n"} {
		_, err := io.ReadAll(newDotReader(bufio.NewReader(strings.NewReader(cut))))
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("cut %q: %v, want io.ErrUnexpectedEOF", cut, err)
		}
	}
	// A long line streams through a small buffer.
	long := strings.Repeat("L", 1<<20)
	got, err := io.ReadAll(newDotReader(bufio.NewReaderSize(strings.NewReader(long+"\r\n.\r\n"), 16)))
	if err != nil || string(got) != long+"\r\n" {
		t.Fatalf("long line: %d bytes, %v", len(got), err)
	}
}

func TestParseErrCodes(t *testing.T) {
	for text, want := range map[string]Error{
		"[IN-USE] locked":         {"IN-USE", "locked"},
		"[login-delay] wait":      {"LOGIN-DELAY", "wait"},
		"[SYS/TEMP/DISK] full":    {"SYS/TEMP/DISK", "full"},
		"[AUTH]":                  {"AUTH", ""},
		"no code":                 {"", "no code"},
		"[unterminated":           {"", "[unterminated"},
		"[] empty":                {"", "[] empty"},
		"[has space] not a code ": {"", "[has space] not a code "},
	} {
		if got := parseErr(text); *got != want {
			t.Errorf("%q: %+v, want %+v", text, *got, want)
		}
	}
	if !(&Error{Code: "SYS/TEMP/DISK"}).Temporary() || (&Error{Code: "SYS/TEMPX"}).Temporary() {
		t.Error("hierarchical codes")
	}
}

// Cancelling the context unblocks a stalled read at once.
func TestCancelUnblocks(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		s.send("+OK\r\nSubject: stall\r\n\r\npartial")
		<-release
		return false
	})
	c := srv.dial(t, nil)
	cctx, cancel := context.WithCancel(context.Background())
	r, err := c.Retr(cctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = io.ReadAll(r)
	if !errors.Is(err, context.Canceled) || time.Since(start) > 3*time.Second {
		t.Fatalf("err %v after %v", err, time.Since(start))
	}
	if err := c.Noop(context.Background()); err == nil {
		t.Fatal("session usable after cancellation")
	}
}

// The per-read timeout is refreshed on each read: a message that arrives
// slowly but steadily is not cut.
func TestSlowSteadyStream(t *testing.T) {
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		s.send("+OK\r\n")
		for i := 0; i < 8; i++ {
			s.send(fmt.Sprintf("line %d\r\n", i))
			time.Sleep(60 * time.Millisecond)
		}
		s.send(".\r\n")
		return true
	})
	c := srv.dial(t, &Options{Timeout: 250 * time.Millisecond})
	got := readAll(t, c, 1)
	if !strings.HasSuffix(got, "line 7\r\n") {
		t.Fatalf("got %q", got)
	}
}

func TestRetrReaderLifecycle(t *testing.T) {
	mb := mailbox{1: strings.Repeat("x", 100000) + "\r\n", 2: "two\r\n"}
	srv := newServer(t, "+OK\r\n", mb.handler(nil))
	c := srv.dial(t, nil)
	if _, err := c.Retr(ctx(t), 9); !errors.As(err, new(*Error)) {
		t.Fatalf("RETR of a missing message: %v", err)
	}
	r, err := c.Retr(ctx(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Noop(ctx(t)); !errors.Is(err, errBusy) {
		t.Fatalf("command while a reader is open: %v", err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(r, buf); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil { // drains the rest
		t.Fatal(err)
	}
	if _, err := r.Read(buf); err == nil {
		t.Fatal("read after Close")
	}
	if got := readAll(t, c, 2); got != "two\r\n" {
		t.Fatalf("next message: %q", got)
	}
}

func TestRetrEachOneAtATime(t *testing.T) {
	mb := mailbox{1: "a\r\n", 2: "b\r\n", 3: "c\r\n"}
	srv := newServer(t, "+OK\r\n", mb.handler(func(s *session, cmd string) bool {
		if strings.HasPrefix(cmd, "RETR") && s.br.Buffered() > 0 {
			t.Errorf("%s: a command was pipelined", cmd)
		}
		return false
	}))
	c := srv.dial(t, nil)
	var got []string
	failed, err := c.RetrEach(ctx(t), []int{3, 9, 1}, false, func(num int, body io.Reader) error {
		if err := c.Noop(ctx(t)); !errors.Is(err, errBusy) {
			t.Errorf("command from inside the callback: %v", err)
		}
		b, err := io.ReadAll(body)
		got = append(got, fmt.Sprint(num, string(b)))
		return err
	})
	if err != nil || len(failed) != 1 || failed[9] == nil || strings.Join(got, "|") != "3c\r\n|1a\r\n" {
		t.Fatalf("got %q, failed %v, err %v", got, failed, err)
	}
}

// A connection cut during pipelined retrieval: the message being read
// fails with an error (not EOF) and so does RetrEach.
func TestRetrEachCut(t *testing.T) {
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		if cmd == "RETR 1" {
			s.send("+OK\r\nfull\r\n.\r\n")
			return true
		}
		s.send("+OK\r\nhalf")
		return false
	})
	c := srv.dial(t, nil)
	var bodyErr error
	_, err := c.RetrEach(ctx(t), []int{1, 2, 3}, true, func(num int, body io.Reader) error {
		_, bodyErr = io.ReadAll(body)
		return bodyErr
	})
	if !errors.Is(bodyErr, io.ErrUnexpectedEOF) || err == nil {
		t.Fatalf("body error %v, RetrEach %v", bodyErr, err)
	}
}

type failingMech struct{}

func (failingMech) Start() (string, []byte, error) { return "X-TEST", nil, nil }
func (failingMech) Next(c []byte) ([]byte, error)  { return nil, fmt.Errorf("cannot answer %q", c) }
func TestAuthCancelOnMechError(t *testing.T) {
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		switch cmd {
		case "AUTH X-TEST":
			s.send("+ " + base64.StdEncoding.EncodeToString([]byte("challenge")) + "\r\n")
		case "*":
			s.send("-ERR [AUTH] cancelled\r\n")
		default:
			s.send("+OK\r\n")
		}
		return true
	})
	c := srv.dial(t, nil)
	err := c.Auth(ctx(t), failingMech{})
	if err == nil || !strings.Contains(err.Error(), `cannot answer "challenge"`) {
		t.Fatalf("err %v", err)
	}
	if err := c.Noop(ctx(t)); err != nil {
		t.Fatalf("session out of step after cancel: %v", err)
	}
	if !strings.Contains(srv.received(), "\n*") {
		t.Fatal("no * sent")
	}
}

type emptyIR struct{}

func (emptyIR) Start() (string, []byte, error) { return "X-EMPTY", []byte{}, nil }
func (emptyIR) Next(c []byte) ([]byte, error)  { return nil, nil }
func TestAuthEmptyInitialResponse(t *testing.T) {
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		if cmd == "AUTH X-EMPTY =" {
			s.send("+OK\r\n")
		} else {
			s.send("-ERR\r\n")
		}
		return true
	})
	if err := srv.dial(t, nil).Auth(ctx(t), emptyIR{}); err != nil {
		t.Fatal(err)
	}
}

// An initial response that would make the AUTH line longer than 255
// octets is sent after the server's empty challenge (RFC 5034 section 4).
func TestAuthLongInitialResponse(t *testing.T) {
	pass := strings.Repeat("p", 300)
	want := base64.StdEncoding.EncodeToString([]byte("\x00bob\x00" + pass))
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		switch cmd {
		case "AUTH PLAIN":
			s.send("+\r\n")
		case want:
			s.send("+OK\r\n")
		default:
			s.send("-ERR [AUTH] no\r\n")
		}
		return true
	})
	var trace bytes.Buffer
	c := srv.dial(t, &Options{Trace: &trace})
	if err := c.Auth(ctx(t), sasl.NewPlainClient("", "bob", pass)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(trace.String(), pass) || strings.Contains(trace.String(), want[:40]) {
		t.Fatalf("secret in trace:\n%s", trace.String())
	}
}

func TestTraceRedactsAuthAndAPOP(t *testing.T) {
	ir := base64.StdEncoding.EncodeToString([]byte("\x00bob\x00hunter2"))
	srv := newServer(t, "+OK <1.2@host>\r\n", func(s *session, cmd string) bool {
		s.send("+OK\r\n")
		return true
	})
	var trace bytes.Buffer
	c := srv.dial(t, &Options{Trace: &trace})
	if err := c.Auth(ctx(t), sasl.NewPlainClient("", "bob", "hunter2")); err != nil {
		t.Fatal(err)
	}
	if err := c.APOP(ctx(t), "bob", "hunter2"); err != nil {
		t.Fatal(err)
	}
	if err := c.Login(ctx(t), "bob", "hunter2"); err != nil {
		t.Fatal(err)
	}
	tr := trace.String()
	if strings.Contains(tr, "hunter2") || strings.Contains(tr, ir) || !strings.Contains(tr, "AUTH PLAIN <redacted>") {
		t.Fatalf("trace:\n%s", tr)
	}
}

// Plaintext bytes sent with the STLS reply must not be taken as if they
// came over TLS.
func TestSTLSInjection(t *testing.T) {
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		s.send("+OK begin TLS\r\n+OK injected\r\n")
		return true
	})
	err := srv.dial(t, nil).StartTLS(ctx(t), &tls.Config{ServerName: "localhost"})
	if !errors.Is(err, ErrProtocol) {
		t.Fatalf("err %v, want ErrProtocol", err)
	}
}

// A *tls.Conn from the start (POP3S) is reported as TLS.
func TestImplicitTLS(t *testing.T) {
	cfg := selfSigned(t)
	srv := newServer(t, "+OK\r\n", mailbox{}.handler(nil))
	pool := x509.NewCertPool()
	pool.AddCert(cfg.Certificates[0].Leaf)
	// Serve the scripted session over a TLS listener of its own.
	tln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer tln.Close()
	go func() {
		conn, err := tln.Accept()
		if err != nil {
			return
		}
		srv.serve(conn)
	}()
	conn, err := tls.Dial("tcp", tln.Addr().String(), &tls.Config{ServerName: "localhost", RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	c, err := NewClient(conn, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.TLSConnectionState(); !ok {
		t.Fatal("not reported as TLS")
	}
	if err := c.StartTLS(ctx(t), &tls.Config{}); err == nil {
		t.Fatal("STLS over TLS accepted")
	}
	if err := c.Quit(ctx(t)); err != nil {
		t.Fatal(err)
	}
}

func TestQuit(t *testing.T) {
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		if cmd == "QUIT" {
			s.send("-ERR [SYS/TEMP] some deleted messages not removed\r\n")
			return false
		}
		s.send("+OK\r\n")
		return true
	})
	c := srv.dial(t, nil)
	if err := c.Dele(ctx(t), []int{1}, false); err != nil {
		t.Fatal(err)
	}
	var perr *Error
	if err := c.Quit(ctx(t)); !errors.As(err, &perr) || !perr.Temporary() {
		t.Fatalf("QUIT: %v", err)
	}
	if err := c.Noop(ctx(t)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after QUIT: %v", err)
	}
}

// Listings tolerate extra whitespace and trailing fields, and a status
// line longer than the cap is an error rather than a memory blowup.
func TestListingLeniencyAndLimits(t *testing.T) {
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		switch cmd {
		case "LIST":
			s.send("+OK 2 messages\r\n1   100 \r\n\t2 200 extra info\r\n\r\n.\r\n")
		case "NOOP":
			s.send("+OK " + strings.Repeat("n", maxLine+10) + "\r\n")
		}
		return true
	})
	c := srv.dial(t, nil)
	list, err := c.List(ctx(t))
	if err != nil || len(list) != 2 || list[1] != (MessageInfo{2, 200}) {
		t.Fatalf("List %v %v", list, err)
	}
	if err := c.Noop(ctx(t)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("huge line: %v", err)
	}
}

// A CAPA reply, kept whole, is capped in lines and line length: 2,000
// long lines once kept 124 MiB.
func TestCapaLimits(t *testing.T) {
	for name, reply := range map[string]string{
		"many lines": "+OK\r\n" + strings.Repeat("X-CAP a b c\r\n", maxCapaLines+1) + ".\r\n",
		"long line":  "+OK\r\nSASL " + strings.Repeat("PLAIN ", maxCapaLine/6+1) + "\r\n.\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
				if cmd == "CAPA" {
					s.send(reply)
				}
				return true
			})
			c := srv.dial(t, nil)
			if _, err := c.Capa(ctx(t)); !errors.Is(err, ErrProtocol) {
				t.Fatalf("Capa: %v, want a protocol error", err)
			}
		})
	}
	// A real server's CAPA passes.
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		s.send("+OK\r\nTOP\r\nUSER\r\nUIDL\r\nPIPELINING\r\nSASL PLAIN LOGIN XOAUTH2 OAUTHBEARER\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nSTLS\r\n.\r\n")
		return true
	})
	if caps, err := srv.dial(t, nil).Capa(ctx(t)); err != nil || !caps.Has("UIDL") {
		t.Fatalf("Capa %v %v", caps, err)
	}
}

// A UIDL listing larger than maxListingBytes is a protocol error, not a
// memory blowup.
func TestListingByteLimit(t *testing.T) {
	line := strings.Repeat("u", 250)
	n := maxListingBytes/len(line) + 10
	var b strings.Builder
	b.WriteString("+OK\r\n")
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%d %s\r\n", i, line)
	}
	b.WriteString(".\r\n")
	reply := b.String()
	srv := newServer(t, "+OK\r\n", func(s *session, cmd string) bool {
		if cmd == "UIDL" {
			s.send(reply)
		}
		return true
	})
	if _, err := srv.dial(t, nil).UIDL(ctx(t)); !errors.Is(err, ErrProtocol) {
		t.Fatalf("UIDL of %d bytes: %v", len(reply), err)
	}
}
