package integration

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	_ "github.com/mattn/go-sqlite3"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// maddy's own management commands work in this build: users made with
// them log in through maddy's IMAP.
func TestCredsAndIMAPAcct(t *testing.T) {
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{Users: map[string]string{localUser: localPass}, SMTP: true})
	m.CLI(t, "creds", "create", "--password", "carol-pass", "carol@example.org")
	m.CLI(t, "imap-acct", "create", "carol@example.org")
	if out := m.CLI(t, "creds", "list"); !strings.Contains(out, "carol@example.org") || !strings.Contains(out, localUser) {
		t.Fatalf("creds list:\n%s", out)
	}
	if out := m.CLI(t, "imap-acct", "list"); !strings.Contains(out, "carol@example.org") {
		t.Fatalf("imap-acct list:\n%s", out)
	}
	c, err := imapclient.DialInsecure(m.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Login("carol@example.org", "carol-pass").Wait(); err != nil {
		t.Fatalf("login with created credentials: %v", err)
	}
	mboxes, err := c.List("", "*", nil).Collect()
	c.Close()
	if err != nil || len(mboxes) < 6 {
		t.Fatalf("special-use folders not created: %v %v", mboxes, err)
	}
	m.CLI(t, "creds", "password", "--password", "new-pass", "carol@example.org")
	m.CLI(t, "creds", "remove", "--yes", "carol@example.org")
	m.CLI(t, "imap-acct", "remove", "--yes", "carol@example.org")
	if out := m.CLI(t, "creds", "list"); strings.Contains(out, "carol@") {
		t.Fatalf("carol still listed:\n%s", out)
	}
}

// status (table and JSON) and check, with one healthy account and one
// whose password is wrong; metrics equal to what was delivered.
func TestStatusCheckMetrics(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 1000), harness.Message(2, 1000), harness.Message(3, 1000))
	up.AddUser(t, "other", "other-pass")
	addr := "tls://localhost:" + port(up.IMAPSAddr)
	// A long poll interval: with the default 1s a poll may be under way
	// when metrics are scraped, and the state gauge then says "polling".
	good := accountConf{Name: "good", Addr: addr, Keep: true, CAFile: up.CA.CAFile, NoBlock: true, Poll: "1h"}.String()
	bad := strings.Replace(accountConf{Name: "bad", Addr: addr, Keep: true, CAFile: up.CA.CAFile, NoBlock: true, Poll: "1h"}.String(),
		"password_file upstream-password", "password not-the-password", 1)
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users:   map[string]string{localUser: localPass},
		Metrics: true,
		Extra:   "remote_pull {\n" + good + bad + "}\n",
		Files:   map[string]string{"upstream-password": upPass + "\n"},
	})
	m.WaitMessages(t, localUser, localPass, "INBOX", 3, waitLong)
	m.WaitLog(t, "auth failed", waitLong)

	var sts []struct {
		Account   string `json:"account"`
		Protocol  string `json:"protocol"`
		State     string `json:"state"`
		LastError string `json:"last_error"`
		Delivered int    `json:"delivered"`
	}
	harness.Eventually(t, waitLong, func() bool {
		out, _ := m.CLIStatus(t, "remote-pull", "status", "--json")
		sts = nil
		return json.Unmarshal([]byte(out), &sts) == nil && len(sts) == 2 && sts[1].Delivered == 3 && sts[1].State == "idle"
	}, "status --json with both accounts, the good one idling")
	if sts[0].Account != "bad" || sts[0].State != "auth failed" || !strings.Contains(sts[0].LastError, "authentication failed") {
		t.Errorf("bad account: %+v", sts[0])
	}
	if sts[1].Account != "good" || sts[1].State != "idle" || sts[1].Protocol != "IMAP" {
		t.Errorf("good account: %+v", sts[1])
	}
	table := m.CLI(t, "remote-pull", "status")
	if !regexp.MustCompile(`(?m)^good\s+IMAP localhost\s+idle\s`).MatchString(table) || !strings.Contains(table, "auth failed") {
		t.Errorf("status table:\n%s", table)
	}
	for _, out := range []string{table, m.Log()} {
		if strings.Contains(out, "not-the-password") || strings.Contains(out, upPass) {
			t.Fatalf("a password shows in status or logs:\n%s", out)
		}
	}

	out, code := m.CLIStatus(t, "remote-pull", "check", "good")
	if code != 0 || !strings.Contains(out, "TLS: TLS 1.3") || !strings.Contains(out, "INBOX: 3 messages; 0 would be fetched, 3 already handled") {
		t.Errorf("check good: exit %d\n%s", code, out)
	}
	out, code = m.CLIStatus(t, "remote-pull", "check", "bad")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code == 0 || !strings.HasPrefix(lines[len(lines)-1], "check failed: connecting and logging in: authentication failed") {
		t.Errorf("check bad: exit %d\n%s", code, out)
	}
	if out, code := m.CLIStatus(t, "remote-pull", "check", "nosuch"); code == 0 {
		t.Errorf("check of an unknown account succeeded:\n%s", out)
	}

	metrics := scrape(t, m.MetricsAddr)
	for name, want := range map[string]float64{
		`maddy_remote_pull_messages_total{account="good",outcome="delivered"}`: 3,
		`maddy_remote_pull_delivered_bytes_total{account="good"}`:              3000,
		`maddy_remote_pull_state{account="good",state="idle"}`:                 1,
		`maddy_remote_pull_state{account="bad",state="auth failed"}`:           1,
	} {
		if got, ok := metrics[name]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", name, got, ok, want)
		}
	}
	if metrics[`maddy_remote_pull_polls_total{account="bad",result="auth"}`] < 1 {
		t.Errorf("no failed poll counted for the bad account")
	}
}

func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "maddy_remote_pull_") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// retry makes a refused message deliverable once the cause is fixed.
func TestRetry(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 900))
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile,
		RcptTo: "late@example.org", Poll: "1h", Extra: "        idle no\n"}.String())
	r.maddy.WaitLog(t, "message refused, left upstream", waitLong)

	r.maddy.AddUser(t, "late@example.org", "late-pass") // the cause, fixed
	// Options after ACCOUNT count as options, not as UIDs.
	if out, code := r.maddy.CLIStatus(t, "remote-pull", "retry", "acct", "--bogus"); code != 2 {
		t.Fatalf("retry with an unknown option: exit %d\n%s", code, out)
	}
	if out := r.maddy.CLI(t, "remote-pull", "retry", "acct", "--folder", "Archive"); !strings.HasPrefix(out, "0 message(s)") {
		t.Fatalf("retry of another folder: %s", out)
	}
	// INBOX in any case, as in the configuration.
	out := r.maddy.CLI(t, "remote-pull", "retry", "acct", "--folder=inbox")
	if !strings.HasPrefix(out, "1 message(s) of acct will be fetched again") {
		t.Fatalf("retry: %s", out)
	}
	r.maddy.Signal(t, syscall.SIGUSR2)
	got := r.maddy.WaitMessages(t, "late@example.org", "late-pass", "INBOX", 1, waitLong)
	if subjects(t, got) != harness.Subject(harness.Message(1, 900)) {
		t.Fatalf("got %s", subjects(t, got))
	}
	if left := r.upstream(t, "INBOX"); len(left) != 0 {
		t.Fatalf("%d left upstream after the retried delivery (keep no)", len(left))
	}
}

// status tells the truth: when maddy is stopped it says so instead of a
// state and a next poll; a removed account shows with --all until
// forgotten; retry of an unknown account fails.
func TestStatusWhenStoppedAndRemoved(t *testing.T) {
	m, two := startOneAndTwo(t)
	harness.Eventually(t, waitLong, func() bool {
		return strings.Count(m.CLI(t, "remote-pull", "status"), "idle") == 2
	}, "both accounts idle")
	if out := m.CLI(t, "remote-pull", "status"); strings.Contains(out, "not running") {
		t.Fatalf("status says maddy is not running while it runs:\n%s", out)
	}

	m.Stop(t)
	out := m.CLI(t, "remote-pull", "status")
	if !strings.Contains(out, "maddy is not running") || !strings.Contains(out, "stopped (last: idle)") || strings.Contains(out, "in 59m") {
		t.Fatalf("status after a stop:\n%s", out)
	}
	var sts []struct {
		Account    string `json:"account"`
		Running    bool   `json:"running"`
		Configured bool   `json:"configured"`
	}
	if err := json.Unmarshal([]byte(m.CLI(t, "remote-pull", "status", "--json")), &sts); err != nil || len(sts) != 2 || sts[0].Running {
		t.Fatalf("status --json after a stop: %+v %v", sts, err)
	}

	// Remove account "two" from the configuration.
	conf, err := os.ReadFile(m.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(m.ConfigPath, []byte(strings.Replace(string(conf), two, "", 1)), 0o600)
	if out := m.CLI(t, "remote-pull", "status"); strings.Contains(out, "two") {
		t.Fatalf("a removed account listed without --all:\n%s", out)
	}
	if out := m.CLI(t, "remote-pull", "status", "--all"); !strings.Contains(out, "removed from the configuration") {
		t.Fatalf("status --all:\n%s", out)
	}
	if out, code := m.CLIStatus(t, "remote-pull", "forget", "one"); code == 0 {
		t.Fatalf("forget of a configured account succeeded:\n%s", out)
	}
	if out := m.CLI(t, "remote-pull", "forget", "two"); !strings.Contains(out, "forgot account two (1 message entries)") {
		t.Fatalf("forget: %s", out)
	}
	if out := m.CLI(t, "remote-pull", "status", "--all"); strings.Contains(out, "two") {
		t.Fatalf("a forgotten account still listed:\n%s", out)
	}
	if out, code := m.CLIStatus(t, "remote-pull", "retry", "nosuch"); code != 1 {
		t.Fatalf("retry of an unknown account: exit %d\n%s", code, out)
	}
}

// 'maddy hash' prints what auth.pass_table accepts: a running maddy logs a
// user in with each kind of hash put straight into its credentials table.
// 'imap-acct appendlimit' reads and sets the limit maddy's IMAP APPEND
// enforces.
func TestHashAndAppendLimit(t *testing.T) {
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{Users: map[string]string{localUser: localPass}, SMTP: true})
	db, err := sql.Open("sqlite3", filepath.Join(m.StateDir, "credentials.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, args := range [][]string{
		{"hash", "--password", "hashed-pass"},
		{"hash", "--password", "hashed-pass", "--hash", "argon2"},
		{"hash", "--password", "hashed-pass", "--hash", "argon2", "--argon2-time", "1", "--argon2-memory", "2048", "--argon2-threads", "2"},
		{"hash", "--password", "hashed-pass", "--bcrypt-cost", "5"},
	} {
		hash := strings.TrimSpace(m.CLI(t, args...))
		if _, err := db.Exec("UPDATE passwords SET value = ? WHERE key = ?", hash, localUser); err != nil {
			t.Fatal(err)
		}
		for pass, ok := range map[string]bool{"hashed-pass": true, "wrong-pass": false} {
			c, err := imapclient.DialInsecure(m.IMAPAddr, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = c.Login(localUser, pass).Wait()
			c.Close()
			if (err == nil) != ok {
				t.Errorf("maddy %s → %q: login with %s: %v", strings.Join(args, " "), hash, pass, err)
			}
		}
	}
	if out, code := m.CLIStatus(t, "hash", "--password", "x", "--hash", "md5"); code != 2 || !strings.Contains(out, "available: bcrypt, argon2") {
		t.Errorf("unknown hash: exit %d\n%s", code, out)
	}

	if out := m.CLI(t, "imap-acct", "appendlimit", localUser); strings.TrimSpace(out) != "No limit" {
		t.Fatalf("appendlimit before: %q", out)
	}
	m.CLI(t, "imap-acct", "appendlimit", "-v", "1000", localUser)
	if out := m.CLI(t, "imap-acct", "appendlimit", localUser); strings.TrimSpace(out) != "1000" {
		t.Fatalf("appendlimit after -v 1000: %q", out)
	}
	c, err := imapclient.DialInsecure(m.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(localUser, "hashed-pass").Wait(); err != nil {
		t.Fatal(err)
	}
	appendMsg := func(size int) error {
		_, err := harness.AppendIMAP(c, "INBOX", harness.Message(1, size))
		return err
	}
	if err := appendMsg(2000); err == nil {
		t.Error("APPEND of 2,000 bytes accepted over a 1,000-byte limit")
	}
	m.CLI(t, "imap-acct", "appendlimit", "-v", "-1", localUser)
	if err := appendMsg(2000); err != nil {
		t.Errorf("APPEND after the limit was removed: %v", err)
	}
}

// imap-mboxes and imap-msgs, rebuilt on maddy's storage API, change what
// maddy's own IMAP serves: folders, messages (bytes, flags, date), copies,
// moves and removals.
func TestIMAPMboxesAndMsgs(t *testing.T) {
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{Users: map[string]string{localUser: localPass}, SMTP: true})
	cli := func(stdin string, args ...string) string {
		t.Helper()
		out, code := m.CLIInput(t, stdin, args...)
		if code != 0 {
			t.Fatalf("maddy %s: exit status %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	folder := func(name string) []harness.MailboxMessage {
		t.Helper()
		return m.Mailbox(t, localUser, localPass, name)
	}

	cli("", "imap-mboxes", "create", localUser, "Projects")
	cli("", "imap-mboxes", "create", "--special", "archive", localUser, "Old")
	if out := cli("", "imap-mboxes", "list", localUser); !strings.Contains(out, "Projects\t") || !strings.Contains(out, `Old	[\Archive `) {
		t.Fatalf("imap-mboxes list after create:\n%s", out)
	}

	msg := harness.Message(7, 3000)
	uid := cli(string(msg), "imap-msgs", "add", "-f", `\Flagged`, "-d", "2020-01-02T03:04:05Z", localUser, "Projects")
	if strings.TrimSpace(uid) != "1" {
		t.Errorf("imap-msgs add printed %q, want UID 1", uid)
	}
	got := folder("Projects")
	if len(got) != 1 || !bytes.Equal(got[0].Raw, msg) || !got[0].HasFlag(`\Flagged`) {
		t.Fatalf("Projects after imap-msgs add: %d messages, flags %v, bytes equal %v", len(got), got[0].Flags, len(got) == 1 && bytes.Equal(got[0].Raw, msg))
	}
	if out := cli("", "imap-msgs", "list", "--full", localUser, "Projects"); !strings.Contains(out, "Subject: "+harness.Subject(msg)) ||
		!strings.Contains(out, "Internal date: 1577934245 ") {
		t.Errorf("imap-msgs list --full:\n%s", out)
	}
	if out := cli("", "imap-msgs", "dump", "-u", localUser, "Projects", "1"); out != string(msg) {
		t.Errorf("imap-msgs dump: %d bytes, not the message's %d", len(out), len(msg))
	}
	if folder("Projects")[0].HasFlag(`\Seen`) {
		t.Error("imap-msgs dump marked the message \\Seen")
	}

	cli("", "imap-msgs", "add-flags", "-u", localUser, "Projects", "1", "$Label1", `\Answered`)
	cli("", "imap-msgs", "rem-flags", "-u", localUser, "Projects", "1", `\Flagged`)
	if f := folder("Projects")[0]; !f.HasFlag("$Label1") || !f.HasFlag(`\Answered`) || f.HasFlag(`\Flagged`) {
		t.Errorf("flags after add-flags and rem-flags: %v", f.Flags)
	}
	cli("", "imap-msgs", "set-flags", "-u", localUser, "Projects", "1", `\Seen`)
	if f := folder("Projects")[0]; !f.HasFlag(`\Seen`) || f.HasFlag("$Label1") || f.HasFlag(`\Answered`) {
		t.Errorf("flags after set-flags \\Seen: %v", f.Flags)
	}

	cli("", "imap-msgs", "copy", "-u", localUser, "Projects", "1", "INBOX")
	cli("", "imap-msgs", "move", "-u", localUser, "Projects", "1", "Old")
	if p, o, i := folder("Projects"), folder("Old"), folder("INBOX"); len(p) != 0 || len(o) != 1 || len(i) != 1 || !bytes.Equal(o[0].Raw, msg) || !bytes.Equal(i[0].Raw, msg) {
		t.Fatalf("after copy to INBOX and move to Old: Projects %d, Old %d, INBOX %d messages", len(p), len(o), len(i))
	}
	if out, code := m.CLIInput(t, "n\n", "imap-msgs", "remove", "-u", localUser, "INBOX", "1"); code == 0 || len(folder("INBOX")) != 1 {
		t.Errorf("imap-msgs remove answered no: exit %d, INBOX %d messages\n%s", code, len(folder("INBOX")), out)
	}
	cli("", "imap-msgs", "remove", "-y", "-u", localUser, "INBOX", "1")
	if n := len(folder("INBOX")); n != 0 {
		t.Errorf("INBOX holds %d messages after imap-msgs remove", n)
	}

	cli("", "imap-mboxes", "rename", localUser, "Projects", "Work")
	cli("", "imap-mboxes", "remove", "-y", localUser, "Work")
	if out := cli("", "imap-mboxes", "list", localUser); strings.Contains(out, "Projects") || strings.Contains(out, "Work") {
		t.Errorf("imap-mboxes list after rename and remove:\n%s", out)
	}

	for _, args := range [][]string{
		{"imap-msgs", "add", localUser},
		{"imap-msgs", "add-flags", localUser, "Old", "1"},
		{"imap-msgs", "move", localUser, "Old", "1"},
		{"imap-mboxes", "rename", localUser, "Old"},
	} {
		if out, code := m.CLIStatus(t, args...); code != 2 || !strings.Contains(out, "is required") {
			t.Errorf("maddy %s: exit %d, want 2 and what is missing\n%s", strings.Join(args, " "), code, out)
		}
	}
}
