package remotepull

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/remote-pull/remote_pull/internal/account"
	"github.com/remote-pull/remote_pull/internal/config"
	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/source/imapsrc"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

// check counts what the next poll would do with the poll's own rules: on
// a server that offers caps, with move_to set, after a poll delivered
// what was there, check's "would be fetched" and "still to be removed"
// are what the next poll fetches and removes. Without MOVE or UIDPLUS,
// move_to removes nothing: delivered messages are left where they are,
// and check must not promise their removal.
func TestCheckAgreesWithPoll(t *testing.T) {
	for _, tc := range []struct {
		name string
		caps imap.CapSet
	}{
		{"neither MOVE nor UIDPLUS", imap.CapSet{imap.CapIMAP4rev1: {}}},     // move_to can do nothing
		{"UIDPLUS", imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapUIDPlus: {}}}, // UID COPY, UID EXPUNGE
		{"MOVE", imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapMove: {}, imap.CapUIDPlus: {}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			addr := memIMAP(t, tc.caps, 3)
			_, port, _ := net.SplitHostPort(addr)
			up := imapsrc.New(imapsrc.Config{
				Endpoint: source.Endpoint{Host: "127.0.0.1", Port: port, Plaintext: true, Username: "bob",
					Password: func() (string, error) { return "pw", nil }, Timeout: 5 * time.Second},
				MoveTo: "Fetched",
				Warn:   func(string) {},
			})
			ldg, err := ledger.Open(filepath.Join(t.TempDir(), "ledger.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer ldg.Close()
			quiet := testlib.Quiet("test")
			acc := account.New(account.Settings{Name: "acct", Upstream: up,
				Policy: policy.Policy{Folders: []string{"INBOX"}, PollInterval: time.Minute}, Ledger: ldg, Log: quiet,
				Target: &delivery.Target{Options: delivery.Options{Pipeline: &testlib.Pipeline{}, Rcpts: []string{"alice@example.org"},
					Hostname: "mx.example.org"}, SpoolDir: t.TempDir(), Log: quiet}})
			if res, err := acc.Poll(ctx); err != nil || res.Delivered != 3 {
				t.Fatalf("first poll: %+v, %v", res, err)
			}

			sess, err := up.ConnectReadOnly(ctx)
			if err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			err = checkFolder(ctx, &out, &config.Account{Name: "acct", MoveTo: "Fetched"}, sess, ldg, "INBOX")
			sess.Close(ctx)
			if err != nil {
				t.Fatal(err)
			}
			fetch, remove := checkCounts(t, out.String())

			res, err := acc.Poll(ctx)
			if err != nil {
				t.Fatalf("second poll: %v", err)
			}
			if fetch != res.Fetched || remove != res.Removed {
				t.Errorf("check says %d would be fetched and %d removed; the poll fetched %d and removed %d\n%s",
					fetch, remove, res.Fetched, res.Removed, out.String())
			}
		})
	}
}

// checkCounts reads check's per-folder report.
func checkCounts(t *testing.T, out string) (fetch, remove int) {
	t.Helper()
	m := regexp.MustCompile(`; (\d+) would be fetched`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no count in check's report:\n%s", out)
	}
	fetch, _ = strconv.Atoi(m[1])
	if m := regexp.MustCompile(`, (\d+) delivered and still to be removed upstream`).FindStringSubmatch(out); m != nil {
		remove, _ = strconv.Atoi(m[1])
	}
	return fetch, remove
}

// memIMAP serves go-imap's in-memory server with caps on loopback, plain
// text, user "bob"/"pw" with n messages in INBOX.
func memIMAP(t *testing.T, caps imap.CapSet, n int) string {
	t.Helper()
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("bob", "pw")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	c, err := imapclient.DialInsecure(ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("bob", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= n; i++ {
		msg := fmt.Sprintf("Subject: m%d\r\nMessage-Id: <m%d@x>\r\n\r\nbody %d\r\n", i, i, i)
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		io.WriteString(cmd, msg)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	return ln.Addr().String()
}
