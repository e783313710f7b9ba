package integration

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"os"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// pinOf is the tls_pin of Dovecot's certificate.
func pinOf(t *testing.T, up *harness.Dovecot) string {
	t.Helper()
	pemBytes, err := os.ReadFile(up.CA.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(pemBytes)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return "sha256/" + base64.StdEncoding.EncodeToString(sum[:])
}

// tls_pin: the right pin connects; a wrong one is refused before login,
// although the certificate verifies.
func TestTLSPin(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 700))
	good := startMaddy(t, up, accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile, Keep: true,
		Extra: "        tls_pin " + pinOf(t, up) + "\n"}.String())
	good.local(t, 1)

	up2 := newUpstream(t)
	up2.Seed(t, upUser, "INBOX", harness.Message(1, 700))
	wrong := "sha256/" + base64.StdEncoding.EncodeToString(make([]byte, 32))
	bad := startMaddy(t, up2, accountConf{Addr: "tcp://localhost:" + port(up2.IMAPAddr), CAFile: up2.CA.CAFile,
		Extra: "        tls_pin " + wrong + "\n"}.String())
	bad.maddy.WaitLog(t, "matches no configured pin", waitLong)
	if n := up2.LoginCount(upUser); n != 0 {
		t.Fatalf("%d logins past a wrong pin", n)
	}
}

// insecure_plaintext on loopback works against a server without TLS and is
// warned about at start.
func TestInsecurePlaintext(t *testing.T) {
	up := newUpstream(t, "ssl = no")
	up.Seed(t, upUser, "INBOX", harness.Message(1, 700))
	r := startMaddy(t, up, accountConf{Addr: "tcp://127.0.0.1:" + port(up.IMAPAddr), CAFile: up.CA.CAFile,
		Extra: "        insecure_plaintext yes\n"}.String())
	r.local(t, 1)
	if !strings.Contains(r.maddy.Log(), "unencrypted") {
		t.Fatal("no warning about plaintext at start")
	}
}

// auto falls back to LOGIN where AUTH=PLAIN is not offered; auth plain is
// then refused before any password is sent; APOP works over POP3.
func TestAuthMechanisms(t *testing.T) {
	up := newUpstream(t, "auth_mechanisms = login apop")
	up.Seed(t, upUser, "INBOX", harness.Message(1, 700))
	addr := "tls://localhost:" + port(up.IMAPSAddr)
	conf := "remote_pull {\n" +
		accountConf{Name: "auto", Addr: addr, CAFile: up.CA.CAFile, Keep: true, NoBlock: true}.String() +
		accountConf{Name: "plain", Addr: addr, CAFile: up.CA.CAFile, Keep: true, NoBlock: true, Extra: "        auth plain\n"}.String() +
		accountConf{Name: "apop", Proto: "pop3", Addr: "tls://localhost:" + port(up.POP3SAddr), CAFile: up.CA.CAFile, Keep: true, NoBlock: true,
			RcptTo: "bob@example.org", Extra: "        auth apop\n"}.String() +
		"}\n"
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass, "bob@example.org": "bob-pass"},
		Extra: conf,
		Files: map[string]string{"upstream-password": upPass + "\n"},
	})
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)
	m.WaitMessages(t, "bob@example.org", "bob-pass", "INBOX", 1, waitLong)
	m.WaitLog(t, "auth plain: the server does not offer AUTH=PLAIN", waitLong)
	if !strings.Contains(up.Log(), "method=APOP") {
		t.Errorf("no APOP login in Dovecot's log")
	}
}

// With debug on everywhere, no password reaches the log, in plain or in
// its SASL base64 forms.
func TestNoSecretsInDebugLog(t *testing.T) {
	up := newUpstream(t)
	up.Seed(t, upUser, "INBOX", harness.Message(1, 700))
	// Both accounts read one mailbox: keep yes on both, or whichever polls
	// first would take the message from the other.
	m := harness.StartMaddy(t, harness.BuildMaddy(t), harness.MaddyOptions{
		Users: map[string]string{localUser: localPass},
		Debug: true,
		Extra: "remote_pull {\n    debug yes\n" + accountConf{Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile,
			Keep: true, Debug: true, NoBlock: true}.String() + accountConf{Name: "pop", Proto: "pop3", Addr: "tcp://localhost:" + port(up.POP3Addr),
			CAFile: up.CA.CAFile, Keep: true, Debug: true, NoBlock: true}.String() + "}\n",
		Files: map[string]string{"upstream-password": upPass + "\n"},
	})
	m.WaitMessages(t, localUser, localPass, "INBOX", 1, waitLong)
	m.WaitLog(t, "github.com/remote-pull/remote_pull/pop: incoming message", waitLong)
	m.Signal(t, 12) // SIGUSR2: the reload path logs too
	m.WaitLog(t, "reloaded password files", waitLong)
	log := m.Log()
	if !strings.Contains(log, "[debug]") {
		t.Fatal("debug logging is not on; the test proves nothing")
	}
	for _, secret := range []string{
		upPass,
		base64.StdEncoding.EncodeToString([]byte("\x00" + upUser + "\x00" + upPass)),
		base64.StdEncoding.EncodeToString([]byte(upUser + "\x00" + upUser + "\x00" + upPass)),
		base64.StdEncoding.EncodeToString([]byte(upPass)),
	} {
		if strings.Contains(log, secret) {
			t.Fatalf("secret %q in the log", secret)
		}
	}
}
