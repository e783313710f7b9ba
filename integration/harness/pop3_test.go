package harness

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// pop3Conn is a minimal POP3 client for these tests only, so the harness
// does not depend on pop3.
type pop3Conn struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// dialPOP3 connects to addr, over TLS when ca is not nil, and reads the
// greeting.
func dialPOP3(t testing.TB, addr string, ca *CA) *pop3Conn {
	t.Helper()
	var conn net.Conn
	var err error
	if ca != nil {
		conn, err = tls.Dial("tcp", addr, ca.ClientConfig())
	} else {
		conn, err = net.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatalf("pop3 dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	c := &pop3Conn{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.status()
	return c
}

// status reads a status line and fails on -ERR.
func (c *pop3Conn) status() string {
	c.t.Helper()
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("pop3: %v", err)
	}
	if !strings.HasPrefix(line, "+OK") {
		c.t.Fatalf("pop3: %q", line)
	}
	return strings.TrimRight(line, "\r\n")
}

// cmd sends one command and returns its status line.
func (c *pop3Conn) cmd(format string, args ...any) string {
	c.t.Helper()
	if _, err := fmt.Fprintf(c.conn, format+"\r\n", args...); err != nil {
		c.t.Fatalf("pop3: %v", err)
	}
	return c.status()
}

// multi reads a multi-line response body, undoing dot-stuffing, with CRLF
// line endings as sent.
func (c *pop3Conn) multi() []byte {
	c.t.Helper()
	var b bytes.Buffer
	for {
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			c.t.Fatalf("pop3: %v", err)
		}
		if string(line) == ".\r\n" {
			return b.Bytes()
		}
		if line[0] == '.' {
			line = line[1:]
		}
		b.Write(line)
	}
}

func (c *pop3Conn) login(user, password string) {
	c.t.Helper()
	c.cmd("USER %s", user)
	c.cmd("PASS %s", password)
}

// capa returns the CAPA lines.
func (c *pop3Conn) capa() string {
	c.t.Helper()
	c.cmd("CAPA")
	return string(c.multi())
}

// retrAll returns every message in the maildrop, in order.
func (c *pop3Conn) retrAll() [][]byte {
	c.t.Helper()
	var n int
	if _, err := fmt.Sscanf(c.cmd("STAT"), "+OK %d", &n); err != nil {
		c.t.Fatalf("pop3 STAT: %v", err)
	}
	msgs := make([][]byte, n)
	for i := range msgs {
		c.cmd("RETR %d", i+1)
		msgs[i] = c.multi()
	}
	return msgs
}
