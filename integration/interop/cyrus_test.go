//go:build interop

package interop

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// cyrusOptions: Idled runs Cyrus's idled, which tells idling imapd
// processes about new mail at once; without it (the default here, as in
// Debian's cyrus.conf) they look every imapidlepoll seconds (60).
type cyrusOptions struct {
	Idled bool
}

// startCyrus runs Cyrus IMAP 3.6 (Debian's cyrus-imapd, unpacked by
// setup.sh): its master process in the foreground with imapd.conf and
// cyrus.conf in a temporary directory, IMAP with STARTTLS on a loopback
// port, the user in a sasldb of its own (SASL PLAIN and LOGIN), the
// INBOX created at the first login (autocreate_quota). Everything runs as
// the mail user (cyrus_user).
func startCyrus(t *testing.T, opts cyrusOptions) *upstream {
	t.Helper()
	root := cacheRoot(t, "cyrus")
	dir := serverDir(t)
	ca := harness.NewCA(t)
	addr := harness.FreePort(t)
	bin := filepath.Join(root, "usr/lib/cyrus/bin")
	copyFile(t, filepath.Join(dir, "cert.pem"), ca.CertFile, 0o644)
	copyFile(t, filepath.Join(dir, "key.pem"), ca.KeyFile, 0o600)
	conf := filepath.Join(dir, "imapd.conf")
	idle := ""
	if opts.Idled {
		idle = "idlesocket: " + dir + "/conf/socket/idle\n"
	}
	writeFile(t, conf, fmt.Sprintf(`configdirectory: %[1]s/conf
defaultpartition: default
partition-default: %[1]s/spool
servername: localhost
cyrus_user: mail
syslog_prefix: rp-interop-cyrus
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: %[1]s/sasldb2
sasl_mech_list: PLAIN LOGIN
allowplaintext: yes
tls_server_cert: %[1]s/cert.pem
tls_server_key: %[1]s/key.pem
autocreate_quota: 0
unixhierarchysep: yes
%[2]s`, dir, idle), 0o644)
	daemons := ""
	if opts.Idled {
		daemons = fmt.Sprintf("DAEMON {\n  idled cmd=\"%s/idled -C %s\"\n}\n", bin, conf)
	}
	writeFile(t, filepath.Join(dir, "cyrus.conf"), fmt.Sprintf(`START {
  recover cmd="%[1]s/ctl_cyrusdb -C %[2]s -r"
}
SERVICES {
  imap cmd="%[1]s/imapd -C %[2]s" listen="%[3]s" prefork=0
}
EVENTS {
  checkpoint cmd="%[1]s/ctl_cyrusdb -C %[2]s -c" period=30
}
%[4]s`, bin, conf, addr, daemons), 0o644)
	// conf/log/USER turns on Cyrus's protocol telemetry for the user: every
	// session in a file there (Cyrus logs to syslog only otherwise).
	for _, d := range []string{"conf", "conf/socket", "conf/log/remote-alice", "spool"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	const user = "remote-alice"
	pw := exec.Command(filepath.Join(root, "usr/sbin/saslpasswd2"), "-f", filepath.Join(dir, "sasldb2"), "-p", "-c", "-u", "localhost", user)
	pw.Stdin = strings.NewReader(upPass)
	if out, err := pw.CombinedOutput(); err != nil {
		t.Fatalf("saslpasswd2: %v\n%s", err, out)
	}
	chownR(t, dir, mailUID, mailGID)

	cmd := exec.Command(filepath.Join(bin, "master"), "-C", conf, "-M", filepath.Join(dir, "cyrus.conf"), "-p", filepath.Join(dir, "master.pid"))
	cmd.Env = append(cmd.Environ(), "LD_LIBRARY_PATH="+filepath.Join(root, "usr/lib/x86_64-linux-gnu"))
	cmd.Dir = dir
	d := startDaemon(t, "cyrus master", cmd, filepath.Join(dir, "master.log"))
	d.waitGreeting(t, addr, "* OK")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("cyrus telemetry of the test user:\n%s", telemetry(dir))
		}
	})
	name := "Cyrus IMAP"
	if opts.Idled {
		name += " with idled"
	}
	return &upstream{
		Name: name, Proto: "imap", Addr: addr, StartTLS: true, CA: ca, User: user,
		// Cyrus logs only to syslog, which these tests do not run; the
		// telemetry files show the sessions after login.
		Log: func() string { return "(Cyrus logs to syslog only)\n" + d.log() + telemetry(dir) },
	}
}

// telemetry returns the protocol telemetry Cyrus wrote for the test user.
func telemetry(dir string) string {
	files, _ := filepath.Glob(filepath.Join(dir, "conf/log/remote-alice/*"))
	var b strings.Builder
	for _, f := range files {
		fmt.Fprintf(&b, "--- %s (tail)\n%s", filepath.Base(f), harness.Tail(f, 30))
	}
	return b.String()
}
