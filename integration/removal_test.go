package integration

import (
	"encoding/json"
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
