package imapsrc

import (
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

// limitServer is a scripted IMAP server that answers every command well
// until one whose verb is failOn (LOGIN, AUTHENTICATE, SELECT, UID ...),
// which it answers with reply and then drops the connection, as Gmail and
// Microsoft do. failOn "GREETING": reply is the greeting.
func limitServer(t *testing.T, failOn, reply string) string {
	if failOn == "GREETING" {
		return testlib.Serve(t, nil, func(conn net.Conn) { fmt.Fprintf(conn, "%s\r\n", reply) })
	}
	greeting := "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR UIDPLUS] hi"
	if failOn == "CAPABILITY" {
		greeting = "* OK hi" // the client asks for them
	}
	return serveScript(t, nil, greeting, func(conn *scriptConn, tag, cmd string) bool {
		verb, _, _ := strings.Cut(strings.ToUpper(cmd), " ")
		if verb == failOn {
			fmt.Fprintf(conn, "%s %s\r\n", tag, reply)
			return false
		}
		switch verb {
		case "SELECT", "EXAMINE":
			fmt.Fprintf(conn, "* 1 EXISTS\r\n* OK [UIDVALIDITY 7] v\r\n* OK [UIDNEXT 2] n\r\n%s OK [READ-WRITE] done\r\n", tag)
		case "LOGOUT":
			fmt.Fprintf(conn, "* BYE bye\r\n%s OK done\r\n", tag)
			return false
		default:
			fmt.Fprintf(conn, "%s OK done\r\n", tag)
		}
		return true
	})
}

// Gmail's [OVERQUOTA] and [THROTTLED] answer any command, the login
// included: each is a source.QuotaError (never an AuthError, never one
// folder's FolderError); Microsoft's "Suggested Backoff Time" is a
// source.ThrottledError carrying that time, bounded.
func TestProviderLimitReplies(t *testing.T) {
	const (
		overQuota  = "NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"
		throttled  = "NO [THROTTLED] Too many requests"
		msThrottle = "NO Request is throttled. Suggested Backoff Time: 299961 milliseconds"
	)
	for _, c := range []struct {
		name, failOn, reply string
		auth                string
		quota               bool
		backoff             time.Duration
	}{
		{"overquota at LOGIN", "LOGIN", overQuota, source.AuthLogin, true, 0},
		{"overquota at AUTHENTICATE", "AUTHENTICATE", overQuota, source.AuthPlain, true, 0},
		{"throttled at AUTHENTICATE", "AUTHENTICATE", throttled, source.AuthPlain, true, 0},
		{"overquota at SELECT", "SELECT", overQuota, source.AuthPlain, true, 0},
		{"overquota at FETCH", "UID", overQuota, source.AuthPlain, true, 0},
		{"microsoft at LOGIN", "LOGIN", msThrottle, source.AuthLogin, false, 299961 * time.Millisecond},
		{"microsoft at AUTHENTICATE", "AUTHENTICATE", msThrottle, source.AuthPlain, false, 299961 * time.Millisecond},
		{"microsoft at SELECT", "SELECT", msThrottle, source.AuthPlain, false, 299961 * time.Millisecond},
		{"microsoft at FETCH", "UID", msThrottle, source.AuthPlain, false, 299961 * time.Millisecond},
		{"microsoft absurd", "UID", "NO Request is throttled. Suggested Backoff Time: 99999999999999999999999 milliseconds",
			source.AuthPlain, false, source.MaxSuggestedBackoff},
		{"microsoft zero", "UID", "NO Request is throttled. Suggested Backoff Time: 0 milliseconds",
			source.AuthPlain, false, source.MinSuggestedBackoff},
		{"microsoft at CAPABILITY", "CAPABILITY", msThrottle, source.AuthPlain, false, 299961 * time.Millisecond},
		{"microsoft at CAPABILITY, xoauth2", "CAPABILITY", msThrottle, source.AuthXOAUTH2, false, 299961 * time.Millisecond},
		{"greeting", "GREETING", "* BYE Request is throttled. Suggested Backoff Time: 5000 milliseconds",
			source.AuthPlain, false, 5 * time.Second},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := limitServer(t, c.failOn, c.reply)
			up := testUpstream(addr, nil, func(cfg *Config) { cfg.Auth = c.auth })
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
				_, _, _, err = fetchCount(mb, []string{"1"}, nil)
				return err
			}()
			var (
				quota     *source.QuotaError
				thr       *source.ThrottledError
				authErr   *source.AuthError
				folderErr *source.FolderError
			)
			switch {
			case err == nil:
				t.Fatal("no error")
			case errors.As(err, &authErr), errors.As(err, &folderErr):
				t.Fatalf("got %T (%v): a provider limit is about the whole account", err, err)
			case c.quota && !errors.As(err, &quota):
				t.Fatalf("got %T (%v), want a QuotaError", err, err)
			case !c.quota && !errors.As(err, &thr):
				t.Fatalf("got %T (%v), want a ThrottledError", err, err)
			case !c.quota && thr.Backoff != c.backoff:
				t.Fatalf("backoff %v, want %v", thr.Backoff, c.backoff)
			}
		})
	}
}
