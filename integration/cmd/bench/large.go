package main

import (
	"fmt"
	"os"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

func init() { register("large", 40, (*bench).largeMessages) }

// largeMessages: 20 messages of 5 MiB, then one of 100 MiB, pushed into an
// idling account; the rate from remote_pull's poll summary, and maddy's peak
// resident memory (VmHWM) during each import against its resident memory
// when idle with the account connected.
func (b *bench) largeMessages() {
	s := b.s
	up := harness.StartDovecot(s, harness.DovecotOptions{})
	defer up.Stop()
	up.AddUser(s, upUser, upPass)
	m := b.startAccount("imap tls://localhost:"+harness.Port(up.IMAPSAddr), up, "max_message_size 200M")
	defer m.Stop(s)
	harness.Eventually(s, time.Minute, func() bool { return up.IdleSessions(s, upUser) == 1 }, "the account idling")
	time.Sleep(2 * time.Second) // let start-up garbage be collected
	idle := procStatus(m.PID(), "VmRSS")

	batches := []struct {
		n, sizeMB int
	}{{20, 5}, {1, 100}}
	polls := 0
	for _, batch := range batches {
		resetPeak(s, m.PID())
		for range batch.n {
			up.SeedReader(s, upUser, "INBOX", false, harness.Large(batch.sizeMB))
		}
		// IDLE may announce the first messages before the last is seeded:
		// the import is then more than one poll, and its time their sum.
		cpu0 := cpuTime(m.PID())
		var wall time.Duration
		for delivered := 0; delivered < batch.n; {
			polls++
			n, d := b.waitPoll(m, polls, 10*time.Minute)
			delivered += n
			wall += d
		}
		cpu := cpuTime(m.PID()) - cpu0
		peak := procStatus(m.PID(), "VmHWM")
		name := fmt.Sprintf("remote_pull, IMAP (TLS), %d × %d MiB", batch.n, batch.sizeMB)
		b.rows = append(b.rows, result{scenario: name, msgs: batch.n, bytes: int64(batch.n) * harness.LargeSize(batch.sizeMB),
			wall: wall, cpu: cpu, note: "announced by IDLE; poll durations from remote_pull's log"})
		target := "-"
		if batch.sizeMB == 100 {
			target = "idle + 40 MiB at most"
		}
		b.figures = append(b.figures, figure{
			scenario: fmt.Sprintf("maddy peak RSS importing %d × %d MiB", batch.n, batch.sizeMB),
			value:    fmt.Sprintf("%s (idle %s, +%s)", mib(peak), mib(idle), mib(peak-idle)),
			target:   target,
			note:     "VmHWM, reset before the batch; idle is VmRSS with the account idling",
		})
	}
	total := 0
	for _, batch := range batches {
		total += batch.n
	}
	m.WaitMessages(s, localUser, localPass, "INBOX", total, time.Minute)
}

// resetPeak resets the process's VmHWM to its current RSS (Linux ≥ 4.0).
func resetPeak(s *harness.Script, pid int) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		s.Fatalf("bench: resetting peak RSS: %v", err)
	}
}
