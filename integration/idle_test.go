package integration

import (
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// With IDLE, new mail arrives although the next poll is an hour away; after
// the upstream restarts, the watch reconnects and push works again.
func TestIMAPIdlePush(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 600))
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true,
		CAFile: up.CA.CAFile, Poll: "1h"}.String())
	r.local(t, 1)
	waitIdle(t, up, 1)

	up.Append(t, upUser, "INBOX", harness.Message(2, 600))
	r.local(t, 2)

	up.Restart(t)
	r.maddy.WaitLog(t, "IDLE connection lost", waitLong)
	waitIdle(t, up, 1)
	up.Append(t, upUser, "INBOX", harness.Message(3, 600))
	got := r.local(t, 3)
	if len(got) != 3 {
		t.Fatalf("maddy holds %d messages, want 3", len(got))
	}
}

// Every listed folder is watched on its own connection and keeps its own
// ledger state.
func TestIMAPIdleSeveralFolders(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 600))
	up.Seed(t, upUser, "Archive", harness.Message(2, 600))
	r := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), Keep: true,
		CAFile: up.CA.CAFile, Poll: "1h", Extra: "        folders INBOX Archive\n"}.String())
	r.local(t, 2)
	waitIdle(t, up, 2)
	up.Append(t, upUser, "Archive", harness.Message(3, 600))
	r.local(t, 3)
	up.Append(t, upUser, "INBOX", harness.Message(4, 600))
	if got := r.local(t, 4); len(got) != 4 {
		t.Fatalf("maddy holds %d messages, want 4", len(got))
	}
}

// waitIdle waits until n IMAP sessions of the upstream user are idling, so
// that an APPEND that follows is announced to them.
func waitIdle(t *testing.T, up *harness.Dovecot, n int) {
	t.Helper()
	harness.Eventually(t, waitLong, func() bool {
		return up.IdleSessions(t, upUser) >= n
	}, "upstream sessions in IDLE")
}
