package harness

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

// Postgres is a PostgreSQL server in a temporary directory, listening on a
// loopback port only (no Unix socket), with trust authentication for the
// superuser "postgres". It runs as the invoking user, or, when the tests run
// as root (which PostgreSQL refuses), as the Debian "postgres" user (else
// "nobody").
type Postgres struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// Dir holds the cluster (data/) and the server's log.
	Dir string

	bin     string // the directory of initdb, pg_ctl, postgres, psql
	logPath string
	cred    *syscall.Credential
	dbSeq   atomic.Int64
	proc    *Process
}

// postgresBin finds the server programs: Debian keeps them in
// /usr/lib/postgresql/VERSION/bin, off PATH (the newest version wins);
// elsewhere they are on PATH.
func postgresBin() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return pgVersion(dirs[i]) > pgVersion(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	p, err := exec.LookPath("initdb")
	if err != nil {
		return "", fmt.Errorf("initdb not found in /usr/lib/postgresql/*/bin or on PATH")
	}
	return filepath.Dir(p), nil
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

// StartPostgres runs initdb in a temporary directory and starts the server
// in the foreground; it is stopped in t.Cleanup. If PostgreSQL is not
// installed the test fails (never skips): `make test` installs it (Debian
// package postgresql).
//
// The server keeps PostgreSQL's durable defaults (fsync, synchronous_commit
// on, full_page_writes): the tests check what remote_pull does on a
// production-like server, not on a fast, unsafe one.
func StartPostgres(t T) *Postgres {
	t.Helper()
	bin, err := postgresBin()
	if err != nil {
		t.Fatalf("harness: PostgreSQL is not installed (%v); run `make test`, which installs the postgresql package", err)
	}
	p := &Postgres{Dir: t.TempDir(), bin: bin, Addr: FreePort(t)}
	p.logPath = filepath.Join(p.Dir, "postgres.log")
	data := filepath.Join(p.Dir, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if os.Geteuid() == 0 {
		p.cred = unprivileged(t)
		makeTraversable(t, p.Dir)
		for _, path := range []string{p.Dir, data} {
			if err := os.Chown(path, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
				t.Fatalf("harness: %v", err)
			}
		}
	}
	if out, err := p.command("initdb", "-D", data, "-U", "postgres", "--auth=trust",
		"--encoding=UTF8", "--locale=C", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("harness: initdb: %v\n%s", err, out)
	}

	cmd := p.command("postgres", "-D", data,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+Port(p.Addr),
		"-c", "unix_socket_directories=",
		"-c", "max_connections=50",
		"-c", "logging_collector=off")
	proc, err := StartProcess(cmd, p.logPath, syscall.SIGQUIT)
	if err != nil {
		t.Fatalf("harness: starting postgres: %v", err)
	}
	p.proc = proc
	t.Cleanup(func() {
		// SIGINT is PostgreSQL's "fast" shutdown.
		_ = proc.Stop(syscall.SIGINT, 20*time.Second)
		if t.Failed() {
			t.Logf("harness: postgres log %s (tail):\n%s", p.logPath, Tail(p.logPath, 40))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := p.command("pg_isready", "-h", "127.0.0.1", "-p", Port(p.Addr), "-U", "postgres").CombinedOutput()
		if err == nil {
			break
		}
		if proc.Exited() || time.Now().After(deadline) {
			t.Fatalf("harness: postgres on %s not ready: %v %s\nlog:\n%s", p.Addr, err, out, Tail(p.logPath, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return p
}

// unprivileged is the user a root test process runs PostgreSQL as.
func unprivileged(t T) *syscall.Credential {
	t.Helper()
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	t.Fatalf("harness: running as root, PostgreSQL needs a non-root user (postgres or nobody)")
	return nil
}

func (p *Postgres) command(prog string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, prog), args...)
	cmd.Dir = p.Dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return cmd
}

// CreateDB creates a new, empty database and returns its name.
func (p *Postgres) CreateDB(t T) string {
	t.Helper()
	name := fmt.Sprintf("maddy%d", p.dbSeq.Add(1))
	p.SQL(t, "postgres", "CREATE DATABASE "+name)
	return name
}

// DSN is a lib/pq connection string for database db (as maddy's `dsn`
// takes it).
func (p *Postgres) DSN(db string) string {
	host, port, _ := net.SplitHostPort(p.Addr)
	return fmt.Sprintf("host=%s port=%s user=postgres dbname=%s sslmode=disable", host, port, db)
}

// SQL runs statements in database db with psql and returns the unaligned,
// tuples-only output; an error fails the test.
func (p *Postgres) SQL(t T, db, statements string) string {
	t.Helper()
	out, err := p.command("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", "127.0.0.1", "-p", Port(p.Addr), "-U", "postgres", "-d", db, "-c", statements).CombinedOutput()
	if err != nil {
		t.Fatalf("harness: psql %q: %v\n%s", statements, err, out)
	}
	return string(out)
}

// Dump writes database db to a new file in Dir with pg_dump (custom
// format) and returns its path, for a backup-and-restore test.
func (p *Postgres) Dump(t T, db string) string {
	t.Helper()
	file := filepath.Join(p.Dir, fmt.Sprintf("%s-%d.dump", db, p.dbSeq.Add(1)))
	out, err := p.command("pg_dump", "-h", "127.0.0.1", "-p", Port(p.Addr), "-U", "postgres",
		"-Fc", "-f", file, db).CombinedOutput()
	if err != nil {
		t.Fatalf("harness: pg_dump: %v\n%s", err, out)
	}
	return file
}

// Restore replaces database db with the dump in file.
func (p *Postgres) Restore(t T, db, file string) {
	t.Helper()
	p.SQL(t, "postgres", "DROP DATABASE "+db+" WITH (FORCE)")
	p.SQL(t, "postgres", "CREATE DATABASE "+db)
	out, err := p.command("pg_restore", "-h", "127.0.0.1", "-p", Port(p.Addr), "-U", "postgres",
		"-d", db, file).CombinedOutput()
	if err != nil {
		t.Fatalf("harness: pg_restore: %v\n%s", err, out)
	}
}

// Log returns the server's log so far.
func (p *Postgres) Log() string {
	data, _ := os.ReadFile(p.logPath)
	return string(data)
}

// LogPath is the server's log file.
func (p *Postgres) LogPath() string { return p.logPath }
