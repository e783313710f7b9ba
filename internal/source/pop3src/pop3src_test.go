package pop3src

import (
	"bufio"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

// On tcp:// a POP3 server without STLS never sees the user or password:
// both with CAPA that lacks STLS and without CAPA at all.
func TestNoSTLSNoPassword(t *testing.T) {
	for _, capa := range []string{"+OK\r\nUSER\r\nUIDL\r\n.\r\n", "-ERR unknown command\r\n"} {
		var mu sync.Mutex
		var got strings.Builder
		addr := testlib.Serve(t, nil, func(c net.Conn) {
			c.Write([]byte("+OK fake POP3 ready\r\n"))
			br := bufio.NewReader(c)
			for {
				line, err := br.ReadString('\n')
				mu.Lock()
				got.WriteString(line)
				mu.Unlock()
				if err != nil {
					return
				}
				switch strings.ToUpper(strings.TrimSpace(line)) {
				case "CAPA":
					c.Write([]byte(capa))
				default:
					c.Write([]byte("-ERR no\r\n"))
				}
			}
		})
		host, port, _ := net.SplitHostPort(addr)
		up := New(Config{Endpoint: source.Endpoint{Host: host, Port: port, Username: "bob", Timeout: 5 * time.Second,
			Password: func() (string, error) { return "hunter2-secret", nil }}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if s, err := up.Connect(ctx); err == nil {
			s.Abort()
			t.Errorf("CAPA %q: logged in without STLS", capa)
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
		mu.Lock()
		sent := got.String()
		mu.Unlock()
		for _, secret := range []string{"hunter2-secret", "bob", "PASS", "USER", "AUTH"} {
			if strings.Contains(sent, secret) {
				t.Errorf("CAPA %q: %q reached a server without TLS: %q", capa, secret, sent)
			}
		}
	}
}
