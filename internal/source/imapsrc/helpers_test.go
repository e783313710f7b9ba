package imapsrc

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
)

// testUpstream is an upstream for a test server at addr ("127.0.0.1:PORT")
// as user bob: plain text, or implicit TLS trusting tlsCfg when it is set.
// opts adjust the configuration.
func testUpstream(addr string, tlsCfg *tls.Config, opts ...func(*Config)) *Upstream {
	_, port, _ := net.SplitHostPort(addr)
	c := Config{Endpoint: source.Endpoint{Host: "localhost", Port: port, ImplicitTLS: tlsCfg != nil, Plaintext: tlsCfg == nil,
		TLS: tlsCfg, Username: "bob", Password: func() (string, error) { return "pw", nil }, Timeout: 5 * time.Second}}
	for _, o := range opts {
		o(&c)
	}
	return New(c)
}

// openInbox connects and opens INBOX, failing the test otherwise; the
// session is dropped at the end of the test.
func openInbox(t *testing.T, up *Upstream) (source.Session, source.Mailbox) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	s, err := up.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Abort)
	mb, err := s.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return s, mb
}

// fetchCount fetches uids from mb, reading each body to its end: it
// returns the bytes read, the spool's last error, the UIDs delivered and
// Fetch's error. deliver, if set, runs for each delivered message.
func fetchCount(mb source.Mailbox, uids []string, deliver func() error) (n int64, spoolErr error, delivered []string, err error) {
	err = mb.Fetch(context.Background(), uids,
		func(body io.Reader) (source.Spooled, error) {
			var m int64
			m, spoolErr = io.Copy(io.Discard, body)
			n += m
			return discard{}, spoolErr
		},
		func(uid string, _ source.Spooled) error {
			delivered = append(delivered, uid)
			if deliver != nil {
				return deliver()
			}
			return nil
		})
	return n, spoolErr, delivered, err
}

type discard struct{}

func (discard) Discard() {}
