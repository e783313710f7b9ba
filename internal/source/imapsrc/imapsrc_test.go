package imapsrc

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

// recorder is a fake IMAP server that greets, answers CAPABILITY without
// STARTTLS, refuses everything else, and records every byte it received.
type recorder struct {
	mu   sync.Mutex
	got  bytes.Buffer
	addr string
}

func newRecorder(t *testing.T) *recorder {
	r := &recorder{}
	r.addr = testlib.Serve(t, nil, func(c net.Conn) {
		runScript(recordedConn{c, r}, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] fake ready", func(c *scriptConn, tag, cmd string) bool {
			if strings.EqualFold(cmd, "CAPABILITY") {
				c.Write([]byte("* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + " OK done\r\n"))
			} else {
				c.Write([]byte(tag + " BAD no such command here\r\n"))
			}
			return true
		})
	})
	return r
}

func (r *recorder) received() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got.String()
}

// recordedConn is a connection whose reads r records, a line cut short
// by the client's hang-up included.
type recordedConn struct {
	net.Conn
	r *recorder
}

func (c recordedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.r.mu.Lock()
	c.r.got.Write(p[:n])
	c.r.mu.Unlock()
	return n, err
}

// On tcp:// a server without STARTTLS never sees the password, in any form.
func TestNoStartTLSNoPassword(t *testing.T) {
	rec := newRecorder(t)
	host, port, _ := net.SplitHostPort(rec.addr)
	up := New(Config{Endpoint: source.Endpoint{Host: host, Port: port, Username: "bob", Timeout: 5 * time.Second,
		Password: func() (string, error) { return "hunter2-secret", nil }}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if s, err := up.Connect(ctx); err == nil {
		s.Abort()
		t.Fatal("logged in without STARTTLS")
	}
	got := rec.received()
	if !strings.Contains(got, "STARTTLS") {
		t.Fatalf("the client did not even ask for STARTTLS: %q", got)
	}
	for _, secret := range []string{"hunter2-secret", "bob", "AUTHENTICATE", "LOGIN"} {
		if strings.Contains(got, secret) {
			t.Fatalf("%q reached a server without TLS: %q", secret, got)
		}
	}
}

// A certificate for another name is refused although its CA is trusted.
func TestWrongHostName(t *testing.T) {
	cert, pool := selfSigned(t, "other.example")
	addr := testlib.Serve(t, &tls.Config{Certificates: []tls.Certificate{cert}}, func(c net.Conn) {
		c.Write([]byte("* OK ready\r\n"))
	})
	_, port, _ := net.SplitHostPort(addr)
	up := New(Config{Endpoint: source.Endpoint{Host: "127.0.0.1", Port: port, ImplicitTLS: true, TLS: &tls.Config{RootCAs: pool},
		Username: "bob", Password: func() (string, error) { return "pw", nil }, Timeout: 5 * time.Second}})
	_, err := up.Connect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("err = %v, want a certificate name mismatch", err)
	}
}

func selfSigned(t *testing.T, name string) (tls.Certificate, *x509.CertPool) {
	return testlib.SelfSigned(t, name)
}
