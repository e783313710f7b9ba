package integration

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
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
)

// tokenServer is an OAuth2 token endpoint that rotates refresh tokens and
// can revoke them. Dovecot cannot check OAuth2 tokens without more
// infrastructure, so the upstream here is go-imap's in-memory server (see
// oauthUpstream), which asks this server whether an access token is valid.
type tokenServer struct {
	mu        sync.Mutex
	refresh   string // the one valid refresh token
	access    string // the one valid access token
	n         int
	refreshes int
	revoked   bool
	srv       *httptest.Server
}

func newTokenServer(t *testing.T, refresh string) *tokenServer {
	ts := &tokenServer{refresh: refresh}
	ts.srv = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.srv.Close)
	return ts
}

func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	ts.mu.Lock()
	defer ts.mu.Unlock()
	fail := func() {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Token has been expired or revoked."}`)
	}
	switch r.Form.Get("grant_type") {
	case "refresh_token":
		ts.refreshes++
		if ts.revoked || r.Form.Get("refresh_token") != ts.refresh {
			fail()
			return
		}
	case "authorization_code":
		if r.Form.Get("code") != "consent-code" || r.Form.Get("code_verifier") == "" {
			fail()
			return
		}
		ts.revoked = false
	default:
		fail()
		return
	}
	ts.n++
	ts.access = fmt.Sprintf("access-%d", ts.n)
	ts.refresh = fmt.Sprintf("refresh-%d", ts.n)
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"access_token": ts.access, "refresh_token": ts.refresh, "token_type": "Bearer", "expires_in": 3600,
	})
}

func (ts *tokenServer) valid(token string) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return !ts.revoked && token == ts.access
}

// invalidate makes the server refuse the current access token, as a
// provider does when it rotates keys early.
func (ts *tokenServer) invalidate() {
	ts.mu.Lock()
	ts.access = "nobody-has-this"
	ts.mu.Unlock()
}

func (ts *tokenServer) revoke() {
	ts.mu.Lock()
	ts.revoked = true
	ts.mu.Unlock()
}

func (ts *tokenServer) refreshCount() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.refreshes
}

// oauthUpstream is an IMAPS server that accepts XOAUTH2 and OAUTHBEARER
// with the token server's current access token, and no password.
type oauthUpstream struct {
	addr   string
	user   *imapmemserver.User
	logins int
	mu     sync.Mutex
}

func newOAuthUpstream(t *testing.T, ca *harness.CA, ts *tokenServer) *oauthUpstream {
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
	ts *tokenServer
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
		if user != "alice@provider.example" || !s.ts.valid(token) {
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
	ts := newTokenServer(t, "refresh-0")
	up := newOAuthUpstream(t, ca, ts)
	up.add(t, harness.Message(1, 800))
	_, upPort, _ := net.SplitHostPort(up.addr)
	conf := fmt.Sprintf(`remote_pull {
    account oa {
        imap tls://localhost:%s
        username alice@provider.example
        auth %s
        oauth2 {
            token_endpoint %s/token
            auth_endpoint %s/auth
            client_id test-client
            token_file oa.token
        }
        rcpt_to %s
        keep yes
        poll_interval 1s
        idle no
        tls_client {
            root_ca %s
        }
        deliver_to &local_routing
    }
}
`, upPort, mech, ts.srv.URL, ts.srv.URL, localUser, ca.CAFile)
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Extra: conf,
		Files: map[string]string{"oa.token": `{"access_token":"stale","refresh_token":"refresh-0","expiry":"2000-01-01T00:00:00Z"}`},
	})
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
	ts.invalidate()
	up.add(t, harness.Message(2, 800))
	m.WaitMessages(t, localUser, localPass, "INBOX", 2, waitLong)
	if b, _ := os.ReadFile(tokenFile); !strings.Contains(string(b), `"refresh_token": "refresh-2"`) {
		t.Fatalf("second rotation not saved:\n%s", b)
	}

	// 3. Consent revoked: re-consent needed, visible, and no storm.
	ts.revoke()
	ts.invalidate()
	m.WaitLog(t, "re-consent needed", waitLong)
	refreshes := ts.refreshCount()
	time.Sleep(3 * time.Second) // poll_interval is 1s: a storm would show
	if n := ts.refreshCount(); n != refreshes {
		t.Fatalf("%d more refresh attempts after a refused refresh", n-refreshes)
	}
	out := m.CLI(t, "remote-pull", "status", "--json")
	if !strings.Contains(out, `"state": "re-consent needed"`) {
		t.Fatalf("status:\n%s", out)
	}

	// 4. A new consent (the code pasted) and a reload: fetching resumes.
	cmdOut, code := m.CLIInput(t, "consent-code\n", "remote-pull", "oauth2-login", "oa")
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
