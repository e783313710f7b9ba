//go:build interop

package interop

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// upstream is one running server with one test user whose password is
// upPass.
type upstream struct {
	Name     string      // e.g. "Cyrus IMAP"
	Proto    string      // "imap" or "pop3"
	Addr     string      // 127.0.0.1:PORT, plain TCP
	StartTLS bool        // offers STARTTLS (IMAP) or STLS (POP3) with a certificate from CA
	CA       *harness.CA // signed the server certificate (for localhost and 127.0.0.1)
	User     string      // login name

	// POP3 servers: writeMaildrop puts msgs (LF line endings, as an MDA
	// writes them) into the user's maildrop. IMAP servers get mail by APPEND.
	writeMaildrop func(t *testing.T, msgs [][]byte)
	// served, where set, turns what a client received from the server for a
	// seeded message back into what was seeded, checking what the server
	// is known to add (Mailutils pop3d's X-UIDL field). It returns an error
	// if the server changed the message otherwise.
	served func(raw []byte) ([]byte, error)
	// Log returns the server's log so far.
	Log func() string
}

// imapClient logs in to the upstream as the test user, over STARTTLS when
// the server offers it. It is closed in t.Cleanup.
func (u *upstream) imapClient(t *testing.T) *imapclient.Client {
	t.Helper()
	var (
		c   *imapclient.Client
		err error
	)
	if u.StartTLS {
		c, err = imapclient.DialStartTLS(u.Addr, &imapclient.Options{TLSConfig: u.CA.ClientConfig()})
	} else {
		c, err = imapclient.DialInsecure(u.Addr, nil)
	}
	if err != nil {
		t.Fatalf("%s: IMAP dial: %v", u.Name, err)
	}
	if err := c.Login(u.User, upPass).Wait(); err != nil {
		c.Close()
		t.Fatalf("%s: IMAP login as %s: %v\nserver log:\n%s", u.Name, u.User, err, lastLines(u.Log(), 30))
	}
	t.Cleanup(func() {
		done := make(chan struct{})
		go func() { _ = c.Logout().Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
		c.Close()
	})
	return c
}

// seed puts msgs (wire form, CRLF) into the upstream INBOX: IMAP by APPEND
// on c, POP3 by writing the maildrop. It returns Subject → the bytes a
// client is served for each.
func (u *upstream) seed(t *testing.T, c *imapclient.Client, msgs ...[]byte) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	if u.Proto == "imap" {
		for _, m := range msgs {
			harness.MustAppendIMAP(t, c, "INBOX", m)
			want[harness.Subject(m)] = m
		}
		return want
	}
	lf := make([][]byte, len(msgs))
	for i, m := range msgs {
		lf[i] = bytes.ReplaceAll(m, []byte("\r\n"), []byte("\n"))
		want[harness.Subject(m)] = harness.CRLF(lf[i])
	}
	u.writeMaildrop(t, lf)
	return want
}

// corpus is what every server gets: plain messages of several sizes and
// the corpus entries that test byte-exact transport (long lines, 8-bit
// text, dot-stuffing, folded fields, an empty body). Not in it: messages
// that IMAP servers may refuse or POP3 cannot carry (bare LF, a last line
// without CRLF, a header without body separator), which `make test` covers
// against Dovecot.
func corpus() [][]byte {
	var out [][]byte
	for i, size := range []int{300, 2000, 9000, 70000, 400000} {
		out = append(out, harness.Message(i+1, size))
	}
	tricky := harness.TrickyCorpus()
	for _, name := range []string{"long-line", "utf8-8bit", "dot-stuffing", "lone-dot", "folded-headers", "crlf", "empty-body"} {
		out = append(out, tricky[name])
	}
	return out
}

// pop3Conn is a minimal POP3 client for looking at the upstream maildrop
// without remote_pull's own code.
type pop3Conn struct {
	c net.Conn
	r *bufio.Reader
}

func (u *upstream) pop3(t *testing.T) *pop3Conn {
	t.Helper()
	raw, err := net.DialTimeout("tcp", u.Addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	p := &pop3Conn{c: raw, r: bufio.NewReader(raw)}
	t.Cleanup(func() { p.c.Close() })
	_ = raw.SetDeadline(time.Now().Add(30 * time.Second))
	p.ok(t, "") // greeting
	if u.StartTLS {
		p.ok(t, "STLS")
		tc := tls.Client(raw, u.CA.ClientConfig())
		if err := tc.Handshake(); err != nil {
			t.Fatalf("%s: STLS: %v", u.Name, err)
		}
		p.c, p.r = tc, bufio.NewReader(tc)
	}
	p.ok(t, "USER "+u.User)
	p.ok(t, "PASS "+upPass)
	return p
}

// ok sends cmd (none if empty) and returns the +OK line.
func (p *pop3Conn) ok(t *testing.T, cmd string) string {
	t.Helper()
	if cmd != "" {
		if _, err := fmt.Fprintf(p.c, "%s\r\n", cmd); err != nil {
			t.Fatal(err)
		}
	}
	line, err := p.r.ReadString('\n')
	if err != nil {
		t.Fatalf("POP3 %q: %v", cmd, err)
	}
	if !strings.HasPrefix(line, "+OK") {
		t.Fatalf("POP3 %q: %q", cmd, line)
	}
	return line
}

// retr returns message n as served (dot-stuffing undone, CRLF kept) and
// ends the session without deleting anything.
func (u *upstream) retr(t *testing.T, n int) []byte {
	t.Helper()
	p := u.pop3(t)
	p.ok(t, fmt.Sprintf("RETR %d", n))
	var b bytes.Buffer
	for {
		line, err := p.r.ReadString('\n')
		if err != nil {
			t.Fatalf("RETR %d: %v", n, err)
		}
		if line == ".\r\n" {
			break
		}
		b.WriteString(strings.TrimPrefix(line, "."))
	}
	p.ok(t, "QUIT")
	return b.Bytes()
}

// stat returns the number of messages in the maildrop and ends the session.
func (p *pop3Conn) stat(t *testing.T) int {
	t.Helper()
	f := strings.Fields(p.ok(t, "STAT"))
	n, err := strconv.Atoi(f[1])
	if err != nil {
		t.Fatal(err)
	}
	p.ok(t, "QUIT")
	return n
}

// xUIDL matches the field Mailutils pop3d adds to every message it serves
// ("X-UIDL: <md5 hex>.<time>.<n>"), at the end of the header.
var xUIDL = regexp.MustCompile(`(?m)^X-UIDL: [0-9a-f]+\.[0-9]+\.[0-9]+\r\n`)

// stripXUIDL removes that one field, which must stand last in the header.
func stripXUIDL(raw []byte) ([]byte, error) {
	end := bytes.Index(raw, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, fmt.Errorf("no end of header")
	}
	hdr := raw[:end+2]
	locs := xUIDL.FindAllIndex(hdr, -1)
	if len(locs) != 1 || locs[0][1] != len(hdr) {
		return nil, fmt.Errorf("want one X-UIDL field at the end of the header, found %d", len(locs))
	}
	out := append([]byte{}, raw[:locs[0][0]]...)
	return append(out, raw[locs[0][1]:]...), nil
}

func lastLines(s string, n int) string {
	lines := strings.SplitAfter(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "")
}
