package imapsrc

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/testlib"
	"github.com/remote-pull/remote_pull/module/source"
)

// A server with AUTH=LOGIN and no SASL-IR asks "Username:" first; the
// client answers each prompt with what it asks for.
func TestSASLLoginWithoutInitialResponse(t *testing.T) {
	for _, saslIR := range []bool{false, true} {
		t.Run(fmt.Sprintf("SASL-IR=%v", saslIR), func(t *testing.T) {
			caps := "IMAP4rev1 AUTH=LOGIN"
			if saslIR {
				caps += " SASL-IR"
			}
			result := make(chan string, 1)
			addr := testlib.Serve(t, nil, func(c net.Conn) {
				fmt.Fprintf(c, "* OK [CAPABILITY %s] hi\r\n", caps)
				br := bufio.NewReader(c)
				line, _ := br.ReadString('\n')
				tag, rest, _ := strings.Cut(strings.TrimSpace(line), " ")
				if rest != "AUTHENTICATE LOGIN" {
					result <- "command " + rest
					fmt.Fprintf(c, "%s NO\r\n", tag)
					return
				}
				var got []string
				for _, prompt := range []string{"Username:", "Password:"} {
					fmt.Fprintf(c, "+ %s\r\n", base64.StdEncoding.EncodeToString([]byte(prompt)))
					resp, _ := br.ReadString('\n')
					b, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(resp))
					got = append(got, string(b))
				}
				if got[0] == "bob" && got[1] == "hunter2" {
					fmt.Fprintf(c, "%s OK logged in\r\n", tag)
					result <- "ok"
				} else {
					fmt.Fprintf(c, "%s NO [AUTHENTICATIONFAILED] bad\r\n", tag)
					result <- fmt.Sprintf("answers %q", got)
				}
				br.ReadString('\n')
			})
			up := testUpstream(addr, nil, func(c *Config) {
				c.Auth = source.AuthLogin
				c.Password = func() (string, error) { return "hunter2", nil }
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := up.Connect(ctx)
			if err == nil {
				s.Abort()
			}
			if r := <-result; r != "ok" || err != nil {
				t.Fatalf("server saw %s; Connect: %v", r, err)
			}
		})
	}
}
