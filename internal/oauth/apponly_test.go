package oauth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/testlib/idp"
)

func appTokens(p *idp.Provider, secret *string) *Tokens {
	return NewAppOnly(AppOnly{
		TokenURL: p.URL + "/token", ClientID: "cid", Scopes: []string{idp.AppScope},
		Secret: func() string { return *secret }, HTTP: p.Client,
	})
}

// The app-only token is fetched once and kept in memory; a refusal by the
// mail server (force) fetches a new one; so does one about to expire.
func TestAppOnlyCachedAndRefreshed(t *testing.T) {
	p := idp.Start(t)
	secret := "s3cret"
	tok := appTokens(p, &secret)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		at, err := tok.AccessToken(ctx, false)
		if err != nil || at != "app-1" {
			t.Fatalf("token %q, %v", at, err)
		}
	}
	if p.Requests != 1 {
		t.Fatalf("%d token requests for three logins, want 1", p.Requests)
	}
	if at, err := tok.AccessToken(ctx, true); err != nil || at != "app-2" {
		t.Fatalf("after a refusal: token %q, %v", at, err)
	}
	if at, _ := tok.AccessToken(ctx, false); at != "app-2" {
		t.Fatalf("the new token is not kept: %q", at)
	}

	// A token with less than earlyRefresh left is replaced before use.
	p.Lock()
	p.ExpiresIn = 60
	p.Unlock()
	tok.AccessToken(ctx, true) // app-3, lives 60 s
	if at, _ := tok.AccessToken(ctx, false); at != "app-4" {
		t.Fatalf("a token about to expire was used: %q", at)
	}
	if !strings.Contains(p.Forms[0], "grant_type=client_credentials") || strings.Contains(p.Forms[0], "refresh_token") {
		t.Fatalf("client credentials request: %s", p.Forms[0])
	}
}

// A refused grant (wrong secret, missing permission) waits for the admin:
// a ReconsentError that says so, with the provider's text cleaned; a 5xx
// or a network failure is not a refusal. Load (the reload signal) reads
// the secret again and forgets the cached token.
func TestAppOnlyRefusedAndTransport(t *testing.T) {
	p := idp.Start(t)
	secret := "wrong"
	tok := appTokens(p, &secret)
	reloaded := 0
	tok.app.Reload = func() error { reloaded++; secret = "s3cret"; return nil }
	ctx := context.Background()

	_, err := tok.AccessToken(ctx, false)
	var re *source.ReconsentError
	if !errors.As(err, &re) || !re.AppOnly || !strings.Contains(err.Error(), "invalid_client") || strings.Contains(err.Error(), "\x1b") {
		t.Fatalf("wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Fatalf("the secret is in the error: %v", err)
	}

	if err := tok.Load(); err != nil || reloaded != 1 {
		t.Fatalf("Load: %v (reloaded %d)", err, reloaded)
	}
	if at, err := tok.AccessToken(ctx, false); err != nil || at != "app-1" {
		t.Fatalf("after reload: %q, %v", at, err)
	}

	p.Lock()
	p.Status = http.StatusServiceUnavailable
	p.Unlock()
	if _, err := tok.AccessToken(ctx, true); err == nil || errors.As(err, &re) {
		t.Fatalf("503: %v, want an error that is not a refusal", err)
	}
	p.Close()
	if _, err := tok.AccessToken(ctx, true); err == nil || errors.As(err, &re) {
		t.Fatalf("endpoint down: %v, want an error that is not a refusal", err)
	}
}
