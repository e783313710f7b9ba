package integration

import (
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"remote_pull/integration/harness"
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
		want[subject(msg)] = msg
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
	if left := r.upstream(t, "Archive"); subject(left[0].Raw) != subject(old) {
		t.Errorf("Archive keeps %q, want the old message", subject(left[0].Raw))
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
