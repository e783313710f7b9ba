package integration

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

const (
	localUser = "alice@example.org"
	localPass = "local-secret"
	upUser    = "remote-alice"
	upPass    = "upstream-secret"
	// waitLong guards against hangs only; nothing here asserts on speed.
	waitLong = 90 * time.Second
)

// storage selects maddy's mailbox storage for the tests that start maddy
// through startMaddy or storageServer: "" (SQLite, maddy's default) or
// "postgres". REMOTE_PULL_STORAGE=postgres runs any test on PostgreSQL;
// postgres_test.go runs a representative set there in every `make test`.
var storage = os.Getenv("REMOTE_PULL_STORAGE")

// storageServer starts the PostgreSQL server for a test's maddy when the
// storage is "postgres", and returns nil on SQLite.
func storageServer(t *testing.T) *harness.Postgres {
	t.Helper()
	switch storage {
	case "", "sqlite", "sqlite3":
		return nil
	case "postgres":
		return harness.StartPostgres(t)
	}
	t.Fatalf("REMOTE_PULL_STORAGE=%q: want sqlite or postgres", storage)
	return nil
}

// rig is one Dovecot upstream and one maddy with a remote_pull account.
type rig struct {
	up    *harness.Dovecot
	maddy *harness.Maddy
	bin   string
	pg    *harness.Postgres // maddy's storage server; nil on SQLite
}

// accountConf is the remote_pull block of a test, with the upstream's CA.
type accountConf struct {
	Name    string
	Proto   string // "imap" (default) or "pop3"
	Addr    string // e.g. "tls://localhost:PORT"
	Keep    bool
	CAFile  string
	RcptTo  string
	Extra   string // more account directives
	Poll    string
	Debug   bool
	NoBlock bool // return only the account block, for several accounts in one remote_pull
}

func (c accountConf) String() string {
	if c.Name == "" {
		c.Name = "acct"
	}
	if c.Proto == "" {
		c.Proto = "imap"
	}
	if c.RcptTo == "" {
		c.RcptTo = localUser
	}
	if c.Poll == "" {
		c.Poll = "1s"
	}
	keep := "no"
	if c.Keep {
		keep = "yes"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "    account %s {\n", c.Name)
	fmt.Fprintf(&b, "        %s %s\n", c.Proto, c.Addr)
	fmt.Fprintf(&b, "        username %s\n        password_file %s\n", upUser, "upstream-password")
	fmt.Fprintf(&b, "        rcpt_to %s\n        keep %s\n        poll_interval %s\n", c.RcptTo, keep, c.Poll)
	fmt.Fprintf(&b, "        tls_client {\n            root_ca %s\n        }\n", c.CAFile)
	if c.Debug {
		b.WriteString("        debug yes\n")
	}
	b.WriteString(c.Extra)
	b.WriteString("        deliver_to &local_routing\n    }\n")
	if c.NoBlock {
		return b.String()
	}
	return "remote_pull {\n" + b.String() + "}\n"
}

// newUpstream starts Dovecot with the upstream user.
func newUpstream(t *testing.T, extra ...string) *harness.Dovecot {
	t.Helper()
	up := harness.StartDovecot(t, harness.DovecotOptions{Extra: extra})
	up.AddUser(t, upUser, upPass)
	return up
}

// startMaddy starts maddy with the local user and the given remote_pull
// configuration; the upstream password is in state_dir/upstream-password.
func startMaddy(t *testing.T, up *harness.Dovecot, conf string) *rig {
	t.Helper()
	bin := harness.BuildMaddy(t)
	pg := storageServer(t)
	m := harness.StartMaddy(t, bin, harness.MaddyOptions{
		Users:    map[string]string{localUser: localPass},
		Extra:    conf,
		Files:    map[string]string{"upstream-password": upPass + "\n"},
		Postgres: pg,
	})
	return &rig{up: up, maddy: m, bin: bin, pg: pg}
}

// local returns what maddy's IMAP holds for the local user, waiting for n.
func (r *rig) local(t *testing.T, n int) []harness.MailboxMessage {
	t.Helper()
	return r.maddy.WaitMessages(t, localUser, localPass, "INBOX", n, waitLong)
}

// upstream returns what Dovecot holds for the upstream user.
func (r *rig) upstream(t *testing.T, folder string) []harness.MailboxMessage {
	t.Helper()
	c := r.up.IMAPClient(t, upUser, upPass)
	defer c.Close()
	return harness.ListMessages(t, c, folder)
}

// waitPolls waits until the account has logged in upstream n more times,
// so that a test can tell that later polls happened.
func (r *rig) waitPolls(t *testing.T, n int) {
	t.Helper()
	start := r.up.LoginCount(upUser)
	deadline := time.Now().Add(waitLong)
	for r.up.LoginCount(upUser) < start+n {
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d polls in %v; maddy log:\n%s", n, waitLong, r.maddy.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// bodies maps Subject → message bytes without the Received field remote_pull
// added, checking that field is there.
func bodies(t *testing.T, msgs []harness.MailboxMessage) map[string][]byte {
	t.Helper()
	out := make(map[string][]byte, len(msgs))
	for _, m := range msgs {
		received, raw, ok := harness.Delivered(m.Raw)
		if !ok || !strings.HasPrefix(received, "Received: from localhost") {
			t.Errorf("message UID %d lacks remote_pull's Received field under maddy's Delivered-To:\n%.300s", m.UID, m.Raw)
		}
		out[harness.Subject(raw)] = raw
	}
	return out
}

// countLog counts occurrences of s in maddy's log.
func (r *rig) countLog(s string) int { return strings.Count(r.maddy.Log(), s) }
