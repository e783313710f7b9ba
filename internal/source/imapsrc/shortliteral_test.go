package imapsrc

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/internal/source"
)

// literalServer is a scripted IMAP server that logs anyone in, selects any
// mailbox, and answers UID FETCH with a literal announced as announce bytes
// of which it sends only send, then ends the connection with end.
func literalServer(t *testing.T, useTLS bool, announce, send int, end func(net.Conn)) (addr string, caPool *tls.Config) {
	t.Helper()
	return fetchServer(t, useTLS, func(c net.Conn, tag string) bool {
		body := "Subject: short\r\n\r\n" + strings.Repeat("x", announce)
		body = body[:announce]
		fmt.Fprintf(c, "* 1 FETCH (UID 5 BODY[] {%d}\r\n%s", announce, body[:send])
		if send == announce {
			fmt.Fprintf(c, ")\r\n%s OK done\r\n", tag)
			return true
		}
		end(c)
		return false
	})
}

// fetchServer is the scripted server; fetch answers a UID FETCH and says
// whether the session goes on.
func fetchServer(t *testing.T, useTLS bool, fetch func(c net.Conn, tag string) bool) (addr string, caPool *tls.Config) {
	t.Helper()
	return scriptedServer(t, useTLS, 1, func(c net.Conn, tag, cmd string) bool {
		if !strings.HasPrefix(cmd, "UID FETCH") {
			fmt.Fprintf(c, "%s BAD unknown\r\n", tag)
			return true
		}
		return fetch(c, tag)
	})
}

// scriptedServer logs anyone in and selects any mailbox, saying it holds
// exists messages; answer answers every other command (cmd in upper case)
// and says whether the session goes on.
func scriptedServer(t *testing.T, useTLS bool, exists int, answer func(c net.Conn, tag, cmd string) bool) (addr string, caPool *tls.Config) {
	t.Helper()
	cert, pool := selfSigned(t, "localhost")
	var srvTLS *tls.Config
	if useTLS {
		srvTLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	}
	addr = serveScript(t, srvTLS, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN UIDPLUS] fake", func(c *scriptConn, tag, rest string) bool {
		switch cmd := strings.ToUpper(rest); {
		case strings.HasPrefix(cmd, "AUTHENTICATE"), strings.HasPrefix(cmd, "LOGIN"):
			fmt.Fprintf(c, "%s OK logged in\r\n", tag)
		case strings.HasPrefix(cmd, "SELECT"), strings.HasPrefix(cmd, "EXAMINE"):
			fmt.Fprintf(c, "* %d EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n* OK [UIDNEXT 6] x\r\n%s OK [READ-WRITE] done\r\n", exists, tag)
		case strings.HasPrefix(cmd, "LOGOUT"):
			fmt.Fprintf(c, "* BYE\r\n%s OK bye\r\n", tag)
			return false
		default:
			return answer(c.Conn, tag, cmd)
		}
		return true
	})
	return addr, &tls.Config{RootCAs: pool}
}

// A literal that ends early, however the connection ends (FIN, TLS
// close_notify, a FIN without close_notify), never reaches deliver: the
// spool sees an error, not io.EOF.
func TestShortLiteralIsNeverDelivered(t *testing.T) {
	fin := func(c net.Conn) {
		if tc, ok := c.(*tls.Conn); ok {
			tc.NetConn().(*net.TCPConn).CloseWrite() // FIN without close_notify
			return
		}
		c.(*net.TCPConn).CloseWrite()
	}
	closeNotify := func(c net.Conn) { c.(*tls.Conn).CloseWrite() }
	rst := func(c net.Conn) {
		raw := c
		if tc, ok := c.(*tls.Conn); ok {
			raw = tc.NetConn()
		}
		raw.(*net.TCPConn).SetLinger(0)
		raw.Close()
	}
	cases := []struct {
		name   string
		tls    bool
		ending func(net.Conn)
	}{
		{"plain/FIN", false, fin},
		{"plain/RST", false, rst},
		{"TLS/FIN", true, fin},
		{"TLS/close_notify", true, closeNotify},
		{"TLS/RST", true, rst},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr, tlsCfg := literalServer(t, tc.tls, 5000, 1200, tc.ending)
			if !tc.tls {
				tlsCfg = nil
			}
			_, mb := openInbox(t, testUpstream(addr, tlsCfg))
			_, spoolErr, got, err := fetchCount(mb, []string{"5"}, nil)
			delivered := len(got)
			if delivered != 0 {
				t.Fatalf("a literal cut after 1200 of 5000 bytes was delivered")
			}
			if err == nil || spoolErr == nil {
				t.Fatalf("Fetch err %v, spool err %v: want both to fail", err, spoolErr)
			}
			if tc.ending != nil && !errors.Is(spoolErr, source.ErrTruncated) && !isNetErr(spoolErr) {
				t.Fatalf("spool err %v: want ErrTruncated or a network error", spoolErr)
			}
		})
	}
}

// The control case: the same server sending the whole literal delivers it.
func TestWholeLiteralIsDelivered(t *testing.T) {
	addr, tlsCfg := literalServer(t, true, 5000, 5000, nil)
	_, mb := openInbox(t, testUpstream(addr, tlsCfg))
	n, _, got, err := fetchCount(mb, []string{"5"}, nil)
	if err != nil || n != 5000 || len(got) != 1 || got[0] != "5" {
		t.Fatalf("err %v, %d bytes, delivered %v: want the whole 5000-byte literal of UID 5", err, n, got)
	}
}

func isNetErr(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) || strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "closed")
}
