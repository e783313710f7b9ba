package oauth_test

import (
	"context"
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/oauth"
	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/source/imapsrc"
	"github.com/remote-pull/remote_pull/internal/testlib/idp"
	"github.com/remote-pull/remote_pull/internal/testlib/provider"
)

// An app-only account logs in to the Microsoft double (XOAUTH2 only) as
// the mailbox's address with the token from the fake token endpoint. The
// token it held is refused by the server: the source asks the endpoint
// for a new one, once, and logs in with it.
func TestAppOnlyLogsInToMicrosoft(t *testing.T) {
	const mailbox = "shared@contoso.example"
	p := idp.Start(t)
	s := provider.Start(t, provider.Config{Kind: provider.Microsoft, User: mailbox, Token: "app-2", TLS: true})
	s.Append([]byte("From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"), time.Date(2024, 1, 2, 10, 0, 0, 0, time.UTC), nil)

	tokens := oauth.NewAppOnly(oauth.AppOnly{TokenURL: p.URL + "/token", ClientID: "cid", Scopes: []string{idp.AppScope},
		Secret: func() string { return "s3cret" }, HTTP: p.Client})
	ctx := context.Background()
	// A token from an earlier poll, which the server no longer takes.
	if at, err := tokens.AccessToken(ctx, false); err != nil || at != "app-1" {
		t.Fatalf("first token %q, %v", at, err)
	}
	host, port, _ := net.SplitHostPort(s.Addr())
	up := imapsrc.New(imapsrc.Config{Endpoint: source.Endpoint{
		Host: host, Port: port, Username: mailbox, Auth: source.AuthXOAUTH2, Timeout: 10 * time.Second,
		ImplicitTLS: true, TLS: &tls.Config{RootCAs: s.RootCAs()}, Token: tokens.AccessToken,
	}})
	sess, err := up.Connect(ctx)
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	defer sess.Close(ctx)
	if p.Requests != 2 {
		t.Fatalf("%d token requests, want 2 (one after the refusal)", p.Requests)
	}
	mb, err := sess.Open(ctx, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if list, err := mb.List(ctx, 1); err != nil || len(list) != 1 {
		t.Fatalf("List: %v %v", list, err)
	}
}
