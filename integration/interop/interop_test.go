//go:build interop

package interop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// behaviour is what docs/servers.md and docs/reference.md say remote_pull
// does with a server; the tests assert it.
type behaviour struct {
	// removal with keep no: "expunge" (UIDPLUS: UID EXPUNGE of exactly the
	// delivered messages), "flag" (no UIDPLUS, no MOVE: \Deleted only, said
	// in the log, status and check), "dele" (POP3 DELE, applied at QUIT).
	removal string
	// idle (IMAP): "push" (announced at once), "minute" (announced when the
	// server next looks, up to about a minute), "silent" (IDLE accepted,
	// nothing announced: the next poll fetches the mail).
	idle string
	// login is the command remote_pull sends to log in, per auth setting
	// ("auto", "login", "plain"; a setting not listed is not tried).
	login map[string]string
	// crlfRefused (Courier POP3): a maildir file written with CRLF line
	// endings is served with CR CR LF, which maddy refuses: the refusal is
	// recorded, the message stays upstream even with keep no, and status
	// counts it (docs/servers.md).
	crlfRefused bool
	// idleOnly: a variant of a server run for the idle check alone.
	idleOnly bool
}

type serverCase struct {
	name  string
	start func(t *testing.T) *upstream
	want  behaviour
}

var cases = []serverCase{
	{"Cyrus IMAP", func(t *testing.T) *upstream { return startCyrus(t, cyrusOptions{}) }, behaviour{
		removal: "expunge", idle: "minute",
		login: map[string]string{"auto": "AUTHENTICATE PLAIN", "plain": "AUTHENTICATE PLAIN", "login": "AUTHENTICATE LOGIN"},
	}},
	{"Cyrus IMAP with idled", func(t *testing.T) *upstream { return startCyrus(t, cyrusOptions{Idled: true}) }, behaviour{
		idle: "push", idleOnly: true,
	}},
	{"Courier IMAP", func(t *testing.T) *upstream { return startCourier(t, "imap", courierOptions{}) }, behaviour{
		removal: "expunge", idle: "minute",
		login: map[string]string{"auto": "AUTHENTICATE PLAIN", "plain": "AUTHENTICATE PLAIN", "login": "LOGIN"},
	}},
	{"Courier IMAP with FAM", func(t *testing.T) *upstream { return startCourier(t, "imap", courierOptions{FAM: true}) }, behaviour{
		idle: "push", idleOnly: true,
	}},
	{"Courier POP3", func(t *testing.T) *upstream { return startCourier(t, "pop3", courierOptions{}) }, behaviour{
		removal: "dele", crlfRefused: true,
		login: map[string]string{"auto": "USER", "login": "USER"},
	}},
	{"Mailutils imap4d", func(t *testing.T) *upstream { return startMailutils(t, "imap") }, behaviour{
		removal: "flag", idle: "silent",
		login: map[string]string{"auto": "AUTHENTICATE PLAIN", "plain": "AUTHENTICATE PLAIN", "login": "AUTHENTICATE LOGIN"},
	}},
	{"Mailutils pop3d", func(t *testing.T) *upstream { return startMailutils(t, "pop3") }, behaviour{
		removal: "dele",
		login:   map[string]string{"auto": "USER", "login": "USER"},
	}},
	{"popa3d", startPopa3d, behaviour{
		removal: "dele",
		login:   map[string]string{"auto": "USER", "login": "USER"},
	}},
}

func TestInterop(t *testing.T) {
	for _, sc := range cases {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			if sc.want.idleOnly {
				t.Run("idle", func(t *testing.T) { testIdle(t, sc) })
				return
			}
			t.Run("keep yes", func(t *testing.T) { testKeep(t, sc, true) })
			t.Run("keep no", func(t *testing.T) { testKeep(t, sc, false) })
			if sc.want.idle != "" {
				t.Run("idle", func(t *testing.T) { testIdle(t, sc) })
			}
			t.Run("login", func(t *testing.T) { testLogin(t, sc) })
			if sc.want.crlfRefused {
				t.Run("CRLF maildir file", func(t *testing.T) { testCRLFFile(t, sc) })
			}
		})
	}
}

// result logs one cell of the interoperability table (README.md).
func result(t *testing.T, sc serverCase, check, format string, args ...any) {
	t.Helper()
	if t.Failed() {
		return
	}
	t.Logf("RESULT | %s | %s | %s", sc.name, check, fmt.Sprintf(format, args...))
}

// account is one remote_pull account block.
type account struct {
	name   string // default "up"
	up     *upstream
	addr   string // default up.Addr; a tap's address instead
	caFile string // default the upstream's CA
	keep   bool
	poll   string // default 1s
	auth   string // default auto
	noTLS  bool   // neither TLS nor insecure_plaintext: what an admin gets wrong
}

func (a account) String() string {
	if a.name == "" {
		a.name = "up"
	}
	if a.addr == "" {
		a.addr = a.up.Addr
	}
	if a.caFile == "" {
		a.caFile = a.up.CA.CAFile
	}
	if a.poll == "" {
		a.poll = "1s"
	}
	keep := "no"
	if a.keep {
		keep = "yes"
	}
	_, port, _ := net.SplitHostPort(a.addr)
	var b strings.Builder
	fmt.Fprintf(&b, "    account %s {\n", a.name)
	fmt.Fprintf(&b, "        %s tcp://localhost:%s\n", a.up.Proto, port)
	fmt.Fprintf(&b, "        username %s\n        password %s\n", a.up.User, upPass)
	fmt.Fprintf(&b, "        rcpt_to %s\n        keep %s\n        poll_interval %s\n", localUser, keep, a.poll)
	switch {
	case a.noTLS:
	case !a.up.StartTLS: // on loopback only
		b.WriteString("        insecure_plaintext yes\n")
	default:
		fmt.Fprintf(&b, "        tls_client {\n            root_ca %s\n        }\n", a.caFile)
	}
	if a.auth != "" && a.auth != "auto" {
		fmt.Fprintf(&b, "        auth %s\n", a.auth)
	}
	b.WriteString("        deliver_to &local_routing\n    }\n")
	return b.String()
}

func remotePull(accts ...account) string {
	var b strings.Builder
	b.WriteString("remote_pull {\n")
	for _, a := range accts {
		b.WriteString(a.String())
	}
	b.WriteString("}\n")
	return b.String()
}

func startMaddy(t *testing.T, users map[string]string, conf string) *harness.Maddy {
	t.Helper()
	if users == nil {
		users = map[string]string{localUser: localPass}
	}
	return harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{Users: users, Extra: conf})
}

// status is `maddy remote-pull status --json` for one account.
type status struct {
	Account     string    `json:"account"`
	State       string    `json:"state"`
	LastSuccess time.Time `json:"last_success"`
	LastError   string    `json:"last_error"`
	Delivered   int       `json:"delivered"`
	Refused     int       `json:"refused"`
	// RefusedWaiting: refused messages that are still upstream.
	RefusedWaiting int    `json:"refused_waiting"`
	Note           string `json:"note"`
}

func accountStatus(t *testing.T, m *harness.Maddy, name string) status {
	t.Helper()
	out := m.CLI(t, "remote-pull", "status", "--json")
	var sts []status
	if err := json.Unmarshal([]byte(out), &sts); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	for _, st := range sts {
		if st.Account == name {
			return st
		}
	}
	return status{}
}

// waitPolls waits until n more polls of the account succeeded.
func waitPolls(t *testing.T, m *harness.Maddy, name string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		since := time.Now()
		var st status
		deadline := time.Now().Add(waitLong)
		for {
			st = accountStatus(t, m, name)
			if st.LastSuccess.After(since) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no successful poll of %s in %v: %+v\nmaddy log:\n%s", name, waitLong, st, lastLines(m.Log(), 40))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
}

// waitState waits until the account's state is state.
func waitState(t *testing.T, m *harness.Maddy, name, state string) {
	t.Helper()
	deadline := time.Now().Add(waitLong)
	for {
		st := accountStatus(t, m, name)
		if st.State == state {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("account %s is %q after %v, want %q: %+v\nmaddy log:\n%s", name, st.State, waitLong, state, st, lastLines(m.Log(), 40))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// checkOnce checks that maddy holds every wanted message exactly once, byte
// for byte as the upstream served it, under maddy's and remote_pull's trace
// fields, and nothing else.
func checkOnce(t *testing.T, up *upstream, msgs []harness.MailboxMessage, want map[string][]byte) {
	t.Helper()
	seen := map[string]int{}
	for _, m := range msgs {
		received, raw, ok := harness.Delivered(m.Raw)
		if !ok {
			t.Errorf("UID %d lacks the trace fields:\n%.300s", m.UID, m.Raw)
			continue
		}
		if !strings.HasPrefix(received, "Received: from localhost") {
			t.Errorf("UID %d: unexpected trace field %q", m.UID, received)
		}
		if up.served != nil {
			var err error
			if raw, err = up.served(raw); err != nil {
				t.Errorf("UID %d (%s): %v", m.UID, harness.Subject(m.Raw), err)
				continue
			}
		}
		s := harness.Subject(raw)
		seen[s]++
		w, ok := want[s]
		switch {
		case !ok:
			t.Errorf("unexpected message %q (%d bytes)", s, len(raw))
		case !bytes.Equal(w, raw):
			t.Errorf("%q differs from what the upstream holds: %v", s, harness.EqualReader(raw, bytes.NewReader(w)))
		}
	}
	var names []string
	for s := range want {
		names = append(names, s)
	}
	sort.Strings(names)
	for _, s := range names {
		switch n := seen[s]; {
		case n == 0:
			t.Errorf("%q lost", s)
		case n > 1:
			t.Errorf("%q delivered %d times", s, n)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

// testKeep: every message arrives once and byte for byte; later polls and a
// restart of maddy import nothing more; a message another client flagged
// \Deleted is neither fetched nor removed; upstream, keep yes leaves
// everything as it was and keep no removes what was delivered, as the
// server's capabilities allow.
func testKeep(t *testing.T, sc serverCase, keep bool) {
	up := sc.start(t)
	var c *imapclient.Client
	if up.Proto == "imap" {
		c = up.imapClient(t)
	}
	want := up.seed(t, c, corpus()...)
	var foreign []byte
	if c != nil {
		foreign = harness.Message(99, 500)
		flagLast(t, up, foreign)
	}
	m := startMaddy(t, nil, remotePull(account{up: up, keep: keep}))
	checkOnce(t, up, m.WaitMessages(t, localUser, localPass, "INBOX", len(want), waitLong), want)

	waitPolls(t, m, "up", 2)
	checkOnce(t, up, m.Mailbox(t, localUser, localPass, "INBOX"), want)
	m.Stop(t)
	m.Start(t)
	waitPolls(t, m, "up", 2)
	checkOnce(t, up, m.Mailbox(t, localUser, localPass, "INBOX"), want)
	check := "keep no"
	if keep {
		check = "keep yes"
		// check connects as a poll would and says what it would fetch:
		// nothing. maddy is stopped so that a POP3 server's maildrop
		// lock does not get in the way.
		m.Stop(t)
		out, code := m.CLIStatus(t, "remote-pull", "check", "up")
		if code != 0 || !strings.Contains(out, "logged in as "+up.User) || !strings.Contains(out, "; 0 would be fetched, ") {
			t.Fatalf("remote-pull check: exit %d\n%s", code, out)
		}
		tlsVersion := regexp.MustCompile(`TLS 1\.\d`).FindString(out)
		if up.StartTLS && tlsVersion == "" {
			t.Fatalf("check does not show the TLS version:\n%s", out)
		}
		if tlsVersion == "" {
			tlsVersion = "no TLS"
		}
		check += fmt.Sprintf(" (check: exit 0, %s, %s)", tlsVersion, strings.TrimSpace(grepLines(out, "would be fetched")))
		t.Logf("remote-pull check up:\n%s", out)
		m.Start(t)
	}

	if up.Proto == "pop3" {
		n := up.pop3(t).stat(t)
		switch {
		case keep && n != len(want):
			t.Fatalf("keep yes: the maildrop holds %d messages, want %d", n, len(want))
		case !keep && n != 0:
			t.Fatalf("keep no: the maildrop still holds %d messages", n)
		}
		result(t, sc, check, "pass: %d messages once, byte-exact; 2 more polls and a restart import nothing; maildrop holds %d", len(want), n)
		return
	}

	left := harness.ListMessages(t, c, "INBOX")
	var ours, flagged, seenFlag int
	var foreignLeft *harness.MailboxMessage
	for i, lm := range left {
		if harness.Subject(lm.Raw) == harness.Subject(foreign) {
			foreignLeft = &left[i]
			continue
		}
		ours++
		if lm.HasFlag(`\Deleted`) {
			flagged++
		}
		if lm.HasFlag(`\Seen`) {
			seenFlag++
		}
	}
	if foreignLeft == nil || !foreignLeft.HasFlag(`\Deleted`) {
		t.Fatalf("the other client's \\Deleted message was removed or changed: %+v", foreignLeft)
	}
	if seenFlag != 0 {
		t.Errorf("%d upstream messages were marked \\Seen (bodies are fetched with BODY.PEEK[])", seenFlag)
	}
	log := m.Log()
	const flagNote = `Deleted but not removed` // after "flagged \"
	switch {
	case keep:
		if ours != len(want) || flagged != 0 {
			t.Fatalf("keep yes: upstream INBOX holds %d of ours (%d flagged \\Deleted), want %d unflagged", ours, flagged, len(want))
		}
		result(t, sc, check, "pass: %d messages once, byte-exact; 2 more polls and a restart import nothing; upstream unchanged (no \\Seen); the other client's \\Deleted message left alone", len(want))
	case sc.want.removal == "expunge":
		if ours != 0 {
			t.Fatalf("keep no: %d delivered messages still upstream", ours)
		}
		if strings.Contains(log, "keep no: delivered messages are") {
			t.Errorf("keep no on a UIDPLUS server logged a removal note:\n%s", grepLines(log, "keep no"))
		}
		result(t, sc, check, "pass: %d messages once, byte-exact; removed by UID EXPUNGE; the other client's \\Deleted message still there", len(want))
	case sc.want.removal == "flag":
		if ours != len(want) || flagged != len(want) {
			t.Fatalf("keep no without UIDPLUS and MOVE: upstream holds %d of ours, %d flagged \\Deleted, want all %d flagged", ours, flagged, len(want))
		}
		if !strings.Contains(log, flagNote) {
			t.Errorf("the log does not say delivered messages are only flagged:\n%s", grepLines(log, "keep no"))
		}
		if st := accountStatus(t, m, "up"); !strings.Contains(st.Note, "keep no: delivered messages are flagged") {
			t.Errorf("status note %q does not say delivered messages are only flagged", st.Note)
		}
		out := m.CLI(t, "remote-pull", "check", "up")
		if !strings.Contains(out, "INBOX: with keep no, delivered messages are flagged \\Deleted but not removed") {
			t.Errorf("check does not say delivered messages are only flagged:\n%s", out)
		}
		result(t, sc, check, "pass: %d messages once, byte-exact; all flagged \\Deleted, none expunged (as documented: no UIDPLUS, no MOVE); log, status and check say so; the other client's message left alone", len(want))
	default:
		t.Fatalf("unknown removal %q", sc.want.removal)
	}
}

// flagLast appends msg and flags it \Deleted with STORE, as a mail client
// deletes a message, on a session of its own that ends with LOGOUT: some
// servers (Mailutils) show a flag to other sessions only once the session
// that set it leaves the mailbox. (Not with APPEND's flags: Mailutils
// imap4d ignores them.)
func flagLast(t *testing.T, up *upstream, msg []byte) {
	t.Helper()
	c := up.imapClient(t)
	harness.MustAppendIMAP(t, c, "INBOX", msg)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	last := imap.SeqSetNum(sel.NumMessages)
	if err := c.Store(last, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatalf("STORE \\Deleted: %v", err)
	}
	msgs, err := c.Fetch(last, &imap.FetchOptions{Flags: true, Envelope: true}).Collect()
	if err != nil || len(msgs) != 1 || msgs[0].Envelope == nil || msgs[0].Envelope.Subject != harness.Subject(msg) {
		t.Fatalf("the message to flag is not the last one: %v %+v", err, msgs)
	}
	deleted := false
	for _, f := range msgs[0].Flags {
		deleted = deleted || f == imap.FlagDeleted
	}
	if !deleted {
		t.Fatalf("the server did not keep \\Deleted: %v", msgs[0].Flags)
	}
	// LOGOUT, not CLOSE, which would expunge the message.
	if err := c.Logout().Wait(); err != nil {
		t.Fatal(err)
	}
}

// testIdle: with poll_interval 1h, new mail arrives through IDLE where the
// server announces it; where it announces nothing, the next poll fetches
// it.
func testIdle(t *testing.T, sc serverCase) {
	up := sc.start(t)
	c := up.imapClient(t)
	want := up.seed(t, c, harness.Message(1, 600))
	m := startMaddy(t, nil, remotePull(account{up: up, keep: true, poll: "1h"}))
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)
	waitState(t, m, "up", "idle")
	time.Sleep(time.Second) // IDLE is accepted before the server starts watching on some servers
	second := harness.Message(2, 600)
	start := time.Now()
	harness.MustAppendIMAP(t, c, "INBOX", second)
	want[harness.Subject(second)] = second

	switch sc.want.idle {
	case "push", "minute":
		limit := 10 * time.Second
		if sc.want.idle == "minute" {
			limit = 75 * time.Second // the server looks every 60 s
		}
		msgs := m.WaitMessages(t, localUser, localPass, "INBOX", 2, limit+15*time.Second)
		took := time.Since(start)
		checkOnce(t, up, msgs, want)
		if strings.Contains(m.Log(), "IDLE connection lost") {
			// A lost watch wakes a poll: the mail may have come that way.
			t.Fatalf("the IDLE connection was lost:\n%s", grepLines(m.Log(), "IDLE"))
		}
		if took > limit {
			t.Fatalf("new mail took %v through IDLE, want at most %v", took.Round(100*time.Millisecond), limit)
		}
		result(t, sc, "idle", "pass: poll_interval 1h, new mail arrived through IDLE after %.1f s", took.Seconds())
	case "silent":
		time.Sleep(20 * time.Second)
		if n := len(m.Mailbox(t, localUser, localPass, "INBOX")); n != 1 {
			t.Fatalf("%d messages in maddy: the server announced new mail during IDLE, which docs/servers.md says it does not", n)
		}
		if st := accountStatus(t, m, "up"); st.State != "idle" || strings.Contains(m.Log(), "IDLE connection lost") {
			t.Fatalf("account state %q, want idle all along:\n%s", st.State, grepLines(m.Log(), "IDLE"))
		}
		// The next poll fetches it (SIGUSR2: poll now, instead of in 1h).
		m.Signal(t, syscall.SIGUSR2)
		checkOnce(t, up, m.WaitMessages(t, localUser, localPass, "INBOX", 2, waitLong), want)
		result(t, sc, "idle", "pass (as documented): IDLE accepted, nothing announced in 20 s; the next poll fetched the mail")
	default:
		t.Fatalf("unknown idle %q", sc.want.idle)
	}
}

// testCRLFFile: a maildir file with CRLF line endings, which Courier POP3
// serves as CR CR LF, is refused by maddy; the refusal is recorded and
// logged, the message stays upstream although keep is no, status counts
// it, and later polls do not fetch it again; the other message arrives.
func testCRLFFile(t *testing.T, sc serverCase) {
	up := sc.start(t)
	good, bad := harness.Message(1, 500), harness.Message(2, 500)
	up.writeMaildrop(t, [][]byte{bytes.ReplaceAll(good, []byte("\r\n"), []byte("\n")), bad})
	// What the server serves for the CRLF file: every CR LF as CR CR LF.
	if raw := up.retr(t, 2); !bytes.Equal(raw, bytes.ReplaceAll(bad, []byte("\r\n"), []byte("\r\r\n"))) {
		t.Fatalf("the server no longer serves a CRLF file as CR CR LF (docs/servers.md): %q", raw[:min(len(raw), 80)])
	}
	m := startMaddy(t, nil, remotePull(account{up: up, keep: false}))
	want := map[string][]byte{harness.Subject(good): harness.CRLF(good)}
	// The good message and the notice about the refused one
	// (docs/reference.md, notify).
	fetched, notices := harness.SplitNotices(m.WaitMessages(t, localUser, localPass, "INBOX", 2, waitLong))
	checkOnce(t, up, fetched, want)
	waitPolls(t, m, "up", 3)
	fetched, notices = harness.SplitNotices(m.Mailbox(t, localUser, localPass, "INBOX"))
	checkOnce(t, up, fetched, want)
	if len(notices) != 1 || !strings.Contains(harness.Subject(notices[0].Raw), "messages waiting upstream") {
		t.Fatalf("want one notice about the message waiting upstream, got %d: %q", len(notices), subjects(notices))
	}
	if n := strings.Count(m.Log(), "message refused, left upstream"); n != 1 {
		t.Fatalf("%d log lines \"message refused, left upstream\", want 1 (refused once, not at every poll):\n%s", n, grepLines(m.Log(), "refused"))
	}
	st := accountStatus(t, m, "up")
	if st.Refused != 1 || st.RefusedWaiting != 1 || st.Delivered != 1 {
		t.Fatalf("status: %+v, want 1 delivered, 1 refused and waiting upstream", st)
	}
	if n := up.pop3(t).stat(t); n != 1 {
		t.Fatalf("keep no: the maildrop holds %d messages, want the refused one", n)
	}
	result(t, sc, "CRLF maildir file", "pass (as documented): served as CR CR LF, refused once (%s), left upstream with keep no; status: %d refused waiting; notice %q",
		firstMatch(grepLines(m.Log(), "message refused"), `"reason":"([^"]*)"`), st.RefusedWaiting, harness.Subject(notices[0].Raw))
}

func subjects(msgs []harness.MailboxMessage) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, harness.Subject(m.Raw))
	}
	return out
}

// testLogin: through a tap, which login command remote_pull sends for each
// auth setting, that it is the one docs/reference.md gives for the
// capabilities the server announced, that nothing but STARTTLS/STLS was
// said before TLS, and that `remote-pull check` works.
func testLogin(t *testing.T, sc serverCase) {
	up := sc.start(t)
	var c *imapclient.Client
	if up.Proto == "imap" {
		c = up.imapClient(t)
	}
	want := up.seed(t, c, harness.Message(7, 800))
	settings := make([]string, 0, len(sc.want.login))
	for s := range sc.want.login {
		settings = append(settings, s)
	}
	sort.Slice(settings, func(i, j int) bool { // auto last: check runs with it
		if (settings[i] == "auto") != (settings[j] == "auto") {
			return settings[j] == "auto"
		}
		return settings[i] < settings[j]
	})
	var cells []string
	var m *harness.Maddy
	for _, s := range settings {
		// One maddy per setting, one after the other: POP3 servers lock
		// the maildrop, and a second session would be told [IN-USE].
		tp := startTap(t, up)
		m = startMaddy(t, nil, remotePull(account{name: "up", up: up, addr: tp.Addr, caFile: tp.CA.CAFile, keep: true, auth: s}))
		checkOnce(t, up, m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong), want)
		sessions := tp.Sessions()
		if len(sessions) == 0 {
			t.Fatalf("auth %s: no connection through the tap", s)
		}
		tlsUsed, clientClear, serverClear, clientSecure, serverSecure := sessions[0].snapshot()
		client, server := clientSecure, serverSecure
		if up.StartTLS {
			if !tlsUsed {
				t.Fatalf("auth %s: no STARTTLS; before TLS the client said:\n%s", s, clientClear)
			}
			if bad := loginCommand(up.Proto, clientClear); bad != "" {
				t.Fatalf("auth %s: %q sent before TLS", s, bad)
			}
		} else {
			client, server = clientClear, serverClear
		}
		got := loginCommand(up.Proto, client)
		if got != sc.want.login[s] {
			t.Errorf("auth %s: remote_pull sent %q, want %q; client said:\n%s", s, got, sc.want.login[s], client)
		}
		if s == "auto" {
			if rule := documentedAuto(up.Proto, server); got != rule {
				t.Errorf("auth auto: remote_pull sent %q; for the capabilities announced docs/reference.md says %q:\n%s", got, rule, server)
			}
		}
		cells = append(cells, fmt.Sprintf("%s: %s", s, got))
		m.Stop(t)
	}
	if !up.StartTLS {
		// Without STLS and without insecure_plaintext, remote_pull must not
		// log in at all (docs/reference.md: a server that does not offer
		// STARTTLS/STLS never sees a password).
		tp := startTap(t, up)
		m = startMaddy(t, nil, remotePull(account{name: "up", up: up, addr: tp.Addr, keep: true, noTLS: true}))
		var st status
		harness.Eventually(t, waitLong, func() bool {
			st = accountStatus(t, m, "up")
			return st.LastError != ""
		}, "a failed poll")
		if got := len(m.Mailbox(t, localUser, localPass, "INBOX")); got != 0 {
			t.Fatalf("without TLS or insecure_plaintext, %d messages were fetched", got)
		}
		for _, sess := range tp.Sessions() {
			_, clientClear, _, _, _ := sess.snapshot()
			if cmd := loginCommand(up.Proto, clientClear); cmd != "" {
				t.Fatalf("without TLS or insecure_plaintext, remote_pull sent %s:\n%s", cmd, clientClear)
			}
		}
		cells = append(cells, fmt.Sprintf("without insecure_plaintext: no login sent, status %q: %s", st.State, st.LastError))
		m.Stop(t)
	}
	how := "STARTTLS"
	if up.Proto == "pop3" {
		how = "STLS"
	}
	if !up.StartTLS {
		how = "no TLS (the server has none): insecure_plaintext yes on loopback"
	}
	result(t, sc, "login", "pass: %s; %s", how, strings.Join(cells, "; "))
}

var (
	imapLoginCmd = regexp.MustCompile(`(?mi)^\S+ (AUTHENTICATE [A-Z0-9_-]+|LOGIN)\b`)
	pop3LoginCmd = regexp.MustCompile(`(?mi)^(AUTH [A-Z0-9_-]+|USER|APOP|PASS)\b`)
)

// loginCommand is the first login command in what a client said:
// "AUTHENTICATE PLAIN", "LOGIN", "AUTH PLAIN", "USER", "APOP"; "" if none.
func loginCommand(proto, client string) string {
	re := pop3LoginCmd
	if proto == "imap" {
		re = imapLoginCmd
	}
	m := re.FindStringSubmatch(client)
	if m == nil {
		return ""
	}
	return strings.ToUpper(m[1])
}

// documentedAuto is the login auto chooses (docs/reference.md, auth): SASL
// PLAIN where offered, else SASL LOGIN or the IMAP LOGIN command (POP3:
// USER/PASS), given what the server said after TLS.
func documentedAuto(proto, server string) string {
	if proto == "imap" {
		caps := strings.ToUpper(firstMatch(server, `(?m)CAPABILITY ([^\r\n\]]*)`))
		has := func(c string) bool {
			for _, f := range strings.Fields(caps) {
				if f == c {
					return true
				}
			}
			return false
		}
		switch {
		case has("AUTH=PLAIN"):
			return "AUTHENTICATE PLAIN"
		case has("AUTH=LOGIN"):
			return "AUTHENTICATE LOGIN"
		}
		return "LOGIN"
	}
	// POP3: the CAPA answer, up to its end line.
	capa := server
	if i := strings.Index(capa, "\r\n.\r\n"); i >= 0 {
		capa = capa[:i]
	}
	for _, line := range strings.Split(capa, "\r\n") {
		f := strings.Fields(strings.ToUpper(line))
		if len(f) > 0 && f[0] == "SASL" {
			for _, m := range f[1:] {
				if m == "PLAIN" {
					return "AUTH PLAIN"
				}
			}
		}
	}
	return "USER"
}

func firstMatch(s, re string) string {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		return ""
	}
	return m[1]
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
