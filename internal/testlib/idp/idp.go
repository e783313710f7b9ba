// Package idp is a fake OAuth2 identity provider for tests of the device
// authorization grant (RFC 8628), the client credentials grant and the
// authorization code grant with rotating refresh tokens: a device
// authorization endpoint (/devicecode) whose polls are answered from a
// script; a token endpoint (/token) that issues numbered app-only tokens to
// a client with the right secret, and numbered access and refresh tokens for
// the consent code or the current refresh token; and an introspection
// endpoint (/introspect, RFC 7662) through which a real server (Dovecot)
// asks whether an access token is valid.
package idp

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// AppScope is the scope the token endpoint wants with client credentials.
const AppScope = "https://outlook.office365.com/.default"

// ConsentCode is the authorization code the token endpoint takes (with any
// PKCE code verifier): what a user pastes after consenting.
const ConsentCode = "consent-code"

// Provider is the fake; its fields may be changed under Lock.
type Provider struct {
	URL    string       // https://127.0.0.1:PORT (http:// from StartPlain)
	Client *http.Client // trusts the provider's certificate
	srv    *httptest.Server

	sync.Mutex
	// ClientID is the only client known.
	ClientID string
	// DeviceCode is the device authorization endpoint's answer;
	// CodeRequests counts the requests for one.
	DeviceCode   map[string]any
	CodeRequests int
	// Script answers the device code polls in turn: an RFC 8628 error code
	// ("authorization_pending", "slow_down", ...), "500" for a server
	// error, or "" for the token (access "device-at", refresh "device-rt").
	// Past its end: invalid_grant.
	Script []string
	// Polls are the forms of the device code polls so far.
	Polls []map[string]string
	// Secret is the client secret accepted with client credentials;
	// ExpiresIn the lifetime of the tokens issued; Status, when not 0, the
	// HTTP status of every client credentials answer instead.
	Secret    string
	ExpiresIn int
	Status    int
	// Requests counts client credentials requests; Issued the tokens
	// given by the client credentials, authorization code and refresh
	// grants: "app-1", "app-2", ... for client credentials, access and
	// refresh tokens "access-N" and "refresh-N" for the others.
	Requests, Issued int
	// Forms are the client credentials requests' forms, encoded.
	Forms []string
	// Access and Refresh are the one valid access token and the one valid
	// refresh token: the latest issued by any grant (Refresh may be set
	// beforehand, as from an earlier consent). Refreshes counts refresh
	// requests, taken or not.
	Access, Refresh string
	Refreshes       int
	// Revoked withdraws the consent, or the application's grant: no access
	// token is valid, and refresh and client credentials requests are
	// refused with invalid_grant, until a new consent (the authorization
	// code or a device code) or until the test clears it.
	Revoked bool
	// Username is who the introspection endpoint says a valid token
	// belongs to.
	Username string
}

// Start runs a provider over TLS with client "cid", secret "s3cret",
// tokens of an hour and a Microsoft-like device code answer.
func Start(t testlib.T) *Provider {
	t.Helper()
	return start(t, httptest.NewTLSServer)
}

// StartPlain is Start over plain HTTP, for a client in another process
// (maddy, Dovecot) that would not trust the test certificate.
func StartPlain(t testlib.T) *Provider {
	t.Helper()
	return start(t, httptest.NewServer)
}

func start(t testlib.T, serve func(http.Handler) *httptest.Server) *Provider {
	p := &Provider{ClientID: "cid", Secret: "s3cret", ExpiresIn: 3599, DeviceCode: map[string]any{
		"device_code": "dev-123", "user_code": "ABCD-EFGH", "verification_uri": "https://microsoft.com/devicelogin",
		"expires_in": 900, "interval": 2,
		"message": "\x1b]0;pwned\x07To sign in, use a web browser to open the page",
	}}
	p.srv = serve(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.URL, p.Client = p.srv.URL, p.srv.Client()
	return p
}

// Close stops the provider: requests fail as on a network outage.
func (p *Provider) Close() { p.srv.Close() }

// Valid reports whether token is the valid access token: the latest
// issued, neither invalidated nor revoked.
func (p *Provider) Valid(token string) bool {
	p.Lock()
	defer p.Unlock()
	return p.valid(token)
}

func (p *Provider) valid(token string) bool {
	return !p.Revoked && p.Access != "" && token == p.Access
}

// Invalidate makes the provider refuse the current access token, as one
// does when it rotates keys early; the refresh token stays valid.
func (p *Provider) Invalidate() {
	p.Lock()
	p.Access = ""
	p.Unlock()
}

// Revoke sets Revoked: the consent withdrawn at the provider.
func (p *Provider) Revoke() {
	p.Lock()
	p.Revoked = true
	p.Unlock()
}

// RefreshCount reads Refreshes.
func (p *Provider) RefreshCount() int {
	p.Lock()
	defer p.Unlock()
	return p.Refreshes
}

// RequestCount reads Requests.
func (p *Provider) RequestCount() int {
	p.Lock()
	defer p.Unlock()
	return p.Requests
}

func (p *Provider) serve(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	p.Lock()
	defer p.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fail := func(status int, code, description string) {
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
	}
	switch {
	case r.URL.Path == "/devicecode":
		p.CodeRequests++
		if r.Form.Get("client_id") != p.ClientID {
			fail(http.StatusBadRequest, "invalid_client", "AADSTS700016: unknown application")
			return
		}
		json.NewEncoder(w).Encode(p.DeviceCode)
	case r.URL.Path == "/token" && r.Form.Get("grant_type") == "urn:ietf:params:oauth:grant-type:device_code":
		p.device(w, r, fail)
	case r.URL.Path == "/token" && r.Form.Get("grant_type") == "client_credentials":
		p.clientCredentials(w, r, fail)
	case r.URL.Path == "/token" && r.Form.Get("grant_type") == "refresh_token":
		p.Refreshes++
		if p.Revoked || r.Form.Get("refresh_token") != p.Refresh {
			fail(http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
			return
		}
		p.issue(w)
	case r.URL.Path == "/token" && r.Form.Get("grant_type") == "authorization_code":
		if r.Form.Get("code") != ConsentCode || r.Form.Get("code_verifier") == "" {
			fail(http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
			return
		}
		p.Revoked = false
		p.issue(w)
	case r.URL.Path == "/introspect":
		// As Dovecot's oauth2 passdb asks (introspection_mode post).
		if p.valid(r.Form.Get("token")) {
			json.NewEncoder(w).Encode(map[string]any{"active": true, "username": p.Username})
		} else {
			json.NewEncoder(w).Encode(map[string]any{"active": false})
		}
	default:
		fail(http.StatusBadRequest, "unsupported_grant_type", "")
	}
}

func (p *Provider) device(w http.ResponseWriter, r *http.Request, fail func(int, string, string)) {
	form := map[string]string{}
	for k := range r.Form {
		form[k] = r.Form.Get(k)
	}
	p.Polls = append(p.Polls, form)
	if len(p.Script) == 0 || form["device_code"] != p.DeviceCode["device_code"] {
		fail(http.StatusBadRequest, "invalid_grant", "")
		return
	}
	next := p.Script[0]
	p.Script = p.Script[1:]
	switch next {
	case "":
		p.Access, p.Refresh, p.Revoked = "device-at", "device-rt", false
		json.NewEncoder(w).Encode(map[string]any{"access_token": "device-at", "refresh_token": "device-rt", "token_type": "Bearer", "expires_in": 3600})
	case "500":
		w.WriteHeader(http.StatusInternalServerError)
	default:
		fail(http.StatusBadRequest, next, "AADSTS: "+next)
	}
}

func (p *Provider) clientCredentials(w http.ResponseWriter, r *http.Request, fail func(int, string, string)) {
	p.Requests++
	p.Forms = append(p.Forms, r.Form.Encode())
	switch {
	case p.Status != 0:
		fail(p.Status, "temporarily_unavailable", "")
	case r.Form.Get("client_id") != p.ClientID || r.Form.Get("scope") != AppScope:
		fail(http.StatusBadRequest, "invalid_request", "")
	case r.Form.Get("client_secret") != p.Secret:
		fail(http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided.\x1b[31m")
	case p.Revoked:
		fail(http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
	default:
		p.Issued++
		p.Access = fmt.Sprintf("app-%d", p.Issued)
		// No refresh token: RFC 6749 4.4.3.
		json.NewEncoder(w).Encode(map[string]any{"access_token": p.Access, "token_type": "Bearer", "expires_in": p.ExpiresIn})
	}
}

// issue answers with a new access token and a new refresh token; the old
// ones are no longer valid.
func (p *Provider) issue(w http.ResponseWriter) {
	p.Issued++
	p.Access, p.Refresh = fmt.Sprintf("access-%d", p.Issued), fmt.Sprintf("refresh-%d", p.Issued)
	json.NewEncoder(w).Encode(map[string]any{"access_token": p.Access, "refresh_token": p.Refresh, "token_type": "Bearer", "expires_in": p.ExpiresIn})
}
