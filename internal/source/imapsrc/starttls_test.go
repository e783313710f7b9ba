package imapsrc

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

// startTLSServer greets after delay, then answers STARTTLS with reply (and
// upgrades if it starts with "T0 OK" and nothing follows it). early
// reports whether the client sent anything before the greeting.
func startTLSServer(t *testing.T, delay time.Duration, reply string) (addr string, cfg *tls.Config, early chan bool) {
	t.Helper()
	cert, pool := selfSigned(t, "localhost")
	early = make(chan bool, 1)
	addr = testlib.Serve(t, nil, func(c net.Conn) {
		c.SetReadDeadline(time.Now().Add(delay))
		var one [1]byte
		n, _ := c.Read(one[:])
		early <- n > 0
		c.SetReadDeadline(time.Time{})
		io.WriteString(c, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n")
		br := bufio.NewReader(io.MultiReader(strings.NewReader(string(one[:n])), c))
		br.ReadString('\n')
		io.WriteString(c, reply)
		if reply != "T0 OK go ahead\r\n" {
			return
		}
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}})
		if tc.Handshake() != nil {
			return
		}
		runScript(tc, "", func(tc *scriptConn, tag, cmd string) bool {
			if strings.EqualFold(cmd, "CAPABILITY") {
				io.WriteString(tc, "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"+tag+" OK\r\n")
			} else {
				io.WriteString(tc, tag+" OK\r\n")
			}
			return true
		})
	})
	return addr, &tls.Config{RootCAs: pool}, early
}

func dialStartTLS(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	_, port, _ := net.SplitHostPort(addr)
	up := New(Config{Endpoint: testEndpoint(port, cfg)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := up.Connect(ctx)
	if err == nil {
		s.Abort()
	}
	return err
}

// The client waits for the greeting before STARTTLS (RFC 3501), and the
// capabilities the server announced before TLS are not used after it
// (LOGINDISABLED before TLS must not stop the login over TLS).
func TestStartTLSWaitsForTheGreeting(t *testing.T) {
	addr, cfg, early := startTLSServer(t, 300*time.Millisecond, "T0 OK go ahead\r\n")
	if err := dialStartTLS(t, addr, cfg); err != nil {
		t.Fatal(err)
	}
	if <-early {
		t.Fatal("the client spoke before the server's greeting")
	}
}

// A refusal, or data injected after the OK and before the handshake, ends
// the connection before any credential is sent.
func TestStartTLSRefusedOrInjected(t *testing.T) {
	for _, reply := range []string{"T0 NO not today\r\n", "T0 OK go ahead\r\n* 1 EXISTS\r\n"} {
		addr, cfg, _ := startTLSServer(t, 10*time.Millisecond, reply)
		if err := dialStartTLS(t, addr, cfg); err == nil || !strings.Contains(err.Error(), "STARTTLS") {
			t.Errorf("reply %q: err %v", reply, err)
		}
	}
}

// testEndpoint is a STARTTLS endpoint on localhost:port for tests.
func testEndpoint(port string, cfg *tls.Config) source.Endpoint {
	return source.Endpoint{Host: "localhost", Port: port, TLS: cfg, Username: "bob",
		Password: func() (string, error) { return "pw", nil }, Timeout: 5 * time.Second}
}
