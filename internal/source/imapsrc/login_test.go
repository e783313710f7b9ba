package imapsrc

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/testlib"
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

// RFC 5530's codes tell a refused login from one the server could not do
// now: [UNAVAILABLE], [SERVERBUG], [LIMIT] and [INUSE] are temporary (the
// account waits, as for POP3's [SYS/TEMP]), a bad password or an expired
// account is an AuthError, and so is a NO without a code.
func TestLoginRefusalKinds(t *testing.T) {
	for _, c := range []struct {
		code string
		busy bool
	}{
		{"[UNAVAILABLE] ", true},
		{"[SERVERBUG] ", true},
		{"[LIMIT] ", true},
		{"[INUSE] ", true},
		// Gmail, past its 15 connections an account.
		{"[ALERT] Too many simultaneous connections. (Failure) ", true},
		{"[ALERT] ", false},
		{"[AUTHENTICATIONFAILED] ", false},
		{"[AUTHORIZATIONFAILED] ", false},
		{"[EXPIRED] ", false},
		{"", false},
	} {
		for _, mech := range []string{source.AuthLogin, source.AuthPlain} {
			t.Run(c.code+mech, func(t *testing.T) {
				addr := serveScript(t, nil, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR] hi", func(conn *scriptConn, tag, _ string) bool {
					fmt.Fprintf(conn, "%s NO %snot now\r\n", tag, c.code)
					conn.r.ReadString('\n') // the client's next line, then hang up
					return false
				})
				refused := 0
				up := testUpstream(addr, nil, func(cfg *Config) { cfg.Auth, cfg.PasswordRefused = mech, func() { refused++ } })
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				s, err := up.Connect(ctx)
				if err == nil {
					s.Abort()
					t.Fatal("Connect succeeded")
				}
				var busyErr *source.BusyError
				var authErr *source.AuthError
				if gotBusy := errors.As(err, &busyErr); gotBusy != c.busy || gotBusy == errors.As(err, &authErr) {
					t.Fatalf("Connect: %v (%T); want busy %v, else an AuthError", err, err, c.busy)
				}
				// A refusal makes a password_command run again; a busy
				// server said nothing about the password.
				if want := map[bool]int{true: 0, false: 1}[c.busy]; refused != want {
					t.Errorf("PasswordRefused called %d times, want %d", refused, want)
				}
			})
		}
	}
}
