package commands

// Where an upstream's settings come from: a preset for the big providers,
// else the provider's autoconfig data (Thunderbird's ISPDB format), which
// the domain itself or Thunderbird's database publishes.

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// preset is a provider's servers and how to log in there.
type preset struct {
	Key, Title string
	IMAP, POP3 string // host, "" when the protocol is not offered
	// OAuth: the oauth2 block's provider; OAuthOnly: no password login.
	OAuth     string
	OAuthOnly bool
	Domains   []string
	// Note is shown before the password is asked for.
	Note string
}

var presets = []preset{
	{Key: "gmail", Title: "Gmail / Google Workspace", IMAP: "imap.gmail.com", POP3: "pop.gmail.com", OAuth: "google",
		Domains: []string{"gmail.com", "googlemail.com"},
		Note:    "Use an app password (Google account → Security → 2-Step Verification → App passwords), or OAuth2 with --client-id."},
	{Key: "outlook", Title: "Outlook.com / Microsoft 365", IMAP: "outlook.office365.com", POP3: "outlook.office365.com", OAuth: "microsoft", OAuthOnly: true,
		Domains: []string{"outlook.com", "hotmail.com", "live.com", "msn.com"},
		Note:    "Microsoft accepts only OAuth2 for IMAP and POP3: give the client ID of your app registration (--client-id)."},
	{Key: "icloud", Title: "iCloud Mail", IMAP: "imap.mail.me.com",
		Domains: []string{"icloud.com", "me.com", "mac.com"},
		Note:    "Use an app-specific password (appleid.apple.com → Sign-In and Security → App-Specific Passwords)."},
	{Key: "yahoo", Title: "Yahoo Mail", IMAP: "imap.mail.yahoo.com", POP3: "pop.mail.yahoo.com",
		Domains: []string{"yahoo.com", "ymail.com", "rocketmail.com"},
		Note:    "Use an app password (Account security → Generate app password)."},
	{Key: "fastmail", Title: "Fastmail", IMAP: "imap.fastmail.com", POP3: "pop.fastmail.com",
		Domains: []string{"fastmail.com", "fastmail.fm"},
		Note:    "Use an app password (Settings → Privacy & Security → App passwords)."},
	{Key: "other", Title: "another IMAP or POP3 server"},
}

func presetByKey(key string) (preset, bool) {
	for _, p := range presets {
		if p.Key == key {
			return p, true
		}
	}
	return preset{}, false
}

// presetForAddress is the preset of an address's domain, if one has it.
func presetForAddress(addr string) (preset, bool) {
	_, domain, ok := strings.Cut(addr, "@")
	if !ok {
		return preset{}, false
	}
	domain = strings.ToLower(domain)
	for _, p := range presets {
		for _, d := range p.Domains {
			if d == domain {
				return p, true
			}
		}
	}
	return preset{}, false
}

// server is one incoming server found for an address.
type server struct {
	Protocol, Host, Port string
	StartTLS             bool
	Username             string // "" when the address is the user name
	OAuthOnly            bool
}

const (
	autoconfigTimeout = 10 * time.Second
	maxAutoconfig     = 256 << 10 // a real file is a few KiB
)

// autoconfigURLs are where the settings for domain are looked up, in
// order: the domain's own (HTTPS only: a forged answer would send the
// password elsewhere), then Thunderbird's ISPDB. A test replaces them.
func autoconfigURLs(domain, override string) []string {
	if override != "" {
		return []string{strings.ReplaceAll(override, "{domain}", domain)}
	}
	return []string{
		"https://autoconfig." + domain + "/mail/config-v1.1.xml",
		"https://" + domain + "/.well-known/autoconfig/mail/config-v1.1.xml",
		"https://autoconfig.thunderbird.net/v1.1/" + domain,
	}
}

// lookupAutoconfig finds the incoming servers for addr: the first
// autoconfig document that answers, its servers in the order it gives.
func lookupAutoconfig(ctx context.Context, addr, override string) ([]server, error) {
	_, domain, ok := strings.Cut(addr, "@")
	if !ok || domain == "" || strings.ContainsAny(domain, "/?#@ ") {
		return nil, fmt.Errorf("%q is not an email address: give --host", addr)
	}
	ctx, cancel := context.WithTimeout(ctx, autoconfigTimeout)
	defer cancel()
	client := &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 3 {
			return errors.New("too many redirects")
		}
		if req.URL.Scheme != "https" && via[0].URL.Scheme == "https" {
			return errors.New("redirect away from HTTPS")
		}
		return nil
	}}
	var errs []error
	for _, u := range autoconfigURLs(strings.ToLower(domain), override) {
		servers, err := fetchAutoconfig(ctx, client, u, addr)
		if err == nil && len(servers) > 0 {
			return servers, nil
		}
		if err == nil {
			err = fmt.Errorf("%s: no usable incoming server", u)
		}
		errs = append(errs, err)
	}
	return nil, fmt.Errorf("no autoconfig data for %s (give --host): %w", domain, errors.Join(errs...))
}

func fetchAutoconfig(ctx context.Context, client *http.Client, u, addr string) ([]server, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAutoconfig+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u, err)
	}
	if len(body) > maxAutoconfig {
		return nil, fmt.Errorf("%s: larger than %d bytes", u, maxAutoconfig)
	}
	return parseAutoconfig(body, addr)
}

// clientConfig is the part of Thunderbird's autoconfig format read here
// (wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat).
type clientConfig struct {
	Providers []struct {
		Incoming []struct {
			Type           string   `xml:"type,attr"`
			Hostname       string   `xml:"hostname"`
			Port           string   `xml:"port"`
			SocketType     string   `xml:"socketType"`
			Username       string   `xml:"username"`
			Authentication []string `xml:"authentication"`
		} `xml:"incomingServer"`
	} `xml:"emailProvider"`
}

// parseAutoconfig reads the incoming servers that remote_pull can use:
// IMAP or POP3 over TLS or STARTTLS (never plain), with a password or
// OAuth2. IMAP before POP3, implicit TLS before STARTTLS.
func parseAutoconfig(body []byte, addr string) ([]server, error) {
	var cc clientConfig
	if err := xml.Unmarshal(body, &cc); err != nil {
		return nil, fmt.Errorf("autoconfig: %w", err)
	}
	local, domain, _ := strings.Cut(addr, "@")
	expand := strings.NewReplacer("%EMAILADDRESS%", addr, "%EMAILLOCALPART%", local, "%EMAILDOMAIN%", domain)
	var out []server
	for _, p := range cc.Providers {
		for _, in := range p.Incoming {
			s := server{Protocol: strings.ToLower(in.Type), Host: strings.TrimSpace(in.Hostname), Port: strings.TrimSpace(in.Port)}
			if s.Protocol != "imap" && s.Protocol != "pop3" || !validHost(s.Host) {
				continue
			}
			if n, err := strconv.Atoi(s.Port); err != nil || n < 1 || n > 65535 {
				continue
			}
			switch strings.ToUpper(strings.TrimSpace(in.SocketType)) {
			case "SSL", "TLS":
			case "STARTTLS":
				s.StartTLS = true
			default:
				continue // plain: not offered
			}
			password, oauth := false, false
			for _, a := range in.Authentication {
				switch strings.TrimSpace(a) {
				case "password-cleartext", "plain", "password-encrypted", "secure":
					password = true
				case "OAuth2":
					oauth = true
				}
			}
			if !password && !oauth && len(in.Authentication) > 0 {
				continue
			}
			s.OAuthOnly = oauth && !password
			if u := expand.Replace(strings.TrimSpace(in.Username)); u != addr {
				s.Username = u
			}
			out = append(out, s)
		}
	}
	rank := func(s server) int {
		r := 0
		if s.Protocol == "pop3" {
			r += 2
		}
		if s.StartTLS {
			r++
		}
		return r
	}
	// Stable: the document's order within a rank.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && rank(out[j]) < rank(out[j-1]); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out, nil
}

func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for _, r := range h {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return false
		}
	}
	return true
}
