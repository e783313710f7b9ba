package oauth

// The device authorization grant (RFC 8628), for oauth2-login --device on a
// server without a browser: the provider hands out a short user code, the
// admin types it at the provider's address on any device, and this side
// polls the token endpoint until the consent is given, refused or expired.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/remote-pull/remote_pull/internal/safetext"
)

// DeviceFlow asks a device authorization endpoint for a code and then
// polls the token endpoint with it.
type DeviceFlow struct {
	DeviceURL, TokenURL string
	ClientID            string
	ClientSecret        string // "" for public clients
	Scopes              []string
	// HTTP makes the requests; nil: a client with requestTimeout.
	HTTP *http.Client
	// sleep waits between polls; tests replace it to see the waits
	// without spending them.
	sleep func(ctx context.Context, d time.Duration) error
}

// DeviceCode is what the admin needs to give consent, cleaned for a
// terminal, and the code this side polls with.
type DeviceCode struct {
	UserCode        string // printable, one line
	VerificationURI string // https://, printable, one line
	deviceCode      string
	expires         time.Time
	interval        time.Duration
}

// Errors that end a device flow without a token.
var (
	ErrDeviceExpired = errors.New("the code expired before consent was given; run the command again")
	ErrDeviceDenied  = errors.New("consent was refused at the provider")
)

const (
	// requestTimeout bounds each request to the provider.
	requestTimeout = 30 * time.Second
	// maxResponse bounds what is read of a provider's answer.
	maxResponse = 64 << 10
	// The polling interval: RFC 8628's default, the provider's own when it
	// is sensible, 5 s more for each slow_down (RFC 8628 3.5).
	defaultInterval = 5 * time.Second
	maxInterval     = 60 * time.Second
	slowDownStep    = 5 * time.Second
	// A code's lifetime when the provider gives none, and at most.
	defaultLifetime = 15 * time.Minute
	maxLifetime     = 30 * time.Minute
	// maxUserCode and maxURI bound what is printed of the provider's text.
	maxUserCode = 64
	maxURI      = 512
)

// Start asks for a device code (RFC 8628 3.1).
func (f *DeviceFlow) Start(ctx context.Context) (*DeviceCode, error) {
	form := url.Values{"client_id": {f.ClientID}, "scope": {strings.Join(f.Scopes, " ")}}
	if f.ClientSecret != "" {
		form.Set("client_secret", f.ClientSecret) // a confidential client authenticates here too (RFC 8628 3.1)
	}
	var r struct {
		DeviceCode      string `json:"device_code"`
		UserCode        string `json:"user_code"`
		VerificationURI string `json:"verification_uri"`
		VerificationURL string `json:"verification_url"` // older Microsoft and Google endpoints
		ExpiresIn       int64  `json:"expires_in"`
		Interval        int64  `json:"interval"`
		Error           string `json:"error"`
		Description     string `json:"error_description"`
	}
	status, err := f.post(ctx, f.DeviceURL, form, &r)
	if err != nil {
		return nil, fmt.Errorf("asking for a device code: %w", err)
	}
	if status != http.StatusOK || r.Error != "" {
		return nil, fmt.Errorf("the device authorization endpoint refused: %s", providerError(status, r.Error, r.Description))
	}
	dc := &DeviceCode{
		UserCode:   safetext.Line(r.UserCode, maxUserCode),
		deviceCode: r.DeviceCode,
		interval:   defaultInterval,
	}
	if dc.UserCode == "" || r.DeviceCode == "" {
		return nil, errors.New("the device authorization endpoint sent no user code or device code")
	}
	uri := cmp.Or(r.VerificationURI, r.VerificationURL)
	if u, err := url.Parse(uri); err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("the device authorization endpoint sent a verification address that is not https://: %q", safetext.Line(uri, maxURI))
	}
	dc.VerificationURI = safetext.Line(uri, maxURI)
	if iv := time.Duration(r.Interval) * time.Second; r.Interval > 0 && iv <= maxInterval {
		dc.interval = iv
	}
	life := defaultLifetime
	if r.ExpiresIn > 0 && time.Duration(r.ExpiresIn)*time.Second < maxLifetime {
		life = time.Duration(r.ExpiresIn) * time.Second
	}
	dc.expires = time.Now().Add(life)
	return dc, nil
}

// Wait polls the token endpoint (RFC 8628 3.4, 3.5) until the admin gave
// consent (the token), refused it (ErrDeviceDenied), or the code expired
// (ErrDeviceExpired), or ctx ends. A request that fails on the way (the
// network, a 5xx answer) is tried again at the next interval: it is not
// the provider's answer.
func (f *DeviceFlow) Wait(ctx context.Context, dc *DeviceCode) (*oauth2.Token, error) {
	ctx, cancel := context.WithDeadline(ctx, dc.expires)
	defer cancel()
	sleep := f.sleep
	if sleep == nil {
		sleep = sleepCtx
	}
	interval := dc.interval
	var lastErr error
	for {
		if err := sleep(ctx, interval); err != nil {
			return nil, f.waitEnded(ctx, dc, lastErr)
		}
		tok, code, err := f.poll(ctx, dc)
		switch {
		case err != nil:
			if ctx.Err() != nil {
				return nil, f.waitEnded(ctx, dc, err)
			}
			lastErr = err
			continue
		case tok != nil:
			return tok, nil
		}
		switch code {
		case "authorization_pending":
		case "slow_down":
			interval = min(interval+slowDownStep, maxInterval)
		case "expired_token":
			return nil, ErrDeviceExpired
		case "access_denied", "authorization_declined": // RFC 8628; Microsoft
			return nil, ErrDeviceDenied
		default:
			return nil, fmt.Errorf("the token endpoint refused: %s", code)
		}
	}
}

// waitEnded says why polling stopped without an answer.
func (f *DeviceFlow) waitEnded(ctx context.Context, dc *DeviceCode, lastErr error) error {
	if !time.Now().Before(dc.expires) {
		if lastErr != nil {
			return fmt.Errorf("%w (the last request failed: %v)", ErrDeviceExpired, lastErr)
		}
		return ErrDeviceExpired
	}
	if lastErr != nil {
		return fmt.Errorf("%w (the last request failed: %v)", ctx.Err(), lastErr)
	}
	return ctx.Err()
}

// poll asks once: a token, or the provider's error code (cleaned, with its
// description), or err for a request that got no answer from the grant.
func (f *DeviceFlow) poll(ctx context.Context, dc *DeviceCode) (*oauth2.Token, string, error) {
	form := url.Values{
		"grant_type":  {"urn:ietf:params:oauth:grant-type:device_code"},
		"device_code": {dc.deviceCode},
		"client_id":   {f.ClientID},
	}
	if f.ClientSecret != "" {
		form.Set("client_secret", f.ClientSecret)
	}
	var r tokenResponse
	status, err := f.post(ctx, f.TokenURL, form, &r)
	if err != nil {
		return nil, "", err
	}
	switch {
	case status == http.StatusOK && r.AccessToken != "":
		return r.token(), "", nil
	case status >= 500:
		return nil, "", fmt.Errorf("the token endpoint answered %d", status)
	case r.Error == "authorization_pending", r.Error == "slow_down", r.Error == "expired_token",
		r.Error == "access_denied", r.Error == "authorization_declined":
		return nil, r.Error, nil
	}
	return nil, providerError(status, r.Error, r.Description), nil
}

// tokenResponse is a token endpoint's answer (RFC 6749 5.1, 5.2).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int64  `json:"expires_in"`
	Error        string `json:"error"`
	Description  string `json:"error_description"`
}

func (r *tokenResponse) token() *oauth2.Token {
	tok := &oauth2.Token{AccessToken: r.AccessToken, TokenType: r.TokenType, RefreshToken: r.RefreshToken}
	if r.ExpiresIn > 0 {
		tok.Expiry = time.Now().Add(time.Duration(r.ExpiresIn) * time.Second)
	}
	return tok
}

// post sends form and decodes at most maxResponse bytes of JSON into v;
// an answer that is not JSON leaves v as it was.
func (f *DeviceFlow) post(ctx context.Context, endpoint string, form url.Values, v any) (int, error) {
	return postForm(ctx, f.HTTP, endpoint, form, v)
}

func postForm(ctx context.Context, client *http.Client, endpoint string, form url.Values, v any) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return 0, err
	}
	json.Unmarshal(body, v)
	return resp.StatusCode, nil
}

// providerError is a provider's error code and description, cleaned and
// bounded: they are shown to the admin.
func providerError(status int, code, description string) string {
	s := strings.TrimSpace(code + " " + description)
	if s == "" {
		s = fmt.Sprintf("HTTP %d", status)
	}
	return safetext.Line(s, 300)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
