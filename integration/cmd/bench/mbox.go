package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/remote-pull/remote_pull/integration/harness"
)

var (
	mboxMB     = flag.Int("mbox-mb", 1024, "size of the generated mbox in the mbox scenario, MiB")
	mboxSample = flag.Int("mbox-add-sample", 100, "messages 'maddy imap-msgs add' imports one by one in the mbox scenario")
)

func init() { register("mbox", 60, (*bench).mboxImport) }

// mboxImport: an mbox of -mbox-mb MiB (the bulk corpus' messages over and
// over, each with its own subject) imported by an 'mbox PATH' account, a
// page per poll: messages and MB per second, maddy's CPU and peak memory; then
// the same import killed (SIGKILL) halfway and started again, counting
// what maddy holds against the file; and, for comparison, 'maddy
// imap-msgs add' run once per message on a sample.
func (b *bench) mboxImport() {
	s := b.s
	dir, err := os.MkdirTemp("", "bench-mbox-")
	if err != nil {
		s.Fatalf("bench: %v", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "big.mbox")
	say := func(format string, args ...any) { fmt.Fprintf(os.Stderr, "bench: mbox: "+format+"\n", args...) }
	say("writing a %d MiB mbox", *mboxMB)
	n, total := b.writeMbox(path, int64(*mboxMB)<<20)
	say("%d messages written; importing", n)

	m := b.startMbox(path)
	cpu0 := cpuTime(m.PID())
	followLog(m).countUntil(s, "incoming message", `"more":false`, n, 2*time.Hour, "mbox import")
	delivered, wall := b.waitImport(m, 2*time.Hour)
	cpu := cpuTime(m.PID()) - cpu0
	peak := procStatus(m.PID(), "VmHWM")
	if delivered != n {
		s.Fatalf("bench: the mbox import delivered %d messages, want %d", delivered, n)
	}
	if got := inboxCount(s, m); got != n {
		s.Fatalf("bench: maddy holds %d messages, want %d", got, n)
	}
	m.Stop(s)
	say("imported in %v; again, killed halfway", wall.Round(time.Second))
	size := fmt.Sprintf("%.0f MiB", float64(total)/(1<<20))
	b.rows = append(b.rows, result{scenario: "remote_pull, mbox file (" + size + ")", msgs: n, bytes: total, wall: wall, cpu: cpu,
		note: "a page of 4,096 messages a poll, polls back to back; the sum of their durations from remote_pull's log"})
	b.figures = append(b.figures, figure{scenario: "maddy peak RSS importing a " + size + " mbox", value: mib(peak),
		target: "bounded whatever the file: bodies streamed, a page of 4,096 listing entries", note: "VmHWM over maddy's whole life"})

	// Killed halfway, started again: nothing twice, nothing missed.
	m = b.startMbox(path)
	log := followLog(m)
	before := log.countUntil(s, "incoming message", `"more":false`, n/2, 2*time.Hour, "mbox import to be killed")
	m.Kill(s)
	before += log.countUntil(s, "incoming message", "", 0, time.Minute, "mbox import killed")
	say("killed after %d messages; restarting", before)
	start := time.Now()
	m.Start(s)
	log.countUntil(s, "incoming message", `"more":false`, n-before, 2*time.Hour, "mbox import after the restart")
	got := 0
	harness.Eventually(s, 10*time.Minute, func() bool { got = inboxCount(s, m); return got >= n }, "the whole mbox after the restart")
	resume := time.Since(start)
	say("resumed in %v; 'imap-msgs add' on a sample", resume.Round(time.Second))
	time.Sleep(3 * time.Second) // a message in flight at the check would show as one more
	got = inboxCount(s, m)
	add := b.imapMsgsAdd(m, min(*mboxSample, len(b.corpus)))
	m.Stop(s)
	verdict := "nothing twice, nothing missed"
	switch {
	case got == n+1:
		verdict = "one message twice: the Commit the kill raced (docs/guarantees.md)"
	case got != n:
		verdict = fmt.Sprintf("WRONG: %d messages for %d in the file", got, n)
	}
	b.figures = append(b.figures, figure{scenario: "mbox import killed (SIGKILL) halfway, restarted",
		value: fmt.Sprintf("%d of %d in maddy; rest imported in %.1fs", got, n, resume.Seconds()), target: "each message once",
		note: fmt.Sprintf("killed after %d incoming messages; %s; the restart resumes at the page the ledger kept", before, verdict)})

	b.rows = append(b.rows, add)
}

// writeMbox writes the corpus over and over as an mboxrd file of about
// size bytes; it returns the messages written and their bytes.
func (b *bench) writeMbox(path string, size int64) (int, int64) {
	f, err := os.Create(path)
	if err != nil {
		b.s.Fatalf("bench: %v", err)
	}
	w := bufio.NewWriterSize(f, 1<<20)
	quoted := regexp.MustCompile(`(?m)^(>*From )`)
	var n int
	var total int64
	for total < size {
		base := b.corpus[n%len(b.corpus)]
		msg := []byte(strings.Replace(string(base), "Subject: ", fmt.Sprintf("Subject: mbox %d ", n), 1))
		fmt.Fprintf(w, "From bench@example.org %s\n", time.Unix(1700000000+int64(n), 0).UTC().Format(time.ANSIC))
		w.Write(quoted.ReplaceAll(msg, []byte(">$1")))
		w.WriteString("\n")
		n++
		total += int64(len(msg))
	}
	if err := w.Flush(); err != nil {
		b.s.Fatalf("bench: %v", err)
	}
	if err := f.Close(); err != nil {
		b.s.Fatalf("bench: %v", err)
	}
	return n, total
}

// startMbox starts a maddy whose one account imports path, polling hourly.
func (b *bench) startMbox(path string) *harness.Maddy {
	conf := fmt.Sprintf(`remote_pull {
    account bench {
        mbox %s
        rcpt_to %s
        poll_interval 1h
        deliver_to &local_routing
    }
}
`, path, localUser)
	return harness.StartMaddy(b.s, b.bin, harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Extra: conf,
	})
}

// inboxCount is how many messages maddy's INBOX holds (IMAP STATUS).
func inboxCount(s *harness.Script, m *harness.Maddy) int {
	c, err := m.DialIMAP(localUser, localPass)
	if err != nil {
		return -1
	}
	defer c.Close()
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil {
		return -1
	}
	return int(*st.NumMessages)
}

// imapMsgsAdd is maddy's own one-message import, 'maddy imap-msgs add',
// run once per message into m's storage: the way in without remote_pull.
func (b *bench) imapMsgsAdd(m *harness.Maddy, k int) result {
	s := b.s
	var total int64
	start := time.Now()
	for _, msg := range b.corpus[:k] {
		if out, code := m.CLIInput(s, string(msg), "imap-msgs", "add", localUser, "INBOX"); code != 0 {
			s.Fatalf("bench: imap-msgs add: exit %d: %s", code, out)
		}
		total += int64(len(msg))
	}
	wall := time.Since(start)
	return result{scenario: "maddy imap-msgs add, once per message", msgs: k, bytes: total, wall: wall,
		note: "a process per message, no flags, dates or resume; maddy running"}
}
