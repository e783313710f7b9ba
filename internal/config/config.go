// Package config reads remote_pull blocks of maddy.conf into account
// settings. Every mistake stops maddy's start with the file and line of the
// directive at fault.
//
// Grammar (see docs/reference.md for every directive):
//
//	remote_pull {
//	    # any account directive here is the default for all accounts
//	    account NAME {
//	        imap tls://HOST:PORT | imap tcp://HOST:PORT
//	        username ...; password ... | password_file PATH
//	        rcpt_to ADDR...
//	        deliver_to TARGET | smtp-style pipeline directives
//	        ...
//	    }
//	}
//
// An account's own directive wins over the block's default. Pipeline
// directives (deliver_to, check, modify, destination, ...) form one group:
// an account with any of them inherits none from the block.
package config

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"

	maddycfg "github.com/foxcpp/maddy/framework/config"
	modconfig "github.com/foxcpp/maddy/framework/config/module"
	"github.com/foxcpp/maddy/framework/module"

	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source"
)

// Node is a maddy config node.
type Node = maddycfg.Node

// Block is one parsed remote_pull block.
type Block struct {
	MaxParallel int
	Accounts    []*Account
}

// Account is one parsed account block. Its directives are read straight
// into the option structs of the packages that use them: policy.Policy
// (what the poll loop does), source.Endpoint (the connection) and
// delivery.Options (the hand-over to maddy). A new directive is a field
// there, a declaration in declare (account.go), a check if it needs one,
// and docs/reference.md.
type Account struct {
	Name     string
	Protocol string // source.IMAP, POP3, Mbox or Maildir
	// File is the mbox file or Maildir directory (mbox, maildir PATH), as
	// an absolute path; Host holds it too, for the status.
	File string
	// MboxVariant (mbox_variant) is auto, mboxrd or mboxo.
	MboxVariant string
	policy.Policy
	// Endpoint: tls://HOST:PORT is ImplicitTLS; tcp:// means STARTTLS or
	// STLS, which is then mandatory. Password reads Secret; Token is set
	// by the endpoint for OAuth2 accounts.
	source.Endpoint
	delivery.Options
	// MoveTo (move_to, keep no): imapsrc moves delivered messages there
	// instead of deleting them.
	MoveTo string
	// Secret is the password (password, password_file, password_command);
	// empty for OAuth2.
	Secret *Secret
	// OAuth2 is the oauth2 block, for auth xoauth2 and oauthbearer.
	OAuth2 *OAuth2
	// ConfigHash changes when anything that decides a message's fate
	// changes (recipients, pipeline, limits), so that earlier refusals get
	// another chance. Secrets are left out of it.
	ConfigHash string
	// Digest changes when anything in the account's configuration changes:
	// a reload restarts the account.
	Digest string
	// Disabled (disabled yes): configured, not polled.
	Disabled bool
	Debug    bool
	Node     Node // for error messages
	// Warnings are logged at every start: not errors, but worth fixing.
	Warnings []string
}

// Secret is a password given inline, read from a file or printed by a
// command. Its String never shows the value, so that it cannot end up in a
// log by accident. It is safe for concurrent use: a reload may replace it
// while a login reads it.
type Secret struct {
	mu      sync.Mutex
	value   string
	file    string   // absolute path, "" when given inline
	command []string // password_command; value is its output while fresh
	fresh   bool
}

func (s *Secret) String() string { return "<secret>" }

// Value returns the secret as last read (for a command, its last output).
func (s *Secret) Value() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.value
}

// get is the Secret as source.Endpoint's Password asks for it: a command
// runs when its last output is stale (never run, reload, refused login),
// else its output is reused, so that a vault is not asked at every poll.
// Logins wait for one run rather than running it each.
func (s *Secret) get() (string, error) {
	if s.command == nil {
		return s.Value(), nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fresh {
		return s.value, nil
	}
	v, err := runPasswordCommand(s.command, passwordCommandTimeout)
	if err != nil {
		return "", err
	}
	s.value, s.fresh = v, true
	return v, nil
}

// Refused is told that the upstream refused a login with the secret: a
// command runs again at the next login, for a secret rotated meanwhile.
func (s *Secret) Refused() {
	s.mu.Lock()
	s.fresh = false
	s.mu.Unlock()
}

// Reload re-reads a password file (maddy's reload signal, SIGUSR2) and
// makes a command run again at the next login; inline passwords stay as
// they are. On error the old value is kept.
func (s *Secret) Reload() error {
	if s.command != nil {
		s.Refused()
		return nil
	}
	if s.file == "" {
		return nil
	}
	v, _, err := readSecretFile(s.file)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.value = v
	s.mu.Unlock()
	return nil
}

// OAuth2 is an account's oauth2 block.
type OAuth2 struct {
	Provider          string // "google", "microsoft" or "" (endpoints given)
	AuthURL, TokenURL string
	DeviceURL         string // device authorization endpoint (RFC 8628), for oauth2-login --device
	Scopes            []string
	ClientID          string
	ClientSecret      *Secret // nil for public clients
	TokenFile         string  // absolute; "" with ClientCredentials
	RedirectPort      int     // for the consent command's loopback redirect; 0: any
	// ClientCredentials (client_credentials yes): app-only access. The
	// token comes from the client's own secret, for any mailbox the
	// application may open; no consent, no refresh token, no token file.
	ClientCredentials bool
}

// accountDirectives are the directives an account block takes besides the
// pipeline ones; they may also stand in the remote_pull block as defaults.
var accountDirectives = map[string]bool{
	"imap": true, "pop3": true, "username": true, "password": true, "password_file": true,
	"password_command": true, "rcpt_to": true, "keep": true, "poll_interval": true, "tls_client": true, "folders": true,
	"debug": true, "idle": true, "timeout": true,
	"exclude_folders": true, "max_age": true, "mark_seen": true, "move_to": true, "delete_after": true,
	"local_folders": true, "local_folder": true, "keep_flags": true, "dedupe": true, "notify": true, "disabled": true,
	"envelope_header": true, "envelope_domains": true, "max_message_size": true, "max_messages_per_poll": true,
	"first_sync": true, "trusted_authres": true, "quarantine_folders": true,
	"auth": true, "tls_pin": true, "insecure_plaintext": true, "insecure_plaintext_hosts": true,
	"oauth2": true, "max_connections": true, "mbox": true, "maildir": true, "mbox_variant": true,
	"download_budget": true,
}

// pipelineDirectives are what an smtp endpoint block accepts as its message
// pipeline (maddy's msgpipeline).
var pipelineDirectives = map[string]bool{
	"deliver_to": true, "check": true, "modify": true, "source_in": true, "source": true,
	"default_source": true, "dmarc": true, "reroute": true, "destination_in": true,
	"destination": true, "default_destination": true, "reject": true,
}

// enumValues are the words the account directives that take one of a few
// accept; docs/reference.md lists the same (TestDirectivesDocumented).
var enumValues = map[string][]string{
	"local_folders": {"inbox", "mirror"},
	"dedupe":        {"none", "message_id"},
	"keep_flags":    {"yes", "no", "default"},
	"first_sync":    {"all", "new"},
	"auth": {source.AuthAuto, source.AuthPlain, source.AuthLogin, source.AuthAPOP,
		source.AuthXOAUTH2, source.AuthOAuthBearer},
}

// blockDirectives stand only in the remote_pull block itself.
var blockDirectives = map[string]bool{"account": true, "max_parallel": true}

// Parse reads one remote_pull block. seen holds the account names of blocks
// parsed before, since names must be unique across all of them.
func Parse(block Node, globals map[string]interface{}, seen map[string]Node) (*Block, error) {
	b := &Block{}
	var defaults []Node
	var accounts []Node
	for _, n := range block.Children {
		switch {
		case n.Name == "account":
			accounts = append(accounts, n)
		case n.Name == "max_parallel":
			if len(n.Args) != 1 {
				return nil, maddycfg.NodeErr(n, "max_parallel takes one number")
			}
			if _, err := fmt.Sscanf(n.Args[0], "%d", &b.MaxParallel); err != nil || b.MaxParallel < 1 {
				return nil, maddycfg.NodeErr(n, "max_parallel must be a positive number, not %q", n.Args[0])
			}
		case accountDirectives[n.Name] || pipelineDirectives[n.Name]:
			defaults = append(defaults, n)
		default:
			return nil, unknownDirective(n)
		}
	}
	if len(accounts) == 0 {
		return nil, maddycfg.NodeErr(block, "remote_pull needs at least one 'account NAME { ... }' block")
	}
	for _, n := range accounts {
		if len(n.Args) != 1 || n.Args[0] == "" {
			return nil, maddycfg.NodeErr(n, "account takes exactly one name: account NAME { ... }")
		}
		name := n.Args[0]
		if strings.ContainsAny(name, "/ \t") {
			return nil, maddycfg.NodeErr(n, "account name %q must not contain '/' or spaces", name)
		}
		if prev, dup := seen[name]; dup {
			return nil, maddycfg.NodeErr(n, "duplicate account name %q (first defined at %s:%d)", name, prev.File, prev.Line)
		}
		seen[name] = n
		acc, err := parseAccount(name, n, defaults, globals)
		if err != nil {
			return nil, err
		}
		b.Accounts = append(b.Accounts, acc)
	}
	return b, nil
}

func unknownDirective(n Node) error {
	return maddycfg.NodeErr(n, "unknown directive %q in remote_pull (see docs/reference.md)", n.Name)
}

// merge gives an account the block's defaults it does not set itself.
func merge(own []Node, defaults []Node) []Node {
	has := make(map[string]bool)
	hasPipeline := false
	for _, n := range own {
		has[n.Name] = true
		hasPipeline = hasPipeline || pipelineDirectives[n.Name]
	}
	merged := append([]Node(nil), own...)
	for _, d := range defaults {
		if has[d.Name] || (pipelineDirectives[d.Name] && hasPipeline) {
			continue
		}
		merged = append(merged, d)
	}
	return merged
}

// Provider presets: endpoints and scopes of the providers that need
// OAuth2, so that an account names the provider, not its URLs.
var oauthProviders = map[string]OAuth2{
	"google": {
		AuthURL:  "https://accounts.google.com/o/oauth2/auth",
		TokenURL: "https://oauth2.googleapis.com/token",
		Scopes:   []string{"https://mail.google.com/"},
		// No DeviceURL: Google's device flow does not allow the mail scope.
	},
	"microsoft": microsoftEndpoints("common"),
}

// microsoftEndpoints are the Microsoft identity platform's endpoints of a
// tenant ("common", "organizations", a directory ID or a domain).
func microsoftEndpoints(tenant string) OAuth2 {
	base := "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/"
	return OAuth2{
		AuthURL:   base + "authorize",
		TokenURL:  base + "token",
		DeviceURL: base + "devicecode",
		Scopes: []string{"https://outlook.office.com/IMAP.AccessAsUser.All",
			"https://outlook.office.com/POP.AccessAsUser.All", "offline_access"},
	}
}

// microsoftAppScope is the scope of an app-only token for Exchange
// Online's IMAP and POP3: the permissions granted to the application
// (IMAP.AccessAsApp, POP.AccessAsApp).
const microsoftAppScope = "https://outlook.office365.com/.default"

// oauth2Block parses an account's oauth2 { provider ...; client_id ...; ... }.
func oauth2Block(name string, node Node) (*OAuth2, error) {
	fail := func(at Node, format string, args ...interface{}) error {
		return maddycfg.NodeErr(at, "account %s: oauth2: %s", name, fmt.Sprintf(format, args...))
	}
	o := &OAuth2{}
	var provider, tenant, secretFile, tokenFile string
	m := maddycfg.NewMap(nil, node)
	m.String("provider", false, false, "", &provider)
	m.String("tenant", false, false, "", &tenant)
	m.String("token_endpoint", false, false, "", &o.TokenURL)
	m.String("auth_endpoint", false, false, "", &o.AuthURL)
	m.String("device_endpoint", false, false, "", &o.DeviceURL)
	m.Bool("client_credentials", false, false, &o.ClientCredentials)
	m.StringList("scopes", false, false, nil, &o.Scopes)
	m.String("client_id", false, true, "", &o.ClientID)
	m.String("client_secret_file", false, false, "", &secretFile)
	m.String("token_file", false, false, "", &tokenFile)
	m.Int("redirect_port", false, false, 0, &o.RedirectPort)
	if _, err := m.Process(); err != nil {
		return nil, err
	}
	if provider != "" {
		p, ok := oauthProviders[provider]
		if !ok {
			return nil, fail(node, "unknown provider %q (google, microsoft, or give token_endpoint)", provider)
		}
		if tenant != "" {
			if provider != "microsoft" {
				return nil, fail(directiveNode(node, node.Children, "tenant"), "tenant is for provider microsoft")
			}
			if !validTenant(tenant) {
				return nil, fail(directiveNode(node, node.Children, "tenant"), "tenant %q is not a directory ID or domain", tenant)
			}
			p = microsoftEndpoints(tenant)
		}
		if o.ClientCredentials && provider == "microsoft" {
			p.Scopes = []string{microsoftAppScope}
		}
		o.Provider = provider
		o.AuthURL = cmp.Or(o.AuthURL, p.AuthURL)
		o.TokenURL = cmp.Or(o.TokenURL, p.TokenURL)
		o.DeviceURL = cmp.Or(o.DeviceURL, p.DeviceURL)
		if o.Scopes == nil {
			o.Scopes = p.Scopes
		}
	} else if tenant != "" {
		return nil, fail(directiveNode(node, node.Children, "tenant"), "tenant is for provider microsoft")
	}
	if o.TokenURL == "" {
		return nil, fail(node, "provider or token_endpoint is required")
	}
	if err := checkClientCredentials(o, provider, tenant, secretFile, tokenFile); err != "" {
		return nil, fail(directiveNode(node, node.Children, "client_credentials"), "%s", err)
	}
	// The token endpoint receives the refresh token and client secret; the
	// consent URL carries the grant: neither crosses a network in clear.
	for _, ep := range []struct{ name, url string }{{"token_endpoint", o.TokenURL}, {"auth_endpoint", o.AuthURL}, {"device_endpoint", o.DeviceURL}} {
		if ep.url == "" {
			continue
		}
		if err := httpsOrLoopback(ep.url); err != nil {
			return nil, fail(directiveNode(node, node.Children, ep.name), "%s: %v", ep.name, err)
		}
	}
	if secretFile != "" {
		if !filepath.IsAbs(secretFile) {
			secretFile = filepath.Join(maddycfg.StateDirectory, secretFile)
		}
		v, _, err := readSecretFile(secretFile)
		if err != nil {
			return nil, fail(node, "client_secret_file: %v", err)
		}
		o.ClientSecret = &Secret{value: v, file: secretFile}
	}
	if tokenFile != "" && !filepath.IsAbs(tokenFile) {
		tokenFile = filepath.Join(maddycfg.StateDirectory, tokenFile)
	}
	o.TokenFile = tokenFile
	return o, nil
}

// checkClientCredentials: app-only access needs the client's secret and,
// at Microsoft, a tenant of its own (the common endpoints issue no app-only
// tokens); it has no consent, so no token file.
func checkClientCredentials(o *OAuth2, provider, tenant, secretFile, tokenFile string) string {
	switch {
	case !o.ClientCredentials:
		return ""
	case provider == "google":
		return "client_credentials: Google offers no client-credentials grant for Gmail (use oauth2-login, or a password)"
	case secretFile == "":
		return "client_credentials needs client_secret_file"
	case provider == "microsoft" && (tenant == "" || tenant == "common" || tenant == "organizations" || tenant == "consumers"):
		return "client_credentials needs tenant: your directory (tenant) ID or domain, which issues app-only tokens"
	case tokenFile != "":
		return "client_credentials keeps no token file: drop token_file"
	}
	return ""
}

// validTenant: a tenant name goes into the endpoints' path, so it is a
// directory ID, a domain or one of Microsoft's aliases, nothing else.
func validTenant(s string) bool {
	if len(s) > 253 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return s != "" && s[0] != '.' && s[0] != '-'
}

// httpsOrLoopback accepts https:// URLs, and http:// only to a loopback
// host (a local test or proxy).
func httpsOrLoopback(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme == "https" && u.Host != "":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	case u.Scheme == "http":
		return fmt.Errorf("%s is http://: secrets would cross the network unencrypted; use https://", raw)
	}
	return fmt.Errorf("%q is not an https:// URL", raw)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// volatile directives change neither what becomes of a message nor who
// may log in with which secret: left out of ConfigHash (secrets too).
var volatile = map[string]bool{
	"password": true, "password_file": true, "password_command": true, "debug": true, "poll_interval": true, "idle": true, "timeout": true,
	"max_connections": true,
	"download_budget": true,
}

// hashTree digests directives and their blocks, at any depth leaving out
// those named in skip.
func hashTree(nodes []Node, skip map[string]bool) []byte {
	h := sha256.New()
	var walk func(ns []Node, depth int)
	walk = func(ns []Node, depth int) {
		for _, n := range ns {
			if skip[n.Name] {
				continue
			}
			fmt.Fprintf(h, "%d %q %q\n", depth, n.Name, n.Args)
			walk(n.Children, depth+1)
		}
	}
	walk(nodes, 0)
	return h.Sum(nil)
}

// directiveNode is the directive of that name among a block's (an
// account's own or an inherited default), else the block itself: where an
// error about it points.
func directiveNode(block Node, directives []Node, name string) Node {
	for _, n := range directives {
		if n.Name == name {
			return n
		}
	}
	return block
}

// readSecretFile returns the file's content without its trailing newline,
// and whether anyone but the owner may read it.
func readSecretFile(path string) (value string, loose bool, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false, fmt.Errorf("cannot read password file: %v", err)
	}
	v := strings.TrimRight(string(b), "\r\n")
	if v == "" {
		return "", false, fmt.Errorf("password file %s is empty", path)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		loose = true
	}
	return v, loose, nil
}

// buildPipeline turns the account's pipeline directives into an inline
// maddy msgpipeline, exactly as an smtp block's directives become one.
func buildPipeline(acc Node, nodes []Node, globals map[string]interface{}, hostname string) (module.DeliveryTarget, error) {
	inline := Node{Name: "msgpipeline", Args: []string{"msgpipeline"}, Children: nodes, File: acc.File, Line: acc.Line}
	var target module.DeliveryTarget
	if err := modconfig.ModuleFromNode("target", inline.Args, inline, globals, &target); err != nil {
		return nil, err
	}
	fixPipelineHostname(target, hostname)
	return target, nil
}

// fixPipelineHostname works around maddy's msgpipeline module, which reads
// the hostname directive but never stores it (0.8.2 and 0.9), leaving its
// Authentication-Results fields with an empty authserv-id. The field is
// exported and promoted from the embedded *MsgPipeline.
func fixPipelineHostname(target module.DeliveryTarget, hostname string) {
	v := reflect.ValueOf(target)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return
	}
	sf, ok := v.Elem().Type().FieldByName("Hostname")
	if !ok {
		return
	}
	f, err := v.Elem().FieldByIndexErr(sf.Index)
	if err == nil && f.CanSet() && f.Kind() == reflect.String && f.String() == "" {
		f.SetString(hostname)
	}
}
