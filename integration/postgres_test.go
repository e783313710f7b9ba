package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// onPostgres runs the tests that follow with maddy's storage on PostgreSQL
// (storage, setup_test.go), until the test ends.
func onPostgres(t *testing.T) {
	t.Helper()
	old := storage
	storage = "postgres"
	t.Cleanup(func() { storage = old })
}

// TestPostgres runs a representative set of the end-to-end tests with
// maddy's storage.imapsql on a real PostgreSQL server (driver postgres):
// delivery and a restart, placement (local_folders mirror, flags), dedupe,
// and the faults (a connection cut inside a fetch, maddy killed in the
// middle of an import), and a restore of an older pg_dump followed by
// reconcile. The rest of the suite runs on SQLite; set
// REMOTE_PULL_STORAGE=postgres to run any test on PostgreSQL.
func TestPostgres(t *testing.T) {
	onPostgres(t)
	for _, tc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"StorageHoldsTheMail", testPostgresHoldsTheMail},
		{"BarrierBeforeRemoval", testPostgresBarrier},
		{"Delete", TestIMAPDelete},
		{"NewMailAndRestart", TestIMAPNewMailAndRestart},
		{"POP3DeleteSTLS", TestPOP3DeleteSTLS},
		{"MirrorFoldersAndFlags", TestMirrorFoldersAndFlags},
		{"DedupeTwoFolders", TestDedupeTwoFolders},
		{"CutMidMessage", TestCutMidMessage},
		{"KillMidImport", TestKillMidImport},
		{"ReconcileAfterRestore", TestReconcileAfterRestore},
	} {
		t.Run(tc.name, tc.run)
	}
}

// testPostgresHoldsTheMail shows the set above really runs on PostgreSQL:
// the delivered messages are rows of maddy's tables in the server's
// database, and there is no SQLite storage file in the state directory.
func testPostgresHoldsTheMail(t *testing.T) {
	up := newUpstream(t)
	want := seedN(t, up, 5, 2_000)
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true, CAFile: up.CA.CAFile}.String())
	checkOnce(t, r.local(t, len(want)), want, 0)
	if r.pg == nil {
		t.Fatal("startMaddy did not start PostgreSQL")
	}
	if n := strings.TrimSpace(r.pg.SQL(t, r.maddy.StorageDB, "SELECT count(*) FROM msgs")); n != "5" {
		t.Errorf("maddy's msgs table in PostgreSQL holds %s rows, want 5", n)
	}
	if _, err := os.Stat(filepath.Join(r.maddy.StateDir, "imapsql.db")); !os.IsNotExist(err) {
		t.Errorf("a SQLite storage file exists in the state directory (%v)", err)
	}
}

// TestPostgresStoragePatch runs go-imap-sql's own tests against
// PostgreSQL, through the module's TEST_DB and TEST_DSN: its suite (the
// copy in third_party/, with the patches applied) and the test of the
// storage patch (third_party/patches/go-imap-sql/0001: a delivery finds its
// folder without reading the folder's UIDs). `make test` runs the same
// tests on SQLite (the Makefile's THIRD_PARTY).
func TestPostgresStoragePatch(t *testing.T) {
	pg := harness.StartPostgres(t)
	db := pg.CreateDB(t)
	cmd := exec.Command("go", "test", "-count=1", "-v", "github.com/foxcpp/go-imap-sql")
	cmd.Env = append(os.Environ(), "TEST_DB=postgres", "TEST_DSN="+pg.DSN(db))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go-imap-sql on PostgreSQL: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestDeliveryMailboxReadsNoUIDs") {
		t.Fatalf("the storage patch's test did not run:\n%s", out)
	}
	// The tests really used the server (they drop their tables at the
	// end): rows were written in that database.
	if n := strings.TrimSpace(pg.SQL(t, "postgres", "SELECT tup_inserted FROM pg_stat_database WHERE datname = '"+db+"'")); n == "" || n == "0" {
		t.Errorf("no row was written in the PostgreSQL database (tup_inserted %q)", n)
	}
}

// testPostgresBarrier: with the server's synchronous_commit off (a commit
// returns before its WAL is on disk), remote_pull still removes nothing
// upstream before a synchronous barrier transaction flushed the WAL past
// the deliveries (remotepull/durable.go). The server logs every statement;
// the barrier's SET LOCAL is there, once per batch, before the removal.
func testPostgresBarrier(t *testing.T) {
	up := newUpstream(t)
	want := seedN(t, up, 3, 1_000)
	pg := harness.StartPostgres(t)
	pg.SQL(t, "postgres", "ALTER SYSTEM SET synchronous_commit = off")
	pg.SQL(t, "postgres", "ALTER SYSTEM SET log_statement = 'all'")
	pg.SQL(t, "postgres", "SELECT pg_reload_conf()")
	bin := harness.BuildMaddy(t)
	m := harness.StartMaddy(t, bin, harness.MaddyOptions{
		Users:    map[string]string{localUser: localPass},
		Extra:    accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile}.String(),
		Files:    map[string]string{"upstream-password": upPass + "\n"},
		Postgres: pg,
	})
	r := &rig{up: up, maddy: m, bin: bin, pg: pg}
	checkOnce(t, r.local(t, len(want)), want, 0)
	harness.Eventually(t, waitLong, func() bool { return len(r.upstream(t, "INBOX")) == 0 }, "upstream emptied")
	if sc := strings.TrimSpace(pg.SQL(t, m.StorageDB, "SHOW synchronous_commit")); sc != "off" {
		t.Fatalf("the server's synchronous_commit is %q, want off", sc)
	}
	if !strings.Contains(pg.Log(), "SET LOCAL synchronous_commit TO on") {
		t.Fatalf("no barrier transaction in the server's statement log before the upstream copies were removed:\n%s", harness.Tail(pg.LogPath(), 30))
	}
}
