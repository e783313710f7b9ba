// Package idp is a fake OAuth2 identity provider over TLS for tests of the
// device authorization grant (RFC 8628) and the client credentials grant:
// a device authorization endpoint (/devicecode) whose polls are answered
// from a script, and a token endpoint (/token) that issues numbered
// app-only tokens to a client with the right secret.
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

// Provider is the fake; its fields may be changed under Lock.
type Provider struct {
	URL    string       // https://127.0.0.1:PORT
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
	// given, named "app-1", "app-2", ...
	Requests, Issued int
	// Forms are the client credentials requests' forms, encoded.
	Forms []string
}

// Start runs a provider with client "cid", secret "s3cret", tokens of
// an hour and a Microsoft-like device code answer.
func Start(t testlib.T) *Provider {
	t.Helper()
	p := &Provider{ClientID: "cid", Secret: "s3cret", ExpiresIn: 3599, DeviceCode: map[string]any{
		"device_code": "dev-123", "user_code": "ABCD-EFGH", "verification_uri": "https://microsoft.com/devicelogin",
		"expires_in": 900, "interval": 2,
		"message": "\x1b]0;pwned\x07To sign in, use a web browser to open the page",
	}}
	p.srv = httptest.NewTLSServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.URL, p.Client = p.srv.URL, p.srv.Client()
	return p
}

// Close stops the provider: requests fail as on a network outage.
func (p *Provider) Close() { p.srv.Close() }

// Valid reports whether token is the latest app-only token issued.
func (p *Provider) Valid(token string) bool {
	p.Lock()
	defer p.Unlock()
	return p.Issued > 0 && token == fmt.Sprintf("app-%d", p.Issued)
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
	default:
		p.Issued++
		json.NewEncoder(w).Encode(map[string]any{"access_token": fmt.Sprintf("app-%d", p.Issued), "token_type": "Bearer", "expires_in": p.ExpiresIn})
	}
}
