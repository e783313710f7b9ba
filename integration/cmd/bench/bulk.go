package main

import (
	"fmt"
	"net/smtp"
	"regexp"
	"strconv"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

func init() { register("bulk", 10, (*bench).bulkLoopback) }

// bulkLoopback: maddy's own SMTP intake, the ceiling, then remote_pull
// importing the same corpus over IMAP and over POP3.
func (b *bench) bulkLoopback() {
	b.rows = append(b.rows, b.smtpCeiling())
	up := b.upstream(b.corpus)
	b.rows = append(b.rows,
		b.remotePull("remote_pull, IMAP (TLS), loopback", "imap tls://localhost:"+harness.Port(up.IMAPSAddr), up, len(b.corpus), b.total),
	)
	up = b.upstream(b.corpus)
	b.rows = append(b.rows,
		b.remotePull("remote_pull, POP3 (TLS), loopback", "pop3 tls://localhost:"+harness.Port(up.POP3SAddr), up, len(b.corpus), b.total),
	)
}

// upstream starts a Dovecot whose user upUser holds msgs in INBOX.
func (b *bench) upstream(msgs [][]byte) *harness.Dovecot {
	up := harness.StartDovecot(b.s, harness.DovecotOptions{})
	up.AddUser(b.s, upUser, upPass)
	up.Seed(b.s, upUser, "INBOX", msgs...)
	return up
}

var pollDone = regexp.MustCompile(`poll done.*"delivered":(\d+).*"duration":"([^"]+)"`)

// waitPoll waits until maddy's log holds k poll summaries and returns the
// k-th one's delivered count and duration.
func (b *bench) waitPoll(m *harness.Maddy, k int, timeout time.Duration) (int, time.Duration) {
	deadline := time.Now().Add(timeout)
	log := followLog(m)
	var all [][][]byte
	for {
		log.each(func(line []byte) {
			if sub := pollDone.FindSubmatch(line); sub != nil {
				all = append(all, sub)
			}
		})
		if len(all) >= k {
			delivered, _ := strconv.Atoi(string(all[k-1][1]))
			d, err := time.ParseDuration(string(all[k-1][2]))
			if err != nil {
				b.s.Fatalf("bench: poll summary %q: %v", all[k-1][0], err)
			}
			return delivered, d
		}
		if time.Now().After(deadline) {
			b.s.Fatalf("bench: %d poll summaries in maddy's log after %v, want %d", len(all), timeout, k)
		}
		// The time measured is the poll's own, from its log line: how
		// often this looks does not change it.
		time.Sleep(100 * time.Millisecond)
	}
}

// remotePull starts a maddy whose one account imports the whole mailbox in
// one poll (endpoint is the imap or pop3 directive). The time is the
// poll's own, from connect to the last message committed and recorded, as
// remote_pull logs it.
func (b *bench) remotePull(name, endpoint string, up *harness.Dovecot, n int, total int64) result {
	m := b.startAccount(endpoint, up, "")
	cpu0 := cpuTime(m.PID())
	delivered, wall := b.waitPoll(m, 1, 30*time.Minute)
	cpu := cpuTime(m.PID()) - cpu0
	if delivered != n {
		b.s.Fatalf("bench: %s delivered %d messages, want %d", name, delivered, n)
	}
	if got := m.WaitMessages(b.s, localUser, localPass, "INBOX", n, time.Minute); len(got) != n {
		b.s.Fatalf("bench: maddy holds %d messages, want %d", len(got), n)
	}
	m.Stop(b.s)
	return result{scenario: name, msgs: n, bytes: total, wall: wall, cpu: cpu, note: "poll duration from remote_pull's log"}
}

// startAccount starts a maddy with one remote_pull account "bench" that
// polls hourly (so one poll is the whole import) and keeps mail upstream;
// extra lines go into the account block.
func (b *bench) startAccount(endpoint string, up *harness.Dovecot, extra string) *harness.Maddy {
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
        %s
        deliver_to &local_routing
    }
}
`, endpoint, upUser, localUser, up.CA.CAFile, extra)
	return harness.StartMaddy(b.s, b.bin, harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Extra: conf,
		Files: map[string]string{"upstream-password": upPass + "\n"},
	})
}

// submit sends msgs to maddy's SMTP endpoint at addr on one connection,
// one transaction each, calling each (if set) after each 250 reply to DATA.
func submit(s *harness.Script, addr string, msgs [][]byte, each func()) {
	c, err := smtp.Dial(addr)
	if err != nil {
		s.Fatalf("bench: %v", err)
	}
	defer c.Close()
	if err := c.Hello("bench.example.net"); err != nil {
		s.Fatalf("bench: %v", err)
	}
	for i, msg := range msgs {
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
		if each != nil {
			each()
		}
	}
	c.Quit()
}

// smtpCeiling is maddy's own intake: the same messages submitted to its
// SMTP endpoint by a minimal client on one connection, one transaction each.
// DATA's 250 reply means committed, so the time until the last reply is the
// time maddy needed.
func (b *bench) smtpCeiling() result {
	s := b.s
	m := harness.StartMaddy(s, b.bin, harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		SMTP:  true,
	})
	cpu0 := cpuTime(m.PID())
	start := time.Now()
	submit(s, m.SMTPAddr, b.corpus, nil)
	wall := time.Since(start)
	cpu := cpuTime(m.PID()) - cpu0
	m.WaitMessages(s, localUser, localPass, "INBOX", len(b.corpus), time.Minute)
	m.Stop(s)
	return result{scenario: "maddy's own SMTP intake (ceiling), loopback", msgs: len(b.corpus), bytes: b.total,
		wall: wall, cpu: cpu, note: "one connection, one transaction per message"}
}
