package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/foxcpp/maddy" // registers msgpipeline and the other stock modules
	parser "github.com/foxcpp/maddy/framework/cfgparser"
	maddycfg "github.com/foxcpp/maddy/framework/config"
	"github.com/foxcpp/maddy/framework/module"

	"github.com/remote-pull/remote_pull/internal/source"
)

var globals = map[string]interface{}{"hostname": "mx.example.org"}

// parse reads text as maddy.conf and parses its first remote_pull block.
func parse(t *testing.T, text string) (*Block, error) {
	t.Helper()
	nodes, err := parser.Read(strings.NewReader(text), "test.conf")
	if err != nil {
		t.Fatalf("cfgparser: %v", err)
	}
	seen := map[string]Node{}
	var last *Block
	for _, n := range nodes {
		if n.Name != "remote_pull" {
			continue
		}
		b, err := Parse(n, globals, seen)
		if err != nil {
			return nil, err
		}
		last = b
	}
	return last, nil
}

func TestParseAccount(t *testing.T) {
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := parse(t, `
remote_pull {
    poll_interval 1m
    keep no
    reject 550 5.7.1 "default pipeline"
    max_parallel 3
    account gmail {
        imap tls://imap.gmail.com:993
        username alice@gmail.com
        password_file `+pwFile+`
        rcpt_to alice@EXAMPLE.org bob@example.org
        keep yes
        folders INBOX "Archive 2024"
    }
    account isp {
        imap tcp://mail.isp.example
        username bob
        password inline-secret
        rcpt_to bob@example.org
        timeout 10m
    }
}`)
	if err != nil {
		t.Fatal(err)
	}
	if b.MaxParallel != 3 || len(b.Accounts) != 2 {
		t.Fatalf("block = %+v", b)
	}
	g := b.Accounts[0]
	if g.Name != "gmail" || g.Protocol != source.IMAP || g.Host != "imap.gmail.com" || g.Port != "993" || !g.ImplicitTLS {
		t.Errorf("gmail endpoint = %+v", g)
	}
	if g.Secret.Value() != "s3cret" {
		t.Errorf("password from file = %q, want trailing newline stripped", g.Secret.Value())
	}
	if len(g.Warnings) != 1 || !strings.Contains(g.Warnings[0], "readable by group or others") {
		t.Errorf("a 0640 password file gives warnings %q", g.Warnings)
	}
	if !g.Idle {
		t.Error("idle should default to yes")
	}
	if !g.Keep {
		t.Error("account's own keep yes must win over the block default")
	}
	if g.PollInterval != time.Minute {
		t.Errorf("poll_interval = %v, want the block default 1m", g.PollInterval)
	}
	if strings.Join(g.Rcpts, ",") != "alice@example.org,bob@example.org" {
		t.Errorf("rcpt_to = %v", g.Rcpts)
	}
	if strings.Join(g.Folders, "|") != "INBOX|Archive 2024" {
		t.Errorf("folders = %q", g.Folders)
	}
	if g.Pipeline == nil || g.Hostname != "mx.example.org" {
		t.Errorf("pipeline %v, hostname %q", g.Pipeline, g.Hostname)
	}

	i := b.Accounts[1]
	if i.ImplicitTLS || i.Port != "143" {
		t.Errorf("tcp:// without port: implicit TLS %v, port %q; want STARTTLS on 143", i.ImplicitTLS, i.Port)
	}
	if i.Keep {
		t.Error("keep no from the block default not inherited")
	}
	if i.Secret.Value() != "inline-secret" || strings.Contains(fmt.Sprint(i.Secret), "inline") || len(i.Warnings) != 0 {
		t.Error("inline password: wrong value, or String shows it")
	}
	if strings.Join(i.Folders, ",") != "INBOX" {
		t.Errorf("default folders = %v", i.Folders)
	}
	if g.Timeout != 2*time.Minute || i.Timeout != 10*time.Minute {
		t.Errorf("timeout: default %v (want 2m), set %v (want 10m)", g.Timeout, i.Timeout)
	}
}

func TestParseDefaults(t *testing.T) {
	b, err := parse(t, `
remote_pull {
    account a {
        imap tls://h:993
        username u
        password p
        rcpt_to a@example.org
        reject
    }
}`)
	if err != nil {
		t.Fatal(err)
	}
	a := b.Accounts[0]
	if !a.Keep || a.PollInterval != 5*time.Minute || a.Debug {
		t.Errorf("defaults: keep %v, poll_interval %v, debug %v", a.Keep, a.PollInterval, a.Debug)
	}
}

func TestParseErrors(t *testing.T) {
	account := func(body string) string {
		return "remote_pull {\n    account a {\n" + body + "\n    }\n}\n"
	}
	const base = `        imap tls://h:993
        username u
        password p
        rcpt_to a@example.org
        reject
`
	tests := []struct {
		name, conf, want string
	}{
		{"unknown directive in account", account(base + "        usernmae x"), `test.conf:8: account a: unknown directive "usernmae"`},
		{"unknown directive in block", "remote_pull {\n    frobnicate yes\n    account a {\n" + base + "    }\n}", `test.conf:2: unknown directive "frobnicate"`},
		{"no accounts", "remote_pull {\n    keep yes\n}", "test.conf:1: remote_pull needs at least one"},
		{"missing protocol", account("        username u\n        password p\n        rcpt_to a@example.org\n        reject"), "test.conf:2: account a: no upstream"},
		{"both protocols", account(base + "        pop3 tls://h:995"), "either imap or pop3"},
		{"bad scheme", account("        imap imaps://h:993\n        username u\n        password p\n        rcpt_to a@example.org\n        reject"), "test.conf:3: account a: invalid address"},
		{"missing rcpt_to", account("        imap tls://h:993\n        username u\n        password p\n        reject"), "test.conf:2: account a: rcpt_to is required"},
		{"invalid rcpt_to", account("        imap tls://h:993\n        username u\n        password p\n        rcpt_to not-an-address\n        reject"), "test.conf:6: account a: rcpt_to: invalid address"},
		{"missing username", account("        imap tls://h:993\n        password p\n        rcpt_to a@example.org\n        reject"), "username is required"},
		{"missing password", account("        imap tls://h:993\n        username u\n        rcpt_to a@example.org\n        reject"), "password, password_file or password_command is required"},
		{"password_command without a command", account("        imap tls://h:993\n        username u\n        password_command\n        rcpt_to a@example.org\n        reject"), "test.conf:5: expected at least one argument"},
		{"password_command not found", account("        imap tls://h:993\n        username u\n        password_command remote-pull-no-such-command --get\n        rcpt_to a@example.org\n        reject"), `test.conf:5: account a: password_command: exec: "remote-pull-no-such-command": executable file not found`},
		{"password_command and password", account(base + "        password_command echo x"), "test.conf:8: account a: use one of password, password_file and password_command, not several"},
		{"unreadable password file", account("        imap tls://h:993\n        username u\n        password_file /nonexistent/pw\n        rcpt_to a@example.org\n        reject"), "test.conf:5: account a: cannot read password file"},
		{"no delivery target", account("        imap tls://h:993\n        username u\n        password p\n        rcpt_to a@example.org"), "test.conf:2: account a: no delivery target"},
		{"bad pipeline", account(base + "        destination {\n        }"), "test.conf:"},
		{"bad keep", account(base + "        keep maybe"), "test.conf:8:"},
		{"bad poll_interval", account(base + "        poll_interval soon"), "test.conf:8:"},
		{"tiny poll_interval", account(base + "        poll_interval 10ms"), "test.conf:8: account a: poll_interval must be at least 1s"},
		{"tiny timeout", account(base + "        timeout 10ms"), "test.conf:8: account a: timeout must be at least 1s"},
		{"negative max_messages_per_poll", account(base + "        max_messages_per_poll -1"), "test.conf:8: account a: max_messages_per_poll must not be negative"},
		{"zero max_message_size", account(base + "        max_message_size 0"), "test.conf:8: account a: max_message_size must be positive"},
		{"move_to with keep yes", account(base + "        keep yes\n        move_to Fetched"), "test.conf:9: account a: move_to is for keep no"},
		{"move_to folder polled", account(base + "        keep no\n        folders INBOX Archive\n        move_to Archive"), "test.conf:9: account a: folders names \"Archive\", the move_to folder"},
		{"move_to INBOX in another case", account(base + "        keep no\n        move_to inbox"), "test.conf:2: account a: folders names \"INBOX\", the move_to folder"},
		{"move_to INBOX child in another case", account(base + "        keep no\n        folders Inbox.Fetched/\n        move_to INBOX.Fetched"), "test.conf:9: account a: folders names \"Inbox.Fetched/\", the move_to folder"},
		{"mark_seen with keep no", account(base + "        keep no\n        mark_seen yes"), "test.conf:9: account a: mark_seen is for keep yes"},
		{"delete_after with keep no", account(base + "        keep no\n        delete_after 30d"), "test.conf:9: account a: delete_after is for keep yes"},
		{"bad max_age", account(base + "        max_age a year"), "test.conf:8: account a: expected 1 argument"},
		{"bad max_age days", account(base + "        max_age 12x3d"), "test.conf:8: account a: max_age:"},
		{"IMAP wildcard", account(base + "        folders INBOX Work/%"), "test.conf:8: account a: folders: \"Work/%\": % is not pattern syntax"},
		{"max_age on POP3", account("        pop3 tls://h:995\n        username u\n        password p\n        rcpt_to a@example.org\n        reject\n        max_age 30d"), "test.conf:8: account a: max_age is for IMAP accounts"},
		{"mark_seen on POP3", account("        pop3 tls://h:995\n        username u\n        password p\n        rcpt_to a@example.org\n        reject\n        mark_seen yes"), "mark_seen is for IMAP accounts"},
		{"envelope_domains alone", account(base + "        envelope_domains example.org"), "test.conf:8: account a: envelope_domains without envelope_header"},
		{"envelope_domains address", account(base + "        envelope_header Delivered-To\n        envelope_domains bob@example.org"), "test.conf:9: account a: envelope_domains: \"bob@example.org\" is not a domain"},
		{"duplicate account", "remote_pull {\n    account a {\n" + base + "    }\n    account a {\n" + base + "    }\n}", `test.conf:9: duplicate account name "a" (first defined at test.conf:2)`},
		{"duplicate across blocks", "remote_pull {\n    account a {\n" + base + "    }\n}\nremote_pull {\n    account a {\n" + base + "    }\n}", `test.conf:11: duplicate account name "a"`},
		{"account without name", "remote_pull {\n    account {\n" + base + "    }\n}", "test.conf:2: account takes exactly one name"},
		{"folders on POP3", account("        pop3 tls://h:995\n        username u\n        password p\n        rcpt_to a@example.org\n        reject\n        folders INBOX Archive"), "test.conf:8: account a: POP3 has a single mailbox"},
		{"bad tls_pin", account(base + "        tls_pin sha1/abc"), "test.conf:8: account a: tls_pin"},
		{"plaintext to a remote host", account("        imap tcp://mail.example.net:143\n        username u\n        password p\n        rcpt_to a@example.org\n        reject\n        insecure_plaintext yes"), "test.conf:8: account a: insecure_plaintext is refused for mail.example.net"},
		{"plaintext on tls://", account(base + "        insecure_plaintext yes"), "needs a tcp:// address"},
		{"plaintext hosts alone", account(base + "        insecure_plaintext_hosts h"), "insecure_plaintext_hosts without insecure_plaintext yes"},
		{"apop on IMAP", account(base + "        auth apop"), "auth apop is for POP3 accounts"},
		{"oauth without a block", account(base + "        auth xoauth2"), "test.conf:8: account a: auth xoauth2 needs an oauth2 { ... } block"},
		{"bad auth", account(base + "        auth kerberos"), "test.conf:8:"},
		{"bad max_parallel", "remote_pull {\n    max_parallel 0\n    account a {\n" + base + "    }\n}", "test.conf:2: max_parallel must be a positive number"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.conf)
			if err == nil {
				t.Fatalf("no error; want %q", tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q\nwant it to contain %q", err, tc.want)
			}
		})
	}
}

func TestPasswordFileRelativeToStateDir(t *testing.T) {
	dir := t.TempDir()
	old := maddycfg.StateDirectory
	maddycfg.StateDirectory = dir
	t.Cleanup(func() { maddycfg.StateDirectory = old })
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "secrets", "isp")
	if err := os.WriteFile(path, []byte("first\r\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := parse(t, `remote_pull {
    account a {
        imap tls://h:993
        username u
        password_file secrets/isp
        rcpt_to a@example.org
        reject
    }
}`)
	if err != nil {
		t.Fatal(err)
	}
	pw := b.Accounts[0].Secret
	if pw.Value() != "first" {
		t.Fatalf("password = %q", pw.Value())
	}
	if err := os.WriteFile(path, []byte("second\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := pw.Reload(); err != nil || pw.Value() != "second" {
		t.Fatalf("after Reload: %q, %v", pw.Value(), err)
	}
}

func TestParseSecurity(t *testing.T) {
	b, err := parse(t, `remote_pull {
    account lan {
        pop3 tcp://mail.lan:110
        username u
        password p
        rcpt_to a@example.org
        reject
        insecure_plaintext yes
        insecure_plaintext_hosts mail.lan
        auth apop
    }
    account pinned {
        imap tls://imap.example.com
        username u
        password p
        rcpt_to a@example.org
        reject
        tls_pin sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=
    }
}`)
	if err != nil {
		t.Fatal(err)
	}
	lan, pinned := b.Accounts[0], b.Accounts[1]
	if !lan.Plaintext || lan.Auth != "apop" || len(lan.Warnings) != 1 || !strings.Contains(lan.Warnings[0], "unencrypted") {
		t.Errorf("lan: plaintext %v, auth %q, warnings %q", lan.Plaintext, lan.Auth, lan.Warnings)
	}
	if pinned.Auth != "auto" || len(pinned.Pins) != 1 || pinned.Plaintext {
		t.Errorf("pinned: %+v", pinned)
	}
}

func TestParseOAuth2(t *testing.T) {
	dir := t.TempDir()
	old := maddycfg.StateDirectory
	maddycfg.StateDirectory = dir
	t.Cleanup(func() { maddycfg.StateDirectory = old })
	os.WriteFile(filepath.Join(dir, "client-secret"), []byte("cs\n"), 0o600)
	b, err := parse(t, `remote_pull {
    account outlook {
        imap tls://outlook.office365.com:993
        username alice@contoso.example
        auth xoauth2
        oauth2 {
            provider microsoft
            client_id 0123
            client_secret_file client-secret
        }
        rcpt_to alice@example.org
        reject
    }
}`)
	if err != nil {
		t.Fatal(err)
	}
	o := b.Accounts[0].OAuth2
	if o == nil || o.ClientID != "0123" || o.ClientSecret.Value() != "cs" ||
		!strings.HasPrefix(o.TokenURL, "https://login.microsoftonline.com/") || len(o.Scopes) != 3 ||
		o.TokenFile != filepath.Join(dir, "remote_pull", "outlook.token") {
		t.Fatalf("oauth2 = %+v", o)
	}
	for conf, want := range map[string]string{
		"oauth2 {\n provider acme\n client_id x\n }":                           `account a: oauth2: unknown provider "acme"`,
		"oauth2 {\n client_id x\n }":                                           "account a: oauth2: provider or token_endpoint is required",
		"oauth2 {\n provider google\n }":                                       "client_id",
		"oauth2 {\n client_id x\n token_endpoint http://idp.example/token\n }": "test.conf:8: account a: oauth2: token_endpoint: http://idp.example/token is http://",
		"oauth2 {\n client_id x\n token_endpoint https://idp.example/t\n auth_endpoint http://idp.example/a\n }": "test.conf:9: account a: oauth2: auth_endpoint",
		"oauth2 {\n client_id x\n token_endpoint ftp://idp.example/t\n }":                                        "is not an https:// URL",
	} {
		_, err := parse(t, "remote_pull {\n account a {\n imap tls://h\n username u\n auth xoauth2\n "+conf+"\n rcpt_to a@example.org\n reject\n }\n}")
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", conf, err, want)
		}
	}
}

// App-only access: client_credentials with a tenant takes the tenant's
// endpoints and the .default scope of Exchange Online, and no token file;
// the device endpoint follows the tenant too. Mistakes stop the start at
// the directive.
func TestParseOAuth2AppOnlyAndTenant(t *testing.T) {
	dir := t.TempDir()
	old := maddycfg.StateDirectory
	maddycfg.StateDirectory = dir
	t.Cleanup(func() { maddycfg.StateDirectory = old })
	os.WriteFile(filepath.Join(dir, "client-secret"), []byte("cs\n"), 0o600)
	account := func(block string) string {
		return "remote_pull {\n account a {\n imap tls://outlook.office365.com:993\n username shared@contoso.example\n auth xoauth2\n oauth2 {\n" +
			block + "\n }\n rcpt_to a@example.org\n reject\n }\n}"
	}
	b, err := parse(t, account(" provider microsoft\n tenant contoso.onmicrosoft.com\n client_id app\n client_secret_file client-secret\n client_credentials"))
	if err != nil {
		t.Fatal(err)
	}
	o := b.Accounts[0].OAuth2
	if !o.ClientCredentials || o.TokenURL != "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token" ||
		len(o.Scopes) != 1 || o.Scopes[0] != "https://outlook.office365.com/.default" || o.TokenFile != "" || o.ClientSecret.Value() != "cs" {
		t.Fatalf("oauth2 = %+v", o)
	}

	b, err = parse(t, account(" provider microsoft\n tenant 11111111-2222-3333-4444-555555555555\n client_id app"))
	if err != nil {
		t.Fatal(err)
	}
	o = b.Accounts[0].OAuth2
	if o.DeviceURL != "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/oauth2/v2.0/devicecode" ||
		len(o.Scopes) != 3 || o.TokenFile == "" || o.ClientCredentials {
		t.Fatalf("oauth2 = %+v", o)
	}
	b, err = parse(t, account(" provider microsoft\n client_id app"))
	if err != nil || b.Accounts[0].OAuth2.DeviceURL != "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode" {
		t.Fatalf("common device endpoint: %v %+v", err, b)
	}

	// The Microsoft 365 guide's shape: one app-only oauth2 block as the
	// default of every account.
	b, err = parse(t, `remote_pull {
    reject
    auth xoauth2
    oauth2 {
        provider microsoft
        tenant 11111111-1111-1111-1111-111111111111
        client_id app
        client_secret_file client-secret
        client_credentials yes
    }
    account alice {
        imap tls://outlook.office365.com:993
        username alice@contoso.example
        rcpt_to alice@example.org
    }
    account bob {
        imap tls://outlook.office365.com:993
        username bob@contoso.example
        rcpt_to bob@example.org
    }
}`)
	if err != nil {
		t.Fatal(err)
	}
	for _, acc := range b.Accounts {
		if acc.OAuth2 == nil || !acc.OAuth2.ClientCredentials || acc.Auth != "xoauth2" {
			t.Fatalf("account %s: oauth2 %+v auth %q", acc.Name, acc.OAuth2, acc.Auth)
		}
	}

	for block, want := range map[string]string{
		" provider microsoft\n client_id app\n client_secret_file client-secret\n client_credentials":                                   "test.conf:10: account a: oauth2: client_credentials needs tenant",
		" provider microsoft\n tenant common\n client_id app\n client_secret_file client-secret\n client_credentials yes":               "client_credentials needs tenant",
		" provider microsoft\n tenant t.example\n client_id app\n client_credentials":                                                   "client_credentials needs client_secret_file",
		" provider microsoft\n tenant t.example\n client_id app\n client_secret_file client-secret\n client_credentials\n token_file x": "keeps no token file",
		" provider google\n client_id app\n client_secret_file client-secret\n client_credentials":                                      "Google offers no client-credentials grant",
		" provider google\n tenant t.example\n client_id app":                                                                           "test.conf:8: account a: oauth2: tenant is for provider microsoft",
		" provider microsoft\n tenant ../evil\n client_id app":                                                                          `tenant "../evil" is not`,
		" token_endpoint https://idp.example/t\n tenant t.example\n client_id app":                                                      "tenant is for provider microsoft",
		" token_endpoint https://idp.example/t\n device_endpoint http://idp.example/d\n client_id app":                                  "test.conf:8: account a: oauth2: device_endpoint: http://idp.example/d is http://",
	} {
		if _, err := parse(t, account(block)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", block, err, want)
		}
	}
}

// A pipeline that can commit one message to several targets is refused at
// start: a failure in the second after the first stored it would store it
// again on retry.
func TestSeveralTargetsRefused(t *testing.T) {
	registerTargets(t)
	account := func(rcpts, pipeline string) string {
		return "remote_pull {\n    account a {\n        imap tls://h:993\n        username u\n        password p\n" +
			"        rcpt_to " + rcpts + "\n" + pipeline + "    }\n}\n"
	}
	for _, tc := range []struct {
		name, conf, want string
	}{
		{"two targets for one recipient", account("a@example.org", "        deliver_to &tgt_a\n        deliver_to &tgt_b\n"),
			"test.conf:7: account a: a message can be delivered to 2 targets at once"},
		{"a referenced pipeline with two targets", account("a@example.org", "        deliver_to &two_targets\n"),
			"test.conf:7: account a: a message can be delivered to 2 targets at once"},
		{"two recipients, two routes", account("a@example.org b@example.org",
			"        destination a@example.org {\n            deliver_to dummy\n        }\n        default_destination {\n            deliver_to dummy\n        }\n"),
			"test.conf:6: account a: the 2 rcpt_to addresses may be routed to different delivery targets"},
		{"nested blocks", account("a@example.org",
			"        source example.net {\n            deliver_to dummy\n        }\n        default_source {\n            destination a@example.org {\n                deliver_to &tgt_a\n                deliver_to &tgt_b\n            }\n            default_destination {\n                reject\n            }\n        }\n"),
			"a message can be delivered to 2 targets at once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parse(t, tc.conf)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant it to contain %q", err, tc.want)
			}
		})
	}
	// One target per message is fine, with one recipient or several.
	for _, conf := range []string{
		account("a@example.org", "        deliver_to dummy\n"),
		account("a@example.org b@example.org", "        deliver_to dummy\n"),
		account("a@example.org", "        destination a@example.org {\n            deliver_to dummy\n        }\n        default_destination {\n            deliver_to dummy\n        }\n"),
	} {
		b, err := parse(t, conf)
		if err != nil {
			t.Fatalf("%s\n%v", conf, err)
		}
		for _, w := range b.Accounts[0].Warnings {
			if strings.Contains(w, "delivery targets") {
				t.Fatalf("the pipeline could not be inspected: %s", w)
			}
		}
	}
}

// registerTargets makes the top-level instances tgt_a and tgt_b (dummy
// targets) and two_targets (a msgpipeline delivering to both), as maddy
// does for top-level blocks.
func registerTargets(t *testing.T) {
	t.Helper()
	for _, name := range []string{"tgt_a", "tgt_b"} {
		mod, err := module.Get("dummy")("dummy", name, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		module.RegisterInstance(mod, maddycfg.NewMap(globals, Node{}))
	}
	nodes, err := parser.Read(strings.NewReader("msgpipeline two_targets {\n    deliver_to &tgt_a\n    deliver_to &tgt_b\n}\n"), "test.conf")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := module.Get("msgpipeline")("msgpipeline", "two_targets", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	module.RegisterInstance(mod, maddycfg.NewMap(globals, nodes[0]))
}

// An OAuth2 endpoint over http:// is accepted on loopback only.
func TestOAuth2LoopbackHTTP(t *testing.T) {
	for _, host := range []string{"127.0.0.1:8080", "localhost", "[::1]:9"} {
		_, err := parse(t, "remote_pull {\n account a {\n imap tls://h\n username u\n auth xoauth2\n oauth2 {\n client_id x\n token_endpoint http://"+host+"/token\n }\n rcpt_to a@example.org\n reject\n }\n}")
		if err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
}

// INBOX in any case is INBOX (RFC 3501) in every directive that names a
// folder: folders inbox INBOX is one folder, and the ledger key is the
// same whatever the spelling.
func TestINBOXInAnyCase(t *testing.T) {
	b, err := parse(t, `
remote_pull {
    account a {
        imap tls://h:993
        username u
        password p
        rcpt_to a@example.org
        reject
        folders inbox INBOX Work
        quarantine_folders iNbOx
    }
    account b {
        imap tls://h:993
        username u
        password p
        rcpt_to a@example.org
        reject
        keep no
        move_to Inbox
        folders *
        exclude_folders Inbox
    }
}`)
	if err != nil {
		t.Fatal(err)
	}
	a := b.Accounts[0]
	if strings.Join(a.Folders, "|") != "INBOX|Work" || strings.Join(a.QuarantineFolders, "|") != "INBOX" {
		t.Errorf("folders %q, quarantine_folders %q", a.Folders, a.QuarantineFolders)
	}
	// local_folder needs a storage in the pipeline: read on its own.
	lf, err := readLocalFolder("a", []Node{{Name: "local_folder", Args: []string{"inbox", "Landed"}},
		{Name: "local_folder", Args: []string{"Work", "Inbox"}}})
	if err != nil || lf["INBOX"] != "Landed" || lf["Work"] != "INBOX" || len(lf) != 2 {
		t.Errorf("local_folder %q, %v", lf, err)
	}
	if o := b.Accounts[1]; o.MoveTo != "INBOX" || strings.Join(o.ExcludeFolders, "|") != "INBOX" {
		t.Errorf("move_to %q, exclude_folders %q", o.MoveTo, o.ExcludeFolders)
	}
}

// Several folders polled (named, or possibly through a pattern) make
// dedupe message_id the default: a message the user files upstream from
// one to another after its delivery is not delivered again. dedupe none
// stays possible.
func TestDedupeDefault(t *testing.T) {
	for _, c := range []struct {
		extra string
		want  bool
	}{
		{"", false},
		{"folders INBOX", false},
		{"folders inbox INBOX", false}, // one folder
		{"folders INBOX Work", true},
		{"folders *", true},
		{"folders Work/*", true},
		{"folders INBOX Work\n        dedupe none", false},
		{"dedupe message_id", true},
	} {
		b, err := parse(t, `
remote_pull {
    account a {
        imap tls://h:993
        username u
        password p
        rcpt_to a@example.org
        reject
        `+c.extra+`
    }
}`)
		if err != nil {
			t.Fatalf("%q: %v", c.extra, err)
		}
		if got := b.Accounts[0].Dedupe; got != c.want {
			t.Errorf("%q: dedupe %v, want %v", c.extra, got, c.want)
		}
	}
}
