package provider_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/source/imapsrc"
	"github.com/remote-pull/remote_pull/internal/testlib/provider"
)

// Gmail takes XOAUTH2 with the token; a wrong one gets the JSON challenge
// and then NO, which remote_pull reports as an authentication failure.
func TestGmailXOAUTH2(t *testing.T) {
	s := gmail(t, provider.Config{})
	s.Append(msgText("x"), day, nil, `\Inbox`)
	sess := connect(t, upstream(s, source.AuthXOAUTH2, token))
	if _, err := sess.Open(context.Background(), "INBOX"); err != nil {
		t.Fatal(err)
	}
	_, err := upstream(s, source.AuthXOAUTH2, "expired").Connect(context.Background())
	var authErr *source.AuthError
	if !errors.As(err, &authErr) || !strings.Contains(err.Error(), "[AUTHENTICATIONFAILED] Invalid credentials (Failure)") {
		t.Errorf("wrong token: %v", err)
	}
	sess = connect(t, upstream(s, source.AuthOAuthBearer, token))
	if _, err := sess.Open(context.Background(), "INBOX"); err != nil {
		t.Fatal(err)
	}
	if _, err = upstream(s, source.AuthOAuthBearer, "expired").Connect(context.Background()); !errors.As(err, &authErr) {
		t.Errorf("wrong token (OAUTHBEARER): %v", err)
	}
	if log := strings.Join(s.Log(), "\n"); strings.Contains(log, token) || strings.Contains(log, pass) {
		t.Errorf("credentials in the log:\n%s", log)
	}
}

// remote_pull's own IDLE watcher hears of a message labelled \Inbox.
func TestGmailWatch(t *testing.T) {
	s := gmail(t, provider.Config{})
	id := s.Append(msgText("archived"), day, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	idling, newMail := make(chan struct{}, 1), make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- upstream(s, source.AuthAuto, "").Watch(ctx, "INBOX", source.WatchEvents{
			Idling:  func() { idling <- struct{}{} },
			NewMail: func() { newMail <- struct{}{} },
		})
	}()
	select {
	case <-idling:
	case err := <-done:
		t.Fatal(err)
	}
	s.AddLabel(id, `\Inbox`)
	select {
	case <-newMail:
	case <-ctx.Done():
		t.Fatal("no new mail reported")
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

// The read-only and status commands clients send on connecting.
func TestGmailStatusExamine(t *testing.T) {
	s := gmail(t, provider.Config{})
	s.Append(msgText("a"), day, []string{`\Seen`}, `\Inbox`)
	s.Append(msgText("b"), day, nil, `\Inbox`, "Work")
	c := client(t, s, nil)
	if _, err := c.ID(&imap.IDData{Name: "remote_pull"}).Wait(); err != nil {
		t.Error(err)
	}
	if _, err := c.Namespace().Wait(); err != nil {
		t.Error(err)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if *st.NumMessages != 2 || *st.NumUnseen != 1 || st.UIDNext != 3 || st.UIDValidity == 0 {
		t.Errorf("STATUS %+v", st)
	}
	sel, err := c.Select("Work", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil || sel.NumMessages != 1 || sel.UIDNext != 2 || sel.UIDValidity == st.UIDValidity {
		t.Fatalf("EXAMINE Work: %+v %v", sel, err)
	}
	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err == nil {
		t.Error("STORE in a read-only folder succeeded")
	}
	// A BODY[] (not PEEK) read sets \Seen, except read-only.
	if _, err := c.Fetch(imap.UIDSetNum(1), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(2), &imap.FetchOptions{Flags: true, BodySection: []*imap.FetchItemBodySection{
		{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"Subject"}, Peek: true}}}).Collect()
	if err != nil || len(msgs) != 1 || string(msgs[0].BodySection[0].Bytes) != "Subject: b\r\n\r\n" || len(msgs[0].Flags) != 0 {
		t.Fatalf("header fetch: %+v %v", msgs, err)
	}
	if s.Downloads() != 1 {
		t.Errorf("Downloads %d, want 1 (a header fetch is none)", s.Downloads())
	}
	if _, err := c.Fetch(imap.UIDSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{{}}}).Collect(); err != nil {
		t.Fatal(err)
	}
	if m := s.Messages("INBOX"); !slices.Contains(m[1].Flags, `\Seen`) {
		t.Errorf("BODY[] did not set \\Seen: %+v", m[1])
	}
	// Expunging from INBOX by sequence number archives.
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}
	if len(s.Messages("INBOX")) != 1 || len(s.Messages("Work")) != 1 || len(s.Messages("[Gmail]/All Mail")) != 2 {
		t.Errorf("after EXPUNGE in INBOX: INBOX %d, Work %d", len(s.Messages("INBOX")), len(s.Messages("Work")))
	}
}

// remote_pull's move_to on Microsoft: UID MOVE into Archive.
func TestMicrosoftMoveTo(t *testing.T) {
	s := microsoft(t, provider.Config{})
	s.Append(msgText("m"), day, nil)
	host, port, _ := strings.Cut(s.Addr(), ":")
	up := imapsrc.New(imapsrc.Config{MoveTo: "Archive", Endpoint: source.Endpoint{Host: host, Port: port, Plaintext: true,
		Username: user, Auth: source.AuthXOAUTH2, Timeout: 5 * time.Second,
		Token: func(context.Context, bool) (string, error) { return token, nil }}})
	sess := connect(t, up)
	mb, err := sess.Open(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	type remover interface {
		Remove(context.Context, []string) ([]string, error)
	}
	if _, err := mb.(remover).Remove(context.Background(), []string{"1"}); err != nil {
		t.Fatal(err)
	}
	if len(s.Messages("INBOX")) != 0 || len(s.Messages("Archive")) != 1 {
		t.Errorf("INBOX %+v, Archive %+v", s.Messages("INBOX"), s.Messages("Archive"))
	}
}

// While idling, a label taken off is an EXPUNGE and one added an EXISTS.
func TestGmailIdleExpunge(t *testing.T) {
	s := gmail(t, provider.Config{})
	id := s.Append(msgText("a"), day, nil, "Work")
	r := dialRaw(t, s)
	r.ok("LOGIN %s %s", user, pass)
	r.ok("SELECT Work")
	r.nc.Write([]byte("t9 IDLE\r\n"))
	if l := r.line(); !strings.HasPrefix(l, "+ ") {
		t.Fatalf("IDLE: %q", l)
	}
	s.RemoveLabel(id, "Work")
	if l := r.line(); l != "* 1 EXPUNGE" {
		t.Errorf("after RemoveLabel: %q", l)
	}
	s.AddLabel(id, "Work")
	if l := r.line(); l != "* 1 EXISTS" {
		t.Errorf("after AddLabel: %q", l)
	}
	r.nc.Write([]byte("DONE\r\n"))
	if l := r.line(); l != "t9 OK Success" {
		t.Errorf("DONE: %q", l)
	}
	// The label came back: a new UID in the folder, as on Gmail.
	if m := s.Messages("Work"); len(m) != 1 || m[0].UID != 2 {
		t.Errorf("Work: %+v", m)
	}
}

// A client that sends nothing is disconnected after IdleTimeout.
func TestIdleTimeout(t *testing.T) {
	s := gmail(t, provider.Config{IdleTimeout: 50 * time.Millisecond})
	r := dialRaw(t, s)
	if l := r.line(); l != "EOF" {
		t.Errorf("silent client: %q, want the connection closed", l)
	}
}

// LIST patterns: % stops at the delimiter; (SPECIAL-USE) selects.
func TestListPatterns(t *testing.T) {
	s := gmail(t, provider.Config{})
	s.CreateFolder("Work/Clients/Big")
	r := dialRaw(t, s)
	r.ok("LOGIN %s %s", user, pass)
	names := func(lines []string) []string {
		var out []string
		for _, l := range lines {
			out = append(out, l[strings.Index(l, `"/" `)+4:])
		}
		return out
	}
	for pat, want := range map[string][]string{
		`"" "Work/%"`:                 {`"Work/Clients"`},
		`"" "Work/*"`:                 {`"Work/Clients"`, `"Work/Clients/Big"`},
		`"Work/" "%"`:                 {`"Work/Clients"`},
		`"" "inbox"`:                  {`"INBOX"`},
		`(SPECIAL-USE) "" "*"`:        {`"[Gmail]/All Mail"`, `"[Gmail]/Drafts"`, `"[Gmail]/Important"`, `"[Gmail]/Sent Mail"`, `"[Gmail]/Spam"`, `"[Gmail]/Starred"`, `"[Gmail]/Trash"`},
		`"" "%" RETURN (SPECIAL-USE)`: {`"INBOX"`, `"[Gmail]"`, `"Work"`},
	} {
		if got := names(r.ok("LIST %s", pat)); !slices.Equal(got, want) {
			t.Errorf("LIST %s: %q, want %q", pat, got, want)
		}
	}
}

// A message that arrived since SELECT is announced before a UID FETCH
// 1:* answers, and is in it.
func TestExistsBeforeFetch(t *testing.T) {
	s := gmail(t, provider.Config{})
	s.Append(msgText("a"), day, nil, `\Inbox`)
	r := dialRaw(t, s)
	r.ok("LOGIN %s %s", user, pass)
	r.ok("SELECT INBOX")
	s.Append(msgText("b"), day, nil, `\Inbox`)
	u := r.ok("UID FETCH 1:* (UID)")
	if want := []string{"* 2 EXISTS", "* 1 FETCH (UID 1)", "* 2 FETCH (UID 2)"}; !slices.Equal(u, want) {
		t.Errorf("UID FETCH: %q, want %q", u, want)
	}
}
