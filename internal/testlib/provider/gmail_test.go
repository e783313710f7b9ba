package provider_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/testlib/provider"
)

func gmail(t *testing.T, cfg provider.Config) *provider.Server {
	cfg.Kind, cfg.User, cfg.Password, cfg.Token = provider.Gmail, user, pass, token
	return provider.Start(t, cfg)
}

// One message with three labels is in three folders and All Mail, with
// one X-GM-MSGID, seen by go-imap and by remote_pull's source alike.
func TestGmailLabelsAreFolders(t *testing.T) {
	s := gmail(t, provider.Config{TLS: true})
	body := msgText("labelled")
	id := s.Append(body, day, []string{`\Seen`}, `\Inbox`, `\Important`, "Work/Clients")
	s.Append(msgText("sent"), day, nil, `\Sent`)
	s.CreateFolder("Empty")

	c := client(t, s, nil)
	mbs, err := c.List("", "*", &imap.ListOptions{ReturnSpecialUse: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	attrs := map[string][]imap.MailboxAttr{}
	for _, mb := range mbs {
		attrs[mb.Mailbox] = mb.Attrs
		if mb.Delim != '/' {
			t.Errorf("%s: delimiter %q", mb.Mailbox, mb.Delim)
		}
	}
	for name, want := range map[string]imap.MailboxAttr{"[Gmail]/All Mail": imap.MailboxAttrAll, "[Gmail]/Sent Mail": imap.MailboxAttrSent,
		"[Gmail]/Trash": imap.MailboxAttrTrash, "[Gmail]/Spam": imap.MailboxAttrJunk, "[Gmail]/Drafts": imap.MailboxAttrDrafts,
		"[Gmail]/Starred": imap.MailboxAttrFlagged, "[Gmail]": imap.MailboxAttrNoSelect, "Work": imap.MailboxAttrHasChildren} {
		if !slices.Contains(attrs[name], want) {
			t.Errorf("LIST %s: %v, want %s", name, attrs[name], want)
		}
	}
	for _, f := range []string{"INBOX", "Work/Clients", "Empty", "[Gmail]/Important"} {
		if _, ok := attrs[f]; !ok {
			t.Errorf("LIST: no %s in %v", f, attrs)
		}
	}

	for _, f := range []string{"INBOX", "Work/Clients", "[Gmail]/Important", "[Gmail]/All Mail"} {
		if _, err := c.Select(f, nil).Wait(); err != nil {
			t.Fatal(err)
		}
		msgs, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{UID: true, GmailMsgID: true, Flags: true,
			BodySection: []*imap.FetchItemBodySection{{Peek: true}}}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) != 1 || msgs[0].GmailMsgID != id || !bytes.Equal(msgs[0].BodySection[0].Bytes, body) {
			t.Fatalf("%s: %+v, want X-GM-MSGID %d", f, msgs, id)
		}
	}
	if got := s.Downloads(); got != 4 {
		t.Errorf("Downloads %d, want 4", got)
	}
	if got := s.BytesDownloaded(); got != int64(4*len(body)) {
		t.Errorf("BytesDownloaded %d, want %d", got, 4*len(body))
	}

	// X-GM-LABELS leaves out the selected folder's own label.
	r := dialRaw(t, s)
	r.ok("LOGIN %s %s", user, pass)
	r.ok("SELECT Work/Clients")
	u := r.ok("UID FETCH 1:* (X-GM-LABELS X-GM-MSGID)")
	want := fmt.Sprintf(`* 1 FETCH (UID 1 X-GM-LABELS ("\\Important" "\\Inbox") X-GM-MSGID %d)`, id)
	if len(u) != 1 || u[0] != want {
		t.Errorf("X-GM-LABELS in Work/Clients:\n got %q\nwant %q", u, want)
	}
	r.ok(`SELECT "[Gmail]/All Mail"`)
	u = r.ok("FETCH 1 (X-GM-LABELS)")
	if len(u) != 1 || !strings.Contains(u[0], `X-GM-LABELS ("\\Important" "\\Inbox" Work/Clients)`) {
		t.Errorf("X-GM-LABELS in All Mail: %q", u)
	}

	// remote_pull lists the folders and the same ID in each.
	sess := connect(t, upstream(s, source.AuthAuto, ""))
	folders, err := sess.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(folders, "[Gmail]") || !slices.Contains(folders, "[Gmail]/All Mail") || !slices.Contains(folders, "Work/Clients") {
		t.Errorf("Folders: %q", folders)
	}
	for _, f := range []string{"INBOX", "Work/Clients", "[Gmail]/All Mail"} {
		mb, err := sess.Open(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		list, err := mb.List(context.Background(), 1)
		if err != nil {
			t.Fatal(err)
		}
		wantID := fmt.Sprintf("gm:%d", id)
		if f == "[Gmail]/All Mail" {
			if len(list) != 2 {
				t.Fatalf("All Mail: %+v", list)
			}
			list = list[:1]
		}
		if len(list) != 1 || list[0].GlobalID() != wantID || list[0].Size != int64(len(body)) || !list[0].Date.Equal(day) {
			t.Errorf("%s: %+v, want one message %s", f, list, wantID)
		}
	}
}

// Past the byte budget every command, a login included, answers
// [OVERQUOTA] until the window has room again; the fetch that crosses
// the budget completes.
func TestGmailOverQuota(t *testing.T) {
	clk := &clock{now: day}
	s := gmail(t, provider.Config{ByteBudget: 150, BudgetWindow: time.Hour, Now: clk.Now})
	body := msgText("quota") // about 130 bytes
	for range 3 {
		s.Append(body, day, nil, `\Inbox`)
	}
	up := upstream(s, source.AuthAuto, "")
	sess := connect(t, up)
	mb, err := sess.Open(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	fetch := func(uids ...string) error {
		return mb.Fetch(context.Background(), uids, func(r io.Reader) (source.Spooled, error) {
			_, err := io.Copy(io.Discard, r)
			return nop{}, err
		}, func(uid string, _ source.Spooled) error { got = append(got, uid); return nil })
	}
	if err := fetch("1", "2"); err != nil {
		t.Fatalf("the fetch crossing the budget: %v", err)
	}
	if len(got) != 2 || s.BytesDownloaded() != int64(2*len(body)) {
		t.Fatalf("delivered %v, %d bytes", got, s.BytesDownloaded())
	}
	const overquota = "[OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)"
	err = fetch("3")
	if err == nil || !strings.Contains(err.Error(), "Account exceeded command or bandwidth limits") {
		t.Fatalf("fetch past the budget: %v", err)
	}
	r := dialRaw(t, s)
	if _, tagged := r.cmd("LOGIN %s %s", user, pass); tagged != "NO "+overquota {
		t.Errorf("LOGIN past the budget: %q", tagged)
	}
	if _, err := up.Connect(context.Background()); err == nil {
		t.Error("connected past the budget")
	}

	clk.Add(time.Hour)
	r.ok("LOGIN %s %s", user, pass)
	sess = connect(t, up)
	if _, err := sess.Open(context.Background(), "INBOX"); err != nil {
		t.Errorf("after the window: %v", err)
	}

	s.SetOverQuota(clk.Now().Add(time.Minute))
	if _, tagged := r.cmd("NOOP"); tagged != "NO "+overquota {
		t.Errorf("NOOP when forced over quota: %q", tagged)
	}
	clk.Add(time.Minute)
	r.ok("NOOP")
}

// The budget's accounting for benchmarks: the bytes of each window, when
// the first body went out, the [OVERQUOTA] replies, and a budget changed
// on the way (what was sent in the window still counts).
func TestGmailBudgetAccounting(t *testing.T) {
	clk := &clock{now: day}
	s := gmail(t, provider.Config{ByteBudget: 150, BudgetWindow: time.Hour, Now: clk.Now})
	body := msgText("window") // about 130 bytes
	for range 3 {
		s.Append(body, day, nil, `\Inbox`)
	}
	if !s.FirstDownload().IsZero() {
		t.Errorf("FirstDownload %v before any", s.FirstDownload())
	}
	r := dialRaw(t, s)
	r.ok("LOGIN %s %s", user, pass)
	r.ok("SELECT INBOX")
	clk.Add(time.Minute)
	r.ok("UID FETCH 1 BODY.PEEK[HEADER]") // no body: not counted
	r.ok("UID FETCH 1 BODY.PEEK[]")
	first := clk.Now()
	clk.Add(30 * time.Minute)
	r.ok("UID FETCH 2 BODY.PEEK[]")
	if got := s.FirstDownload(); !got.Equal(first) {
		t.Errorf("FirstDownload %v, want %v", got, first)
	}
	if got, want := s.WindowBytes(first), int64(2*len(body)); got != want {
		t.Errorf("WindowBytes from the first download %d, want %d", got, want)
	}
	if got, want := s.WindowBytes(first.Add(time.Minute)), int64(len(body)); got != want {
		t.Errorf("WindowBytes from a minute later %d, want %d", got, want)
	}
	if got := s.OverQuotaReplies(); got != 0 {
		t.Errorf("OverQuotaReplies %d under the budget", got)
	}
	if _, tagged := r.cmd("NOOP"); !strings.Contains(tagged, "[OVERQUOTA]") {
		t.Fatalf("NOOP past the budget: %q", tagged)
	}
	r.cmd("NOOP")
	if got := s.OverQuotaReplies(); got != 2 {
		t.Errorf("OverQuotaReplies %d, want 2", got)
	}
	s.SetByteBudget(3*int64(len(body)) - 1)
	r.ok("UID FETCH 3 BODY.PEEK[]") // 2 bodies in the window: room again
	if _, tagged := r.cmd("NOOP"); !strings.Contains(tagged, "[OVERQUOTA]") {
		t.Errorf("NOOP past the raised budget: %q", tagged)
	}
	if got, want := s.WindowBytes(first), int64(3*len(body)); got != want {
		t.Errorf("WindowBytes of the first window %d, want %d", got, want)
	}
	if got := s.WindowBytes(first.Add(time.Hour)); got != 0 {
		t.Errorf("WindowBytes of the next window %d, want 0", got)
	}
}

type nop struct{}

func (nop) Discard() {}

// The connection past the cap is refused at login, as Gmail does.
func TestGmailConnectionCap(t *testing.T) {
	s := gmail(t, provider.Config{MaxConns: 2})
	up := upstream(s, source.AuthAuto, "")
	connect(t, up)
	c2 := connect(t, up)
	_, err := up.Connect(context.Background())
	var busy *source.AuthError
	if err == nil || !strings.Contains(err.Error(), "Too many simultaneous connections") {
		t.Fatalf("third connection: %v", err)
	}
	_ = errors.As(err, &busy) // [ALERT] is no RFC 5530 code: remote_pull sees an auth error
	if got := s.PeakConns(); got != 3 {
		t.Errorf("PeakConns %d, want 3", got)
	}
	c2.Close(context.Background())
	deadline := time.Now().Add(2 * time.Second)
	for s.Conns() > 1 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	connect(t, up)
	if got := s.Conns(); got != 2 {
		t.Errorf("Conns %d, want 2", got)
	}
}

// IDLE reports a message that enters the selected folder.
func TestGmailIdlePush(t *testing.T) {
	s := gmail(t, provider.Config{})
	id := s.Append(msgText("old"), day, nil, "Work")
	exists := make(chan uint32, 4)
	c := client(t, s, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				exists <- *d.NumMessages
			}
		}}})
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}
	s.AddLabel(id, `\Inbox`)
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("EXISTS %d, want 1", n)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no EXISTS while idling")
	}
	s.Append(msgText("new"), day, nil, `\Inbox`)
	select {
	case n := <-exists:
		if n != 2 {
			t.Errorf("EXISTS %d, want 2", n)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no EXISTS for Append")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}
}

// Expunging in a label folder takes the label off (the message stays in
// All Mail); in All Mail it deletes the message. MOVE moves labels.
func TestGmailExpungeRemovesLabel(t *testing.T) {
	s := gmail(t, provider.Config{})
	id := s.Append(msgText("work"), day, nil, `\Inbox`, "Work")
	sess := connect(t, upstream(s, source.AuthAuto, ""))
	mb, err := sess.Open(context.Background(), "Work")
	if err != nil {
		t.Fatal(err)
	}
	type remover interface {
		Remove(context.Context, []string) ([]string, error)
	}
	removed, err := mb.(remover).Remove(context.Background(), []string{"1"})
	if err != nil || len(removed) != 1 {
		t.Fatalf("Remove: %v %v", removed, err)
	}
	if got := s.Messages("Work"); len(got) != 0 {
		t.Errorf("Work after expunge: %+v", got)
	}
	all := s.Messages("[Gmail]/All Mail")
	if len(all) != 1 || all[0].MsgID != id || !slices.Equal(all[0].Labels, []string{`\Inbox`}) {
		t.Errorf("All Mail after expunge in Work: %+v", all)
	}
	if !strings.Contains(strings.Join(s.Log(), "\n"), "UID EXPUNGE 1") {
		t.Errorf("log: %q", s.Log())
	}

	r := dialRaw(t, s)
	r.ok("LOGIN %s %s", user, pass)
	r.ok("SELECT INBOX")
	if u := r.ok(`UID MOVE 1 "[Gmail]/Trash"`); !slices.Contains(u, "* 1 EXPUNGE") || !strings.HasPrefix(u[0], "* OK [COPYUID ") {
		t.Errorf("MOVE to Trash: %q", u)
	}
	if got := s.Messages("[Gmail]/Trash"); len(got) != 1 || len(s.Messages("[Gmail]/All Mail")) != 0 {
		t.Errorf("Trash %+v, All Mail %+v", got, s.Messages("[Gmail]/All Mail"))
	}
	r.ok(`SELECT "[Gmail]/Trash"`)
	r.ok(`STORE 1 +FLAGS.SILENT (\Deleted)`)
	r.ok("EXPUNGE")
	if got := s.Messages("[Gmail]/Trash"); len(got) != 0 {
		t.Errorf("Trash after expunge: %+v", got)
	}

	// \Flagged is the Starred folder.
	id2 := s.Append(msgText("star"), day, nil, `\Inbox`)
	r.ok("SELECT INBOX")
	r.ok(`UID STORE 2 +FLAGS (\Flagged)`)
	if got := s.Messages("[Gmail]/Starred"); len(got) != 1 || got[0].MsgID != id2 {
		t.Errorf("Starred: %+v", got)
	}
	if u := r.ok(`UID SEARCH X-GM-MSGID %d`, id2); len(u) != 1 || u[0] != "* SEARCH 2" {
		t.Errorf("SEARCH X-GM-MSGID: %q", u)
	}
}

// A quoted name, a synchronising literal and a non-synchronising one are
// all understood.
func TestParserLiterals(t *testing.T) {
	s := gmail(t, provider.Config{})
	r := dialRaw(t, s)
	r.n++
	r.nc.Write([]byte("t1 LOGIN {15}\r\n"))
	if l := r.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("continuation: %q", l)
	}
	r.nc.Write([]byte(user + " {12+}\r\n" + pass + "\r\n"))
	for l := r.line(); !strings.HasPrefix(l, "t1 "); l = r.line() {
		if l == "EOF" {
			t.Fatal("EOF")
		}
	}
	r.ok(`SELECT "INBOX"`)
	if got := s.Log(); got[0] != "LOGIN {literal} ***" {
		t.Errorf("log %q", got)
	}
}
