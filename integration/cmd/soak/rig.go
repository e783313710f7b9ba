package main

import (
	"crypto/tls"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/remote-pull/remote_pull/integration/faultproxy"
	"github.com/remote-pull/remote_pull/integration/harness"
)

// account is one remote_pull account of the soak: its upstream user, its
// fault proxy, its local mailbox, and what was appended and seen.
type account struct {
	name    string // remote_pull account name
	proto   string // "imap" or "pop3"
	keep    bool
	idle    bool
	upUser  string
	upPass  string
	local   string // local maddy user
	via     string // how the proxy reaches Dovecot, for the report
	addr    string // the account's address: tls:// or tcp://localhost:PROXYPORT
	numBase int    // message numbers of this account start above it
	proxy   *faultproxy.Proxy
	endings []faultproxy.Ending // what the proxy can do

	mu        sync.Mutex
	sent      []*sent
	bySubject map[string]*sent
	// The local mailbox as last read (refresh): copies by Subject, and the
	// highest UID read.
	copies  map[string]int
	lastUID uint32
	// Faults: scheduled and applied (ended sessions) by kind, the count of
	// ended sessions already looked at, and recent clean sessions (their
	// sizes and turns are where the next offsets are drawn from).
	scheduled map[faultproxy.Ending]int
	applied   map[faultproxy.Ending]int
	endedCuts int
	openCuts  int // faulted connections still open, as last logged
	seen      int
	recent    []faultproxy.Session
}

// sent is one appended message.
type sent struct {
	n       int // harness.Message number
	size    int
	subject string
	sum     [32]byte
	at      time.Duration // since the start
	uid     uint32        // upstream UID (APPENDUID), 0 if unknown
	uidv    uint32
	// uncertain: the APPEND failed, so the message may or may not be
	// upstream; it is not counted as lost if it never shows up.
	uncertain bool
}

// setup starts Dovecot, the proxies and maddy.
func (k *soak) setup() {
	s := k.s
	k.ev = &events{start: k.start}
	if os.Getenv(harness.MaddyEnv) == "" {
		// Outside make: build into the soak's own temporary directory,
		// which Close removes (harness.BuildMaddy's would stay behind).
		bin := filepath.Join(s.TempDir(), "maddy")
		fmt.Println("soak: building github.com/remote-pull/remote_pull/cmd/maddy (make soak uses bin/maddy)")
		if out, err := exec.Command("go", "build", "-o", bin, "github.com/remote-pull/remote_pull/cmd/maddy").CombinedOutput(); err != nil {
			s.Fatalf("soak: go build github.com/remote-pull/remote_pull/cmd/maddy: %v\n%s", err, out)
		}
		os.Setenv(harness.MaddyEnv, bin)
	}
	bin := harness.BuildMaddy(s)
	k.up = harness.StartDovecot(s, harness.DovecotOptions{Extra: []string{
		// The soak's own connections, IDLE, and stalled connections that
		// Dovecot keeps until maddy gives up on them.
		"mail_max_userip_connections = 100",
		// Every save, \Deleted flag and expunge is logged with its UID
		// and Subject: the upstream half of a lost message's story.
		"mail_plugins = $mail_plugins notify mail_log",
		"plugin {",
		"  mail_log_events = save delete undelete expunge flag_change",
		"  mail_log_fields = uid box msgid size subject flags",
		"}",
	}})
	cert, err := tls.LoadX509KeyPair(k.up.CA.CertFile, k.up.CA.KeyFile)
	if err != nil {
		s.Fatalf("soak: %v", err)
	}
	upTLS := k.up.CA.ClientConfig()

	k.accts = []*account{
		{name: "imap-keep", proto: "imap", keep: true, idle: true, local: "keep@example.org",
			via: "TLS-terminating proxy, implicit TLS"},
		{name: "imap-nokeep", proto: "imap", keep: false, idle: false, local: "nokeep@example.org",
			via: "transparent TCP proxy, implicit TLS"},
		{name: "pop3-nokeep", proto: "pop3", keep: false, local: "pop3@example.org",
			via: "TLS-terminating proxy, STLS"},
	}
	users := map[string]string{}
	files := map[string]string{}
	var conf strings.Builder
	conf.WriteString("remote_pull {\n")
	for i, a := range k.accts {
		a.upUser, a.upPass = "soak-"+a.name, "upstream-password-"+a.name
		a.numBase = (i + 1) * 10_000_000
		a.bySubject = map[string]*sent{}
		a.copies = map[string]int{}
		a.scheduled = map[faultproxy.Ending]int{}
		a.applied = map[faultproxy.Ending]int{}
		k.up.AddUser(s, a.upUser, a.upPass)

		var p *faultproxy.Proxy
		switch a.name {
		case "imap-keep":
			p, err = faultproxy.NewTLS(k.up.IMAPSAddr, faultproxy.ImplicitTLS, cert, upTLS)
			a.addr = "tls://localhost:" + harness.Port(p.Addr)
		case "imap-nokeep":
			p, err = faultproxy.New(k.up.IMAPSAddr)
			a.addr = "tls://localhost:" + harness.Port(p.Addr)
		case "pop3-nokeep":
			p, err = faultproxy.NewTLS(k.up.POP3Addr, faultproxy.POP3STLS, cert, upTLS)
			a.addr = "tcp://localhost:" + harness.Port(p.Addr)
		}
		if err != nil {
			s.Fatalf("soak: fault proxy for %s: %v", a.name, err)
		}
		s.Cleanup(func() { p.Close() })
		// A drip is slow (1 KB every 10 ms, about 100 kB/s: as fast as
		// mail is appended) but ends. A transfer that keeps moving never
		// times out (POP3; IMAP's watchdog is per message), and at the
		// proxy's default 3 kB/s the backlog after a stall or a kill
		// would keep an account dripping for the rest of the run.
		p.SetDrip(1024, 10*time.Millisecond)
		a.proxy = p
		for _, e := range faultproxy.Endings {
			if e == faultproxy.CloseNotify && a.via == "transparent TCP proxy, implicit TLS" {
				continue // needs a TLS-terminating proxy
			}
			a.endings = append(a.endings, e)
		}

		users[a.local] = localPass
		pwFile := "upstream-password-" + a.name
		files[pwFile] = a.upPass + "\n"
		fmt.Fprintf(&conf, "    account %s {\n", a.name)
		fmt.Fprintf(&conf, "        %s %s\n", a.proto, a.addr)
		fmt.Fprintf(&conf, "        username %s\n        password_file %s\n", a.upUser, pwFile)
		fmt.Fprintf(&conf, "        rcpt_to %s\n        keep %s\n        poll_interval 1s\n", a.local, yesNo(a.keep))
		fmt.Fprintf(&conf, "        timeout %s\n", accountTimeout)
		if a.proto == "imap" {
			fmt.Fprintf(&conf, "        idle %s\n", yesNo(a.idle))
		}
		fmt.Fprintf(&conf, "        tls_client {\n            root_ca %s\n        }\n", k.up.CA.CAFile)
		conf.WriteString("        deliver_to &local_routing\n    }\n")
	}
	conf.WriteString("}\n")
	k.ev.logf("-", "maddy configuration:\n%s", conf.String())
	k.maddy = harness.StartMaddy(s, bin, harness.MaddyOptions{
		Users: users,
		Extra: conf.String(),
		Files: files,
	})
	for _, a := range k.accts {
		idle := ""
		if a.proto == "imap" {
			idle = ", idle " + yesNo(a.idle)
		}
		fmt.Printf("soak: account %-11s %s keep %s%s, %s (%s), endings %v\n",
			a.name, strings.ToUpper(a.proto), yesNo(a.keep), idle, a.addr, a.via, a.endings)
	}
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
