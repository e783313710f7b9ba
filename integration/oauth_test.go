package integration

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"

	"github.com/remote-pull/remote_pull/integration/harness"
	"github.com/remote-pull/remote_pull/internal/testlib/idp"
	"github.com/remote-pull/remote_pull/internal/testlib/provider"
)

// oauthUpstream is an IMAPS server that accepts XOAUTH2 and OAUTHBEARER
// with the identity provider's current access token, and no password.
type oauthUpstream struct {
	addr   string
	user   *imapmemserver.User
	logins int
	mu     sync.Mutex
}

func newOAuthUpstream(t *testing.T, ca *harness.CA, ts *idp.Provider) *oauthUpstream {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(ca.CertFile, ca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	up := &oauthUpstream{addr: ln.Addr().String(), user: imapmemserver.NewUser("alice@provider.example", "no-password-works")}
	if err := up.user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &oauthSession{up: up, ts: ts}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		InsecureAuth: true, // the listener is TLS already
	})
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return up
}

func (up *oauthUpstream) add(t *testing.T, msg []byte) {
	t.Helper()
	if _, err := up.user.Append("INBOX", literal{bytes.NewReader(msg), int64(len(msg))}, &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

type literal struct {
	*bytes.Reader
	n int64
}

func (l literal) Size() int64 { return l.n }

type oauthSession struct {
	*imapmemserver.UserSession
	up *oauthUpstream
	ts *idp.Provider
}

func (s *oauthSession) Close() error {
	if s.UserSession != nil {
		return s.UserSession.Close()
	}
	return nil
}

func (s *oauthSession) Login(string, string) error { return imapserver.ErrAuthFailed }

func (s *oauthSession) AuthenticateMechanisms() []string { return []string{"XOAUTH2", "OAUTHBEARER"} }

func (s *oauthSession) Authenticate(mech string) (sasl.Server, error) {
	accept := func(user, token string) error {
		if user != "alice@provider.example" || !s.ts.Valid(token) {
			return imapserver.ErrAuthFailed
		}
		s.up.mu.Lock()
		s.up.logins++
		s.up.mu.Unlock()
		s.UserSession = imapmemserver.NewUserSession(s.up.user)
		return nil
	}
	if mech == "OAUTHBEARER" {
		return sasl.NewOAuthBearerServer(func(o sasl.OAuthBearerOptions) *sasl.OAuthBearerError {
			if accept(o.Username, o.Token) != nil {
				return &sasl.OAuthBearerError{Status: "invalid_token", Schemes: "bearer"}
			}
			return nil
		}), nil
	}
	return xoauth2Server(accept), nil
}

// xoauth2Server checks "user=U^Aauth=Bearer T^A^A".
type xoauth2Server func(user, token string) error

func (f xoauth2Server) Next(resp []byte) ([]byte, bool, error) {
	parts := strings.Split(string(resp), "\x01")
	var user, token string
	for _, p := range parts {
		if v, ok := strings.CutPrefix(p, "user="); ok {
			user = v
		}
		if v, ok := strings.CutPrefix(p, "auth=Bearer "); ok {
			token = v
		}
	}
	if err := f(user, token); err != nil {
		return nil, true, err
	}
	return nil, true, nil
}

func (up *oauthUpstream) loginCount() int {
	up.mu.Lock()
	defer up.mu.Unlock()
	return up.logins
}

// oauthConf is the remote_pull block of an OAuth2 test: one account that
// fetches from Upstream ("imap tls://localhost:PORT") as User, logs in with
// Auth and the OAuth2 block's directives, delivers to localUser and polls
// every second without IDLE. Extra are more account directives; CAFile is
// the upstream's CA (none: no tls_client).
type oauthConf struct {
	Name, Upstream, User, Auth string
	OAuth2, Extra              []string
	CAFile                     string
}

func (c oauthConf) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "remote_pull {\n    account %s {\n        %s\n", c.Name, c.Upstream)
	fmt.Fprintf(&b, "        username %s\n        auth %s\n        oauth2 {\n", c.User, c.Auth)
	for _, d := range c.OAuth2 {
		fmt.Fprintf(&b, "            %s\n", d)
	}
	fmt.Fprintf(&b, "        }\n        rcpt_to %s\n", localUser)
	for _, d := range c.Extra {
		fmt.Fprintf(&b, "        %s\n", d)
	}
	b.WriteString("        poll_interval 1s\n        idle no\n")
	if c.CAFile != "" {
		fmt.Fprintf(&b, "        tls_client {\n            root_ca %s\n        }\n", c.CAFile)
	}
	b.WriteString("        deliver_to &local_routing\n    }\n}\n")
	return b.String()
}

// appOnlyOAuth2 is the oauth2 block of an app-only account (client
// credentials) at ts, its client secret in the file appOnlyFiles writes.
func appOnlyOAuth2(ts *idp.Provider) []string {
	return []string{"token_endpoint " + ts.URL + "/token", "client_id " + ts.ClientID,
		"client_secret_file app.secret", "scopes " + idp.AppScope, "client_credentials"}
}

func appOnlyFiles(ts *idp.Provider) map[string]string {
	return map[string]string{"app.secret": ts.Secret + "\n"}
}

// startOAuth starts maddy with conf's account and files in its state
// directory.
func startOAuth(t *testing.T, conf oauthConf, files map[string]string) *harness.Maddy {
	t.Helper()
	return harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Extra: conf.String(),
		Files: files,
	})
}

// OAuth2 end to end: refresh at start with rotation saved to disk, refresh
// after the server refuses the token, revocation leading to the visible
// "re-consent needed" state without a retry storm, and a new consent with
// oauth2-login followed by a reload.
func TestOAuth2(t *testing.T) {
	for _, mech := range []string{"xoauth2", "oauthbearer"} {
		t.Run(mech, func(t *testing.T) { testOAuth2(t, mech) })
	}
}

func testOAuth2(t *testing.T, mech string) {
	ca := harness.NewCA(t)
	ts := idp.StartPlain(t)
	ts.Refresh = "refresh-0"
	up := newOAuthUpstream(t, ca, ts)
	up.add(t, harness.Message(1, 800))
	_, upPort, _ := net.SplitHostPort(up.addr)
	m := startOAuth(t, oauthConf{Name: "oa", Upstream: "imap tls://localhost:" + upPort, User: "alice@provider.example", Auth: mech,
		OAuth2: []string{"token_endpoint " + ts.URL + "/token", "auth_endpoint " + ts.URL + "/auth", "client_id test-client", "token_file oa.token"},
		Extra:  []string{"keep yes"}, CAFile: ca.CAFile},
		map[string]string{"oa.token": `{"access_token":"stale","refresh_token":"refresh-0","expiry":"2000-01-01T00:00:00Z"}`})
	tokenFile := filepath.Join(m.StateDir, "oa.token")

	// 1. The stale access token is refreshed; the rotated refresh token is
	// on disk, mode 0600.
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)
	b, _ := os.ReadFile(tokenFile)
	if !strings.Contains(string(b), `"refresh_token": "refresh-1"`) {
		t.Fatalf("rotated refresh token not saved:\n%s", b)
	}
	if fi, _ := os.Stat(tokenFile); fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file mode %v", fi.Mode().Perm())
	}

	// 2. The server refuses the current access token: one refresh, and on.
	ts.Invalidate()
	up.add(t, harness.Message(2, 800))
	m.WaitMessages(t, localUser, localPass, "INBOX", 2, waitLong)
	if b, _ := os.ReadFile(tokenFile); !strings.Contains(string(b), `"refresh_token": "refresh-2"`) {
		t.Fatalf("second rotation not saved:\n%s", b)
	}

	// 3. Consent revoked: re-consent needed, visible, and no storm.
	ts.Revoke()
	ts.Invalidate()
	m.WaitLog(t, "re-consent needed", waitLong)
	refreshes := ts.RefreshCount()
	time.Sleep(3 * time.Second) // poll_interval is 1s: a storm would show
	if n := ts.RefreshCount(); n != refreshes {
		t.Fatalf("%d more refresh attempts after a refused refresh", n-refreshes)
	}
	out := m.CLI(t, "remote-pull", "status", "--json")
	if !strings.Contains(out, `"state": "re-consent needed"`) {
		t.Fatalf("status:\n%s", out)
	}

	// 4. A new consent (the code pasted) and a reload: fetching resumes.
	cmdOut, code := m.CLIInput(t, idp.ConsentCode+"\n", "remote-pull", "oauth2-login", "oa")
	if code != 0 || !strings.Contains(cmdOut, "Token saved to "+tokenFile) {
		t.Fatalf("oauth2-login:\n%s", cmdOut)
	}
	up.add(t, harness.Message(3, 800))
	m.Signal(t, syscall.SIGUSR2)
	m.WaitMessages(t, localUser, localPass, "INBOX", 3, waitLong)

	for _, secret := range []string{"refresh-1", "refresh-2", "refresh-3", "access-1", "access-2", "access-3"} {
		if strings.Contains(m.Log(), secret) || strings.Contains(out, secret) {
			t.Fatalf("token %q in the log or status", secret)
		}
	}
	if up.loginCount() < 3 {
		t.Fatalf("only %d OAuth logins upstream", up.loginCount())
	}
}

// App-only access (client credentials) end to end: maddy asks for the
// token itself, logs in with XOAUTH2 as the mailbox's address, keeps the
// token across polls, asks for a new one when the server refuses it, and
// a refused grant is the visible state that waits for the admin (not
// "auth failed", no storm); the secret is in neither log nor status. After
// the admin fixed it, a reload resumes fetching.
func TestOAuth2AppOnly(t *testing.T) {
	ca := harness.NewCA(t)
	ts := idp.StartPlain(t)
	up := newOAuthUpstream(t, ca, ts)
	up.add(t, harness.Message(1, 800))
	_, upPort, _ := net.SplitHostPort(up.addr)
	m := startOAuth(t, oauthConf{Name: "shared", Upstream: "imap tls://localhost:" + upPort, User: "alice@provider.example", Auth: "xoauth2",
		OAuth2: appOnlyOAuth2(ts), Extra: []string{"keep yes"}, CAFile: ca.CAFile}, appOnlyFiles(ts))

	// 1. The token is asked for and used; polls every second reuse it.
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)
	time.Sleep(3 * time.Second)
	if n := ts.RequestCount(); n != 1 {
		t.Fatalf("%d token requests for %d logins, want 1 (the token is kept)", n, up.loginCount())
	}
	if up.loginCount() < 2 {
		t.Fatalf("only %d logins in 3 s with poll_interval 1s", up.loginCount())
	}

	// 2. The server refuses the token: a new one, and on.
	ts.Invalidate()
	up.add(t, harness.Message(2, 800))
	m.WaitMessages(t, localUser, localPass, "INBOX", 2, waitLong)
	if n := ts.RequestCount(); n != 2 {
		t.Fatalf("%d token requests after one refusal, want 2", n)
	}

	// 3. The grant refused (the secret revoked in the tenant): the admin's
	// state, said as such, and no storm of token requests.
	ts.Revoke()
	ts.Invalidate()
	m.WaitLog(t, "client credentials refused", waitLong)
	requests := ts.RequestCount()
	time.Sleep(3 * time.Second)
	if n := ts.RequestCount(); n != requests {
		t.Fatalf("%d more token requests after a refused grant", n-requests)
	}
	out := m.CLI(t, "remote-pull", "status", "--json")
	if !strings.Contains(out, `"state": "re-consent needed"`) || !strings.Contains(out, "client credentials refused") {
		t.Fatalf("status:\n%s", out)
	}
	if _, code := m.CLIStatus(t, "remote-pull", "oauth2-login", "shared"); code == 0 {
		t.Fatal("oauth2-login accepted an app-only account")
	}

	// 4. Fixed at the provider, and a reload: fetching resumes.
	ts.Lock()
	ts.Revoked = false
	ts.Unlock()
	up.add(t, harness.Message(3, 800))
	m.Signal(t, syscall.SIGUSR2)
	m.WaitMessages(t, localUser, localPass, "INBOX", 3, waitLong)
	if strings.Contains(m.Log(), ts.Secret) || strings.Contains(out, ts.Secret) {
		t.Fatal("the client secret is in the log or status")
	}
	for _, tok := range []string{"app-1", "app-2", "app-3"} {
		if strings.Contains(m.Log(), tok) || strings.Contains(out, tok) {
			t.Fatalf("token %q in the log or status", tok)
		}
	}
}

// oauth2-login --device end to end: the built command prints the code and
// address (and none of the provider's own text), waits through
// authorization_pending, writes the token file 0600; a reload fetches.
func TestOAuth2Device(t *testing.T) {
	ca := harness.NewCA(t)
	ts := idp.StartPlain(t)
	ts.Revoke()
	ts.Script = []string{"authorization_pending", ""} // one wait, then the consent
	ts.DeviceCode["interval"] = 1
	up := newOAuthUpstream(t, ca, ts)
	up.add(t, harness.Message(1, 800))
	_, upPort, _ := net.SplitHostPort(up.addr)
	m := startOAuth(t, oauthConf{Name: "dev", Upstream: "imap tls://localhost:" + upPort, User: "alice@provider.example", Auth: "xoauth2",
		OAuth2: []string{"token_endpoint " + ts.URL + "/token", "device_endpoint " + ts.URL + "/devicecode", "client_id cid"},
		CAFile: ca.CAFile}, nil)
	m.WaitLog(t, "re-consent needed", waitLong)

	cmdOut, code := m.CLIInput(t, "", "remote-pull", "oauth2-login", "dev", "--device")
	tokenFile := filepath.Join(m.StateDir, "remote_pull", "dev.token")
	if code != 0 || !strings.Contains(cmdOut, "https://microsoft.com/devicelogin") || !strings.Contains(cmdOut, "ABCD-EFGH") ||
		!strings.Contains(cmdOut, "Token saved to "+tokenFile) {
		t.Fatalf("oauth2-login --device (exit %d):\n%s", code, cmdOut)
	}
	if strings.ContainsAny(cmdOut, "\x1b\x07") || strings.Contains(cmdOut, "pwned") {
		t.Fatalf("the provider's text printed:\n%q", cmdOut)
	}
	if fi, err := os.Stat(tokenFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file: %v %v", err, fi)
	}
	m.Signal(t, syscall.SIGUSR2)
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)
}

// newOAuthDovecot is Dovecot taking XOAUTH2 and OAUTHBEARER for upUser: its
// oauth2 passdb asks the token server's introspection endpoint whether a
// token is valid, so that a real server checks what remote_pull sends.
func newOAuthDovecot(t *testing.T, ts *idp.Provider) *harness.Dovecot {
	t.Helper()
	ts.Lock()
	ts.Username = upUser
	ts.Unlock()
	dir := t.TempDir()
	os.Chmod(dir, 0o755) // read by Dovecot's auth process
	conf := filepath.Join(dir, "dovecot-oauth2.conf.ext")
	err := os.WriteFile(conf, []byte("introspection_mode = post\n"+
		"introspection_url = "+ts.URL+"/introspect\n"+
		"force_introspection = yes\n"+
		"username_attribute = username\n"+
		"active_attribute = active\n"+
		"active_value = true\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	up := harness.StartDovecot(t, harness.DovecotOptions{Extra: []string{
		"auth_mechanisms = plain login xoauth2 oauthbearer",
		"passdb {",
		"  driver = oauth2",
		"  mechanisms = xoauth2 oauthbearer",
		"  args = " + conf,
		"}",
	}})
	up.AddUser(t, upUser, upPass)
	return up
}

// App-only access against Dovecot, IMAP and POP3: the token maddy got with
// the client's secret is what Dovecot checks at the token server, for the
// mailbox named by username; it is kept across polls.
func TestOAuth2AppOnlyDovecot(t *testing.T) {
	for _, proto := range []string{"imap", "pop3"} {
		t.Run(proto, func(t *testing.T) { testOAuth2AppOnlyDovecot(t, proto) })
	}
}

func testOAuth2AppOnlyDovecot(t *testing.T, proto string) {
	ts := idp.StartPlain(t)
	up := newOAuthDovecot(t, ts)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 800))
	addr := up.IMAPSAddr
	if proto == "pop3" {
		addr = up.POP3SAddr
	}
	m := startOAuth(t, oauthConf{Name: "shared", Upstream: proto + " tls://localhost:" + port(addr), User: upUser, Auth: "xoauth2",
		OAuth2: appOnlyOAuth2(ts), CAFile: up.CA.CAFile}, appOnlyFiles(ts))
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)
	up.Seed(t, upUser, "INBOX", harness.Message(2, 800))
	m.WaitMessages(t, localUser, localPass, "INBOX", 2, waitLong)
	if n := up.LoginCount(upUser); n < 2 {
		t.Fatalf("%d logins at Dovecot", n)
	}
	if n := ts.RequestCount(); n != 1 {
		t.Fatalf("%d token requests, want 1 (the token is kept)", n)
	}
	if !strings.Contains(up.Log(), "method=XOAUTH2") {
		t.Fatalf("Dovecot saw no XOAUTH2 login:\n%s", up.Log())
	}

	// Dovecot refuses the token it took before (XOAUTH2's failure is a
	// challenge, not a NO): a new token, and on; not "auth failed".
	ts.Invalidate()
	up.Seed(t, upUser, "INBOX", harness.Message(3, 800))
	m.WaitMessages(t, localUser, localPass, "INBOX", 3, waitLong)
	if n := ts.RequestCount(); n != 2 {
		t.Fatalf("%d token requests after Dovecot refused the token, want 2", n)
	}
	if strings.Contains(m.Log(), "auth failed") {
		t.Fatalf("a refused token was taken for a refused login:\n%s", m.Log())
	}
}

// App-only access against the Microsoft double (XOAUTH2 only, as Exchange
// Online): the built maddy logs in as the mailbox's address with the token
// from the token server. The double takes only the second token issued, so
// the first login is refused and maddy asks for a new token, once.
func TestOAuth2AppOnlyMicrosoftDouble(t *testing.T) {
	const mailbox = "shared@contoso.example"
	ts := idp.StartPlain(t)
	up := provider.Start(t, provider.Config{Kind: provider.Microsoft, User: mailbox, Token: "app-2"})
	up.Append(harness.Message(1, 800), time.Date(2024, 1, 2, 10, 0, 0, 0, time.UTC), nil)
	m := startOAuth(t, oauthConf{Name: "shared", Upstream: "imap tcp://127.0.0.1:" + port(up.Addr()), User: mailbox, Auth: "xoauth2",
		OAuth2: appOnlyOAuth2(ts), Extra: []string{"insecure_plaintext yes"}}, appOnlyFiles(ts))
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)
	if n := ts.RequestCount(); n != 2 {
		t.Fatalf("%d token requests, want 2 (one after the double refused the first)", n)
	}
	if strings.Contains(m.Log(), "auth failed") {
		t.Fatalf("a refused token was taken for a refused login:\n%s", m.Log())
	}
}
