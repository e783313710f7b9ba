package oauth

// App-only access (the client credentials grant, RFC 6749 4.4): an
// application of one Microsoft 365 tenant reads mailboxes with a token it
// gets with its own secret. There is no consent and no refresh token: the
// token is kept in memory only, and a new one is asked for shortly before
// it expires or when the server refuses it.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/remote-pull/remote_pull/internal/source"
)

// AppOnly configures the client credentials grant.
type AppOnly struct {
	TokenURL string
	ClientID string
	Scopes   []string
	// Secret returns the client secret as it is now; Reload reads its
	// file again (maddy's reload signal). Reload may be nil.
	Secret func() string
	Reload func() error
	// HTTP makes the requests; nil: http.DefaultClient, each request
	// bounded by requestTimeout.
	HTTP *http.Client
}

// NewAppOnly returns tokens got with the client credentials grant.
func NewAppOnly(a AppOnly) *Tokens {
	return &Tokens{app: &a}
}

// appToken returns the cached token unless it expires soon or force is
// set (the server refused it).
func (t *Tokens) appToken(ctx context.Context, force bool) (string, error) {
	if !force && t.tok != nil && time.Until(t.tok.Expiry) > earlyRefresh {
		return t.tok.AccessToken, nil
	}
	a := t.app
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {a.ClientID},
		"client_secret": {a.Secret()},
		"scope":         {strings.Join(a.Scopes, " ")},
	}
	var r tokenResponse
	status, err := postForm(ctx, a.HTTP, a.TokenURL, form, &r)
	switch {
	case err != nil:
		return "", fmt.Errorf("asking for an app-only token: %w", err)
	case status == http.StatusOK && r.AccessToken != "":
	case status >= 400 && status < 500:
		// The provider refused the application's own credentials (a wrong
		// or expired secret, a missing permission or admin consent):
		// retrying does not help until the admin fixed it.
		return "", &source.ReconsentError{AppOnly: true, Err: errors.New(providerError(status, r.Error, r.Description))}
	default:
		return "", fmt.Errorf("asking for an app-only token: the token endpoint answered %s", providerError(status, r.Error, r.Description))
	}
	tok := r.token()
	if tok.Expiry.IsZero() {
		// No lifetime given: used until the server refuses it.
		tok.Expiry = time.Now().Add(time.Hour)
	}
	t.tok = tok
	return tok.AccessToken, nil
}

// loadApp reads the client secret's file again and drops the cached
// token, so that the next login uses the new secret.
func (t *Tokens) loadApp() error {
	t.mu.Lock()
	t.tok = nil
	t.mu.Unlock()
	if t.app.Reload == nil {
		return nil
	}
	return t.app.Reload()
}
