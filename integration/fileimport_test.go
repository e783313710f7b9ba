package integration

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/remote-pull/remote_pull/integration/harness"
	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/source/filesrc"
)

// fixture is a message a real tool is given to write into a file, with
// the flags and arrival date it is to record.
type fixture struct {
	subject string
	body    string
	flags   []imap.Flag
	date    time.Time
}

func (f fixture) raw() []byte {
	return []byte(fmt.Sprintf("From: Bob <bob@example.org>\r\nTo: alice@example.org\r\nSubject: %s\r\n"+
		"Message-ID: <%s@example.org>\r\nDate: Mon, 2 Mar 2020 10:00:00 +0000\r\n\r\n%s",
		f.subject, strings.ReplaceAll(f.subject, " ", "."), f.body))
}

// fixtures cover what an mbox writer must quote and what it records:
// body lines beginning "From " and ">From ", flags, keywords, dates.
var fixtures = []fixture{
	{"plain seen", "Hello.\r\n", []imap.Flag{imap.FlagSeen}, time.Date(2019, 1, 2, 3, 4, 5, 0, time.UTC)},
	{"from lines", "From the start of a line.\r\n>From quoted once.\r\n>>From quoted twice.\r\n\r\nFrom after a blank line\r\nend\r\n",
		[]imap.Flag{imap.FlagAnswered, imap.FlagFlagged}, time.Date(2020, 6, 7, 8, 9, 10, 0, time.UTC)},
	{"keyword draft", "Draft with a keyword.\r\n", []imap.Flag{imap.FlagDraft, "$Label1"}, time.Date(2021, 11, 12, 13, 14, 15, 0, time.UTC)},
	{"long line", strings.Repeat("x", 5000) + "\r\n", nil, time.Date(2022, 2, 3, 4, 5, 6, 0, time.UTC)},
	{"ends blank", "Body that ends with a blank line.\r\n\r\n", []imap.Flag{imap.FlagSeen}, time.Date(2023, 3, 4, 5, 6, 7, 0, time.UTC)},
}

// appendFixtures APPENDs the fixtures to a Dovecot user's folder, with
// their flags and dates: Dovecot writes its own mbox or Maildir.
func appendFixtures(t *testing.T, up *harness.Dovecot, user, folder string, fs []fixture) {
	t.Helper()
	c := up.IMAPClient(t, user, upPass)
	defer c.Close()
	if folder != "INBOX" {
		if err := c.Create(folder, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s: %v", folder, err)
		}
	}
	for _, f := range fs {
		raw := f.raw()
		cmd := c.Append(folder, int64(len(raw)), &imap.AppendOptions{Flags: f.flags, Time: f.date})
		if _, err := cmd.Write(raw); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := cmd.Wait(); err != nil {
			t.Fatalf("APPEND %q: %v", f.subject, err)
		}
	}
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

// fileConf is a remote_pull block with one file account.
func fileConf(directive, path, extra string) string {
	return fmt.Sprintf("remote_pull {\n    account files {\n        %s %s\n        rcpt_to %s\n        poll_interval 1s\n"+
		"        keep_flags yes\n%s        deliver_to &local_routing\n    }\n}\n", directive, path, localUser, extra)
}

// startFileMaddy starts maddy with a file account; the storage has
// remote_pull's imap_filter, for keep_flags and local_folders.
func startFileMaddy(t *testing.T, up *harness.Dovecot, conf string) *rig {
	t.Helper()
	bin := harness.BuildMaddy(t)
	m := harness.StartMaddy(t, bin, harness.MaddyOptions{
		Users:        map[string]string{localUser: localPass},
		StorageExtra: "imap_filter { remote_pull }",
		Extra:        conf,
	})
	return &rig{up: up, maddy: m, bin: bin}
}

// copyReadable copies a file or directory tree, readable by all, to a place maddy's user reads,
// keeping modification times (a Maildir's arrival dates).
func copyReadable(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.Walk(from, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			return err
		}
		return os.Chtimes(dst, fi.ModTime(), fi.ModTime())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// sameAsServed checks that maddy holds, byte for byte after remote_pull's
// Received field, with the same flags, exactly the messages Dovecot
// serves from the file it wrote, each once.
func sameAsServed(t *testing.T, local, served []harness.MailboxMessage) {
	t.Helper()
	if len(local) != len(served) {
		t.Fatalf("maddy holds %d messages, the file %d", len(local), len(served))
	}
	got := bodies(t, local)
	if len(got) != len(local) {
		t.Fatalf("a subject twice in maddy: %d distinct of %d", len(got), len(local))
	}
	flagsOf := map[string][]string{}
	for _, m := range local {
		_, raw, _ := harness.Delivered(m.Raw)
		flagsOf[harness.Subject(raw)] = m.Flags
	}
	for _, s := range served {
		subj := harness.Subject(s.Raw)
		if !bytes.Equal(got[subj], s.Raw) {
			t.Errorf("%q differs:\nmaddy: %q\nfile:  %q", subj, got[subj], s.Raw)
		}
		if want, have := flagSet(s.Flags), flagSet(flagsOf[subj]); !slices.Equal(want, have) {
			t.Errorf("%q flags %v, the file has %v", subj, have, want)
		}
	}
}

func flagSet(flags []string) []string {
	var out []string
	for _, f := range flags {
		if !strings.EqualFold(f, `\Recent`) {
			out = append(out, strings.ToLower(f))
		}
	}
	slices.Sort(out)
	return out
}

// listedDates checks the arrival dates the file source reads (the From
// line's, the Maildir file's) against the dates the fixtures were
// APPENDed with. (maddy's own arrival date for the stored copy is its
// storage's to set; see docs/reference.md, keep_flags.)
func listedDates(t *testing.T, up source.Upstream, folder string, fs []fixture) {
	t.Helper()
	ctx := context.Background()
	s, err := up.Connect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(ctx)
	mb, err := s.Open(ctx, folder)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := mb.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []string
	for _, m := range msgs {
		got = append(got, m.Date.UTC().Format(time.RFC3339))
	}
	for _, f := range fs {
		want = append(want, f.date.UTC().Format(time.RFC3339))
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("%s: listed dates %v, APPENDed with %v", folder, got, want)
	}
}

// storedDates checks that maddy stored each message with the arrival
// date it was APPENDed with upstream (its INTERNALDATE), by subject.
func storedDates(t *testing.T, r *rig, fs []fixture) {
	t.Helper()
	c, err := r.maddy.DialIMAP(localUser, localPass)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{InternalDate: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]time.Time{}
	for _, m := range msgs {
		got[m.Envelope.Subject] = m.InternalDate
	}
	for _, f := range fs {
		if !got[f.subject].Equal(f.date) {
			t.Errorf("%q stored with arrival date %v, APPENDed with %v", f.subject, got[f.subject], f.date)
		}
	}
}

// waitPollAfter waits until the account finished a poll that began after
// now: its last success (the status, to the second) is 2 s later, while
// a poll of these files takes well under a second.
func waitPollAfter(t *testing.T, r *rig) {
	t.Helper()
	since := time.Now().Add(2 * time.Second)
	deadline := time.Now().Add(waitLong)
	for {
		var sts []struct {
			Account     string    `json:"account"`
			LastSuccess time.Time `json:"last_success"`
		}
		out := r.maddy.CLI(t, "remote-pull", "status", "--json")
		if err := json.Unmarshal([]byte(out), &sts); err != nil {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		if len(sts) == 1 && sts[0].LastSuccess.After(since) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no poll since %v; status %s; maddy log:\n%s", since, out, r.maddy.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// An mbox Dovecot wrote (From lines in bodies unquoted, told apart by its
// Content-Length; its Status, X-Status, X-Keywords, X-UID and X-IMAPbase
// fields) is imported
// exactly as Dovecot serves it over IMAP, with its flags; a finished
// import imports nothing more; a message Dovecot appends later, rewriting
// the first message's X-IMAPbase in place, is imported at the next poll
// and nothing twice.
func TestImportMboxDovecot(t *testing.T) {
	up := harness.StartDovecot(t, harness.DovecotOptions{Extra: []string{"mbox_lazy_writes = no"}})
	home := up.AddUserMail(t, upUser, upPass, "mbox:~/mail:INBOX=~/mail/inbox")
	appendFixtures(t, up, upUser, "INBOX", fixtures)
	served := func() []harness.MailboxMessage {
		c := up.IMAPClient(t, upUser, upPass)
		defer c.Close()
		return harness.ListMessages(t, c, "INBOX")
	}
	want := served()
	if len(want) != len(fixtures) {
		t.Fatalf("Dovecot serves %d messages", len(want))
	}
	// maddy reads a copy: Dovecot's own file is the mail user's.
	dir := t.TempDir()
	mbox := filepath.Join(dir, "inbox")
	copyReadable(t, filepath.Join(home, "mail", "inbox"), mbox)
	if b, _ := os.ReadFile(mbox); !bytes.Contains(b, []byte("\nX-IMAPbase: ")) || !bytes.Contains(b, []byte("\n\nFrom after a blank line")) {
		t.Fatalf("Dovecot did not write the mbox this test is about:\n%s", b)
	}

	listedDates(t, filesrc.NewMbox(filesrc.MboxConfig{Path: mbox}), "INBOX", fixtures)

	r := startFileMaddy(t, up, fileConf("mbox", mbox, ""))
	sameAsServed(t, r.local(t, len(fixtures)), want)
	storedDates(t, r, fixtures)

	waitPollAfter(t, r)
	if got := r.maddy.Mailbox(t, localUser, localPass, "INBOX"); len(got) != len(fixtures) {
		t.Fatalf("an unchanged file imported again: %d messages", len(got))
	}

	later := fixture{"appended later", "New.\r\n", []imap.Flag{imap.FlagSeen}, time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)}
	appendFixtures(t, up, upUser, "INBOX", []fixture{later})
	copyReadable(t, filepath.Join(home, "mail", "inbox"), mbox)
	sameAsServed(t, r.local(t, len(fixtures)+1), served())
	waitPollAfter(t, r)
	if got := r.maddy.Mailbox(t, localUser, localPass, "INBOX"); len(got) != len(fixtures)+1 {
		t.Fatalf("after the append: %d messages, want %d", len(got), len(fixtures)+1)
	}
}

// A Maildir Dovecot wrote, with a Maildir++ subfolder tree, is imported
// exactly as Dovecot serves it, flags (the ":2," info and its keyword
// file) included, the tree mirrored.
func TestImportMaildirDovecot(t *testing.T) {
	up := harness.StartDovecot(t, harness.DovecotOptions{})
	home := up.AddUserMail(t, upUser, upPass, "maildir:~/Mail")
	appendFixtures(t, up, upUser, "INBOX", fixtures[:3])
	appendFixtures(t, up, upUser, "Work.Clients", fixtures[3:])
	served := func(folder string) []harness.MailboxMessage {
		c := up.IMAPClient(t, upUser, upPass)
		defer c.Close()
		return harness.ListMessages(t, c, folder)
	}
	dir := filepath.Join(t.TempDir(), "Mail")
	copyReadable(t, filepath.Join(home, "Mail"), dir)

	listedDates(t, filesrc.NewMaildir(filesrc.MaildirConfig{Path: dir}), "INBOX", fixtures[:3])
	listedDates(t, filesrc.NewMaildir(filesrc.MaildirConfig{Path: dir}), "Work.Clients", fixtures[3:])

	r := startFileMaddy(t, up, fileConf("maildir", dir, "        folders *\n        local_folders mirror\n"))
	sameAsServed(t, r.local(t, 3), served("INBOX"))
	storedDates(t, r, fixtures[:3])
	sameAsServed(t, r.maddy.WaitMessages(t, localUser, localPass, "Work.Clients", 2, waitLong), served("Work.Clients"))
	waitPollAfter(t, r)
	if got := r.maddy.Mailbox(t, localUser, localPass, "INBOX"); len(got) != 3 {
		t.Fatalf("an unchanged Maildir imported again: %d messages", len(got))
	}
}

// pyExpected is what mkmbox.py says each file holds.
type pyExpected struct {
	Subject string   `json:"subject"`
	Raw     string   `json:"raw"`
	Flags   []string `json:"flags"`
	Date    string   `json:"date"`
}

// mboxo and mboxrd files written by Python's mailbox module, and a file
// shaped as Google Takeout writes Gmail, are imported exactly: the
// original messages with CRLF line endings, their From quoting undone as
// the variant says, the state fields (Status, X-Status, X-Gmail-Labels,
// X-GM-THRID) left out and made flags: Takeout's Starred is \Flagged,
// its Unread the absence of \Seen.
func TestImportMboxPython(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command("python3", "testdata/mkmbox.py", dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mkmbox.py: %v\n%s", err, out)
	}
	var expected map[string][]pyExpected
	b, err := os.ReadFile(filepath.Join(dir, "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &expected); err != nil {
		t.Fatal(err)
	}
	var conf strings.Builder
	conf.WriteString("remote_pull {\n")
	for name, variant := range map[string]string{"mboxo": "mboxo", "mboxrd": "auto", "takeout": "auto"} {
		extra := ""
		if name == "takeout" {
			extra = "        local_folders mirror\n" // one copy per label
		}
		fmt.Fprintf(&conf, "    account %s {\n        mbox %s\n        mbox_variant %s\n        rcpt_to %s\n"+
			"        poll_interval 1s\n        keep_flags yes\n%s        deliver_to &local_routing\n    }\n",
			name, filepath.Join(dir, name+".mbox"), variant, localUser, extra)
	}
	conf.WriteString("}\n")
	want := map[string]pyExpected{}
	for _, msgs := range expected {
		for _, m := range msgs {
			want[m.Subject] = m
		}
	}
	// Takeout's labels place its messages: Inbox in INBOX, Sent and a
	// user label in their folders, the archived one in Archive.
	placed := map[string][]string{"Sent": {"sent"}, "Work, old": {"sent"}, "Archive": {"archived unread"}}
	r := startFileMaddy(t, nil, conf.String())
	local := r.local(t, len(want)-2)
	for folder, subjects := range placed {
		got := bodies(t, r.maddy.WaitMessages(t, localUser, localPass, folder, len(subjects), waitLong))
		for _, subj := range subjects {
			if _, ok := want[subj]; !ok {
				t.Fatalf("mkmbox.py wrote no %q", subj)
			}
			if crlf := strings.ReplaceAll(want[subj].Raw, "\n", "\r\n"); string(got[subj]) != crlf {
				t.Errorf("%s: %q is %q, want %q", folder, subj, got[subj], crlf)
			}
		}
		if len(got) != len(subjects) {
			t.Errorf("%s holds %d messages, want %v", folder, len(got), subjects)
		}
	}
	delete(want, "sent")
	delete(want, "archived unread")
	got := bodies(t, local)
	if len(local) != len(want) || len(got) != len(want) {
		t.Fatalf("maddy's INBOX holds %d messages (%d subjects), want %d", len(local), len(got), len(want))
	}
	for _, m := range local {
		_, raw, _ := harness.Delivered(m.Raw)
		subj := harness.Subject(raw)
		w, ok := want[subj]
		if !ok {
			t.Errorf("unexpected message %q", subj)
			continue
		}
		if crlf := strings.ReplaceAll(w.Raw, "\n", "\r\n"); string(raw) != crlf {
			t.Errorf("%q differs:\nmaddy: %q\nwant:  %q", subj, raw, crlf)
		}
		if have, wantFlags := flagSet(m.Flags), flagSet(w.Flags); !slices.Equal(have, wantFlags) {
			t.Errorf("%q flags %v, want %v", subj, have, wantFlags)
		}
	}
}

// writeMbox writes msgs as an mboxrd file with CRLF line endings.
func writeMbox(t *testing.T, path string, msgs [][]byte) {
	t.Helper()
	var b bytes.Buffer
	quoted := regexp.MustCompile(`(?m)^(>*From )`)
	for _, m := range msgs {
		b.WriteString("From bob@example.org Sun Dec  6 02:03:21 2026\r\n")
		b.Write(quoted.ReplaceAll(m, []byte(">$1")))
		b.WriteString("\r\n")
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// maddy is killed (SIGKILL) in the middle of an mbox import and started
// again: every message arrives, none twice but at most the one whose
// Commit raced the kill, and the file is untouched. The file takes three
// pages (an mbox is listed 4,096 messages at a time); the kill comes on
// the second, and the restarted maddy resumes at the page the ledger
// kept: its first poll delivers, where reading the file again from its
// start would first list the whole first page, all known, for nothing.
func TestImportMboxKillResume(t *testing.T) {
	want := map[string][]byte{}
	var msgs [][]byte
	for i := range 9000 {
		m := harness.Message(i+1, 600)
		msgs = append(msgs, m)
		want[harness.Subject(m)] = m
	}
	path := filepath.Join(t.TempDir(), "big.mbox")
	writeMbox(t, path, msgs)
	before, _ := os.ReadFile(path)

	r := startFileMaddy(t, nil, fileConf("mbox", path, ""))
	harness.Eventually(t, waitLong, func() bool { return r.countLog("incoming message") >= 4096+300 }, "the second page in flight")
	r.maddy.Kill(t)
	delivered := r.countLog("incoming message")
	if delivered >= len(want) {
		t.Fatalf("the import finished before the kill (%d); nothing was tested", delivered)
	}
	logged, _ := os.ReadFile(r.maddy.LogPath)
	r.maddy.Start(t)
	r.local(t, len(want))
	waitPollAfter(t, r)
	checkOnce(t, r.local(t, len(want)), want, 1)
	if after, _ := os.ReadFile(path); !bytes.Equal(before, after) {
		t.Fatal("the mbox file changed")
	}
	all, _ := os.ReadFile(r.maddy.LogPath)
	first := regexp.MustCompile(`poll done.*"delivered":(\d+)`).FindSubmatch(all[len(logged):])
	if first == nil || string(first[1]) == "0" {
		t.Errorf("the first poll after the restart did not resume at the second page: %q", first)
	}
	t.Logf("killed after %d of %d incoming messages", delivered, len(want))
}

// Broken messages are handed to maddy's pipeline as they are, never cut,
// and the status names their position in the file: a file that does not
// begin with a From line, a header that never ends. The message with no
// header at all is refused, as maddy's pipeline refuses it from IMAP.
func TestImportMboxBroken(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.mbox")
	file := "no header here, just text\n\n" +
		"From a Sun Dec  6 02:03:21 2026\nSubject: fine\n\nok\n\n" +
		"From a Sun Dec  6 02:03:22 2026\nSubject: header only\n"
	if err := os.WriteFile(path, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	r := startFileMaddy(t, nil, fileConf("mbox", path, "        notify off # the refusal notice would be a third message\n"))
	got := bodies(t, r.local(t, 2))
	// maddy stores a header without its end with the blank line added, as
	// it does a message from IMAP.
	if string(got["fine"]) != "Subject: fine\r\n\r\nok\r\n" || string(got["header only"]) != "Subject: header only\r\n\r\n" {
		t.Fatalf("delivered %q", got)
	}
	r.maddy.WaitLog(t, "message refused", waitLong)
	r.maddy.WaitLog(t, "message at byte 0 ", waitLong)
	r.maddy.WaitLog(t, "message at byte 78 ", waitLong)
	harness.Eventually(t, waitLong, func() bool {
		out := r.maddy.CLI(t, "remote-pull", "status")
		return strings.Contains(out, "1 refused")
	}, "status shows the refusal")
	// check reads the file as a poll would, and names it.
	out, code := r.maddy.CLIStatus(t, "remote-pull", "check", "files")
	if code != 0 || !strings.Contains(out, "account files: mbox "+path) || strings.Contains(out, "logged in") {
		t.Errorf("check: exit %d:\n%s", code, out)
	}
}
