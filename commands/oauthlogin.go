package commands

// The one-time OAuth2 consent for 'maddy remote-pull oauth2-login': the
// authorization code flow with PKCE and a loopback redirect (RFC 8252), or
// a code pasted by the admin when the browser is elsewhere.

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"golang.org/x/oauth2"

	"github.com/remote-pull/remote_pull/internal/config"
	"github.com/remote-pull/remote_pull/internal/oauth"
)

func oauthLogin(ctx context.Context, o *config.OAuth2, in io.Reader, out io.Writer) (string, error) {
	if o.AuthURL == "" {
		return "", errors.New("the oauth2 block has no auth_endpoint (or provider)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(o.RedirectPort))
	if err != nil {
		return "", err
	}
	defer ln.Close()
	cfg := &oauth2.Config{
		ClientID:    o.ClientID,
		Endpoint:    oauth2.Endpoint{AuthURL: o.AuthURL, TokenURL: o.TokenURL},
		Scopes:      o.Scopes,
		RedirectURL: "http://" + ln.Addr().String() + "/",
	}
	if o.ClientSecret != nil {
		cfg.ClientSecret = o.ClientSecret.Value()
	}
	var stateBytes [16]byte
	rand.Read(stateBytes[:])
	state := hex.EncodeToString(stateBytes[:])
	verifier := oauth2.GenerateVerifier()
	fmt.Fprintf(out, "Open this URL in a browser and give consent:\n\n  %s\n\n", cfg.AuthCodeURL(state,
		oauth2.AccessTypeOffline, oauth2.SetAuthURLParam("prompt", "consent"), oauth2.S256ChallengeOption(verifier)))
	fmt.Fprintf(out, "Waiting for the redirect to %s, or paste the URL you were redirected to (or the code):\n", cfg.RedirectURL)

	codes := make(chan string, 2)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("state") != state || q.Get("code") == "" {
			http.Error(w, "unexpected request: "+q.Get("error"), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "remote_pull: consent received, you can close this page.")
		codes <- q.Get("code")
	})}
	go srv.Serve(ln)
	defer srv.Close()
	go func() {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && line == "" {
			return
		}
		codes <- codeFrom(strings.TrimSpace(line), state)
	}()

	var code string
	select {
	case code = <-codes:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if code == "" {
		return "", errors.New("no code (or a state that does not match) in what was pasted")
	}
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		return "", fmt.Errorf("exchanging the code: %w", err)
	}
	if tok.RefreshToken == "" {
		fmt.Fprintln(out, "Warning: the provider gave no refresh token; the account will need a new consent when the access token expires.")
	}
	return o.TokenFile, oauth.Save(o.TokenFile, tok)
}

// codeFrom takes a pasted redirect URL (checking its state) or a bare code.
func codeFrom(s, state string) string {
	if u, err := url.Parse(s); err == nil && u.Scheme != "" {
		if u.Query().Get("state") != state {
			return ""
		}
		return u.Query().Get("code")
	}
	return s
}

// deviceLogin is the device authorization grant (RFC 8628) for a server
// without a browser: it prints the provider's code and address, waits for
// the consent given on another device, and writes the token file as
// oauthLogin does. client nil: http.DefaultClient.
func deviceLogin(ctx context.Context, o *config.OAuth2, out io.Writer, client *http.Client) (string, error) {
	if isGoogle(o) {
		return "", errors.New("the Gmail scope (https://mail.google.com/) is not allowed in Google's device flow; " +
			"run oauth2-login without --device: open the URL in a browser on any machine and paste the address it redirects to")
	}
	if o.DeviceURL == "" {
		return "", errors.New("the oauth2 block has no device_endpoint (provider microsoft sets it)")
	}
	flow := &oauth.DeviceFlow{DeviceURL: o.DeviceURL, TokenURL: o.TokenURL, ClientID: o.ClientID, Scopes: o.Scopes, HTTP: client}
	if o.ClientSecret != nil {
		flow.ClientSecret = o.ClientSecret.Value()
	}
	dc, err := flow.Start(ctx)
	if err != nil {
		return "", err
	}
	// Only the code and the address are shown, cleaned by Start; the
	// provider's own "message" is upstream text and is not printed.
	fmt.Fprintf(out, "On any device, open\n\n  %s\n\nand enter the code\n\n  %s\n\nWaiting for the consent...\n", dc.VerificationURI, dc.UserCode)
	tok, err := flow.Wait(ctx, dc)
	if err != nil {
		return "", err
	}
	if tok.RefreshToken == "" {
		fmt.Fprintln(out, "Warning: the provider gave no refresh token; the account will need a new consent when the access token expires.")
	}
	return o.TokenFile, oauth.Save(o.TokenFile, tok)
}

// isGoogle: the provider preset, or Google's own endpoints named by hand.
func isGoogle(o *config.OAuth2) bool {
	if o.Provider == "google" {
		return true
	}
	u, err := url.Parse(o.TokenURL)
	if err != nil {
		return false
	}
	h := strings.ToLower(u.Hostname())
	return h == "google.com" || strings.HasSuffix(h, ".google.com") || strings.HasSuffix(h, ".googleapis.com")
}
