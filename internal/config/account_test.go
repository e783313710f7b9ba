package config

import (
	"strings"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/internal/delivery"
	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source"
)

// Each check of an account, on its own: a valid account as declare leaves
// it, one change per case, and the message the check gives (after the
// account's name), or "" for none.

type checkCase struct {
	name   string
	change func(p *accountParser)
	want   string
}

// declared is an account as declare leaves it, which passes every check.
func declared() *accountParser {
	return &accountParser{
		acc: &Account{Name: "a",
			Policy: policy.Policy{Keep: true, Folders: []string{"INBOX"}, PollInterval: time.Minute, MaxMessageSize: 1 << 20,
				Idle: true},
			Endpoint: source.Endpoint{Username: "u", Auth: source.AuthAuto, Timeout: time.Minute},
			Options:  delivery.Options{Rcpts: []string{"a@example.org"}, Hostname: "mx.example.org"},
		},
		node:      Node{Name: "account", Args: []string{"a"}},
		globals:   globals,
		imap:      "tls://h:993",
		password:  "p",
		keepFlags: "default", localFolders: "inbox",
		pipeline: []Node{{Name: "reject"}},
	}
}

func runChecks(t *testing.T, check func(p *accountParser) error, cases []checkCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := declared()
			if c.change != nil {
				c.change(p)
			}
			err := check(p)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("error %q, want none", err)
			case c.want != "" && err == nil:
				t.Fatalf("no error, want %q", c.want)
			case c.want != "" && !strings.HasPrefix(err.Error(), "account a: "+c.want):
				t.Fatalf("error %q\nwant %q", err, "account a: "+c.want)
			}
		})
	}
}

func TestCheckLimits(t *testing.T) {
	runChecks(t, (*accountParser).checkLimits, []checkCase{
		{"valid", nil, ""},
		{"no bound per poll", func(p *accountParser) { p.acc.MaxMessagesPerPoll = 0 }, ""},
		{"negative per poll", func(p *accountParser) { p.acc.MaxMessagesPerPoll = -1 }, "max_messages_per_poll must not be negative"},
		{"zero size", func(p *accountParser) { p.acc.MaxMessageSize = 0 }, "max_message_size must be positive"},
		{"poll_interval under 1s", func(p *accountParser) { p.acc.PollInterval = 999 * time.Millisecond }, "poll_interval must be at least 1s"},
		{"poll_interval 1s", func(p *accountParser) { p.acc.PollInterval = time.Second }, ""},
		{"timeout under 1s", func(p *accountParser) { p.acc.Timeout = time.Millisecond }, "timeout must be at least 1s"},
	})
}

func TestCheckFolders(t *testing.T) {
	runChecks(t, (*accountParser).checkFolders, []checkCase{
		{"valid", nil, ""},
		{"IMAP wildcard", func(p *accountParser) { p.acc.Folders = []string{"Work/%"} }, `folders: "Work/%": % is not pattern syntax`},
		{"IMAP wildcard excluded", func(p *accountParser) { p.acc.ExcludeFolders = []string{"%"} }, "exclude_folders:"},
		{"quarantine polled", func(p *accountParser) { p.acc.Folders, p.acc.QuarantineFolders = []string{"*"}, []string{"Junk"} }, ""},
		{"quarantine inbox", func(p *accountParser) { p.acc.QuarantineFolders = []string{"inbox"} }, ""},
		{"quarantine not polled", func(p *accountParser) { p.acc.QuarantineFolders = []string{"Junk"} }, `quarantine folder "Junk" is not in folders`},
		{"quarantine excluded", func(p *accountParser) {
			p.acc.Folders, p.acc.ExcludeFolders, p.acc.QuarantineFolders = []string{"*"}, []string{"Junk"}, []string{"Junk"}
		}, `quarantine folder "Junk" is not in folders`},
		{"local_folder", func(p *accountParser) {
			p.localFolder = []Node{{Name: "local_folder", Args: []string{"Work", "Archive"}}}
		}, ""},
		{"local_folder one name", func(p *accountParser) { p.localFolder = []Node{{Name: "local_folder", Args: []string{"Work"}}} },
			"local_folder takes an upstream folder and a local one"},
	})
	// What checkFolders settles.
	p := declared()
	p.acc.Folders, p.acc.QuarantineFolders, p.acc.MoveTo = []string{"inbox", "INBOX", "Work"}, []string{"Inbox"}, "iNBOX"
	p.localFolder = []Node{{Name: "local_folder", Args: []string{"inbox", "Work"}}}
	if err := p.checkFolders(); err != nil {
		t.Fatal(err)
	}
	if a := p.acc; strings.Join(a.Folders, "|") != "INBOX|Work" || a.QuarantineFolders[0] != "INBOX" || a.MoveTo != "INBOX" ||
		a.LocalFolder["INBOX"] != "Work" || !a.Dedupe {
		t.Errorf("folders %q, quarantine %q, move_to %q, local_folder %q, dedupe %v", a.Folders, a.QuarantineFolders, a.MoveTo, a.LocalFolder, a.Dedupe)
	}
}

func TestDedupeDefaultRule(t *testing.T) {
	for _, c := range []struct {
		setting          string
		folders, exclude []string
		want             bool
	}{
		{"", []string{"INBOX"}, nil, false},
		{"", []string{"INBOX", "Work"}, nil, true},
		{"", []string{"Work/*"}, nil, true},
		{"", []string{"INBOX", "Work"}, []string{"Work"}, false}, // Work is not polled
		{"none", []string{"*"}, nil, false},
		{"message_id", []string{"INBOX"}, nil, true},
	} {
		if got := dedupeDefault(c.setting, policy.NewFolderSet(c.folders, c.exclude)); got != c.want {
			t.Errorf("dedupe %q, folders %q exclude %q: %v, want %v", c.setting, c.folders, c.exclude, got, c.want)
		}
	}
}

func TestCheckKeepOptions(t *testing.T) {
	keepNo := func(p *accountParser) { p.acc.Keep = false }
	runChecks(t, (*accountParser).checkKeepOptions, []checkCase{
		{"valid", nil, ""},
		{"mark_seen, keep yes", func(p *accountParser) { p.acc.MarkSeen = true }, ""},
		{"mark_seen, keep no", func(p *accountParser) { keepNo(p); p.acc.MarkSeen = true }, "mark_seen is for keep yes"},
		{"move_to, keep no", func(p *accountParser) { keepNo(p); p.acc.MoveTo = "Fetched" }, ""},
		{"move_to, keep yes", func(p *accountParser) { p.acc.MoveTo = "Fetched" }, "move_to is for keep no"},
		{"delete_after, keep yes", func(p *accountParser) { p.acc.DeleteAfter = time.Hour }, ""},
		{"delete_after, keep no", func(p *accountParser) { keepNo(p); p.acc.DeleteAfter = time.Hour }, "delete_after is for keep yes"},
		{"move_to polled", func(p *accountParser) {
			keepNo(p)
			p.acc.Folders, p.acc.MoveTo = []string{"INBOX", "Archive"}, "Archive"
		},
			`folders names "Archive", the move_to folder`},
		{"move_to under a polled pattern", func(p *accountParser) { keepNo(p); p.acc.Folders, p.acc.MoveTo = []string{"Work/"}, "Work" },
			`folders names "Work/", the move_to folder`},
		{"move_to excluded from a pattern", func(p *accountParser) {
			keepNo(p)
			p.acc.Folders, p.acc.ExcludeFolders, p.acc.MoveTo = []string{"*"}, []string{"Fetched"}, "Fetched"
		}, ""},
	})
}

func TestCheckProtocol(t *testing.T) {
	pop3 := func(p *accountParser) { p.imap, p.pop3 = "", "tls://h:995" }
	runChecks(t, (*accountParser).checkProtocol, []checkCase{
		{"valid", nil, ""},
		{"both", func(p *accountParser) { p.pop3 = "tls://h:995" }, "use either imap or pop3, not both"},
		{"neither", func(p *accountParser) { p.imap = "" }, "no upstream"},
		{"bad scheme", func(p *accountParser) { p.imap = "imaps://h:993" }, "invalid address"},
		{"no host", func(p *accountParser) { p.imap = "tls://:993" }, `address "tls://:993" has no host`},
		{"pop3", pop3, ""},
		{"pop3 folders", func(p *accountParser) { pop3(p); p.acc.Folders = []string{"INBOX", "Work"} }, "POP3 has a single mailbox"},
		{"pop3 max_age", func(p *accountParser) { pop3(p); p.acc.MaxAge = time.Hour }, "max_age is for IMAP accounts"},
		{"pop3 mark_seen", func(p *accountParser) { pop3(p); p.acc.MarkSeen = true }, "mark_seen is for IMAP accounts"},
		{"pop3 move_to", func(p *accountParser) { pop3(p); p.acc.MoveTo = "X" }, "move_to is for IMAP accounts"},
		{"pop3 exclude_folders", func(p *accountParser) { pop3(p); p.acc.ExcludeFolders = []string{"X"} }, "exclude_folders is for IMAP accounts"},
		{"pop3 mirror", func(p *accountParser) { pop3(p); p.acc.MirrorFolders = true }, "local_folders is for IMAP accounts"},
		{"pop3 local_folder", func(p *accountParser) { pop3(p); p.acc.LocalFolder = map[string]string{"INBOX": "X"} }, "local_folder is for IMAP accounts"},
		{"pop3 keep_flags", func(p *accountParser) { pop3(p); p.keepFlags = "yes" }, "keep_flags is for IMAP accounts"},
		{"pin", func(p *accountParser) { p.acc.Pins = []string{"sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="} }, ""},
		{"bad pin", func(p *accountParser) { p.acc.Pins = []string{"sha1/abc"} }, `tls_pin "sha1/abc" is not`},
		{"plaintext loopback", func(p *accountParser) { p.imap, p.acc.Plaintext = "tcp://127.0.0.1", true }, ""},
		{"plaintext listed", func(p *accountParser) {
			p.imap, p.acc.Plaintext, p.plaintextHosts = "tcp://mail.lan", true, []string{"mail.lan"}
		}, ""},
		{"plaintext remote", func(p *accountParser) { p.imap, p.acc.Plaintext = "tcp://mail.lan", true }, "insecure_plaintext is refused for mail.lan"},
		{"plaintext tls://", func(p *accountParser) { p.acc.Plaintext = true }, "insecure_plaintext needs a tcp:// address"},
		{"plaintext pinned", func(p *accountParser) {
			p.imap, p.acc.Plaintext, p.acc.Pins = "tcp://127.0.0.1", true, []string{"sha256/47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}
		}, "tls_pin and insecure_plaintext contradict"},
		{"plaintext hosts alone", func(p *accountParser) { p.plaintextHosts = []string{"h"} }, "insecure_plaintext_hosts without"},
	})
	// What checkProtocol settles: the protocol and its default ports.
	for _, c := range []struct{ imap, pop3, proto, port string }{
		{"tls://h", "", source.IMAP, "993"}, {"tcp://h", "", source.IMAP, "143"},
		{"", "tls://h", source.POP3, "995"}, {"", "tcp://h", source.POP3, "110"}, {"tcp://h:1143", "", source.IMAP, "1143"},
	} {
		p := declared()
		p.imap, p.pop3 = c.imap, c.pop3
		if err := p.checkProtocol(); err != nil || p.acc.Protocol != c.proto || p.acc.Port != c.port || p.acc.Host != "h" {
			t.Errorf("%s%s: %s %s:%s, %v", c.imap, c.pop3, p.acc.Protocol, p.acc.Host, p.acc.Port, err)
		}
	}
}

func TestReadCredentials(t *testing.T) {
	oauth := func(p *accountParser) {
		p.password, p.acc.Auth, p.acc.OAuth2 = "", source.AuthXOAUTH2, &OAuth2{TokenFile: "/t"}
	}
	runChecks(t, (*accountParser).readCredentials, []checkCase{
		{"valid", nil, ""},
		{"no username", func(p *accountParser) { p.acc.Username = "" }, "username is required"},
		{"no password", func(p *accountParser) { p.password = "" }, "password, password_file or password_command is required"},
		{"both", func(p *accountParser) { p.passwordFile = "/pw" }, "use one of password, password_file and password_command, not several"},
		{"password and command", func(p *accountParser) { p.passwordCommand = []string{"true"} }, "use one of password, password_file and password_command, not several"},
		{"command", func(p *accountParser) { p.password, p.passwordCommand = "", []string{"true"} }, ""},
		{"command not found", func(p *accountParser) { p.password, p.passwordCommand = "", []string{"/nonexistent/vault"} }, "password_command: exec: \"/nonexistent/vault\""},
		{"unreadable file", func(p *accountParser) { p.password, p.passwordFile = "", "/nonexistent/pw" }, "cannot read password file"},
		{"oauth2", oauth, ""},
		{"oauthbearer", func(p *accountParser) { oauth(p); p.acc.Auth = source.AuthOAuthBearer }, ""},
		{"xoauth2 without a block", func(p *accountParser) { p.acc.Auth = source.AuthXOAUTH2 }, "auth xoauth2 needs an oauth2 { ... } block"},
		{"a block without xoauth2", func(p *accountParser) { oauth(p); p.acc.Auth = source.AuthPlain }, "an oauth2 block needs auth xoauth2"},
		{"apop on IMAP", func(p *accountParser) { p.acc.Protocol, p.acc.Auth = source.IMAP, source.AuthAPOP }, "auth apop is for POP3 accounts"},
		{"apop on POP3", func(p *accountParser) { p.acc.Protocol, p.acc.Auth = source.POP3, source.AuthAPOP }, ""},
	})
	p := declared()
	if err := p.readCredentials(); err != nil {
		t.Fatal(err)
	}
	if pw, err := p.acc.Password(); pw != "p" || err != nil || p.acc.Secret.Value() != "p" {
		t.Errorf("the endpoint's password %q, %v; the secret %q", pw, err, p.acc.Secret.Value())
	}
}

func TestCheckRecipients(t *testing.T) {
	runChecks(t, (*accountParser).checkRecipients, []checkCase{
		{"valid", nil, ""},
		{"none", func(p *accountParser) { p.acc.Rcpts = nil }, "rcpt_to is required"},
		{"not an address", func(p *accountParser) { p.acc.Rcpts = []string{"alice"} }, `rcpt_to: invalid address "alice"`},
		{"notify off", func(p *accountParser) { p.notify = []string{"off"} }, ""},
		{"notify elsewhere", func(p *accountParser) { p.notify = []string{"postmaster@example.org"} }, ""},
		{"notify not an address", func(p *accountParser) { p.notify = []string{"off", "x"} }, `notify: invalid address "off"`},
		{"envelope", func(p *accountParser) {
			p.acc.EnvelopeHeaders, p.acc.EnvelopeDomains = []string{"Delivered-To"}, []string{"Example.ORG."}
		}, ""},
		{"envelope_domains alone", func(p *accountParser) { p.acc.EnvelopeDomains = []string{"example.org"} }, "envelope_domains without envelope_header"},
		{"envelope_domains address", func(p *accountParser) {
			p.acc.EnvelopeHeaders, p.acc.EnvelopeDomains = []string{"Delivered-To"}, []string{"bob@example.org"}
		}, `envelope_domains: "bob@example.org" is not a domain`},
	})
	for notify, want := range map[string]string{"": "a@example.org", "off": "", "Bob@EXAMPLE.org": "Bob@example.org"} {
		p := declared()
		p.acc.Rcpts = []string{"a@EXAMPLE.org"}
		if notify != "" {
			p.notify = []string{notify}
		}
		if err := p.checkRecipients(); err != nil || strings.Join(p.acc.Notify, ",") != want {
			t.Errorf("notify %q: %q, %v; want %q", notify, p.acc.Notify, err, want)
		}
	}
}

func TestBuildTarget(t *testing.T) {
	registerTargets(t)
	deliverTo := func(targets ...string) func(p *accountParser) {
		return func(p *accountParser) {
			p.pipeline = nil
			for _, tg := range targets {
				p.pipeline = append(p.pipeline, Node{Name: "deliver_to", Args: []string{tg}})
			}
		}
	}
	runChecks(t, (*accountParser).buildTarget, []checkCase{
		{"valid", nil, ""},
		{"no pipeline", func(p *accountParser) { p.pipeline = nil }, "no delivery target"},
		{"one target", deliverTo("dummy"), ""},
		{"two targets", deliverTo("&tgt_a", "&tgt_b"), "a message can be delivered to 2 targets at once"},
		{"mirror without a storage", func(p *accountParser) { deliverTo("dummy")(p); p.acc.MirrorFolders = true },
			"local_folders, local_folder and keep_flags need a pipeline that delivers into one maddy storage"},
		{"keep_flags without a storage", func(p *accountParser) { p.acc.KeepFlags = true }, "local_folders, local_folder and keep_flags need"},
	})
	p := declared()
	if err := p.buildTarget(); err != nil || p.acc.Pipeline == nil || p.acc.Storage != nil {
		t.Errorf("pipeline %v, storage %v, %v", p.acc.Pipeline, p.acc.Storage, err)
	}
}
