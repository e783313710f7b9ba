// Package oauth keeps an account's OAuth2 tokens: it refreshes the access
// token before it expires and after a server refuses it, writes a rotated
// refresh token to disk (atomically, mode 0600) before using it, and turns a
// refused refresh (revoked consent, expired grant) into a
// source.ReconsentError, a state that waits for the admin instead of
// retrying in a storm. App-only tokens (client credentials, apponly.go)
// live in memory only. The device authorization grant (device.go) gives
// consent from a server without a browser. It also holds the SASL
// mechanisms that carry the token: XOAUTH2 and OAUTHBEARER.
package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"golang.org/x/oauth2"

	"github.com/remote-pull/remote_pull/internal/source"
)

// Tokens is one account's token file, or (NewAppOnly) its app-only token
// kept in memory.
type Tokens struct {
	cfg  *oauth2.Config
	path string
	app  *AppOnly // client credentials instead of a token file

	mu  sync.Mutex
	tok *oauth2.Token
}

// New returns the tokens kept in path; the file is read at each Load.
func New(cfg *oauth2.Config, path string) *Tokens {
	return &Tokens{cfg: cfg, path: path}
}

// Config is the OAuth2 client configuration (for the consent command).
func (t *Tokens) Config() *oauth2.Config { return t.cfg }

// Load reads the token file (again: at start and on reload, after the
// consent command wrote a new one).
func (t *Tokens) Load() error {
	if t.app != nil {
		return t.loadApp()
	}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return fmt.Errorf("reading token file: %w (run 'maddy remote-pull oauth2-login ACCOUNT' first)", err)
	}
	var tok oauth2.Token
	if err := json.Unmarshal(b, &tok); err != nil {
		return fmt.Errorf("token file %s: %w", t.path, err)
	}
	if tok.RefreshToken == "" && tok.AccessToken == "" {
		return fmt.Errorf("token file %s holds no token", t.path)
	}
	t.mu.Lock()
	t.tok = &tok
	t.mu.Unlock()
	return nil
}

// earlyRefresh: an access token this close to its expiry is refreshed first.
const earlyRefresh = 2 * time.Minute

// Loaded reports whether a token was loaded.
func (t *Tokens) Loaded() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tok != nil || t.app != nil
}

// AccessToken returns a valid access token, refreshing it if it expires
// soon or force is set (the server refused the current one).
func (t *Tokens) AccessToken(ctx context.Context, force bool) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.app != nil {
		return t.appToken(ctx, force)
	}
	if t.tok == nil {
		return "", &source.ReconsentError{Err: errors.New("no token file yet")}
	}
	fresh := t.tok.AccessToken != "" && (t.tok.Expiry.IsZero() || time.Until(t.tok.Expiry) > earlyRefresh)
	if fresh && !force {
		return t.tok.AccessToken, nil
	}
	if t.tok.RefreshToken == "" {
		return "", &source.ReconsentError{Err: errors.New("the access token expired and there is no refresh token")}
	}
	old := &oauth2.Token{RefreshToken: t.tok.RefreshToken, Expiry: time.Unix(1, 0)}
	tok, err := t.cfg.TokenSource(ctx, old).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode >= 400 && re.Response.StatusCode < 500 {
			return "", &source.ReconsentError{Err: fmt.Errorf("%s %s", re.ErrorCode, re.ErrorDescription)}
		}
		return "", fmt.Errorf("refreshing the OAuth2 token: %w", err)
	}
	if tok.RefreshToken == "" {
		tok.RefreshToken = t.tok.RefreshToken // not rotated
	}
	// A rotated refresh token is written before the new access token is
	// used: losing it would need a new consent.
	if tok.RefreshToken != t.tok.RefreshToken || tok.AccessToken != t.tok.AccessToken {
		if err := Save(t.path, tok); err != nil {
			return "", err
		}
	}
	t.tok = tok
	return tok.AccessToken, nil
}

// Save writes tokens atomically: a temporary file in the same directory,
// fsynced, mode 0600, renamed over the old one, directory fsynced.
func Save(path string, tok *oauth2.Token) error {
	b, err := json.MarshalIndent(tok, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	// oauth2-login may run before maddy ever made its state directory.
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("saving token: %w", err)
	}
	f, err := os.CreateTemp(dir, ".token-*")
	if err != nil {
		return fmt.Errorf("saving token: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err == nil {
		if _, err = f.Write(b); err == nil {
			err = f.Sync()
		}
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("saving token: %w", err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("saving token: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
