package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// backupStorage copies maddy's mailbox storage, with maddy stopped: the
// message files (state_dir/messages) and the database (the SQLite file,
// or a pg_dump of the PostgreSQL database). restore puts that copy back,
// with maddy stopped, as an administrator restoring an older backup does.
// The ledger (state_dir/remote_pull) is not part of it: it stays newer.
func (r *rig) backupStorage(t *testing.T) (restore func()) {
	t.Helper()
	state := r.maddy.StateDir
	dir := t.TempDir()
	copyTree(t, filepath.Join(state, "messages"), filepath.Join(dir, "messages"))
	var dump string
	if r.pg != nil {
		dump = r.pg.Dump(t, r.maddy.StorageDB)
	} else {
		for _, suffix := range []string{"", "-wal", "-shm"} {
			if _, err := os.Stat(filepath.Join(state, "imapsql.db"+suffix)); err == nil {
				copyTree(t, filepath.Join(state, "imapsql.db"+suffix), filepath.Join(dir, "imapsql.db"+suffix))
			}
		}
	}
	return func() {
		t.Helper()
		if err := os.RemoveAll(filepath.Join(state, "messages")); err != nil {
			t.Fatal(err)
		}
		copyTree(t, filepath.Join(dir, "messages"), filepath.Join(state, "messages"))
		if r.pg != nil {
			r.pg.Restore(t, r.maddy.StorageDB, dump)
			return
		}
		for _, suffix := range []string{"", "-wal", "-shm"} {
			os.Remove(filepath.Join(state, "imapsql.db"+suffix))
			if _, err := os.Stat(filepath.Join(dir, "imapsql.db"+suffix)); err == nil {
				copyTree(t, filepath.Join(dir, "imapsql.db"+suffix), filepath.Join(state, "imapsql.db"+suffix))
			}
		}
	}
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", from, to, err, out)
	}
}

// After maddy's storage is restored from a backup older than the ledger,
// the ledger calls messages delivered that the storage lacks, and no poll
// fetches them again. `remote-pull reconcile` finds them (by the Received
// field's id) and has the next poll fetch them from the upstream, which
// keeps them: every message is then in maddy exactly once, and the
// upstream copies are all still there.
func TestReconcileAfterRestore(t *testing.T) {
	up := newUpstream(t)
	want := seedN(t, up, 4, 1_500)
	start := time.Now().Add(-time.Minute)
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile}.String())
	checkOnce(t, r.local(t, 4), want, 0)
	r.maddy.Stop(t)
	restore := r.backupStorage(t)

	r.maddy.Start(t)
	var more [][]byte
	for i := 5; i <= 7; i++ {
		m := harness.Message(i, 1_500)
		more = append(more, m)
		want[harness.Subject(m)] = m
	}
	up.Seed(t, upUser, "INBOX", more...)
	checkOnce(t, r.local(t, 7), want, 0)
	r.maddy.Stop(t)
	restore()
	r.maddy.Start(t)

	// The loss reconcile exists for: polls go on, the three stay missing.
	r.waitPolls(t, 2)
	if got := r.local(t, 4); len(got) != 4 {
		t.Fatalf("after the restore maddy holds %d messages, want the backup's 4", len(got))
	}

	dry, code := r.maddy.CLIStatus(t, "remote-pull", "reconcile", "--since", start.Format(time.RFC3339), "--dry-run", "acct")
	if code != 0 || !strings.Contains(dry, "7 message(s) delivered since") || !strings.Contains(dry, "4 present in maddy's storage, 3 missing; 3 would be fetched again") {
		t.Fatalf("reconcile --dry-run (exit %d):\n%s", code, dry)
	}
	r.waitPolls(t, 1)
	if got := r.local(t, 4); len(got) != 4 {
		t.Fatalf("a dry run changed something: %d messages", len(got))
	}

	out := r.maddy.CLI(t, "remote-pull", "reconcile", "--since", start.Format(time.RFC3339), "acct")
	if !strings.Contains(out, "4 present in maddy's storage, 3 missing; 3 will be fetched again") {
		t.Fatalf("reconcile:\n%s", out)
	}
	r.local(t, 7)
	r.waitPolls(t, 2)
	checkOnce(t, r.local(t, 7), want, 0)
	if n := len(r.upstream(t, "INBOX")); n != 7 {
		t.Errorf("%d upstream copies left, want all 7 (keep yes)", n)
	}
	// Run again: everything is there, nothing is fetched twice.
	again := r.maddy.CLI(t, "remote-pull", "reconcile", "--since", start.Format(time.RFC3339), "acct")
	if !strings.Contains(again, "7 present in maddy's storage, 0 missing") {
		t.Fatalf("second reconcile:\n%s", again)
	}
	r.waitPolls(t, 2)
	checkOnce(t, r.local(t, 7), want, 0)
}

// With keep no the upstream copies of the lost messages are gone:
// reconcile (run with maddy stopped) says so, names them, exits 1, and
// changes nothing.
func TestReconcileUpstreamDeleted(t *testing.T) {
	up := newUpstream(t)
	want := seedN(t, up, 2, 1_000)
	start := time.Now().Add(-time.Minute)
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile}.String())
	checkOnce(t, r.local(t, 2), want, 0)
	harness.Eventually(t, waitLong, func() bool { return len(r.upstream(t, "INBOX")) == 0 }, "upstream emptied")
	r.maddy.Stop(t)
	restore := r.backupStorage(t)
	r.maddy.Start(t)
	up.Seed(t, upUser, "INBOX", harness.Message(3, 1_000))
	r.local(t, 3)
	harness.Eventually(t, waitLong, func() bool { return len(r.upstream(t, "INBOX")) == 0 }, "upstream emptied")
	r.maddy.Stop(t)
	restore()

	// With maddy stopped, as docs/backup.md advises after a restore.
	out, code := r.maddy.CLIStatus(t, "remote-pull", "reconcile", "--since", start.Format(time.RFC3339), "acct")
	if code != 1 || !strings.Contains(out, "2 present in maddy's storage, 1 missing; 0 will be fetched again") ||
		!strings.Contains(out, "1 missing message(s) cannot be fetched again: remote_pull deleted the upstream copy") ||
		!strings.Contains(out, "INBOX/") {
		t.Fatalf("reconcile (exit %d):\n%s", code, out)
	}
	r.maddy.Start(t)
	r.waitPolls(t, 2)
	checkOnce(t, r.local(t, 2), want, 0)
}
