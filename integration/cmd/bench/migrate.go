package main

import (
	"flag"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

func init() { register("migrate", 70, (*bench).migrate) }

var migrateN = flag.Int("migrate-n", 50000, "messages in the migrate scenario's mailbox")

// migrateFolders spreads the migrate corpus as a real mailbox might be.
var migrateFolders = []struct {
	name  string
	share int // of 10
}{{"INBOX", 5}, {"Archive", 3}, {"Sent", 1}, {"Work", 1}}

// migrate: a whole mailbox of -migrate-n messages in four folders, with
// sizes like real mail, imported into an empty maddy by remote_pull
// (folders *), against maddy's own SMTP intake of the same messages into
// an empty maddy; the rate over each tenth of the import shows how the
// growing mailbox slows maddy's storage down. maddy's CPU time and peak
// resident memory for each.
func (b *bench) migrate() {
	s := b.s
	n := *migrateN
	corpus := make([][]byte, n)
	for i := range corpus {
		corpus[i] = harness.Message(100000+i, mailSize(i))
	}

	// maddy's SMTP intake, one connection, one transaction per message.
	m := harness.StartMaddy(s, b.bin, harness.MaddyOptions{Users: map[string]string{localUser: localPass}, SMTP: true})
	cpu0 := cpuTime(m.PID())
	var stamps []time.Time
	submit(s, m.SMTPAddr, corpus, func() { stamps = append(stamps, time.Now()) })
	b.migrateRow("maddy's SMTP intake", stamps, cpuTime(m.PID())-cpu0, procStatus(m.PID(), "VmHWM"))
	m.Stop(s)

	// remote_pull: every folder, one poll.
	up := harness.StartDovecot(s, harness.DovecotOptions{})
	defer up.Stop()
	up.AddUser(s, upUser, upPass)
	for i, msg := range corpus {
		up.Seed(s, upUser, migrateFolder(i), msg)
	}
	m = b.startAccount("imap tls://localhost:"+harness.Port(up.IMAPSAddr), up, "folders *\n        idle no")
	cpu0 = cpuTime(m.PID())
	if delivered, _ := b.waitPoll(m, 1, 3*time.Hour); delivered != n {
		s.Fatalf("bench: migrate delivered %d messages, want %d", delivered, n)
	}
	b.migrateRow("remote_pull, IMAP (TLS), folders *", incomingStamps(m.Log()), cpuTime(m.PID())-cpu0, procStatus(m.PID(), "VmHWM"))
	m.Stop(s)
}

// mailSize: mostly a few KB, a tail of larger messages (attachments).
func mailSize(i int) int {
	switch h := (i * 7919) % 100; {
	case h < 60:
		return 2<<10 + (i*37)%(8<<10)
	case h < 90:
		return 10<<10 + (i*101)%(40<<10)
	case h < 99:
		return 50<<10 + (i*613)%(300<<10)
	}
	return 1<<20 + (i*1237)%(2<<20)
}

func migrateFolder(i int) string {
	slot := (i * 7) % 10
	for _, f := range migrateFolders {
		if slot < f.share {
			return f.name
		}
		slot -= f.share
	}
	return "INBOX"
}

var incoming = regexp.MustCompile(`(?m)^(\S+) .*incoming message`)

// incomingStamps are the times of maddy's "incoming message" lines.
func incomingStamps(log string) []time.Time {
	var out []time.Time
	for _, m := range incoming.FindAllStringSubmatch(log, -1) {
		if t, err := time.Parse(time.RFC3339Nano, m[1]); err == nil {
			out = append(out, t)
		}
	}
	return out
}

// migrateRow adds a row with the rate over each tenth of the import.
func (b *bench) migrateRow(name string, stamps []time.Time, cpu time.Duration, peak int64) {
	if len(stamps) < 20 {
		b.s.Fatalf("bench: %s: %d messages timed", name, len(stamps))
	}
	tenth := len(stamps) / 10
	var rates []string
	for k := 0; k < 10; k++ {
		first, last := k*tenth, (k+1)*tenth-1
		if k == 0 {
			first = 1 // from the first message on
		}
		d := stamps[last].Sub(stamps[first-1]).Seconds()
		rates = append(rates, fmt.Sprintf("%.0f", float64(last-first+1)/d))
	}
	wall := stamps[len(stamps)-1].Sub(stamps[0])
	b.figures = append(b.figures, figure{
		scenario: fmt.Sprintf("migrate %d messages: %s", len(stamps), name),
		value:    fmt.Sprintf("%.0f msg/s overall; by tenth: %s", float64(len(stamps)-1)/wall.Seconds(), strings.Join(rates, " ")),
		target:   "last tenth ≥ half the first; never below SMTP",
		note:     fmt.Sprintf("maddy CPU %.0fs, peak RSS %s; an empty maddy each time", cpu.Seconds(), mib(peak)),
	})
}
