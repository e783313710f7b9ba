package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// Bringing a mailbox home (issue 13, first part): every folder matched by
// a pattern but the excluded ones, a date bound, \Seen set upstream once
// delivered, then deletion some time after delivery.
func TestMigrationFoldersAgeSeenDeleteAfter(t *testing.T) {
	up := newUpstream(t)
	want := map[string][]byte{}
	seed := func(folder string, i int) {
		msg := harness.Message(i, 700)
		up.Seed(t, upUser, folder, msg)
		want[harness.Subject(msg)] = msg
	}
	seed("INBOX", 1)
	seed("Archive", 2)
	seed("Work.Clients", 3)
	up.Seed(t, upUser, "Old", harness.Message(90, 700)) // excluded
	// An old message, by INTERNALDATE: recorded, not fetched (max_age).
	c := up.IMAPClient(t, upUser, upPass)
	old := harness.CRLF(harness.Message(91, 700))
	cmd := c.Append("Archive", int64(len(old)), &imap.AppendOptions{Time: time.Date(2019, 3, 1, 12, 0, 0, 0, time.UTC)})
	cmd.Write(old)
	cmd.Close()
	if _, err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}

	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile,
		Extra: "        folders *\n        exclude_folders Old \"Trash\"\n        max_age 365d\n        mark_seen yes\n        delete_after 4s\n        idle no\n"}.String())
	checkOnce(t, r.local(t, len(want)), want, 0)

	// \Seen upstream once delivered (before delete_after takes them).
	harness.Eventually(t, waitLong, func() bool {
		msgs := r.upstream(t, "INBOX")
		return len(msgs) == 1 && msgs[0].HasFlag(`\Seen`)
	}, "the delivered INBOX message \\Seen upstream")
	// delete_after: the delivered copies go, the old and the excluded stay.
	harness.Eventually(t, waitLong, func() bool {
		return len(r.upstream(t, "INBOX")) == 0 && len(r.upstream(t, "Work.Clients")) == 0 && len(r.upstream(t, "Archive")) == 1
	}, "delivered messages deleted upstream 4 s after delivery")
	if left := r.upstream(t, "Archive"); harness.Subject(left[0].Raw) != harness.Subject(old) {
		t.Errorf("Archive keeps %q, want the old message", harness.Subject(left[0].Raw))
	}
	if len(r.upstream(t, "Old")) != 1 {
		t.Error("the excluded folder was touched")
	}
	r.waitPolls(t, 2)
	checkOnce(t, r.local(t, len(want)), want, 0)
	if log := r.maddy.Log(); !strings.Contains(log, "older than max_age") {
		t.Errorf("no max_age line in the log:\n%s", grep(log, "max_age"))
	}
}

// max_age after an outage (issue 19): an account that could not poll for
// longer than max_age delivers what arrived meanwhile. maddy is stopped,
// and a message whose arrival date is older than max_age appears upstream
// (as mail does that arrived at the start of a long outage, or that a user
// files with its old date); at the restart it is delivered, not adopted.
// Only what was too old at the folder's first sync is adopted, and status
// counts it.
func TestMaxAgeAfterAnOutage(t *testing.T) {
	up := newUpstream(t)
	appendAt := func(i int, at time.Time) []byte {
		msg := harness.Message(i, 600)
		c := up.IMAPClient(t, upUser, upPass)
		defer c.Close()
		raw := harness.CRLF(msg)
		cmd := c.Append("INBOX", int64(len(raw)), &imap.AppendOptions{Time: at})
		cmd.Write(raw)
		cmd.Close()
		if _, err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		return msg
	}
	recent := harness.Message(1, 600)
	up.Seed(t, upUser, "INBOX", recent)
	appendAt(90, time.Now().Add(-400*24*time.Hour)) // too old at the first sync
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile,
		Extra: "        max_age 30d\n        idle no\n"}.String())
	want := map[string][]byte{harness.Subject(recent): recent}
	checkOnce(t, r.local(t, 1), want, 0)
	adopted := func() int {
		var sts []struct {
			AdoptedMaxAge int `json:"adopted_max_age"`
		}
		out := r.maddy.CLI(t, "remote-pull", "status", "--json")
		if err := json.Unmarshal([]byte(out), &sts); err != nil || len(sts) != 1 {
			t.Fatalf("status --json: %v\n%s", err, out)
		}
		return sts[0].AdoptedMaxAge
	}
	if n := adopted(); n != 1 {
		t.Fatalf("status counts %d adopted for max_age, want 1", n)
	}

	r.maddy.Stop(t)
	during := appendAt(2, time.Now().Add(-60*24*time.Hour))
	want[harness.Subject(during)] = during
	r.maddy.Start(t)
	r.waitPolls(t, 2)
	checkOnce(t, r.local(t, 2), want, 0)
	if n := adopted(); n != 1 {
		t.Errorf("status counts %d adopted for max_age after the outage, want 1", n)
	}
}

// move_to (keep no): delivered messages are moved to a folder instead of
// deleted (UID MOVE on Dovecot).
func TestMoveTo(t *testing.T) {
	up := newUpstream(t)
	want := seedN(t, up, 3, 500)
	up.Seed(t, upUser, "Fetched", harness.Message(50, 400)) // makes the folder
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile,
		Extra: "        move_to Fetched\n"}.String())
	checkOnce(t, r.local(t, len(want)), want, 0)
	harness.Eventually(t, waitLong, func() bool {
		return len(r.upstream(t, "INBOX")) == 0 && len(r.upstream(t, "Fetched")) == 4
	}, "delivered messages moved to Fetched")
}

// local_folders mirror with keep_flags: each upstream folder's messages go
// to the same-named local folder, the upstream's \Sent folder (whatever its
// name) to the local folder marked \Sent, and flags and keywords of the
// upstream copy come along; an explicit local_folder wins.
func TestMirrorFoldersAndFlags(t *testing.T) {
	// The upstream's hierarchy delimiter is "/", as on Gmail; maddy's is ".".
	up := newUpstream(t, `namespace inbox {
  inbox = yes
  separator = /
  mailbox "Sent Items" {
    special_use = \Sent
  }
}`)
	inbox := harness.Message(1, 600)
	sent := harness.Message(2, 600)
	work := harness.Message(3, 600)
	clients := harness.Message(4, 600)
	nested := harness.Message(5, 600)
	up.SeedSeen(t, upUser, "INBOX", inbox)
	up.Seed(t, upUser, "Sent Items", sent)
	up.Seed(t, upUser, "Work", work)
	up.Seed(t, upUser, "Clients", clients)
	up.AddFlags(t, upUser, "Work", 1, `\Flagged`, "$Important")
	// "Work/Clients" upstream; on disk (Maildir++) it is .Work.Clients.
	up.Doveadm(t, nil, "mailbox", "create", "-s", "-u", upUser, "Work/Clients")
	up.Seed(t, upUser, "Work.Clients", nested)

	bin := harness.BuildMaddy(t)
	m := harness.StartMaddy(t, bin, harness.MaddyOptions{
		Users:        map[string]string{localUser: localPass},
		StorageExtra: "imap_filter { remote_pull }",
		Extra: accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile,
			Extra: "        folders *\n        local_folders mirror\n        local_folder Clients Customers\n"}.String(),
		Files:    map[string]string{"upstream-password": upPass + "\n"},
		Postgres: storageServer(t),
	})
	get := func(folder string) harness.MailboxMessage {
		t.Helper()
		msgs := m.WaitMessages(t, localUser, localPass, folder, 1, waitLong)
		if len(msgs) != 1 {
			t.Fatalf("%s holds %d messages", folder, len(msgs))
		}
		return msgs[0]
	}
	for folder, want := range map[string][]byte{"INBOX": inbox, "Work": work, "Customers": clients, "Work.Clients": nested} {
		if _, raw, _ := harness.Delivered(get(folder).Raw); harness.Subject(raw) != harness.Subject(want) {
			t.Errorf("%s holds %q, want %q", folder, harness.Subject(raw), harness.Subject(want))
		}
	}
	// maddy's user has a Sent folder marked \Sent: "Sent Items" goes there.
	if _, raw, _ := harness.Delivered(get("Sent").Raw); harness.Subject(raw) != harness.Subject(sent) {
		t.Errorf("Sent holds %q", harness.Subject(raw))
	}
	if !get("INBOX").HasFlag(`\Seen`) {
		t.Error("the upstream \\Seen did not come along")
	}
	if w := get("Work"); !w.HasFlag(`\Flagged`) || !w.HasFlag("$Important") {
		t.Errorf("Work flags %v, want \\Flagged and $Important", w.Flags)
	}
	if get("Customers").HasFlag(`\Seen`) {
		t.Error("an unread message arrived read")
	}
}

// Without the imap_filter in the storage, mirror stops maddy at start
// with file:line: never a silent fallback to INBOX.
func TestMirrorNeedsTheFilter(t *testing.T) {
	up := newUpstream(t)
	bin := harness.BuildMaddy(t)
	conf := accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile,
		Extra: "        local_folders mirror\n"}.String()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "upstream-password"), []byte(upPass), 0o600)
	cfg := filepath.Join(dir, "maddy.conf")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`state_dir %s
runtime_dir %s
hostname mx.example.org
storage.imapsql local_mailboxes {
    driver sqlite3
    dsn imapsql.db
}
msgpipeline local_routing {
    deliver_to &local_mailboxes
}
%s`, dir, dir, conf)), 0o600)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "--config", cfg, "run", "--log", "stderr").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "need remote_pull's imap_filter in the storage") || !strings.Contains(string(out), "maddy.conf:") {
		t.Fatalf("maddy started, or failed otherwise (%v):\n%s", err, out)
	}
}

// dedupe message_id against Dovecot: one message in two folders (a Gmail
// message with two labels) arrives once.
func TestDedupeTwoFolders(t *testing.T) {
	up := newUpstream(t)
	twice := harness.Message(1, 800)
	once := harness.Message(2, 800)
	// Without a Message-ID a copy is recognised by its bytes (the SHA-256
	// taken while it is spooled): it arrives once too.
	noID := []byte(strings.Replace(string(harness.Message(3, 800)), "Message-ID: <msg-3@harness.example.net>\r\n", "", 1))
	up.Seed(t, upUser, "INBOX", twice, once, noID)
	up.Seed(t, upUser, "Archive", twice, noID)
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile,
		Extra: "        folders INBOX Archive\n        dedupe message_id\n        idle no\n"}.String())
	r.local(t, 3)
	r.waitPolls(t, 2)
	got := r.local(t, 3)
	checkOnce(t, got, map[string][]byte{harness.Subject(twice): twice, harness.Subject(once): once, harness.Subject(noID): noID}, 0)
	if len(got) != 3 {
		t.Errorf("%d messages delivered, want 3", len(got))
	}
}

// A message the user files upstream after its delivery (here from INBOX to
// Work, with and without a Message-ID) is not delivered again: with
// several folders polled, dedupe is on by default. INBOX named in another
// case next to a pattern that matches it is polled once.
func TestFiledUpstreamArrivesOnce(t *testing.T) {
	up := newUpstream(t)
	withID := harness.Message(1, 700)
	noID := []byte(strings.Replace(string(harness.Message(2, 700)), "Message-ID: <msg-2@harness.example.net>\r\n", "", 1))
	work := harness.Message(3, 700)
	up.Seed(t, upUser, "INBOX", withID, noID)
	up.Seed(t, upUser, "Work", work)
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile,
		Extra: "        folders inbox *\n        idle no\n"}.String())
	want := map[string][]byte{harness.Subject(withID): withID, harness.Subject(noID): noID, harness.Subject(work): work}
	r.local(t, 3)
	r.waitPolls(t, 2)
	checkOnce(t, r.local(t, 3), want, 0)

	// The user files both INBOX messages into Work (IMAP MOVE).
	up.Doveadm(t, nil, "move", "-u", upUser, "Work", "mailbox", "INBOX", "all")
	if n := len(r.upstream(t, "Work")); n != 3 {
		t.Fatalf("Work holds %d messages upstream after the move, want 3", n)
	}
	r.waitPolls(t, 3)
	got := r.local(t, 3)
	checkOnce(t, got, want, 0)
	if len(got) != 3 {
		t.Errorf("%d messages delivered, want 3", len(got))
	}
}
