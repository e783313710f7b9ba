package integration

import (
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// startOneAndTwo starts maddy with accounts "one" and "two" (keep yes,
// polled hourly) on the same upstream mailbox, which holds one message,
// and waits until both delivered it. two is the block of account two as
// it stands in maddy.conf, for a test that removes it.
func startOneAndTwo(t *testing.T) (m *harness.Maddy, two string) {
	t.Helper()
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 500))
	addr := "tls://localhost:" + port(up.IMAPSAddr)
	one := accountConf{Name: "one", Addr: addr, Keep: true, CAFile: up.CA.CAFile, NoBlock: true, Poll: "1h"}.String()
	two = accountConf{Name: "two", Addr: addr, Keep: true, CAFile: up.CA.CAFile, NoBlock: true, Poll: "1h"}.String()
	m = harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Extra: "remote_pull {\n" + one + two + "}\n",
		Files: map[string]string{"upstream-password": upPass + "\n"},
	})
	m.WaitMessages(t, localUser, localPass, "INBOX", 2, waitLong)
	return m, two
}

// forget asks the running maddy, not the file: an account removed from
// maddy.conf but still polled (no reload yet, or a reload that failed)
// keeps its ledger; once the reload stopped it, forget works.
func TestForgetWaitsForTheRunningMaddy(t *testing.T) {
	m, two := startOneAndTwo(t)
	conf, err := os.ReadFile(m.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(m.ConfigPath, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	// Removed from the file, not reloaded: still polled, forget refused.
	write(strings.Replace(string(conf), two, "", 1))
	out, code := m.CLIStatus(t, "remote-pull", "forget", "two")
	if code == 0 || !strings.Contains(out, "the running maddy still polls it") {
		t.Fatalf("forget before the reload: exit %d\n%s", code, out)
	}
	// A reload that fails (a mistake elsewhere) keeps it running: still refused.
	write(strings.Replace(strings.Replace(string(conf), two, "", 1), "keep yes", "keep perhaps", 1))
	m.Signal(t, syscall.SIGUSR2)
	m.WaitLog(t, "the remote_pull configuration has a mistake", waitLong)
	if out, code := m.CLIStatus(t, "remote-pull", "forget", "two"); code == 0 {
		t.Fatalf("forget after a failed reload succeeded:\n%s", out)
	}
	// Reloaded: stopped, forget works; the entries of 'one' stay.
	write(strings.Replace(string(conf), two, "", 1))
	m.Signal(t, syscall.SIGUSR2)
	m.WaitLog(t, `account removed from the configuration; stopped`, waitLong)
	if out := m.CLI(t, "remote-pull", "forget", "two"); !strings.Contains(out, "forgot account two (1 message entries)") {
		t.Fatalf("forget after the reload: %s", out)
	}
}
