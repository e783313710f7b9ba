package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

func init() { register("fetchmail", 35, (*bench).fetchmailAll) }

// fetchmailAll: fetchmail importing the bulk corpus over IMAP and over POP3
// into the same kind of maddy, through its SMTP endpoint, as people run it
// today: from an upstream on loopback, then from one behind the slow link
// (maddy's SMTP endpoint stays on loopback).
func (b *bench) fetchmailAll() {
	for _, proto := range []string{"IMAP", "POP3"} {
		up := b.upstream(b.corpus)
		b.rows = append(b.rows, b.fetchmail(fmt.Sprintf("fetchmail, %s (TLS) → maddy SMTP, loopback", proto),
			proto, tlsAddr(up, proto), up, len(b.corpus), b.total))
		up.Stop()
	}
	msgs, total := b.slowCorpus()
	for _, proto := range []string{"IMAP", "POP3"} {
		up := b.upstream(msgs)
		proxy := b.slowProxy(tlsAddr(up, proto))
		b.rows = append(b.rows, b.fetchmail(fmt.Sprintf("fetchmail, %s (TLS) → maddy SMTP, +%v RTT", proto, *rtt),
			proto, proxy.Addr, up, len(msgs), total))
		proxy.Close()
		up.Stop()
	}
}

// fetchmail runs one fetchmail poll of upUser's mailbox at addr
// (127.0.0.1:PORT, implicit TLS, verified against the test CA) with
// fetchall and keep, delivering to a fresh maddy's SMTP endpoint. The time
// is fetchmail's whole run: connecting, fetching, and every message
// accepted by maddy.
func (b *bench) fetchmail(name, proto, addr string, up *harness.Dovecot, n int, total int64) result {
	s := b.s
	bin, err := exec.LookPath("fetchmail")
	if err != nil {
		s.Fatalf("bench: fetchmail is not installed (make bench installs the Debian package): %v", err)
	}
	m := harness.StartMaddy(s, b.bin, harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		SMTP:  true,
	})
	dir := s.TempDir()
	rc := filepath.Join(dir, "fetchmailrc")
	// No bounces, no syslog; the envelope recipient is the local user, as
	// in a single-drop setup; the certificate is checked like remote_pull
	// checks it.
	conf := fmt.Sprintf(`set no bouncemail
set no syslog
poll localhost with proto %s port %s timeout 120
    user "%s" there with password "%s" is "%s" here
    ssl sslcertck sslcertfile "%s"
    fetchall keep
    smtphost "%s"
    smtpname "%s"
`, proto, harness.Port(addr), upUser, upPass, localUser, up.CA.CAFile, strings.Replace(m.SMTPAddr, ":", "/", 1), localUser)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		s.Fatalf("bench: %v", err)
	}
	cmd := exec.Command(bin, "--fetchmailrc", rc, "--idfile", filepath.Join(dir, "fetchids"), "--nodetach")
	cmd.Env = append(os.Environ(), "HOME="+dir, "FETCHMAILHOME="+dir)
	logPath := filepath.Join(dir, "fetchmail.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		s.Fatalf("bench: %v", err)
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile

	cpu0 := cpuTime(m.PID())
	start := time.Now()
	err = cmd.Run()
	wall := time.Since(start)
	cpu := cpuTime(m.PID()) - cpu0
	if err != nil {
		s.Fatalf("bench: fetchmail: %v\n%s", err, harness.Tail(logPath, 20))
	}
	if got := m.WaitMessages(s, localUser, localPass, "INBOX", n, time.Minute); len(got) != n {
		s.Fatalf("bench: fetchmail left %d messages in maddy, want %d", len(got), n)
	}
	m.Stop(s)
	return result{scenario: name, msgs: n, bytes: total, wall: wall, cpu: cpu,
		note: "fetchmail " + fetchmailVersion(bin) + ", fetchall keep, wall time of one run"}
}

func fetchmailVersion(bin string) string {
	out, _ := exec.Command(bin, "--version").CombinedOutput()
	// "This is fetchmail release 6.4.37+GSS+NTLM+..."
	for _, f := range strings.Fields(string(out)) {
		if len(f) > 0 && f[0] >= '0' && f[0] <= '9' && strings.Contains(f, ".") {
			return strings.SplitN(f, "+", 2)[0]
		}
	}
	return "(version unknown)"
}
