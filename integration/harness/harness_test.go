package harness

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// seedOrder returns TrickyCorpus names in a fixed order.
func seedOrder(corpus map[string][]byte) []string {
	names := make([]string, 0, len(corpus))
	for k := range corpus {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}

// TestDovecotSeedAndRead seeds plain and tricky messages, also into a second
// folder and as \Seen, and reads them back over IMAPS and POP3S byte for
// byte. The user is added while Dovecot runs (no reload needed).
func TestDovecotSeedAndRead(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{})
	d.AddUser(t, "bob", "secret")

	corpus := TrickyCorpus()
	names := seedOrder(corpus)
	var want [][]byte
	for i := 1; i <= 3; i++ {
		want = append(want, Message(i, 300*i))
	}
	for _, n := range names {
		want = append(want, corpus[n])
	}
	d.Seed(t, "bob", "INBOX", want...)
	seen := Message(99, 500)
	d.SeedSeen(t, "bob", "INBOX", seen)
	want = append(want, seen)
	d.Seed(t, "bob", "Archive", Message(100, 400))

	c := d.IMAPClient(t, "bob", "secret")
	got := ListMessages(t, c, "INBOX")
	if len(got) != len(want) {
		t.Fatalf("IMAP: %d messages, want %d", len(got), len(want))
	}
	for i, m := range got {
		if m.UID != uint32(i+1) {
			t.Errorf("message %d has UID %d, want seeding order", i, m.UID)
		}
		if !bytes.Equal(m.Raw, CRLF(want[i])) {
			t.Errorf("IMAP message %d differs:\ngot  %q\nwant %q", i, m.Raw, CRLF(want[i]))
		}
		if isSeen := i == len(want)-1; m.HasFlag(`\Seen`) != isSeen {
			t.Errorf("message %d flags %v, want \\Seen=%v", i, m.Flags, isSeen)
		}
	}
	arch := ListMessages(t, c, "Archive")
	if len(arch) != 1 || !bytes.Equal(arch[0].Raw, Message(100, 400)) {
		t.Errorf("Archive: %d messages %v", len(arch), arch)
	}
	// BODY.PEEK left \Seen alone.
	for i, m := range ListMessages(t, c, "INBOX") {
		if m.HasFlag(`\Seen`) != (i == len(want)-1) {
			t.Errorf("after fetching, message %d flags %v", i, m.Flags)
		}
	}

	// POP3 returns the same bytes; only a missing final line break is
	// added, because the terminating "." must start a line.
	p := dialPOP3(t, d.POP3SAddr, d.CA)
	p.login("bob", "secret")
	popped := p.retrAll()
	if len(popped) != len(want) {
		t.Fatalf("POP3: %d messages, want %d", len(popped), len(want))
	}
	for i, m := range popped {
		w := CRLF(want[i])
		if !bytes.HasSuffix(w, []byte("\n")) {
			w = append(w, "\r\n"...)
		}
		if !bytes.Equal(m, w) {
			t.Errorf("POP3 message %d differs:\ngot  %q\nwant %q", i, m, w)
		}
	}
	p.cmd("QUIT")
}

// TestDovecotSeedMany seeds 10,000 messages and checks they are all there
// in seeding order.
func TestDovecotSeedMany(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{})
	d.AddUser(t, "bulk", "pw")
	const n = 10000
	msgs := make([][]byte, n)
	for i := range msgs {
		msgs[i] = Message(i, 250)
	}
	start := time.Now()
	d.Seed(t, "bulk", "INBOX", msgs...)
	t.Logf("seeded %d messages in %v", n, time.Since(start))
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("seeding took %v", d)
	}

	c := d.IMAPClient(t, "bulk", "pw")
	got := ListMessages(t, c, "INBOX")
	if len(got) != n {
		t.Fatalf("%d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if !bytes.Equal(m.Raw, msgs[i]) {
			t.Fatalf("UID %d is not message %d: %.80q", m.UID, i, m.Raw)
		}
	}
}

// TestDovecotLarge seeds a 25 MiB message from the streaming generator and
// reads it back.
func TestDovecotLarge(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{})
	d.AddUser(t, "big", "pw")
	d.SeedReader(t, "big", "INBOX", false, Large(25))
	got := ListMessages(t, d.IMAPClient(t, "big", "pw"), "INBOX")
	if len(got) != 1 {
		t.Fatalf("%d messages", len(got))
	}
	if err := EqualReader(got[0].Raw, Large(25)); err != nil {
		t.Fatal(err)
	}
}

// TestDovecotMailboxOps covers Append (with an IDLE client notified),
// SetFlags, AddFlags and SetUIDValidity.
func TestDovecotMailboxOps(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{})
	d.AddUser(t, "carol", "pw")
	d.Seed(t, "carol", "INBOX", Message(1, 300), Message(2, 300))

	// A client in IDLE hears about a message appended through doveadm.
	exists := make(chan uint32, 10)
	opts := &imapclient.Options{
		TLSConfig: d.CA.ClientConfig(),
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages != nil {
					exists <- *data.NumMessages
				}
			},
		},
	}
	ic, err := imapclient.DialTLS(d.IMAPSAddr, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ic.Close()
	if err := ic.Login("carol", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := ic.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := ic.Idle()
	if err != nil {
		t.Fatal(err)
	}
	d.Append(t, "carol", "INBOX", Message(3, 300))
	select {
	case n := <-exists:
		if n != 3 {
			t.Errorf("EXISTS %d, want 3", n)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("no EXISTS during IDLE after Append")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}

	c := d.IMAPClient(t, "carol", "pw")
	d.SetFlags(t, "carol", "INBOX", 2, `\Deleted`)
	d.AddFlags(t, "carol", "INBOX", 3, `\Seen`, `\Flagged`)
	got := ListMessages(t, c, "INBOX")
	if len(got) != 3 {
		t.Fatalf("%d messages, want 3 (\\Deleted must not expunge)", len(got))
	}
	if !got[1].HasFlag(`\Deleted`) || got[0].HasFlag(`\Deleted`) {
		t.Errorf("flags after SetFlags: %v %v", got[0].Flags, got[1].Flags)
	}
	if !got[2].HasFlag(`\Seen`) || !got[2].HasFlag(`\Flagged`) {
		t.Errorf("flags after AddFlags: %v", got[2].Flags)
	}
	if !bytes.Equal(got[2].Raw, Message(3, 300)) {
		t.Errorf("appended message differs: %q", got[2].Raw)
	}
	d.SetFlags(t, "carol", "INBOX", 2)
	if got := ListMessages(t, c, "INBOX"); len(got[1].Flags) != 0 && !(len(got[1].Flags) == 1 && got[1].Flags[0] == `\Recent`) {
		t.Errorf("flags after SetFlags(): %v", got[1].Flags)
	}

	d.Seed(t, "carol", "Archive", Message(4, 300))
	d.SetUIDValidity(t, "carol", "Archive", 4242)
	sel, err := c.Select("Archive", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if sel.UIDValidity != 4242 || sel.NumMessages != 1 {
		t.Errorf("Archive: UIDVALIDITY %d, %d messages; want 4242, 1", sel.UIDValidity, sel.NumMessages)
	}
	// The folder is listed and subscribed.
	boxes, err := c.List("", "*", &imap.ListOptions{SelectSubscribed: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, b := range boxes {
		listed = append(listed, b.Mailbox)
	}
	if !strings.Contains(strings.Join(listed, ","), "Archive") {
		t.Errorf("subscribed folders %v lack Archive", listed)
	}
}

// TestDovecotRestartAndLoginCount counts logins (good and bad, IMAP and
// POP3) and checks that a restart keeps ports, users and mail.
func TestDovecotRestartAndLoginCount(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{})
	d.AddUser(t, "dave", "pw")
	d.Seed(t, "dave", "INBOX", Message(1, 300))
	if n := d.LoginCount("dave"); n != 0 {
		t.Fatalf("LoginCount before any login = %d", n)
	}

	ListMessages(t, d.IMAPClient(t, "dave", "pw"), "INBOX")
	bad, err := imapclient.DialTLS(d.IMAPSAddr, &imapclient.Options{TLSConfig: d.CA.ClientConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Login("dave", "wrong").Wait(); err == nil {
		t.Fatal("login with a wrong password succeeded")
	}
	bad.Close()
	p := dialPOP3(t, d.POP3SAddr, d.CA)
	p.login("dave", "pw")
	p.cmd("QUIT")
	waitCount(t, d, "dave", 3)
	if n := d.LoginCount("da"); n != 0 {
		t.Errorf("LoginCount matches a prefix: %d", n)
	}

	// A user added now logs in at once: no reload, no auth cache.
	d.AddUser(t, "eve", "pw2")
	ListMessages(t, d.IMAPClient(t, "eve", "pw2"), "INBOX")

	addrs := []string{d.IMAPAddr, d.IMAPSAddr, d.POP3Addr, d.POP3SAddr}
	d.Restart(t)
	if after := []string{d.IMAPAddr, d.IMAPSAddr, d.POP3Addr, d.POP3SAddr}; fmt.Sprint(after) != fmt.Sprint(addrs) {
		t.Errorf("addresses changed: %v → %v", addrs, after)
	}
	got := ListMessages(t, d.IMAPClient(t, "dave", "pw"), "INBOX")
	if len(got) != 1 || !bytes.Equal(got[0].Raw, Message(1, 300)) {
		t.Errorf("after restart: %d messages", len(got))
	}
	waitCount(t, d, "dave", 4)
	d.Stop()
	d.Stop() // idempotent
}

func waitCount(t *testing.T, d *Dovecot, user string, want int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for d.LoginCount(user) != want {
		if time.Now().After(deadline) {
			t.Fatalf("LoginCount(%q) = %d, want %d\n%s", user, d.LoginCount(user), want, d.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDovecotTLSOptions checks STARTTLS/STLS on the plain ports, that a
// client trusting another CA is refused, and the "ssl = no" and
// auth_mechanisms overrides.
func TestDovecotTLSOptions(t *testing.T) {
	d := StartDovecot(t, DovecotOptions{})
	d.AddUser(t, "erin", "pw")

	st, err := imapclient.DialStartTLS(d.IMAPAddr, &imapclient.Options{TLSConfig: d.CA.ClientConfig()})
	if err != nil {
		t.Fatalf("IMAP STARTTLS: %v", err)
	}
	if err := st.Login("erin", "pw").Wait(); err != nil {
		t.Fatal(err)
	}
	st.Close()
	p := dialPOP3(t, d.POP3Addr, nil)
	if capa := p.capa(); !strings.Contains(capa, "STLS") || !strings.Contains(capa, "SASL PLAIN LOGIN CRAM-MD5") {
		t.Errorf("POP3 CAPA: %q", capa)
	}

	other := NewCA(t)
	if _, err := tls.Dial("tcp", d.IMAPSAddr, other.ClientConfig()); err == nil {
		t.Error("a client trusting another CA accepted the server certificate")
	}

	plain := StartDovecot(t, DovecotOptions{Extra: []string{"ssl = no", "auth_mechanisms = plain"}, CA: d.CA})
	plain.AddUser(t, "erin", "pw")
	if plain.IMAPSAddr != "" || plain.POP3SAddr != "" {
		t.Errorf("TLS listeners with ssl = no: %q %q", plain.IMAPSAddr, plain.POP3SAddr)
	}
	// AUTH= capabilities are only announced before login.
	pre, err := imapclient.DialInsecure(plain.IMAPAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pre.Close()
	caps, err := pre.Capability().Wait()
	if err != nil {
		t.Fatal(err)
	}
	if caps.Has(imap.CapStartTLS) || !caps.Has("AUTH=PLAIN") || caps.Has("AUTH=CRAM-MD5") {
		t.Errorf("IMAP capabilities with ssl = no, plain only: %v", caps)
	}
	ListMessages(t, plain.IMAPClient(t, "erin", "pw"), "INBOX") // plain IMAP fallback
	pp := dialPOP3(t, plain.POP3Addr, nil)
	if capa := pp.capa(); strings.Contains(capa, "STLS") || strings.Contains(capa, "CRAM-MD5") {
		t.Errorf("POP3 CAPA with ssl = no, plain only: %q", capa)
	}
}
