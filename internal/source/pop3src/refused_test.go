package pop3src

import (
	"bufio"
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

// A password the server refuses is reported to its owner (a
// password_command runs again); a server that is only busy says nothing
// about the password.
func TestPasswordRefusedReported(t *testing.T) {
	for _, c := range []struct {
		reply   string
		refused int
	}{
		{"-ERR [AUTH] invalid password", 1},
		{"-ERR [SYS/TEMP] try later", 0},
	} {
		addr := testlib.Serve(t, nil, func(conn net.Conn) {
			conn.Write([]byte("+OK hi\r\n"))
			br := bufio.NewReader(conn)
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					return
				}
				switch cmd, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(line)), " "); cmd {
				case "CAPA":
					conn.Write([]byte("+OK\r\nUSER\r\nUIDL\r\n.\r\n"))
				case "USER":
					conn.Write([]byte("+OK\r\n"))
				case "PASS":
					conn.Write([]byte(c.reply + "\r\n"))
				default:
					conn.Write([]byte("+OK\r\n"))
				}
			}
		})
		host, port, _ := net.SplitHostPort(addr)
		refused := 0
		up := New(Config{Endpoint: source.Endpoint{Host: host, Port: port, Username: "bob", Timeout: 5 * time.Second, Plaintext: true,
			Password: func() (string, error) { return "pw", nil }, PasswordRefused: func() { refused++ }}})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		s, err := up.Connect(ctx)
		cancel()
		if err == nil {
			s.Abort()
			t.Fatalf("%s: logged in", c.reply)
		}
		var authErr *source.AuthError
		if errors.As(err, &authErr) != (c.refused == 1) || refused != c.refused {
			t.Errorf("%s: %v (%T); PasswordRefused called %d times, want %d", c.reply, err, err, refused, c.refused)
		}
	}
}
