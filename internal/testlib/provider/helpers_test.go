package provider_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/source/imapsrc"
	"github.com/remote-pull/remote_pull/internal/testlib/provider"
)

const (
	user  = "bob@example.com"
	pass  = "app-password"
	token = "ya29.token"
)

// msgText is a small message with a distinct subject.
func msgText(subject string) []byte {
	return []byte("From: a@example.org\r\nTo: bob@example.com\r\nSubject: " + subject +
		"\r\nMessage-ID: <" + strings.ReplaceAll(subject, " ", ".") + "@example.org>\r\n\r\nHello, " + subject + ".\r\n")
}

var day = time.Date(2024, 1, 2, 10, 0, 0, 0, time.UTC)

// upstream is remote_pull's IMAP source for the double: the password on
// Gmail, XOAUTH2 with tok otherwise (auth set).
func upstream(s *provider.Server, auth, tok string) *imapsrc.Upstream {
	host, port, _ := net.SplitHostPort(s.Addr())
	ep := source.Endpoint{Host: host, Port: port, Username: user, Auth: auth, Timeout: 5 * time.Second,
		Password: func() (string, error) { return pass, nil },
		Token:    func(context.Context, bool) (string, error) { return tok, nil }}
	if s.RootCAs() != nil {
		ep.ImplicitTLS, ep.TLS = true, &tls.Config{RootCAs: s.RootCAs()}
	} else {
		ep.Plaintext = true
	}
	return imapsrc.New(imapsrc.Config{Endpoint: ep})
}

func connect(t *testing.T, up *imapsrc.Upstream) *imapsrc.Session {
	t.Helper()
	s, err := up.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Abort)
	return s.(*imapsrc.Session)
}

// client is go-imap v2's client, logged in with the password.
func client(t *testing.T, s *provider.Server, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	var c *imapclient.Client
	var err error
	if opts == nil {
		opts = &imapclient.Options{}
	}
	if s.RootCAs() != nil {
		opts.TLSConfig = &tls.Config{RootCAs: s.RootCAs()}
		c, err = imapclient.DialTLS(s.Addr(), opts)
	} else {
		c, err = imapclient.DialInsecure(s.Addr(), opts)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, pass).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// raw is a line-level IMAP conversation, for what go-imap does not parse
// (X-GM-LABELS) and exact replies.
type raw struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
	n  int
}

func dialRaw(t *testing.T, s *provider.Server) *raw {
	t.Helper()
	var nc net.Conn
	var err error
	if s.RootCAs() != nil {
		nc, err = tls.Dial("tcp", s.Addr(), &tls.Config{RootCAs: s.RootCAs()})
	} else {
		nc, err = net.Dial("tcp", s.Addr())
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	r := &raw{t: t, nc: nc, r: bufio.NewReader(nc)}
	r.line() // greeting
	return r
}

func (r *raw) line() string {
	r.t.Helper()
	l, err := r.r.ReadString('\n')
	if err != nil {
		return "EOF"
	}
	return strings.TrimRight(l, "\r\n")
}

// cmd sends a command and returns the untagged lines and the tagged one
// (without the tag); a literal's bytes are read into the line.
func (r *raw) cmd(format string, args ...any) ([]string, string) {
	r.t.Helper()
	r.n++
	tag := fmt.Sprintf("t%d", r.n)
	fmt.Fprintf(r.nc, "%s %s\r\n", tag, fmt.Sprintf(format, args...))
	var untagged []string
	for {
		l := r.line()
		if l == "EOF" {
			return untagged, "EOF"
		}
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		if i := strings.LastIndexByte(l, '{'); i >= 0 && strings.HasSuffix(l, "}") {
			var n int
			fmt.Sscanf(l[i:], "{%d}", &n)
			b := make([]byte, n)
			io.ReadFull(r.r, b)
			l += string(b) + r.line()
		}
		untagged = append(untagged, l)
	}
}

func (r *raw) ok(format string, args ...any) []string {
	r.t.Helper()
	u, tagged := r.cmd(format, args...)
	if !strings.HasPrefix(tagged, "OK") {
		r.t.Fatalf("%s: %s", fmt.Sprintf(format, args...), tagged)
	}
	return u
}

// clock is a settable clock for Config.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}
