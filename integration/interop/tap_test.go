//go:build interop

package interop

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// tap sits between maddy and an upstream and records what each side says,
// so that a test can see which login command remote_pull chose. With
// STARTTLS it is a man in the middle: it relays the plain-text start line by
// line, and when the client's STARTTLS (IMAP) or STLS (POP3) is answered OK,
// it completes TLS with the client on a certificate of its own CA (which
// the test account trusts in tls_client) and with the server on the
// server's (verified against the server's CA). Without STARTTLS it relays
// and records plain TCP.
type tap struct {
	Addr string
	CA   *harness.CA // the tap's own, for the account's root_ca

	up       *upstream
	ln       net.Listener
	mu       sync.Mutex
	sessions []*tapSession
	wg       sync.WaitGroup
}

// tapSession is one connection: what the client sent and what the server
// answered, before TLS (clear) and after (secure).
type tapSession struct {
	mu                         sync.Mutex
	tls                        bool
	clientClear, serverClear   bytes.Buffer
	clientSecure, serverSecure bytes.Buffer
}

const tapRecordMax = 64 << 10 // per direction and phase; message bodies need not be kept

func startTap(t *testing.T, up *upstream) *tap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tp := &tap{Addr: ln.Addr().String(), CA: harness.NewCA(t), up: up, ln: ln}
	tp.wg.Add(1)
	go func() {
		defer tp.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s := &tapSession{}
			tp.mu.Lock()
			tp.sessions = append(tp.sessions, s)
			tp.mu.Unlock()
			tp.wg.Add(1)
			go func() {
				defer tp.wg.Done()
				tp.serve(c, s)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		tp.mu.Lock()
		tp.ln = nil
		tp.mu.Unlock()
	})
	return tp
}

// Sessions returns the connections so far, oldest first.
func (tp *tap) Sessions() []*tapSession {
	tp.mu.Lock()
	defer tp.mu.Unlock()
	return append([]*tapSession(nil), tp.sessions...)
}

func (s *tapSession) record(b *bytes.Buffer, p []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if room := tapRecordMax - b.Len(); room > 0 {
		if len(p) > room {
			p = p[:room]
		}
		b.Write(p)
	}
}

func (s *tapSession) snapshot() (tlsUsed bool, clientClear, serverClear, clientSecure, serverSecure string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tls, s.clientClear.String(), s.serverClear.String(), s.clientSecure.String(), s.serverSecure.String()
}

// bufConn reads through a bufio.Reader that may hold bytes already read
// from the connection.
type bufConn struct {
	net.Conn
	r *bufio.Reader
}

func (c bufConn) Read(p []byte) (int, error) { return c.r.Read(p) }

var (
	imapStartTLS = regexp.MustCompile(`(?i)^(\S+) STARTTLS\r?\n$`)
	pop3STLS     = regexp.MustCompile(`(?i)^STLS\r?\n$`)
)

func (tp *tap) serve(cc net.Conn, s *tapSession) {
	defer cc.Close()
	sc, err := net.Dial("tcp", tp.up.Addr)
	if err != nil {
		return
	}
	defer sc.Close()
	cr, sr := bufio.NewReader(cc), bufio.NewReader(sc)
	var client, server io.ReadWriter = bufConn{cc, cr}, bufConn{sc, sr}

	if tp.up.StartTLS {
		upgraded := tp.startTLSPhase(s, cc, cr, sc, sr)
		if !upgraded {
			return
		}
		tc := tls.Server(bufConn{cc, cr}, &tls.Config{Certificates: []tls.Certificate{tp.cert()}})
		ts := tls.Client(bufConn{sc, sr}, tp.up.CA.ClientConfig())
		if err := ts.Handshake(); err != nil {
			return
		}
		if err := tc.Handshake(); err != nil {
			return
		}
		s.mu.Lock()
		s.tls = true
		s.mu.Unlock()
		client, server = tc, ts
	}
	clientRec, serverRec := &s.clientClear, &s.serverClear
	if tp.up.StartTLS {
		clientRec, serverRec = &s.clientSecure, &s.serverSecure
	}
	done := make(chan struct{})
	go func() {
		relay(client, server, func(p []byte) { s.record(serverRec, p) })
		cc.Close()
		close(done)
	}()
	relay(server, client, func(p []byte) { s.record(clientRec, p) })
	sc.Close()
	<-done
}

// relay copies from src to dst, recording what passes, until either fails.
func relay(dst io.Writer, src io.Reader, rec func([]byte)) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			rec(buf[:n])
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// startTLSPhase relays the plain-text start line by line until the client
// asks for STARTTLS/STLS and the server says OK (true), or either side
// ends (false). Nothing after the server's OK is read: TLS follows.
func (tp *tap) startTLSPhase(s *tapSession, cc net.Conn, cr *bufio.Reader, sc net.Conn, sr *bufio.Reader) bool {
	type request struct{ tag string } // the STARTTLS command sent, "" for POP3
	pending := make(chan request, 1)
	verdict := make(chan bool, 1)
	go func() {
		// server → client
		var want *request
		for {
			if want == nil {
				select {
				case r := <-pending:
					want = &r
				default:
				}
			}
			line, err := sr.ReadString('\n')
			if line != "" {
				s.record(&s.serverClear, []byte(line))
				if _, werr := cc.Write([]byte(line)); werr != nil {
					verdict <- false
					return
				}
			}
			if err != nil {
				verdict <- false
				return
			}
			if want == nil {
				select {
				case r := <-pending:
					want = &r
				default:
					continue
				}
			}
			switch {
			case tp.up.Proto == "pop3" && strings.HasPrefix(line, "+OK"),
				tp.up.Proto == "imap" && strings.HasPrefix(strings.ToUpper(line), strings.ToUpper(want.tag)+" OK"):
				verdict <- true
				return
			case tp.up.Proto == "pop3" && strings.HasPrefix(line, "-ERR"),
				tp.up.Proto == "imap" && strings.HasPrefix(strings.ToUpper(line), strings.ToUpper(want.tag)+" "):
				verdict <- false
				return
			}
		}
	}()
	for {
		line, err := cr.ReadString('\n')
		if line != "" {
			s.record(&s.clientClear, []byte(line))
			var req *request
			if m := imapStartTLS.FindStringSubmatch(line); tp.up.Proto == "imap" && m != nil {
				req = &request{tag: m[1]}
			} else if tp.up.Proto == "pop3" && pop3STLS.MatchString(line) {
				req = &request{}
			}
			if req != nil {
				pending <- *req
			}
			if _, werr := sc.Write([]byte(line)); werr != nil {
				return false
			}
			if req != nil {
				return <-verdict
			}
		}
		if err != nil {
			return false
		}
	}
}

// cert is the tap's server certificate.
func (tp *tap) cert() tls.Certificate {
	c, err := tls.LoadX509KeyPair(tp.CA.CertFile, tp.CA.KeyFile)
	if err != nil {
		panic(err)
	}
	return c
}
