// Command demo shows remote_pull at work with no network and nothing
// installed beyond Dovecot: it starts a throw-away Dovecot with sample mail
// in a temporary directory, starts the custom maddy with a remote_pull
// account for it, and reads the result back through maddy's own IMAP.
//
//	make demo
package main

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

const (
	upUser, upPass       = "demo-remote", "demo-upstream-password"
	localUser, localPass = "alice@example.org", "demo-local-password"
)

func main() {
	s := &harness.Script{}
	defer s.Close()

	step("Starting a throw-away Dovecot (IMAPS on loopback) with sample mail")
	up := harness.StartDovecot(s, harness.DovecotOptions{})
	up.AddUser(s, upUser, upPass)
	samples := map[string][]byte{}
	for name, raw := range harness.TrickyCorpus() {
		samples[name] = raw
		up.Seed(s, upUser, "INBOX", raw)
	}
	for i := 1; i <= 20; i++ {
		up.Seed(s, upUser, "INBOX", harness.Message(i, 4000))
	}
	fmt.Printf("   upstream %s holds %d messages, among them a 4,000-character line, 8-bit text,\n"+
		"   a message without a final newline and dot-stuffed lines\n", up.IMAPSAddr, len(samples)+20)

	step("Starting maddy (bin/maddy) with a remote_pull account for it")
	conf := fmt.Sprintf(`remote_pull {
    account demo {
        imap tls://localhost:%s
        username %s
        password_file upstream-password
        rcpt_to %s
        keep yes
        poll_interval 5m
        tls_client {
            root_ca %s
        }
        deliver_to &local_routing
    }
}
`, harness.Port(up.IMAPSAddr), upUser, localUser, up.CA.CAFile)
	fmt.Println(indent(conf))
	start := time.Now()
	m := harness.StartMaddy(s, harness.BuildMaddy(s), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Extra: conf,
		Files: map[string]string{"upstream-password": upPass + "\n"},
	})
	total := len(samples) + 20
	got := m.WaitMessages(s, localUser, localPass, "INBOX", total, time.Minute)
	fmt.Printf("   %d messages in %s's INBOX, read through maddy's IMAP, %.1fs after maddy started\n",
		len(got), localUser, time.Since(start).Seconds())

	step("Checking the bytes")
	exact := 0
	for _, msg := range got {
		_, body, _ := harness.Delivered(msg.Raw)
		for _, raw := range samples {
			if bytes.Equal(body, harness.AsDelivered(raw)) {
				exact++
			}
		}
	}
	fmt.Printf("   %d of %d tricky messages arrived byte for byte, with one Received field on top:\n", exact, len(samples))
	received, _, _ := harness.Delivered(got[0].Raw)
	fmt.Println(indent(received))
	if exact != len(samples) {
		s.Fatalf("demo: %d tricky messages changed on the way", len(samples)-exact)
	}

	step("New mail upstream while maddy runs")
	up.Append(s, upUser, "INBOX", harness.Message(99, 1500))
	t0 := time.Now()
	m.WaitMessages(s, localUser, localPass, "INBOX", total+1, time.Minute)
	fmt.Printf("   arrived %.1fs later: Dovecot announced it to remote_pull's IDLE connection\n", time.Since(t0).Seconds())

	step("remote_pull's log lines")
	for _, line := range strings.Split(m.Log(), "\n") {
		if strings.Contains(line, "remote_pull") && !strings.Contains(line, "incoming message") {
			fmt.Println("   " + line)
		}
	}
	upstream := up.IMAPClient(s, upUser, upPass)
	left := harness.ListMessages(s, upstream, "INBOX")
	upstream.Close()
	fmt.Printf("\nDone: %d messages delivered, all %d still upstream (keep yes). Everything ran in a\ntemporary directory, which is removed now.\n", total+1, len(left))
	if s.Failed() {
		os.Exit(1)
	}
}

func step(s string) { fmt.Printf("\n== %s\n", s) }

func indent(s string) string {
	return "   " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n   ")
}
