package harness

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// MaddyOptions configures StartMaddy. The local domain is example.org
// (users are e.g. "alice@example.org"), the hostname mx.example.org.
type MaddyOptions struct {
	// Users maps user name to password. Each gets credentials
	// (`creds create`) and an IMAP account (`imap-acct create`) before
	// maddy starts.
	Users map[string]string
	// SMTP adds an smtp endpoint (plain TCP) that delivers to
	// &local_routing; its address is Maddy.SMTPAddr.
	SMTP bool
	// Metrics adds an openmetrics endpoint; its address is
	// Maddy.MetricsAddr.
	Metrics bool
	// Extra is appended verbatim to the configuration: the test's
	// remote_pull blocks. It may refer to &local_routing,
	// &local_mailboxes and &local_authdb.
	Extra string
	// StorageExtra lines go into the local_mailboxes storage block (an
	// imap_filter, say).
	StorageExtra string
	// Debug starts maddy with --debug.
	Debug bool
	// SQLDriver is the database/sql driver for the credentials and
	// mailbox databases; default "sqlite3" (a cgo build; a CGO_ENABLED=0
	// build needs "sqlite").
	SQLDriver string
	// Postgres, when set, puts maddy's mailbox storage (storage.imapsql
	// local_mailboxes) in a new database on that server (driver postgres);
	// the credentials stay in SQLite. Maddy.StorageDB names the database.
	Postgres *Postgres
	// Env holds extra environment variables ("K=V") for maddy and its
	// subcommands, e.g. for {env:VAR} in Extra.
	Env []string
	// Files are written into the state directory (mode 0600) before maddy
	// starts, by name relative to it: password files, for instance.
	Files map[string]string
}

// Maddy is the custom maddy binary running one test configuration.
type Maddy struct {
	// Loopback addresses of the IMAP endpoint (plain TCP, tls off) and,
	// if enabled, the SMTP and openmetrics endpoints.
	IMAPAddr, SMTPAddr, MetricsAddr string
	// Dir holds the configuration, the logs and the state directory.
	Dir        string
	StateDir   string
	ConfigPath string
	// StorageDB is the PostgreSQL database of the mailbox storage, empty
	// on SQLite.
	StorageDB string
	// LogPath is maddy's log (--log); StderrPath gets its stdout and
	// stderr (start-up errors before logging is set up).
	LogPath, StderrPath string

	bin   string
	env   []string
	debug bool

	mu   sync.Mutex
	proc *Process
}

type maddyConf struct {
	StateDir, RuntimeDir string
	Driver               string
	StorageDriver        string
	StorageDSN           string
	IMAPAddr, SMTPAddr   string
	MetricsAddr          string
	Extra                string
	StorageExtra         string
}

var maddyConfTmpl = template.Must(template.New("maddy.conf").Parse(
	`# Written by github.com/remote-pull/remote_pull/integration/harness.
state_dir {{.StateDir}}
runtime_dir {{.RuntimeDir}}
hostname mx.example.org
tls off

$(primary_domain) = example.org
$(local_domains) = $(primary_domain)

auth.pass_table local_authdb {
    table sql_table {
        driver {{.Driver}}
        dsn credentials.db
        table_name passwords
    }
}

storage.imapsql local_mailboxes {
    driver {{.StorageDriver}}
    dsn {{.StorageDSN}}
{{- if .StorageExtra}}
    {{.StorageExtra}}
{{- end}}
}

msgpipeline local_routing {
    destination postmaster $(local_domains) {
        deliver_to &local_mailboxes
    }
    default_destination {
        reject 550 5.1.1 "User doesn't exist"
    }
}

imap tcp://{{.IMAPAddr}} {
    tls off
    auth &local_authdb
    storage &local_mailboxes
}
{{- if .SMTPAddr}}

smtp tcp://{{.SMTPAddr}} {
    deliver_to &local_routing
}
{{- end}}
{{- if .MetricsAddr}}

openmetrics tcp://{{.MetricsAddr}} { }
{{- end}}

# Test-specific configuration (MaddyOptions.Extra):
{{.Extra}}
`))

// StartMaddy writes a configuration for opts under t.TempDir(), creates
// the users with the binary's own subcommands, starts
// `bin --config CFG run --log LOG` and waits until its IMAP endpoint greets.
// maddy is stopped in t.Cleanup.
func StartMaddy(t T, bin string, opts MaddyOptions) *Maddy {
	t.Helper()
	dir := t.TempDir()
	m := &Maddy{
		Dir:        dir,
		StateDir:   filepath.Join(dir, "state"),
		ConfigPath: filepath.Join(dir, "maddy.conf"),
		LogPath:    filepath.Join(dir, "maddy.log"),
		StderrPath: filepath.Join(dir, "maddy.stderr"),
		IMAPAddr:   FreePort(t),
		bin:        bin,
		debug:      opts.Debug,
		env:        append(os.Environ(), opts.Env...),
	}
	c := maddyConf{
		StateDir:     m.StateDir,
		RuntimeDir:   filepath.Join(dir, "run"),
		Driver:       opts.SQLDriver,
		IMAPAddr:     m.IMAPAddr,
		Extra:        opts.Extra,
		StorageExtra: opts.StorageExtra,
	}
	if c.Driver == "" {
		c.Driver = "sqlite3"
	}
	c.StorageDriver, c.StorageDSN = c.Driver, "imapsql.db"
	if opts.Postgres != nil {
		m.StorageDB = opts.Postgres.CreateDB(t)
		c.StorageDriver, c.StorageDSN = "postgres", `"`+opts.Postgres.DSN(m.StorageDB)+`"`
	}
	if opts.SMTP {
		m.SMTPAddr = FreePort(t)
		c.SMTPAddr = m.SMTPAddr
	}
	if opts.Metrics {
		m.MetricsAddr = FreePort(t)
		c.MetricsAddr = m.MetricsAddr
	}
	for _, d := range []string{m.StateDir, c.RuntimeDir} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	var conf bytes.Buffer
	if err := maddyConfTmpl.Execute(&conf, c); err != nil {
		t.Fatalf("harness: maddy.conf: %v", err)
	}
	if err := os.WriteFile(m.ConfigPath, conf.Bytes(), 0o600); err != nil {
		t.Fatalf("harness: %v", err)
	}

	t.Cleanup(func() {
		m.mu.Lock()
		p := m.proc
		m.proc = nil
		m.mu.Unlock()
		if p != nil {
			_ = p.Stop(syscall.SIGTERM, 10*time.Second)
		}
		if t.Failed() {
			for _, f := range []string{m.LogPath, m.StderrPath} {
				if _, err := os.Stat(f); err == nil {
					t.Logf("harness: %s (tail):\n%s", f, Tail(f, 80))
				}
			}
		}
	})

	for name, content := range opts.Files {
		if err := os.WriteFile(filepath.Join(m.StateDir, name), []byte(content), 0o600); err != nil {
			t.Fatalf("harness: %v", err)
		}
	}
	for user, pw := range opts.Users {
		m.AddUser(t, user, pw)
	}
	m.start(t)
	return m
}

// AddUser creates credentials and an IMAP account for user, with
// `maddy --config CFG creds create --password PW USER` and
// `maddy --config CFG imap-acct create USER`. It works while maddy runs.
func (m *Maddy) AddUser(t T, user, password string) {
	t.Helper()
	m.CLI(t, "creds", "create", "--password", password, user)
	m.CLI(t, "imap-acct", "create", user)
}

// CLI runs `maddy --config CFG ARGS...` and returns its combined output; it
// fails the test on a non-zero exit or after 60 s (an unknown subcommand
// falls through to the deprecated "start the server" action, which would
// otherwise never return).
func (m *Maddy) CLI(t T, args ...string) string {
	t.Helper()
	out, code := m.CLIStatus(t, args...)
	if code != 0 {
		t.Fatalf("harness: maddy %s: exit status %d\n%s", strings.Join(args, " "), code, out)
	}
	return out
}

// CLIStatus is CLI for commands whose failure is the point: it returns
// the combined output and the exit status instead of failing the test.
func (m *Maddy) CLIStatus(t T, args ...string) (string, int) {
	t.Helper()
	return m.CLIInput(t, "", args...)
}

// CLIInput is CLIStatus with stdin, for commands that read an answer.
func (m *Maddy) CLIInput(t T, stdin string, args ...string) (string, int) {
	t.Helper()
	return m.CLIOf(t, m.bin, stdin, args...)
}

// CLIOf is CLIInput with another binary (another build of maddy) on this
// maddy's configuration, directory and environment.
func (m *Maddy) CLIOf(t T, bin, stdin string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"--config", m.ConfigPath}, args...)...)
	cmd.Env = m.env
	cmd.Dir = m.Dir
	cmd.Stdin = strings.NewReader(stdin)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("harness: maddy %s: %v\n%s", strings.Join(args, " "), err, out)
	return "", -1
}

func (m *Maddy) start(t T) {
	t.Helper()
	m.mu.Lock()
	running := m.proc != nil && !m.proc.Exited()
	m.mu.Unlock()
	if running {
		t.Fatalf("harness: maddy is already running")
	}
	// Like systemd's RuntimeDirectory, start with an empty runtime dir: a
	// killed maddy leaves its updates-pipe socket behind, and a stale one
	// makes the next imapsql start log "failed to initialize updates pipe".
	runDir := filepath.Join(m.Dir, "run")
	if err := os.RemoveAll(runDir); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := os.Mkdir(runDir, 0o700); err != nil {
		t.Fatalf("harness: %v", err)
	}
	args := []string{"--config", m.ConfigPath}
	if m.debug {
		args = append(args, "--debug")
	}
	args = append(args, "run", "--log", m.LogPath)
	cmd := exec.Command(m.bin, args...)
	cmd.Env = m.env
	cmd.Dir = m.Dir
	p, err := StartProcess(cmd, m.StderrPath, syscall.SIGKILL)
	if err != nil {
		t.Fatalf("harness: starting maddy: %v", err)
	}
	m.mu.Lock()
	m.proc = p
	m.mu.Unlock()

	if err := p.WaitGreeting(m.IMAPAddr, "* OK", nil); err != nil {
		t.Fatalf("harness: maddy IMAP on %s: %v\nlog:\n%s\nstderr:\n%s", m.IMAPAddr, err, Tail(m.LogPath, 40), Tail(m.StderrPath, 40))
	}
	for _, a := range []string{m.SMTPAddr, m.MetricsAddr} {
		if a != "" {
			if err := p.WaitAccept(a); err != nil {
				t.Fatalf("harness: maddy on %s: %v\nlog:\n%s", a, err, Tail(m.LogPath, 40))
			}
		}
	}
}

// Start starts maddy again on the same configuration, state and ports (after
// Stop or Kill) and waits for its IMAP endpoint.
func (m *Maddy) Start(t T) {
	t.Helper()
	m.start(t)
}

// Stop sends SIGTERM and waits for maddy to exit; it fails the test if
// maddy is still running after 10 s (and then kills it).
func (m *Maddy) Stop(t T) {
	t.Helper()
	p := m.take()
	if p == nil {
		return
	}
	if err := p.Stop(syscall.SIGTERM, 10*time.Second); err != nil {
		t.Fatalf("harness: maddy did not exit within 10 s of SIGTERM: %v\nlog:\n%s", err, Tail(m.LogPath, 40))
	}
}

// Kill kills maddy with SIGKILL (a crash) and waits for it to be gone.
func (m *Maddy) Kill(t T) {
	t.Helper()
	if p := m.take(); p != nil {
		p.Kill()
	}
}

// Running reports whether the maddy process is alive.
func (m *Maddy) Running() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc != nil && !m.proc.Exited()
}

func (m *Maddy) take() *Process {
	m.mu.Lock()
	defer m.mu.Unlock()
	p := m.proc
	m.proc = nil
	return p
}

// Log returns maddy's log so far followed by its stderr output (start-up
// errors that came before logging was set up).
func (m *Maddy) Log() string {
	logData, _ := os.ReadFile(m.LogPath)
	errData, _ := os.ReadFile(m.StderrPath)
	return string(logData) + string(errData)
}

// WaitLog waits until Log contains substring and fails the test after
// timeout.
func (m *Maddy) WaitLog(t T, substring string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(m.Log(), substring) {
		if time.Now().After(deadline) {
			t.Fatalf("harness: %q not in maddy's log after %v; log tail:\n%s", substring, timeout, Tail(m.LogPath, 40))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Mailbox logs in to maddy's IMAP endpoint as user and returns every
// message in folder with its flags and exact bytes, sorted by UID. The
// connection is closed before it returns.
func (m *Maddy) Mailbox(t T, user, password, folder string) []MailboxMessage {
	t.Helper()
	msgs, err := m.mailbox(user, password, folder)
	if err != nil {
		t.Fatalf("harness: maddy mailbox %s/%s: %v", user, folder, err)
	}
	return msgs
}

func (m *Maddy) mailbox(user, password, folder string) ([]MailboxMessage, error) {
	c, err := m.DialIMAP(user, password)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	msgs, err := listMessages(c, folder)
	if err != nil {
		return nil, err
	}
	_ = c.Logout().Wait()
	return msgs, nil
}

// DialIMAP logs in to maddy's IMAP endpoint as user; the caller logs out
// and closes.
func (m *Maddy) DialIMAP(user, password string) (*imapclient.Client, error) {
	c, err := imapclient.DialInsecure(m.IMAPAddr, nil)
	if err != nil {
		return nil, err
	}
	return login(c, user, password)
}

// WaitMessages polls folder through maddy's IMAP until it holds at least n
// messages and returns them all (the caller checks the exact count). It
// fails the test after timeout; timeouts guard against hangs, so make them
// generous (60 s).
func (m *Maddy) WaitMessages(t T, user, password, folder string, n int, timeout time.Duration) []MailboxMessage {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		msgs, err := m.mailbox(user, password, folder)
		if err == nil && len(msgs) >= n {
			return msgs
		}
		if time.Now().After(deadline) {
			t.Fatalf("harness: %s/%s has %d messages after %v, want %d (last error: %v); log tail:\n%s",
				user, folder, len(msgs), timeout, n, err, Tail(m.LogPath, 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// PID is the process ID of the running maddy, 0 if it is not running; the
// benchmarks read its CPU time and peak memory from /proc.
func (m *Maddy) PID() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.proc == nil || m.proc.Exited() {
		return 0
	}
	return m.proc.Pid()
}

// Signal sends sig to the running maddy (SIGUSR2 is maddy's reload).
func (m *Maddy) Signal(t T, sig syscall.Signal) {
	t.Helper()
	m.mu.Lock()
	p := m.proc
	m.mu.Unlock()
	if p == nil || p.Exited() {
		t.Fatalf("harness: maddy is not running")
	}
	if err := p.Signal(sig); err != nil {
		t.Fatalf("harness: %v", err)
	}
}
