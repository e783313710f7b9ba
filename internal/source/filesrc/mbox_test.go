package filesrc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
)

// read lists an mbox held in memory and reads every message back as
// Fetch does, from its position.
func read(t testing.TB, file []byte, v Variant) ([]source.Message, [][]byte, *mboxListing) {
	t.Helper()
	l, err := scanMbox(context.Background(), bytes.NewReader(file), v, "test", cursor{}, 1<<30)
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	var out [][]byte
	for _, m := range l.msgs {
		sp := l.where[m.UID]
		mb := &mboxMailbox{s: &mboxSession{u: &Mbox{cfg: MboxConfig{Variant: v}}}, listing: l}
		r := mb.openAt(bytes.NewReader(file), m.UID, sp)
		b, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("fetch %s at %d: %v", m.UID, sp.off, err)
		}
		if int64(len(b)) != m.Size {
			t.Fatalf("fetch %s: %d bytes, listed %d", m.UID, len(b), m.Size)
		}
		out = append(out, b)
	}
	return l.msgs, out, l
}

func TestMboxRD(t *testing.T) {
	file := "From alice@example.org Sun Dec  6 02:03:21 2026\n" +
		"Status: RO\nX-Status: AF\nX-Keywords: $Label1 Work\nSubject: one\n\n" +
		">From the start\n>>From quoted\n>>>From twice\n>Frobnicate\nbody\n\n" +
		"From bob@example.org Mon Dec  7 10:00:00 2026\n" +
		"Subject: two\nX-UID: 7\n\nlast line\n"
	msgs, got, _ := read(t, []byte(file), MboxRD)
	want := []string{
		"Subject: one\r\n\r\nFrom the start\r\n>From quoted\r\n>>From twice\r\n>Frobnicate\r\nbody\r\n",
		"Subject: two\r\n\r\nlast line\r\n",
	}
	if len(got) != 2 || string(got[0]) != want[0] || string(got[1]) != want[1] {
		t.Fatalf("got %q, want %q", got, want)
	}
	if !slices.Equal(msgs[0].Flags, []string{`\Seen`, `\Answered`, `\Flagged`, "$Label1", "Work"}) {
		t.Errorf("flags %v", msgs[0].Flags)
	}
	if msgs[1].Flags != nil {
		t.Errorf("flags of the second: %v", msgs[1].Flags)
	}
	if d := msgs[0].Date; !d.Equal(time.Date(2026, 12, 6, 2, 3, 21, 0, time.UTC)) {
		t.Errorf("date %v", d)
	}
}

func TestMboxO(t *testing.T) {
	file := "From a Sun Dec  6 02:03:21 2026\nSubject: one\n\n>From x\n>>From y\n"
	_, got, _ := read(t, []byte(file), MboxO)
	if want := "Subject: one\r\n\r\nFrom x\r\n>>From y\r\n"; len(got) != 1 || string(got[0]) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// CRLF files stay CRLF; a From line not after a blank line, and not a
// From line by its date, is body text.
func TestMboxCRLF(t *testing.T) {
	file := "From a Sun Dec  6 02:03:21 2026\r\nSubject: one\r\n\r\nHi\r\nFrom me, hello\r\nx\r\n\r\n" +
		"From b Sun Dec  6 02:03:22 2026\r\nSubject: two\r\n\r\ny\r\n"
	_, got, _ := read(t, []byte(file), MboxRD)
	want := []string{"Subject: one\r\n\r\nHi\r\nFrom me, hello\r\nx\r\n", "Subject: two\r\n\r\ny\r\n"}
	if len(got) != 2 || string(got[0]) != want[0] || string(got[1]) != want[1] {
		t.Fatalf("got %q, want %q", got, want)
	}
}

// A file that does not start with a From line, NUL bytes, a bare CR, a
// header without its end: each message is listed and reported with its
// position, never dropped or cut.
func TestMboxBroken(t *testing.T) {
	file := "Subject: no from line\n\nbody\n\n" +
		"From a Sun Dec  6 02:03:21 2026\nSubject: nul\n\na\x00b\n\n" +
		"From a Sun Dec  6 02:03:22 2026\nSubject: cr\n\na\rb\n\n" +
		"From a Sun Dec  6 02:03:23 2026\nSubject: no body\n"
	msgs, got, l := read(t, []byte(file), MboxRD)
	if len(msgs) != 4 {
		t.Fatalf("%d messages, want 4: %q", len(msgs), got)
	}
	want := []string{"at byte 0 .*does not begin with a 'From ' line", "at byte 29 .*NUL", "at byte 80 .*bare CR", "at byte 130 .*no blank line ends the header"}
	if len(l.warns) != len(want) {
		t.Fatalf("warnings %q", l.warns)
	}
	for i, w := range want {
		if !regexp.MustCompile(w).MatchString(l.warns[i]) {
			t.Errorf("warning %q does not match %q", l.warns[i], w)
		}
	}
	if string(got[1]) != "Subject: nul\r\n\r\na\x00b\r\n" || string(got[2]) != "Subject: cr\r\n\r\na\rb\r\n" {
		t.Errorf("got %q", got)
	}
}

// Takeout: labels to IMAP-style Gmail labels and flags, the From line's
// Gmail ID to GlobalID, the Takeout fields left out.
func TestTakeoutLabels(t *testing.T) {
	file := "From 1650281542658391234@xxx Tue Aug 13 04:44:16 +0000 2019\n" +
		"X-GM-THRID: 1650281542658391234\n" +
		"X-Gmail-Labels: Inbox,Important,Starred,Category Updates,\"Work, old\",\n =?UTF-8?Q?Pr=C3=BCfung?=,IMAP_$Forwarded\n" +
		"Subject: s\n\nb\n\n" +
		"From 1650281542658391235@xxx Tue Aug 13 04:44:17 +0000 2019\n" +
		"X-GM-THRID: 1\nX-Gmail-Labels: Sent,Unread,Trash\nSubject: t\n\nc\n"
	msgs, got, _ := read(t, []byte(file), MboxRD)
	if string(got[0]) != "Subject: s\r\n\r\nb\r\n" {
		t.Errorf("delivered %q", got[0])
	}
	if want := []string{`\Inbox`, `\Important`, `\Starred`, "Work, old", "Prüfung"}; !slices.Equal(msgs[0].Labels(), want) {
		t.Errorf("labels %q, want %q", msgs[0].Labels(), want)
	}
	if want := []string{`\Flagged`, "$Forwarded", `\Seen`}; !slices.Equal(msgs[0].Flags, want) {
		t.Errorf("flags %q, want %q", msgs[0].Flags, want)
	}
	if msgs[0].GlobalID() != "gm:1650281542658391234" {
		t.Errorf("GlobalID %q", msgs[0].GlobalID())
	}
	if want := []string{`\Sent`, `\Trash`}; !slices.Equal(msgs[1].Labels(), want) || hasFlag(msgs[1].Flags, `\Seen`) {
		t.Errorf("second: labels %q flags %q", msgs[1].Labels(), msgs[1].Flags)
	}
	if d := msgs[0].Date; !d.Equal(time.Date(2019, 8, 13, 4, 44, 16, 0, time.UTC)) {
		t.Errorf("date %v", d)
	}
}

// An identity is the content: a rewrite that changes only the state
// fields (new flags) or the position keeps it; the same bytes twice are
// one message.
func TestMboxIdentity(t *testing.T) {
	a := "From a Sun Dec  6 02:03:21 2026\nStatus: O\nSubject: a\n\nx\n\n"
	b := "From a Sun Dec  6 02:03:22 2026\nSubject: b\n\ny\n\n"
	a2 := "From a Sun Dec  6 02:03:21 2026\nStatus: RO\nX-Status: A\nSubject: a\n\nx\n\n"
	m1, _, _ := read(t, []byte(a+b), MboxRD)
	m2, _, _ := read(t, []byte(b+a2), MboxRD)
	if m1[0].UID != m2[1].UID || m1[1].UID != m2[0].UID {
		t.Errorf("identities changed: %v %v", uidsOfMsgs(m1), uidsOfMsgs(m2))
	}
	m3, _, l := read(t, []byte(a+b+a2), MboxRD)
	if len(m3) != 2 || len(l.warns) != 1 || !strings.Contains(l.warns[0], "imported once") {
		t.Errorf("the same message twice: %v, warnings %q", uidsOfMsgs(m3), l.warns)
	}
}

func uidsOfMsgs(msgs []source.Message) []string {
	var out []string
	for _, m := range msgs {
		out = append(out, m.UID)
	}
	return out
}

// A message read from where it was listed but changed since ends in
// errChanged, never io.EOF: nothing of it is delivered.
func TestMboxChangedUnderFetch(t *testing.T) {
	file := []byte("From a Sun Dec  6 02:03:21 2026\nSubject: a\n\nxxxx\n")
	_, _, l := read(t, file, MboxRD)
	changed := bytes.Replace(file, []byte("xxxx"), []byte("yyyy"), 1)
	mb := &mboxMailbox{s: &mboxSession{u: &Mbox{}}, listing: l}
	_, err := io.ReadAll(mb.openAt(bytes.NewReader(changed), l.msgs[0].UID, l.where[l.msgs[0].UID]))
	if err != errChanged {
		t.Fatalf("err %v, want errChanged", err)
	}
}

// The listing is kept while the file is unchanged, and read again when a
// message is appended.
// openMbox opens the file's one folder as the account does.
func openMbox(t *testing.T, u *Mbox) *mboxMailbox {
	t.Helper()
	s, err := u.Connect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(context.Background()) })
	mb, err := s.Open(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	return mb.(*mboxMailbox)
}

// listPage lists a page and, as an account that finished it, advances.
func listPage(t *testing.T, u *Mbox) ([]source.Message, bool) {
	t.Helper()
	mb := openMbox(t, u)
	msgs, err := mb.List(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	mb.Advance()
	return msgs, mb.PagesLeft()
}

// A finished file is not read again; appended mail is read from where the
// file ended; a file rewritten is read from the start.
func TestMboxAppendRelist(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mbox")
	one := "From a Sun Dec  6 02:03:21 2026\nSubject: a\n\nx\n"
	two := "\nFrom b Sun Dec  6 02:03:22 2026\nSubject: b\n\ny\n"
	if err := os.WriteFile(path, []byte(one), 0o600); err != nil {
		t.Fatal(err)
	}
	u := NewMbox(MboxConfig{Path: path})
	first, _ := listPage(t, u)
	if len(first) != 1 {
		t.Fatalf("first listing %v", first)
	}
	if again, _ := listPage(t, u); len(again) != 0 {
		t.Fatalf("unchanged file listed anew: %v", uidsOfMsgs(again))
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(two)
	f.Close()
	later, _ := listPage(t, u)
	if len(later) != 1 || later[0].UID == first[0].UID {
		t.Fatalf("after append: %v (first %v)", uidsOfMsgs(later), uidsOfMsgs(first))
	}
	// Rewritten in place, the same size: the message before the cursor
	// is not what was read there; everything is listed again.
	rewritten := strings.Replace(one+two, "Subject: b", "Subject: B", 1)
	if err := os.WriteFile(path, []byte(rewritten), 0o600); err != nil {
		t.Fatal(err)
	}
	// In the clock tick of the last read, the change would not show.
	tick := time.Now().Add(time.Second)
	if err := os.Chtimes(path, tick, tick); err != nil {
		t.Fatal(err)
	}
	all, _ := listPage(t, u)
	if len(all) != 2 || all[0].UID != first[0].UID || all[1].UID == later[0].UID {
		t.Fatalf("after a rewrite: %v", uidsOfMsgs(all))
	}
	// Replaced by another file (a new inode): listed from the start.
	if err := os.WriteFile(path+".new", []byte(one+two), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		t.Fatal(err)
	}
	if all, _ = listPage(t, u); len(all) != 2 || all[0].UID != first[0].UID || all[1].UID != later[0].UID {
		t.Fatalf("after a replacement: %v", uidsOfMsgs(all))
	}
}

// A large file is listed a page at a time: a page is listed again until
// the account advances; an empty cursor starts over; a message seen on
// an earlier page has the same identity on a later one; a cursor kept
// across a restart is checked against the file.
func TestMboxPages(t *testing.T) {
	var b strings.Builder
	for i := range 10 {
		subject := fmt.Sprint(i)
		if i == 7 {
			subject = "1" // the message of position 1 again
		}
		fmt.Fprintf(&b, "From a Sun Dec  6 02:03:21 2026\nSubject: %s\n\nbody\n\n", subject)
	}
	path := filepath.Join(t.TempDir(), "mbox")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	u := NewMbox(MboxConfig{Path: path, PageMessages: 3})

	mb := openMbox(t, u)
	p1, _ := mb.List(context.Background(), 0)
	again, _ := openMbox(t, u).List(context.Background(), 0)
	if len(p1) != 3 || !slices.Equal(uidsOfMsgs(p1), uidsOfMsgs(again)) {
		t.Fatalf("a page not advanced past is listed again: %v, then %v", uidsOfMsgs(p1), uidsOfMsgs(again))
	}
	mb.Advance()
	var pages [][]string
	var left []bool
	for range 4 {
		msgs, more := listPage(t, u)
		pages, left = append(pages, uidsOfMsgs(msgs)), append(left, more)
	}
	if !slices.Equal(left, []bool{true, true, false, false}) || len(pages[0]) != 3 || len(pages[1]) != 3 || len(pages[2]) != 1 || len(pages[3]) != 0 {
		t.Fatalf("pages %v, pages left %v", pages, left)
	}
	if pages[1][1] != p1[1].UID {
		t.Errorf("the repeated message has another identity on a later page: %s, %s", pages[1][1], p1[1].UID)
	}
	openMbox(t, u).SetCursor("")
	if msgs, _ := listPage(t, u); !slices.Equal(uidsOfMsgs(msgs), uidsOfMsgs(p1)) {
		t.Errorf("after SetCursor(\"\"): %v, want %v", uidsOfMsgs(msgs), uidsOfMsgs(p1))
	}

	// A cursor kept across a restart (a new Mbox) resumes where it was,
	// unless the file no longer holds what was read before it.
	saved := openMbox(t, u).Cursor()
	restarted := NewMbox(MboxConfig{Path: path, PageMessages: 3})
	openMbox(t, restarted).SetCursor(saved)
	if msgs, _ := listPage(t, restarted); !slices.Equal(uidsOfMsgs(msgs), pages[0]) {
		t.Errorf("resumed at %v, want the second page %v", uidsOfMsgs(msgs), pages[0])
	}
	if err := os.WriteFile(path, []byte(strings.Replace(b.String(), "Subject: 2", "Subject: two", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	tick := time.Now().Add(time.Second)
	os.Chtimes(path, tick, tick)
	restarted = NewMbox(MboxConfig{Path: path, PageMessages: 3})
	openMbox(t, restarted).SetCursor(saved)
	if msgs, _ := listPage(t, restarted); len(msgs) != 3 || msgs[0].UID != p1[0].UID || msgs[2].UID == p1[2].UID {
		t.Errorf("a kept cursor into a rewritten file: %v, want the file from its start", uidsOfMsgs(msgs))
	}
	openMbox(t, restarted).SetCursor("{not json")
	if msgs, _ := listPage(t, restarted); len(msgs) != 3 || msgs[0].UID != p1[0].UID {
		t.Errorf("a cursor that does not parse: %v, want the file from its start", uidsOfMsgs(msgs))
	}
}

// writeMboxRD writes messages as an mboxrd writer does (mutt, Python with
// the quoting made reversible): a From line, the message with every
// ^>*From line quoted once more, a blank line.
func writeMboxRD(msgs [][]byte) []byte {
	var b bytes.Buffer
	quoted := regexp.MustCompile(`(?m)^(>*From )`)
	for _, m := range msgs {
		b.WriteString("From sender@example.org Sun Dec  6 02:03:21 2026\n")
		b.Write(quoted.ReplaceAll(m, []byte(">$1")))
		if len(m) > 0 && m[len(m)-1] != '\n' {
			b.WriteByte('\n')
		}
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// FuzzMboxSplit: whatever the file, the scan never panics, the messages
// account for every byte of the file, and each reads back from its
// position as listed. For a file an mboxrd writer made of messages (LF
// endings, ending in a newline, no state fields), each comes back exactly,
// with CRLF endings.
func FuzzMboxSplit(f *testing.F) {
	f.Add([]byte("Subject: a\n\nFrom x\n>From y\n"), []byte("Subject: b\n\n\n\nFrom z\n"), 0)
	f.Add([]byte("From \n\n\n"), []byte{0, '\r', '\n', '>'}, 1)
	f.Add([]byte("From a Sun Dec  6 02:03:21 2026\nContent-Length: 7\n\nFrom x\n\nFrom b Sun Dec  6 02:03:21 2026\n"), []byte("Content-Length: 99\n\nshort\r\n"), 3)
	f.Add([]byte("Subject: x\n\n"+strings.Repeat("y", 70000)+"\r\nFrom a Sun Dec  6 02:03:21 2026\n"), []byte("a: b\n\nc\n"), 2)
	f.Fuzz(func(t *testing.T, a, b []byte, mode int) {
		// Any bytes at all: no panic, nothing lost.
		raw := append(append([]byte{}, a...), b...)
		for _, v := range []Variant{MboxRD, MboxO} {
			l, err := scanMbox(context.Background(), bytes.NewReader(raw), v, "fuzz", cursor{}, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			// In order, each where the one before ended unless a
			// repeat of an earlier one stood between (listed once).
			var total int64
			for _, m := range l.msgs {
				sp := l.where[m.UID]
				if sp.off < total || (sp.off != total && len(l.warns) == 0) {
					t.Fatalf("message %s at %d, previous ended at %d", m.UID, sp.off, total)
				}
				total = sp.off + sp.n
			}
			if l.end.off != int64(len(raw)) {
				t.Fatalf("the scan ended at %d of %d bytes", l.end.off, len(raw))
			}
			read(t, raw, v)
		}
		// Messages written by an mboxrd writer come back exactly.
		var msgs [][]byte
		for _, m := range [][]byte{a, b} {
			m = bytes.ReplaceAll(m, []byte("\r"), nil)
			m = bytes.ReplaceAll(m, []byte{0}, nil)
			if len(m) == 0 || m[len(m)-1] != '\n' {
				m = append(m, '\n')
			}
			// A state field in the header would be left out, by design.
			if h, _, _ := bytes.Cut(m, []byte("\n\n")); regexp.MustCompile(`(?im)^(status|x-status|x-keywords|x-uid|x-imapbase|x-imap|content-length|x-gmail-labels|x-gm-thrid):`).Match(h) {
				return
			}
			msgs = append(msgs, m)
		}
		_, got, _ := read(t, writeMboxRD(msgs), MboxRD)
		if len(got) != len(msgs) {
			t.Fatalf("%d messages written, %d read: %q", len(msgs), len(got), got)
		}
		for i, m := range msgs {
			if want := bytes.ReplaceAll(m, []byte("\n"), []byte("\r\n")); !bytes.Equal(got[i], want) {
				t.Fatalf("message %d: got %q, want %q", i, got[i], want)
			}
		}
	})
}

// Dovecot does not quote From lines: it writes Content-Length, which is
// trusted where the file confirms it (a blank line and a From line, or
// the end, right after the body), and ignored where it does not.
func TestMboxContentLength(t *testing.T) {
	body := "a\n\nFrom the middle Sun Dec  6 02:03:21 2026\nb\n"
	file := "From a Sun Dec  6 02:03:21 2026\nSubject: one\nContent-Length: " + itoa(len(body)) + "\n\n" + body +
		"\nFrom b Sun Dec  6 02:03:22 2026\nSubject: two\nContent-Length: 2\n\nc\n\n"
	_, got, _ := read(t, []byte(file), MboxRD)
	want := []string{"Subject: one\r\n\r\na\r\n\r\nFrom the middle Sun Dec  6 02:03:21 2026\r\nb\r\n", "Subject: two\r\n\r\nc\r\n"}
	if len(got) != 2 || string(got[0]) != want[0] || string(got[1]) != want[1] {
		t.Fatalf("got %q, want %q", got, want)
	}
	wrong := strings.Replace(file, "Content-Length: "+itoa(len(body)), "Content-Length: 3", 1)
	if _, got, _ := read(t, []byte(wrong), MboxRD); len(got) != 3 {
		t.Fatalf("a wrong Content-Length trusted: %q", got)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
