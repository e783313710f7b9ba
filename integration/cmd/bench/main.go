// Command bench measures remote_pull on this machine: bulk imports over IMAP
// and POP3 from a real Dovecot into maddy, with maddy's own SMTP intake as
// the ceiling to compare with. Figures are printed as a table and written
// to a file (default out/bench.md).
//
//	make bench                       # all scenarios
//	make bench BENCHFLAGS='-n 10000' # a larger mailbox
package main

import (
	"flag"
	"fmt"
	"net/smtp"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"remote_pull/integration/harness"
)

var (
	count   = flag.Int("n", 1000, "messages in the bulk-import mailbox")
	minSize = flag.Int("min", 1<<10, "smallest message, bytes")
	maxSize = flag.Int("max", 20<<10, "largest message, bytes")
	out     = flag.String("o", "out/bench.md", "where to write the table")
)

const (
	upUser, upPass       = "bench-remote", "bench-upstream-password"
	localUser, localPass = "alice@example.org", "bench-local-password"
)

// result is one row of the table.
type result struct {
	scenario string
	msgs     int
	bytes    int64
	wall     time.Duration
	cpu      time.Duration // maddy's user+system CPU time
	note     string
}

func (r result) row() string {
	rate := float64(r.msgs) / r.wall.Seconds()
	mbps := float64(r.bytes) / (1 << 20) / r.wall.Seconds()
	cpu := "-"
	if r.cpu > 0 {
		cpu = fmt.Sprintf("%.2fs", r.cpu.Seconds())
	}
	return fmt.Sprintf("| %s | %d | %.1f | %.0f | %.2f | %s | %s |", r.scenario, r.msgs, r.wall.Seconds(), rate, mbps, cpu, r.note)
}

func main() {
	flag.Parse()
	s := &harness.Script{}
	defer s.Close()
	bin := harness.BuildMaddy(s)

	corpus, total := makeCorpus(*count)
	var rows []result
	rows = append(rows, smtpCeiling(s, bin, corpus, total))
	rows = append(rows, bulkIMAP(s, bin, corpus, total))
	rows = append(rows, bulkPOP3(s, bin, corpus, total))

	table := []string{
		fmt.Sprintf("Measured %s on %s/%s, %d CPUs, %s; corpus: %d messages of %d–%d bytes (%.1f MiB).",
			time.Now().UTC().Format("2006-01-02 15:04 MST"), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(),
			runtime.Version(), *count, *minSize, *maxSize, float64(total)/(1<<20)),
		"",
		"| scenario | messages | wall s | messages/s | MB/s | maddy CPU | note |",
		"|---|---|---|---|---|---|---|",
	}
	for _, r := range rows {
		table = append(table, r.row())
	}
	text := strings.Join(table, "\n") + "\n"
	fmt.Print("\n" + text)
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err == nil {
		if err := os.WriteFile(*out, []byte(text), 0o644); err == nil {
			fmt.Printf("\nwritten to %s\n", *out)
		}
	}
}

// makeCorpus builds the same deterministic messages for every contender.
func makeCorpus(n int) ([][]byte, int64) {
	msgs := make([][]byte, n)
	var total int64
	span := *maxSize - *minSize
	for i := range msgs {
		size := *minSize
		if span > 0 {
			size += (i * 7919) % (span + 1)
		}
		msgs[i] = harness.Message(i+1, size)
		total += int64(len(msgs[i]))
	}
	return msgs, total
}

func upstream(s *harness.Script, corpus [][]byte) *harness.Dovecot {
	up := harness.StartDovecot(s, harness.DovecotOptions{})
	up.AddUser(s, upUser, upPass)
	up.Seed(s, upUser, "INBOX", corpus...)
	return up
}

// bulkIMAP: one poll imports the whole mailbox over IMAPS. The time is the
// poll's own, from connect to the last message committed, as remote_pull
// logs it.
func bulkIMAP(s *harness.Script, bin string, corpus [][]byte, total int64) result {
	up := upstream(s, corpus)
	port := up.IMAPSAddr[strings.LastIndexByte(up.IMAPSAddr, ':')+1:]
	return bulk(s, bin, "remote_pull, IMAP (TLS), loopback", "imap tls://localhost:"+port, up, len(corpus), total)
}

// bulkPOP3: the same over POP3S, RETRs pipelined.
func bulkPOP3(s *harness.Script, bin string, corpus [][]byte, total int64) result {
	up := upstream(s, corpus)
	port := up.POP3SAddr[strings.LastIndexByte(up.POP3SAddr, ':')+1:]
	return bulk(s, bin, "remote_pull, POP3 (TLS), loopback", "pop3 tls://localhost:"+port, up, len(corpus), total)
}

var pollDone = regexp.MustCompile(`poll done.*"delivered":(\d+).*"duration":"([^"]+)"`)

func bulk(s *harness.Script, bin, name, endpoint string, up *harness.Dovecot, n int, total int64) result {
	conf := fmt.Sprintf(`remote_pull {
    account bench {
        %s
        username %s
        password_file upstream-password
        rcpt_to %s
        keep yes
        poll_interval 1h
        tls_client {
            root_ca %s
        }
        deliver_to &local_routing
    }
}
`, endpoint, upUser, localUser, up.CA.CAFile)
	m := harness.StartMaddy(s, bin, harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Extra: conf,
		Files: map[string]string{"upstream-password": upPass + "\n"},
	})
	cpu0 := cpuTime(m.PID())
	m.WaitLog(s, "poll done", 30*time.Minute)
	cpu := cpuTime(m.PID()) - cpu0
	match := pollDone.FindStringSubmatch(m.Log())
	if match == nil {
		s.Fatalf("bench: no poll summary in maddy's log")
	}
	delivered, _ := strconv.Atoi(match[1])
	wall, err := time.ParseDuration(match[2])
	if err != nil || delivered != n {
		s.Fatalf("bench: %s delivered %s messages (want %d) in %q", name, match[1], n, match[2])
	}
	if got := m.WaitMessages(s, localUser, localPass, "INBOX", n, time.Minute); len(got) != n {
		s.Fatalf("bench: maddy holds %d messages, want %d", len(got), n)
	}
	m.Stop(s)
	return result{scenario: name, msgs: n, bytes: total, wall: wall, cpu: cpu, note: "poll duration from remote_pull's log"}
}

// smtpCeiling is maddy's own intake: the same messages submitted to its
// SMTP endpoint by a minimal client on one connection, one transaction each.
// DATA's 250 reply means committed, so the time until the last reply is the
// time maddy needed.
func smtpCeiling(s *harness.Script, bin string, corpus [][]byte, total int64) result {
	m := harness.StartMaddy(s, bin, harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		SMTP:  true,
	})
	c, err := smtp.Dial(m.SMTPAddr)
	if err != nil {
		s.Fatalf("bench: %v", err)
	}
	defer c.Close()
	if err := c.Hello("bench.example.net"); err != nil {
		s.Fatalf("bench: %v", err)
	}
	cpu0 := cpuTime(m.PID())
	start := time.Now()
	for i, msg := range corpus {
		if err := c.Mail("sender@example.net"); err != nil {
			s.Fatalf("bench: MAIL %d: %v", i, err)
		}
		if err := c.Rcpt(localUser); err != nil {
			s.Fatalf("bench: RCPT %d: %v", i, err)
		}
		w, err := c.Data()
		if err != nil {
			s.Fatalf("bench: DATA %d: %v", i, err)
		}
		if _, err := w.Write(msg); err != nil {
			s.Fatalf("bench: DATA %d: %v", i, err)
		}
		if err := w.Close(); err != nil {
			s.Fatalf("bench: DATA %d: %v", i, err)
		}
	}
	wall := time.Since(start)
	cpu := cpuTime(m.PID()) - cpu0
	c.Quit()
	m.WaitMessages(s, localUser, localPass, "INBOX", len(corpus), time.Minute)
	m.Stop(s)
	return result{scenario: "maddy's own SMTP intake (ceiling), loopback", msgs: len(corpus), bytes: total,
		wall: wall, cpu: cpu, note: "one connection, one transaction per message"}
}

// cpuTime reads a process's user+system CPU time from /proc (Linux).
func cpuTime(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ is 100 on Linux
}
