package main

import (
	"fmt"
	"math/rand"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

func init() { register("accounts", 60, (*bench).manyAccounts) }

// manyAccounts: -accounts upstream users, each an account idling on its
// INBOX in one maddy. Measured: maddy's resident memory against the same
// maddy with no account, its CPU over a minute of idling, and push latency
// to accounts picked at random with all of them connected.
func (b *bench) manyAccounts() {
	s := b.s
	n := *accounts
	// Every idling Dovecot process watches its Maildir with an inotify
	// instance of its own; past the per-user limit (128 by default) Dovecot
	// falls back to looking every 30 s, which would be measured as
	// remote_pull's push latency.
	raiseInotifyLimit(s, n+100)
	up := harness.StartDovecot(s, harness.DovecotOptions{Extra: []string{
		// Every TLS session holds an imap-login proxy and an imap
		// process; Dovecot's default allows 100 of each.
		fmt.Sprintf("default_process_limit = %d", 2*n+100),
		fmt.Sprintf("default_client_limit = %d", 4*n+1000),
	}})
	defer up.Stop()
	user := func(i int) string { return fmt.Sprintf("bench-u%03d", i) }
	pass := func(i int) string { return fmt.Sprintf("bench-pass-%03d", i) }
	// Users added while Dovecot is stopped are read at the next start,
	// instead of one `doveadm user` wait each.
	up.Stop()
	for i := range n {
		up.AddUser(s, user(i), pass(i))
	}
	up.Restart(s)

	// The baseline: the same maddy, no account. Both have an SMTP endpoint,
	// so that local_routing is used without remote_pull.
	base := harness.StartMaddy(s, b.bin, harness.MaddyOptions{Users: map[string]string{localUser: localPass}, SMTP: true})
	time.Sleep(3 * time.Second)
	baseRSS := procStatus(base.PID(), "VmRSS")
	base.Stop(s)

	var conf strings.Builder
	fmt.Fprintf(&conf, `remote_pull {
    imap tls://localhost:%s
    rcpt_to %s
    keep yes
    poll_interval 1h
    tls_client {
        root_ca %s
    }
    deliver_to &local_routing
`, harness.Port(up.IMAPSAddr), localUser, up.CA.CAFile)
	for i := range n {
		fmt.Fprintf(&conf, "    account a%03d {\n        username %s\n        password %s\n    }\n", i, user(i), pass(i))
	}
	conf.WriteString("}\n")
	m := harness.StartMaddy(s, b.bin, harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		SMTP:  true,
		Extra: conf.String(),
	})
	defer m.Stop(s)
	start := time.Now()
	harness.Eventually(s, 5*time.Minute, func() bool { return up.IdleSessionsPrefix(s, "bench-u") == n }, "every account idling")
	connected := time.Since(start)
	time.Sleep(5 * time.Second) // let start-up garbage be collected
	rss := procStatus(m.PID(), "VmRSS")

	const window = time.Minute
	cpu0, t0 := cpuTime(m.PID()), time.Now()
	time.Sleep(window)
	cpu := float64(cpuTime(m.PID())-cpu0) / float64(time.Since(t0))

	b.figures = append(b.figures,
		figure{
			scenario: fmt.Sprintf("%d accounts idling: maddy RSS per account", n),
			value: fmt.Sprintf("%.0f KiB (%s with them, %s without)",
				float64(rss-baseRSS)/1024/float64(n), mib(rss), mib(baseRSS)),
			target: "under 1 MiB",
			note:   fmt.Sprintf("VmRSS; all %d IDLE sessions up %v after start", n, connected.Round(time.Second)),
		},
		figure{
			scenario: fmt.Sprintf("%d accounts idling: maddy CPU", n),
			value:    fmt.Sprintf("%.2f%% of a core", 100*cpu),
			target:   "under 1%",
			note:     fmt.Sprintf("user+system over %v", window),
		})

	lat := b.pushes(m, up, func(int) (string, string) {
		i := rand.Intn(n)
		return user(i), pass(i)
	}, *pushes)
	b.figures = append(b.figures, latencyFigure(fmt.Sprintf("push latency, %d accounts idling", n), lat))
}

const inotifyLimit = "/proc/sys/fs/inotify/max_user_instances"

// raiseInotifyLimit makes sure a user may hold at least want inotify
// instances, raising the limit if it can (root) and stopping otherwise.
func raiseInotifyLimit(s *harness.Script, want int) {
	b, err := os.ReadFile(inotifyLimit)
	if err != nil {
		s.Fatalf("bench: %v", err)
	}
	have, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || have >= want {
		return
	}
	if err := os.WriteFile(inotifyLimit, []byte(strconv.Itoa(want)), 0); err != nil {
		s.Fatalf("bench: Dovecot needs %d inotify instances for %d idling sessions and %s allows %d; "+
			"run `sudo sysctl fs.inotify.max_user_instances=%d` first (%v)", want, *accounts, inotifyLimit, have, want, err)
	}
	fmt.Fprintf(os.Stderr, "bench: raised fs.inotify.max_user_instances from %d to %d until the end\n", have, want)
	s.Cleanup(func() { os.WriteFile(inotifyLimit, []byte(strconv.Itoa(have)), 0) })
}
