package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// keep no, move_to Archive, folders *: the Archive folder does not exist
// yet (Dovecot answers UID MOVE with [TRYCREATE]), so it is created; and
// though * matches it once it exists, it is never polled: every message
// arrives once.
func TestMoveToUnpolledAndCreated(t *testing.T) {
	up := newUpstream(t)
	want := seedN(t, up, 3, 500)
	work := harness.Message(40, 500)
	up.Seed(t, upUser, "Work", work)
	want[harness.Subject(work)] = work
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile,
		Extra: "        folders *\n        move_to Archive\n        idle no\n"}.String())
	checkOnce(t, r.local(t, len(want)), want, 0)
	harness.Eventually(t, waitLong, func() bool {
		return len(r.upstream(t, "INBOX")) == 0 && len(r.upstream(t, "Work")) == 0 && len(r.upstream(t, "Archive")) == 4
	}, "delivered messages moved to Archive, created for them")
	r.waitPolls(t, 3) // polls that list Archive among the folders
	checkOnce(t, r.local(t, len(want)), want, 0)
	if log := r.maddy.Log(); !strings.Contains(log, `created the move_to folder "Archive"`) || !strings.Contains(log, "not polled: delivered messages are moved to this folder") {
		t.Errorf("the log does not say the folder was created and is not polled:\n%s", grep(log, "Archive"))
	}
}

// keep no, and the move_to folder cannot be made: the removal fails at
// every poll, but new mail is still fetched and delivered once; the
// account shows "folder failing" with the server's reason in status and
// check; nothing is removed upstream.
func TestRefusedRemovalKeepsFetching(t *testing.T) {
	up := newUpstream(t)
	want := seedN(t, up, 2, 500)
	bad := strings.Repeat("x", 300) // longer than a mailbox name may be
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile,
		Extra: "        move_to " + bad + "\n        idle no\n"}.String())
	r.local(t, len(want))
	later := harness.Message(30, 500)
	up.Seed(t, upUser, "INBOX", later)
	want[harness.Subject(later)] = later
	checkOnce(t, r.local(t, len(want)), want, 0)
	r.waitPolls(t, 2)
	checkOnce(t, r.local(t, len(want)), want, 0)
	if n := len(r.upstream(t, "INBOX")); n != 3 {
		t.Errorf("INBOX upstream holds %d, want all 3 (the removal is refused)", n)
	}
	var sts []struct {
		State     string `json:"state"`
		LastError string `json:"last_error"`
	}
	out, _ := r.maddy.CLIStatus(t, "remote-pull", "status", "--json")
	if json.Unmarshal([]byte(out), &sts) != nil || len(sts) != 1 || sts[0].State != "folder failing" || !strings.Contains(sts[0].LastError, `folder "INBOX"`) {
		t.Errorf("status:\n%s", out)
	}
	out, _ = r.maddy.CLIStatus(t, "remote-pull", "check", "acct")
	if !strings.Contains(out, "last poll: folder failing: ") || !strings.Contains(out, "UID MOVE") {
		t.Errorf("check does not report the failing removal:\n%s", out)
	}
}

// delete_after after an upstream restore: Dovecot's INBOX is put back to
// a backup holding only the first message (its dovecot-uidlist and
// message files; the index rebuilt), and new mail is given the UIDs the
// delivered messages had, under the same UIDVALIDITY, until UIDNEXT is
// past the floor again. The message under the highest recorded UID is
// another one: the new mail is delivered, once, and removed when its
// delete_after comes due; the first message, known since by its
// fingerprint only, stays upstream.
func TestDeleteAfterRestoreReusesUIDs(t *testing.T) {
	up := newUpstream(t)
	want := seedN(t, up, 3, 500)
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile,
		Extra: "        delete_after 10s\n        idle no\n"}.String())
	r.local(t, 3)

	// The restore, with Dovecot stopped, in well under delete_after.
	up.Stop()
	dir := up.MaildirPath(upUser, "INBOX")
	list, err := os.ReadFile(filepath.Join(dir, "dovecot-uidlist"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(list)), "\n")
	header := regexp.MustCompile(` N\d+`).ReplaceAllString(lines[0], " N2")
	var keep string
	for _, l := range lines[1:] {
		uid, file, _ := strings.Cut(l, " ")
		file = strings.TrimPrefix(strings.Fields(file)[len(strings.Fields(file))-1], ":")
		if uid == "1" {
			keep = l
			continue
		}
		for _, sub := range []string{"cur", "new"} {
			matches, _ := filepath.Glob(filepath.Join(dir, sub, file+"*"))
			for _, m := range matches {
				os.Remove(m)
			}
		}
	}
	if keep == "" {
		t.Fatalf("no UID 1 in dovecot-uidlist:\n%s", list)
	}
	if err := os.WriteFile(filepath.Join(dir, "dovecot-uidlist"), []byte(header+"\n"+keep+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	indexes, _ := filepath.Glob(filepath.Join(dir, "dovecot.index*"))
	for _, f := range indexes {
		os.Remove(f)
	}
	fresh := []([]byte){harness.Message(20, 500), harness.Message(21, 500), harness.Message(22, 500)}
	up.Seed(t, upUser, "INBOX", fresh...)
	up.Restart(t)
	harness.Eventually(t, waitLong, func() bool {
		msgs := r.upstream(t, "INBOX")
		return len(msgs) == 4 && msgs[1].UID == 2 && msgs[3].UID == 4
	}, "the restored INBOX: UID 1, then new mail as 2, 3 and 4")

	for _, m := range fresh {
		want[harness.Subject(m)] = m
	}
	checkOnce(t, r.local(t, len(want)), want, 0)

	// delete_after comes due for the new mail.
	harness.Eventually(t, waitLong, func() bool {
		return len(r.upstream(t, "INBOX")) <= 1
	}, "the new mail removed after delete_after")
	r.waitPolls(t, 2)
	left := r.upstream(t, "INBOX")
	if len(left) != 1 || left[0].UID != 1 {
		t.Errorf("upstream after delete_after: %d messages, want UID 1 alone", len(left))
	}
	checkOnce(t, r.local(t, len(want)), want, 0)
}
