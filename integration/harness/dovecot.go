package harness

import (
	"crypto/tls"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/template"
	"time"
)

// DovecotOptions configures StartDovecot. The zero value is a working
// upstream with TLS, STARTTLS/STLS, plain-text login allowed everywhere, the
// mechanisms PLAIN, LOGIN, CRAM-MD5 and APOP, and no delay after a failed
// login (auth_failure_delay = 0, anvil's auth penalty off).
type DovecotOptions struct {
	// Extra lines are appended verbatim to dovecot.conf, after the
	// harness's own settings, so they override them, e.g.
	// "auth_mechanisms = plain" or "ssl = no". With a line "ssl = no" the
	// harness leaves out the IMAPS and POP3S listeners (their addresses are
	// empty) and STARTTLS/STLS are not offered.
	Extra []string
	// CA signs the server certificate; nil means a new one (see NewCA).
	CA *CA
}

// Dovecot is a running Dovecot instance in a temporary directory, serving
// IMAP and POP3 for passwd-file users with Maildir mailboxes.
type Dovecot struct {
	// Loopback addresses "127.0.0.1:PORT". IMAPAddr and POP3Addr are
	// plain TCP with STARTTLS/STLS; IMAPSAddr and POP3SAddr are implicit
	// TLS (empty when TLS is off).
	IMAPAddr, IMAPSAddr, POP3Addr, POP3SAddr string
	// CA is the authority that signed the server certificate.
	CA *CA
	// Dir holds dovecot.conf, the users file, the log, run/ and state/
	// and home/USER/Maildir for every user.
	Dir string

	confPath, logPath, usersPath string
	tls                          bool
	mailUID, mailGID             int
	chown                        bool  // running as root: files go to mailUID
	fileTime                     int64 // Maildir file name timestamp, see seed.go
	seq                          atomic.Int64

	mu   sync.Mutex // guards proc and users file appends
	proc *Process
}

// dovecotBin and doveadmBin locate the programs; PATH of a non-root user
// often lacks /usr/sbin.
func dovecotBin() (string, error) { return lookBin("dovecot", "/usr/sbin/dovecot") }
func doveadmBin() (string, error) { return lookBin("doveadm", "/usr/bin/doveadm") }

func lookBin(name, fallback string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if _, err := os.Stat(fallback); err != nil {
		return "", err
	}
	return fallback, nil
}

var sslOff = regexp.MustCompile(`^\s*ssl\s*=\s*no\s*$`)

// StartDovecot starts a Dovecot instance and waits until all its listeners
// greet. It is stopped in t.Cleanup. If Dovecot is not installed the test
// fails (never skips): `make test` installs it.
func StartDovecot(t T, opts DovecotOptions) *Dovecot {
	t.Helper()
	if _, err := dovecotBin(); err != nil {
		t.Fatalf("harness: dovecot is not installed (%v); run `make test`, which installs dovecot-imapd and dovecot-pop3d", err)
	}
	if _, err := doveadmBin(); err != nil {
		t.Fatalf("harness: doveadm is not installed (%v); run `make test`, which installs dovecot-imapd and dovecot-pop3d", err)
	}

	d := &Dovecot{CA: opts.CA, Dir: t.TempDir(), tls: true, fileTime: time.Now().Unix()}
	if d.CA == nil {
		d.CA = NewCA(t)
	}
	for _, l := range opts.Extra {
		if sslOff.MatchString(l) {
			d.tls = false
		}
	}
	d.confPath = filepath.Join(d.Dir, "dovecot.conf")
	d.logPath = filepath.Join(d.Dir, "dovecot.log")
	d.usersPath = filepath.Join(d.Dir, "users")
	d.IMAPAddr, d.POP3Addr = FreePort(t), FreePort(t)
	if d.tls {
		d.IMAPSAddr, d.POP3SAddr = FreePort(t), FreePort(t)
	}

	makeTraversable(t, d.Dir)
	if err := os.WriteFile(d.usersPath, nil, 0o644); err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := os.Mkdir(filepath.Join(d.Dir, "home"), 0o755); err != nil {
		t.Fatalf("harness: %v", err)
	}
	d.writeConfig(t, opts.Extra)

	t.Cleanup(func() {
		d.Stop()
		if t.Failed() {
			t.Logf("harness: dovecot log %s (tail):\n%s", d.logPath, Tail(d.logPath, 60))
		}
	})
	d.start(t)
	return d
}

// confData is what dovecotConf is executed with.
type confData struct {
	Dir, Instance, Users    string
	TLS                     bool
	CertFile, KeyFile       string
	IMAPPort, IMAPSPort     string
	POP3Port, POP3SPort     string
	UID, GID                int
	LoginUser, InternalUser string
	InternalGroup           string
	Rootless                bool
	Extra                   []string
}

var dovecotConf = template.Must(template.New("dovecot.conf").Parse(
	`# Written by github.com/remote-pull/remote_pull/integration/harness.
protocols = imap pop3
listen = 127.0.0.1
base_dir = {{.Dir}}/run
state_dir = {{.Dir}}/state
instance_name = {{.Instance}}
log_path = /dev/stderr
info_log_path = /dev/stderr
debug_log_path = /dev/stderr
{{- if .TLS}}
ssl = yes
ssl_cert = <{{.CertFile}}
ssl_key = <{{.KeyFile}}
{{- else}}
ssl = no
{{- end}}
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5 apop
auth_cache_size = 0
auth_failure_delay = 0 # answer failed logins at once
verbose_proctitle = yes # "imap: [user ip IDLE]": IdleSessions reads it
first_valid_uid = {{.UID}}
first_valid_gid = {{.GID}}
default_login_user = {{.LoginUser}}
default_internal_user = {{.InternalUser}}
{{- if .Rootless}}
default_internal_group = {{.InternalGroup}}
{{- end}}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {{.Users}}
}
userdb {
  driver = passwd-file
  args = username_format=%u {{.Users}}
  default_fields = uid={{.UID}} gid={{.GID}} home={{.Dir}}/home/%u
}
mail_location = maildir:~/Maildir
pop3_uidl_format = %08Xu%08Xv
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = {{.IMAPPort}}
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = {{.IMAPSPort}}
    ssl = yes
  }
{{- if .Rootless}}
  chroot =
{{- end}}
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = {{.POP3Port}}
  }
  inet_listener pop3s {
    address = 127.0.0.1
    port = {{.POP3SPort}}
    ssl = yes
  }
{{- if .Rootless}}
  chroot =
{{- end}}
}
service submission-login {
  inet_listener submission {
    port = 0
  }
}
service imap-urlauth-login {
  inet_listener imap-urlauth {
    port = 0
  }
}
# No auth penalty: after a failed login Dovecot would delay the next
# ones from 127.0.0.1 by 2 to 15 s.
service anvil {
  unix_listener anvil-auth-penalty {
    mode = 0
  }
{{- if .Rootless}}
  chroot =
{{- end}}
}
# Test-specific settings (DovecotOptions.Extra):
{{range .Extra}}{{.}}
{{end}}`))

// writeConfig writes dovecot.conf and decides which uid owns the mail: the
// Debian "mail" user (8:8) when running as root (Dovecot refuses uid 0),
// else the current user with every chroot cleared.
func (d *Dovecot) writeConfig(t T, extra []string) {
	t.Helper()
	c := confData{
		Dir:       d.Dir,
		Instance:  "rp-harness-" + strconv.Itoa(os.Getpid()) + "-" + filepath.Base(filepath.Dir(d.Dir)) + "-" + filepath.Base(d.Dir),
		Users:     d.usersPath,
		TLS:       d.tls,
		CertFile:  d.CA.CertFile,
		KeyFile:   d.CA.KeyFile,
		IMAPPort:  Port(d.IMAPAddr),
		POP3Port:  Port(d.POP3Addr),
		IMAPSPort: "0",
		POP3SPort: "0",
		Extra:     extra,
	}
	if d.tls {
		c.IMAPSPort, c.POP3SPort = Port(d.IMAPSAddr), Port(d.POP3SAddr)
	}
	if os.Geteuid() == 0 {
		mail, err := user.Lookup("mail")
		if err != nil {
			t.Fatalf("harness: running as root, Dovecot needs a non-root mail owner: %v", err)
		}
		d.mailUID, _ = strconv.Atoi(mail.Uid)
		d.mailGID, _ = strconv.Atoi(mail.Gid)
		d.chown = true
		c.LoginUser, c.InternalUser = "dovenull", "dovecot"
	} else {
		me, err := user.Current()
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		d.mailUID, d.mailGID = os.Getuid(), os.Getgid()
		group, err := user.LookupGroupId(strconv.Itoa(os.Getgid()))
		if err != nil {
			t.Fatalf("harness: %v", err)
		}
		c.LoginUser, c.InternalUser, c.InternalGroup = me.Username, me.Username, group.Name
		c.Rootless = true
	}
	c.UID, c.GID = d.mailUID, d.mailGID

	f, err := os.Create(d.confPath)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	if err := dovecotConf.Execute(f, c); err != nil {
		f.Close()
		t.Fatalf("harness: dovecot.conf: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("harness: %v", err)
	}
}

// start runs the master in the foreground and waits for every greeting.
func (d *Dovecot) start(t T) {
	t.Helper()
	bin, _ := dovecotBin()
	cmd := exec.Command(bin, "-F", "-c", d.confPath)
	cmd.Dir = d.Dir
	p, err := StartProcess(cmd, d.logPath, syscall.SIGTERM)
	if err != nil {
		t.Fatalf("harness: starting dovecot: %v", err)
	}
	d.mu.Lock()
	d.proc = p
	d.mu.Unlock()

	for _, a := range []struct {
		addr, greeting string
		tls            bool
	}{
		{d.IMAPAddr, "* OK", false},
		{d.IMAPSAddr, "* OK", true},
		{d.POP3Addr, "+OK", false},
		{d.POP3SAddr, "+OK", true},
	} {
		if a.addr == "" {
			continue
		}
		var tlsCfg *tls.Config
		if a.tls {
			tlsCfg = d.CA.ClientConfig()
		}
		if err := p.WaitGreeting(a.addr, a.greeting, tlsCfg); err != nil {
			t.Fatalf("harness: dovecot on %s: %v\ndovecot log:\n%s", a.addr, err, Tail(d.logPath, 40))
		}
	}
}

// Stop stops Dovecot (SIGTERM, then SIGKILL after 10 s). Stopping a stopped
// instance does nothing.
func (d *Dovecot) Stop() {
	d.mu.Lock()
	p := d.proc
	d.proc = nil
	d.mu.Unlock()
	if p == nil {
		return
	}
	_ = p.Stop(syscall.SIGTERM, 10*time.Second)
}

// running reports whether the master process is alive.
func (d *Dovecot) running() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.proc != nil && !d.proc.Exited()
}

// Restart stops Dovecot and starts it again with the same configuration,
// ports and mail, and waits for the greetings.
func (d *Dovecot) Restart(t T) {
	t.Helper()
	d.Stop()
	d.start(t)
}

// Log returns Dovecot's log so far (master and all services).
func (d *Dovecot) Log() string {
	data, _ := os.ReadFile(d.logPath)
	return string(data)
}

// LoginCount returns how many login lines for user Dovecot has logged so far:
// its login processes write one line with "user=<name>" per connection that
// tried to authenticate, successful ("Login: user=<name>") or not
// ("Disconnected (auth failed, ...): user=<name>"), IMAP and POP3 alike.
// Lines are written asynchronously by Dovecot's log process, so a count taken
// right after a client disconnects can lag by a few milliseconds.
func (d *Dovecot) LoginCount(user string) int {
	needle := "user=<" + user + ">"
	n := 0
	for _, line := range strings.Split(d.Log(), "\n") {
		if strings.Contains(line, "-login: ") && strings.Contains(line, needle) {
			n++
		}
	}
	return n
}
