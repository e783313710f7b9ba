package provider_test

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/testlib/provider"
)

func microsoft(t *testing.T, cfg provider.Config) *provider.Server {
	cfg.Kind, cfg.User, cfg.Password, cfg.Token = provider.Microsoft, user, pass, token
	return provider.Start(t, cfg)
}

// Microsoft takes XOAUTH2 with the right token and refuses every
// password login.
func TestMicrosoftXOAUTH2Only(t *testing.T) {
	s := microsoft(t, provider.Config{TLS: true})
	body := msgText("hello")
	s.Append(body, day, nil)
	s.Append(msgText("sent"), day, []string{`\Seen`}, "Sent Items")

	for _, auth := range []string{source.AuthAuto, source.AuthPlain, source.AuthLogin} {
		_, err := upstream(s, auth, "").Connect(context.Background())
		var authErr *source.AuthError
		if !errors.As(err, &authErr) || !strings.Contains(err.Error(), "failed.") {
			t.Errorf("password login (%s): %v, want an AuthError", auth, err)
		}
	}
	_, err := upstream(s, source.AuthXOAUTH2, "wrong").Connect(context.Background())
	if err == nil || !strings.Contains(err.Error(), "AUTHENTICATE failed.") {
		t.Errorf("wrong token: %v", err)
	}

	sess := connect(t, upstream(s, source.AuthXOAUTH2, token))
	folders, err := sess.Folders(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"INBOX", "Sent Items", "Deleted Items", "Junk Email", "Archive", "Drafts"} {
		if !slices.Contains(folders, f) {
			t.Errorf("Folders %q: no %s", folders, f)
		}
	}
	mb, err := sess.Open(context.Background(), "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	list, err := mb.List(context.Background(), 1)
	if err != nil || len(list) != 1 || list[0].GlobalID() != "" {
		t.Fatalf("List: %+v %v", list, err)
	}
	var got []byte
	err = mb.Fetch(context.Background(), []string{"1"}, func(r io.Reader) (source.Spooled, error) {
		var err error
		got, err = io.ReadAll(r)
		return nop{}, err
	}, func(string, source.Spooled) error { return nil })
	if err != nil || string(got) != string(body) {
		t.Fatalf("Fetch: %q %v", got, err)
	}
	type remover interface {
		Remove(context.Context, []string) ([]string, error)
	}
	if removed, err := mb.(remover).Remove(context.Background(), []string{"1"}); err != nil || len(removed) != 1 {
		t.Fatalf("Remove: %v %v", removed, err)
	}
	if n := len(s.Messages("INBOX")); n != 0 {
		t.Errorf("INBOX holds %d after Remove", n)
	}

	r := dialRaw(t, s)
	if _, tagged := r.cmd("LOGIN %s %s", user, pass); tagged != "NO LOGIN failed." {
		t.Errorf("LOGIN: %q", tagged)
	}
	if u, _ := r.cmd("CAPABILITY"); len(u) != 1 || strings.Contains(u[0], "X-GM-EXT-1") || !strings.Contains(u[0], "AUTH=XOAUTH2") {
		t.Errorf("CAPABILITY: %q", u)
	}
}

// Throttled, the next command answers with the backoff and the server
// hangs up; connections within the backoff get the same.
func TestMicrosoftThrottle(t *testing.T) {
	clk := &clock{now: day}
	s := microsoft(t, provider.Config{Now: clk.Now})
	s.Append(msgText("one"), day, nil)
	up := upstream(s, source.AuthXOAUTH2, token)
	sess := connect(t, up)
	// go-imap asks for the capabilities after the login (Microsoft sends
	// none with its OK); let that be done before throttling.
	sess.Describe()
	s.Throttle(300 * time.Second)
	_, err := sess.Open(context.Background(), "INBOX")
	if err == nil || !strings.Contains(err.Error(), "Request is throttled. Suggested Backoff Time: 300000 milliseconds") {
		t.Fatalf("SELECT when throttled: %v", err)
	}
	if _, err := sess.Open(context.Background(), "INBOX"); err == nil {
		t.Error("the connection survived the throttling reply")
	}

	clk.Add(100 * time.Second)
	r := dialRaw(t, s)
	if _, tagged := r.cmd("CAPABILITY"); tagged != "NO Request is throttled. Suggested Backoff Time: 200000 milliseconds" {
		t.Errorf("new connection within the backoff: %q", tagged)
	}
	if l := r.line(); l != "EOF" {
		t.Errorf("after the throttling reply: %q, want the connection closed", l)
	}

	clk.Add(200 * time.Second)
	sess = connect(t, up)
	if _, err := sess.Open(context.Background(), "INBOX"); err != nil {
		t.Errorf("after the backoff: %v", err)
	}
}

// Past 20 connections Exchange Online accepts the login and fails every
// command.
func TestMicrosoftConnectionCap(t *testing.T) {
	s := microsoft(t, provider.Config{MaxConns: 1})
	up := upstream(s, source.AuthXOAUTH2, token)
	connect(t, up)
	sess := connect(t, up)
	_, err := sess.Open(context.Background(), "INBOX")
	if err == nil || !strings.Contains(err.Error(), "User is authenticated but not connected.") {
		t.Errorf("SELECT past the cap: %v", err)
	}
	if got := s.PeakConns(); got != 2 {
		t.Errorf("PeakConns %d, want 2", got)
	}
}
