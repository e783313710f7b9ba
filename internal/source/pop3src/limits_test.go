package pop3src

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

// A POP3 reply to the login or to LIST is read by its RFC 2449/3206 code
// and text: [IN-USE], [LOGIN-DELAY] and [SYS/TEMP] are the upstream busy,
// [AUTH] and a bare -ERR a refused login, a quota code the account over
// quota, Microsoft's "Suggested Backoff Time" a throttle with that time.
func TestPOP3LimitReplies(t *testing.T) {
	type kind int
	const (
		auth kind = iota
		busy
		quota
		throttled
	)
	for _, c := range []struct {
		failOn, reply string
		want          kind
		oauth         bool
	}{
		{"AUTH", "-ERR [SYS/TEMP] try later", busy, true},
		{"AUTH", "-ERR [IN-USE] another session", busy, true},
		{"AUTH", "-ERR [AUTH] token refused", auth, true},
		{"AUTH", "-ERR [OVERQUOTA] exceeded", quota, true},
		{"PASS", "-ERR [AUTH] bad password", auth, false},
		{"PASS", "-ERR bad password", auth, false},
		{"PASS", "-ERR [IN-USE] another session", busy, false},
		{"PASS", "-ERR [SYS/TEMP] try later", busy, false},
		{"PASS", "-ERR [LOGIN-DELAY] too soon", busy, false},
		{"PASS", "-ERR [OVERQUOTA] Account exceeded command or bandwidth limits.", quota, false},
		{"USER", "-ERR Request is throttled. Suggested Backoff Time: 2000 milliseconds", throttled, false},
		{"PASS", "-ERR [SYS/TEMP] Request is throttled. Suggested Backoff Time: 2000 milliseconds", throttled, false},
		{"LIST", "-ERR Request is throttled. Suggested Backoff Time: 2000 milliseconds", throttled, false},
		{"LIST", "-ERR [OVERQUOTA] exceeded", quota, false},
	} {
		t.Run(fmt.Sprintf("%s %s oauth=%v", c.failOn, c.reply, c.oauth), func(t *testing.T) {
			addr := testlib.Serve(t, nil, func(conn net.Conn) {
				defer conn.Close()
				conn.Write([]byte("+OK ready\r\n"))
				br := bufio.NewReader(conn)
				for {
					line, err := br.ReadString('\n')
					if err != nil {
						return
					}
					verb, _, _ := strings.Cut(strings.ToUpper(strings.TrimSpace(line)), " ")
					switch {
					case verb == c.failOn:
						fmt.Fprintf(conn, "%s\r\n", c.reply)
						return
					case verb == "CAPA":
						conn.Write([]byte("+OK\r\nUSER\r\nUIDL\r\nSASL XOAUTH2\r\n.\r\n"))
					case verb == "STAT":
						conn.Write([]byte("+OK 0 0\r\n"))
					case verb == "LIST":
						conn.Write([]byte("+OK\r\n.\r\n"))
					default:
						conn.Write([]byte("+OK\r\n"))
					}
				}
			})
			host, port, _ := net.SplitHostPort(addr)
			ep := source.Endpoint{Host: host, Port: port, Username: "bob", Timeout: 5 * time.Second,
				Plaintext: true, Password: func() (string, error) { return "pw", nil }}
			if c.oauth {
				ep.Auth = source.AuthXOAUTH2
				ep.Token = func(context.Context, bool) (string, error) { return "tok", nil }
			}
			up := New(Config{Endpoint: ep})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := func() error {
				s, err := up.Connect(ctx)
				if err != nil {
					return err
				}
				defer s.Abort()
				mb, err := s.Open(ctx, "INBOX")
				if err != nil {
					return err
				}
				_, err = mb.List(ctx, 0)
				return err
			}()
			var (
				authErr *source.AuthError
				busyErr *source.BusyError
				q       *source.QuotaError
				thr     *source.ThrottledError
			)
			got := map[kind]bool{auth: errors.As(err, &authErr), busy: errors.As(err, &busyErr),
				quota: errors.As(err, &q), throttled: errors.As(err, &thr)}
			for k, is := range got {
				if is != (k == c.want) {
					t.Fatalf("got %T (%v); want kind %d only", err, err, c.want)
				}
			}
			if c.want == throttled && thr.Backoff != 2*time.Second {
				t.Fatalf("backoff %v, want 2s", thr.Backoff)
			}
		})
	}
}
