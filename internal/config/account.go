package config

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/foxcpp/maddy/framework/address"
	maddycfg "github.com/foxcpp/maddy/framework/config"
	tlscfg "github.com/foxcpp/maddy/framework/config/tls"

	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/source"
)

// accountParser reads one account block: declare reads the directives
// into the Account, then one check per concern refuses what cannot be
// made safe and settles what depends on several directives.
type accountParser struct {
	acc     *Account
	node    Node   // the account block
	merged  []Node // its directives and the block's defaults it inherits
	globals map[string]interface{}

	// What declare reads that becomes an Account field only once checked.
	imap, pop3             string
	mbox, maildir          string
	password, passwordFile string
	passwordCommand        []string
	localFolders           string // inbox, mirror
	dedupe                 string // none, message_id, "": by the folders
	keepFlags              string // yes, no, default
	notify                 []string
	plaintextHosts         []string
	localFolder            []Node // local_folder is repeatable
	maxConnections         int    // 0: unset, the host's default (connections.go)
	pipeline               []Node
}

func parseAccount(name string, n Node, defaults []Node, globals map[string]interface{}) (*Account, error) {
	p := &accountParser{acc: &Account{Name: name, Node: n}, node: n, globals: globals}
	var own []Node
	for _, c := range n.Children {
		if !accountDirectives[c.Name] && !pipelineDirectives[c.Name] {
			return nil, maddycfg.NodeErr(c, "account %s: %v", name, unknownDirective(Node{Name: c.Name}))
		}
		own = append(own, c)
	}
	p.merged = merge(own, defaults)
	steps := []func() error{
		p.declare,
		p.checkLimits,
		p.checkFolders,
		p.checkKeepOptions,
		p.checkProtocol,
		p.checkConnections,
		p.checkBudget,
		p.readCredentials,
		p.checkRecipients,
		p.buildTarget,
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return nil, err
		}
	}
	p.acc.ConfigHash = hex.EncodeToString(hashTree(p.merged, volatile)[:16])
	p.acc.Digest = hex.EncodeToString(hashTree(p.merged, nil))
	return p.acc, nil
}

// errAt reports an error at the directive that caused it (the account's own
// or the inherited default), else at the account block; the message starts
// with the account's name.
func (p *accountParser) errAt(directive string, format string, args ...interface{}) error {
	return maddycfg.NodeErr(directiveNode(p.node, p.merged, directive), "account %s: %s", p.acc.Name, fmt.Sprintf(format, args...))
}

// declare reads the account's directives, maddy's way: straight into the
// Account's fields where a directive is one.
func (p *accountParser) declare() error {
	acc := p.acc
	var settings []Node
	for _, c := range p.merged {
		switch {
		case pipelineDirectives[c.Name]:
			p.pipeline = append(p.pipeline, c)
		case c.Name == "local_folder":
			p.localFolder = append(p.localFolder, c)
		default:
			settings = append(settings, c)
		}
	}
	var firstSync string
	n := p.node
	m := maddycfg.NewMap(p.globals, Node{Name: n.Name, Args: n.Args, Children: settings, File: n.File, Line: n.Line})
	m.String("imap", false, false, "", &p.imap)
	m.String("pop3", false, false, "", &p.pop3)
	m.String("mbox", false, false, "", &p.mbox)
	m.String("maildir", false, false, "", &p.maildir)
	m.Enum("mbox_variant", false, false, []string{"auto", "mboxrd", "mboxo"}, "auto", &acc.MboxVariant)
	m.String("username", false, false, "", &acc.Username)
	m.String("password", false, false, "", &p.password)
	m.String("password_file", false, false, "", &p.passwordFile)
	m.StringList("password_command", false, false, nil, &p.passwordCommand)
	m.StringList("rcpt_to", false, false, nil, &acc.Rcpts)
	m.Bool("keep", false, true, &acc.Keep)
	m.Duration("poll_interval", false, false, 5*time.Minute, &acc.PollInterval)
	m.Duration("timeout", false, false, 2*time.Minute, &acc.Timeout)
	m.Custom("tls_client", true, false, func() (interface{}, error) { return &tls.Config{}, nil },
		tlscfg.TLSClientBlock, &acc.TLS)
	m.StringList("folders", false, false, []string{"INBOX"}, &acc.Folders)
	m.StringList("exclude_folders", false, false, nil, &acc.ExcludeFolders)
	m.Custom("max_age", false, false, noAge, p.age, &acc.MaxAge)
	m.Custom("delete_after", false, false, noAge, p.age, &acc.DeleteAfter)
	m.Bool("mark_seen", false, false, &acc.MarkSeen)
	m.String("move_to", false, false, "", &acc.MoveTo)
	m.Enum("local_folders", false, false, enumValues["local_folders"], "inbox", &p.localFolders)
	m.StringList("notify", false, false, nil, &p.notify)
	m.Enum("dedupe", false, false, enumValues["dedupe"], "", &p.dedupe)
	m.Enum("keep_flags", false, false, enumValues["keep_flags"], "default", &p.keepFlags)
	m.Bool("idle", false, true, &acc.Idle)
	m.Int("max_connections", false, false, 0, &p.maxConnections)
	m.StringList("envelope_header", false, false, nil, &acc.EnvelopeHeaders)
	m.StringList("envelope_domains", false, false, nil, &acc.EnvelopeDomains)
	m.DataSize("max_message_size", false, false, 32<<20, &acc.MaxMessageSize)
	m.Int("max_messages_per_poll", false, false, 0, &acc.MaxMessagesPerPoll)
	m.Enum("first_sync", false, false, enumValues["first_sync"], "all", &firstSync)
	m.StringList("trusted_authres", false, false, nil, &acc.TrustedAuthRes)
	m.StringList("quarantine_folders", false, false, nil, &acc.QuarantineFolders)
	m.Enum("auth", false, false, enumValues["auth"], source.AuthAuto, &acc.Auth)
	m.StringList("tls_pin", false, false, nil, &acc.Pins)
	m.Custom("oauth2", false, false, nil, func(_ *maddycfg.Map, n Node) (interface{}, error) {
		return oauth2Block(acc.Name, n)
	}, &acc.OAuth2)
	m.Bool("insecure_plaintext", false, false, &acc.Plaintext)
	m.StringList("insecure_plaintext_hosts", false, false, nil, &p.plaintextHosts)
	m.Bool("debug", true, false, &acc.Debug)
	m.Bool("disabled", false, false, &acc.Disabled)
	m.String("hostname", true, false, "", &acc.Hostname)
	m.Custom("download_budget", false, false, unsetBudget, p.budget, &acc.DownloadBudget)
	if _, err := m.Process(); err != nil {
		return err
	}
	acc.FirstSyncNew = firstSync == "new"
	acc.MirrorFolders = p.localFolders == "mirror"
	acc.KeepFlags = p.keepFlags == "yes" || (p.keepFlags == "default" && acc.MirrorFolders)
	return nil
}

func noAge() (interface{}, error) { return time.Duration(0), nil }

// age reads max_age or delete_after (parseAge).
func (p *accountParser) age(_ *maddycfg.Map, n Node) (interface{}, error) {
	if len(n.Args) != 1 {
		return nil, maddycfg.NodeErr(n, "account %s: expected 1 argument", p.acc.Name) // maddy's words
	}
	d, err := parseAge(n.Args[0])
	if err != nil {
		return nil, maddycfg.NodeErr(n, "account %s: %s: %v", p.acc.Name, n.Name, err)
	}
	return d, nil
}

// parseAge reads a duration that may be given in days ("365d", "30d") as
// well as Go's units ("12h"); "" is 0.
func parseAge(s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(days, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != days {
			return 0, fmt.Errorf("%q is not a number of days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%q is not a duration (365d, 12h)", s)
	}
	return d, nil
}

// checkLimits: the intervals and sizes are in range.
func (p *accountParser) checkLimits() error {
	acc := p.acc
	switch {
	case acc.MaxMessagesPerPoll < 0:
		return p.errAt("max_messages_per_poll", "max_messages_per_poll must not be negative")
	case acc.MaxMessageSize <= 0:
		return p.errAt("max_message_size", "max_message_size must be positive")
	case acc.PollInterval < time.Second:
		return p.errAt("poll_interval", "poll_interval must be at least 1s")
	case acc.Timeout < time.Second:
		return p.errAt("timeout", "timeout must be at least 1s")
	}
	return nil
}

// checkFolders: INBOX spelt so, the patterns valid, quarantine folders
// among the polled ones, local_folder read; and dedupe's default, which
// depends on the folders.
func (p *accountParser) checkFolders() error {
	acc := p.acc
	acc.canonicalFolders()
	for _, dir := range []struct {
		name  string
		value []string
	}{{"folders", acc.Folders}, {"exclude_folders", acc.ExcludeFolders}} {
		for _, f := range dir.value {
			if err := policy.CheckFolderPattern(f); err != nil {
				return p.errAt(dir.name, "%s: %v", dir.name, err)
			}
		}
	}
	folders := policy.NewFolderSet(acc.Folders, acc.ExcludeFolders)
	for _, q := range acc.QuarantineFolders {
		if !folders.Polls(q) {
			return p.errAt("quarantine_folders", "quarantine folder %q is not in folders", q)
		}
	}
	var err error
	if acc.LocalFolder, err = readLocalFolder(acc.Name, p.localFolder); err != nil {
		return err
	}
	acc.Dedupe = dedupeDefault(p.dedupe, folders)
	return nil
}

// dedupeDefault: dedupe as set, or, unset, on when more than one folder
// is, or with a pattern may be, polled: a message the user files upstream
// from one to another after its delivery would arrive again.
func dedupeDefault(setting string, folders *policy.FolderSet) bool {
	if setting != "" {
		return setting == "message_id"
	}
	return folders.Dynamic() || len(folders.Literal()) > 1
}

// canonicalFolders spells INBOX so in every directive that names an
// upstream folder: in any case it is one folder (RFC 3501), and the ledger
// keys a folder by its name. A name given twice is kept once.
func (acc *Account) canonicalFolders() {
	canonical := func(names []string) []string {
		var out []string
		for _, n := range names {
			if n = policy.CanonicalFolder(n); !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
		return out
	}
	acc.Folders = canonical(acc.Folders)
	acc.ExcludeFolders = canonical(acc.ExcludeFolders)
	acc.QuarantineFolders = canonical(acc.QuarantineFolders)
	acc.MoveTo = policy.CanonicalFolder(acc.MoveTo)
}

// readLocalFolder reads the local_folder directives: upstream → local name,
// INBOX spelled so on both sides.
func readLocalFolder(name string, nodes []Node) (map[string]string, error) {
	var out map[string]string
	for _, c := range nodes {
		if len(c.Args) != 2 || c.Args[0] == "" || c.Args[1] == "" {
			return nil, maddycfg.NodeErr(c, "account %s: local_folder takes an upstream folder and a local one: local_folder UPSTREAM LOCAL", name)
		}
		if out == nil {
			out = map[string]string{}
		}
		out[policy.CanonicalFolder(c.Args[0])] = policy.CanonicalFolder(c.Args[1])
	}
	return out, nil
}

// checkKeepOptions: what becomes of a delivered message upstream fits
// keep, and the move_to folder is not polled.
func (p *accountParser) checkKeepOptions() error {
	acc := p.acc
	switch {
	case acc.MarkSeen && !acc.Keep:
		return p.errAt("mark_seen", "mark_seen is for keep yes (with keep no the messages are removed)")
	case acc.MoveTo != "" && acc.Keep:
		return p.errAt("move_to", "move_to is for keep no (with keep yes messages stay where they are; see delete_after)")
	case acc.DeleteAfter > 0 && !acc.Keep:
		return p.errAt("delete_after", "delete_after is for keep yes (keep no deletes at once)")
	}
	for _, f := range policy.NewFolderSet(acc.Folders, acc.ExcludeFolders).Literal() {
		if acc.MoveTo != "" && policy.SameFolder(f, acc.MoveTo) {
			// Moved there, and fetched from there again: twice.
			return p.errAt("folders", "folders names %q, the move_to folder: delivered messages moved there would be delivered again", f)
		}
	}
	return nil
}

// checkProtocol: one upstream, IMAP or POP3, at a valid address, reached
// securely, and no IMAP-only directive on POP3; or a file (checkFile).
func (p *accountParser) checkProtocol() error {
	acc := p.acc
	var given []string
	for _, d := range []struct{ name, value string }{{"imap", p.imap}, {"pop3", p.pop3}, {"mbox", p.mbox}, {"maildir", p.maildir}} {
		if d.value != "" {
			given = append(given, d.name)
		}
	}
	switch {
	case p.imap != "" && p.pop3 != "":
		return p.errAt("", "use either imap or pop3, not both")
	case len(given) > 1:
		return p.errAt(given[1], "use one of imap, pop3, mbox and maildir, not %s", strings.Join(given, " and "))
	case p.mbox != "" || p.maildir != "":
		return p.checkFile()
	case p.imap != "":
		acc.Protocol = source.IMAP
	case p.pop3 != "":
		acc.Protocol = source.POP3
	default:
		return p.errAt("", "no upstream: add 'imap tls://HOST:PORT', 'pop3 tls://HOST:PORT', 'mbox PATH' or 'maildir PATH'")
	}
	if err := acc.parseEndpoint(p.imap + p.pop3); err != nil {
		return p.errAt(strings.ToLower(acc.Protocol), "%v", err)
	}
	if err := p.checkTLS(); err != nil {
		return err
	}
	if acc.Protocol == source.POP3 {
		return p.checkPOP3()
	}
	return nil
}

// checkPOP3 refuses the directives POP3 has nothing for.
func (p *accountParser) checkPOP3() error {
	acc := p.acc
	if len(acc.Folders) != 1 || acc.Folders[0] != "INBOX" {
		return p.errAt("folders", "POP3 has a single mailbox; 'folders' is for IMAP accounts")
	}
	for _, d := range []struct {
		name string
		set  bool
	}{{"exclude_folders", len(acc.ExcludeFolders) > 0}, {"max_age", acc.MaxAge > 0}, {"mark_seen", acc.MarkSeen}, {"move_to", acc.MoveTo != ""},
		{"local_folders", acc.MirrorFolders}, {"local_folder", len(acc.LocalFolder) > 0}, {"keep_flags", p.keepFlags == "yes"}} {
		if d.set {
			return p.errAt(d.name, "%s is for IMAP accounts (POP3 has one mailbox, no dates before download, no flags, no folders)", d.name)
		}
	}
	return nil
}

// parseEndpoint reads tls://HOST:PORT or tcp://HOST:PORT.
func (acc *Account) parseEndpoint(s string) error {
	ep, err := maddycfg.ParseEndpoint(s)
	if err != nil {
		// maddy's parser wants a port; ours defaults to the protocol's.
		for _, port := range defaultPorts[acc.Protocol] {
			if withPort, err2 := maddycfg.ParseEndpoint(s + ":" + port); err2 == nil {
				ep, err = withPort, nil
				ep.Port = ""
				break
			}
		}
	}
	if err != nil {
		return fmt.Errorf("invalid address %q: %v", s, err)
	}
	switch ep.Scheme {
	case "tls":
		acc.ImplicitTLS = true
	case "tcp":
	default:
		return fmt.Errorf("address %q: use tls:// (implicit TLS) or tcp:// (STARTTLS)", s)
	}
	if ep.Host == "" {
		return fmt.Errorf("address %q has no host", s)
	}
	acc.Host, acc.Port = ep.Host, ep.Port
	if acc.Port == "" {
		acc.Port = defaultPorts[acc.Protocol][acc.ImplicitTLS]
	}
	return nil
}

var defaultPorts = map[string]map[bool]string{
	source.IMAP: {true: "993", false: "143"},
	source.POP3: {true: "995", false: "110"},
}

// checkTLS validates tls_pin and insecure_plaintext.
func (p *accountParser) checkTLS() error {
	acc := p.acc
	for _, pin := range acc.Pins {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(pin, "sha256/"))
		if !strings.HasPrefix(pin, "sha256/") || err != nil || len(raw) != sha256.Size {
			return p.errAt("tls_pin", "tls_pin %q is not sha256/BASE64 of a SHA-256 SPKI digest", pin)
		}
	}
	switch {
	case !acc.Plaintext && len(p.plaintextHosts) > 0:
		return p.errAt("insecure_plaintext_hosts", "insecure_plaintext_hosts without insecure_plaintext yes")
	case !acc.Plaintext:
		return nil
	case acc.ImplicitTLS:
		return p.errAt("insecure_plaintext", "insecure_plaintext needs a tcp:// address, not tls://")
	case len(acc.Pins) > 0:
		return p.errAt("insecure_plaintext", "tls_pin and insecure_plaintext contradict each other")
	case !isLoopback(acc.Host) && !slices.Contains(p.plaintextHosts, acc.Host):
		return p.errAt("insecure_plaintext", "insecure_plaintext is refused for %s, which is not loopback; "+
			"list it in insecure_plaintext_hosts if you really mean to send the password unencrypted", acc.Host)
	}
	acc.Warnings = append(acc.Warnings, fmt.Sprintf("insecure_plaintext: the password and all mail for %s cross the network unencrypted", acc.Host))
	return nil
}

// readCredentials: a username, a login mechanism that fits the protocol,
// and a password (inline or from its file) or an OAuth2 token. A file
// needs none.
func (p *accountParser) readCredentials() error {
	acc := p.acc
	if acc.IsFile() {
		return nil
	}
	if err := p.checkAuth(); err != nil {
		return err
	}
	if acc.Username == "" {
		return p.errAt("", "username is required")
	}
	secret, err := p.secret()
	if err != nil {
		return err
	}
	acc.Secret, acc.Password = secret, secret.get
	return nil
}

// secret reads password, password_file or password_command; an OAuth2
// account needs none.
func (p *accountParser) secret() (*Secret, error) {
	set := 0
	for _, given := range []bool{p.password != "", p.passwordFile != "", p.passwordCommand != nil} {
		if given {
			set++
		}
	}
	switch {
	case set > 1:
		last := "password_file"
		if p.passwordCommand != nil {
			last = "password_command"
		}
		return nil, p.errAt(last, "use one of password, password_file and password_command, not several")
	case p.passwordCommand != nil:
		return p.commandSecret()
	case p.passwordFile != "":
		path := p.passwordFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(maddycfg.StateDirectory, path)
		}
		v, loose, err := readSecretFile(path)
		if err != nil {
			return nil, p.errAt("password_file", "%v", err)
		}
		if loose {
			p.acc.Warnings = append(p.acc.Warnings, fmt.Sprintf("password file %s is readable by group or others; chmod 600 it", path))
		}
		return &Secret{value: v, file: path}, nil
	case p.password != "":
		return &Secret{value: p.password}, nil
	case p.acc.OAuth2 != nil:
		return &Secret{}, nil // the token is the credential
	}
	return nil, p.errAt("", "password, password_file or password_command is required")
}

// commandSecret: the command must exist now. It runs at the first login,
// not here: a vault may be locked while maddy starts, and a slow command
// must not hold the start.
func (p *accountParser) commandSecret() (*Secret, error) {
	argv := p.passwordCommand
	if len(argv) == 0 || argv[0] == "" {
		return nil, p.errAt("password_command", "password_command needs a command: password_command CMD [ARGS...]")
	}
	if _, err := exec.LookPath(argv[0]); err != nil {
		return nil, p.errAt("password_command", "password_command: %v", err)
	}
	return &Secret{command: slices.Clone(argv)}, nil
}

// checkAuth: auth and the oauth2 block go together; apop is POP3's.
func (p *accountParser) checkAuth() error {
	acc := p.acc
	oauth := acc.Auth == source.AuthXOAUTH2 || acc.Auth == source.AuthOAuthBearer
	switch {
	case oauth && acc.OAuth2 == nil:
		return p.errAt("auth", "auth %s needs an oauth2 { ... } block", acc.Auth)
	case acc.Auth == source.AuthAPOP && acc.Protocol != source.POP3:
		return p.errAt("auth", "auth apop is for POP3 accounts")
	case acc.OAuth2 != nil && !oauth:
		return p.errAt("oauth2", "an oauth2 block needs auth xoauth2 or auth oauthbearer")
	}
	if acc.OAuth2 != nil && acc.OAuth2.TokenFile == "" && !acc.OAuth2.ClientCredentials {
		acc.OAuth2.TokenFile = filepath.Join(maddycfg.StateDirectory, "remote_pull", acc.Name+".token")
	}
	return nil
}

// checkRecipients: rcpt_to and notify are addresses, envelope_domains
// domains (with an envelope_header to read).
func (p *accountParser) checkRecipients() error {
	acc := p.acc
	if len(acc.Rcpts) == 0 {
		return p.errAt("", "rcpt_to is required: the local address(es) that receive this account's mail")
	}
	for i, rcpt := range acc.Rcpts {
		clean, err := address.CleanDomain(rcpt)
		if err != nil || !address.Valid(clean) {
			return p.errAt("rcpt_to", "rcpt_to: invalid address %q", rcpt)
		}
		acc.Rcpts[i] = clean
	}
	if err := p.readNotify(); err != nil {
		return err
	}
	return p.checkEnvelope()
}

// readNotify: notify's addresses, rcpt_to by default, none with off.
func (p *accountParser) readNotify() error {
	switch {
	case len(p.notify) == 1 && p.notify[0] == "off":
		return nil
	case len(p.notify) == 0:
		p.acc.Notify = p.acc.Rcpts
		return nil
	}
	for _, a := range p.notify {
		clean, err := address.CleanDomain(a)
		if err != nil || !address.Valid(clean) {
			return p.errAt("notify", "notify: invalid address %q (or 'notify off')", a)
		}
		p.acc.Notify = append(p.acc.Notify, clean)
	}
	return nil
}

// checkEnvelope: envelope_domains are domains, for an envelope_header.
func (p *accountParser) checkEnvelope() error {
	acc := p.acc
	if len(acc.EnvelopeDomains) > 0 && len(acc.EnvelopeHeaders) == 0 {
		return p.errAt("envelope_domains", "envelope_domains without envelope_header")
	}
	for i, d := range acc.EnvelopeDomains {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if d == "" || strings.ContainsAny(d, "@ /") {
			return p.errAt("envelope_domains", "envelope_domains: %q is not a domain", acc.EnvelopeDomains[i])
		}
		acc.EnvelopeDomains[i] = d
	}
	return nil
}

// buildTarget makes the account's pipeline, refuses one that can deliver a
// message to several targets, and finds the storage that local_folders,
// local_folder and keep_flags need.
func (p *accountParser) buildTarget() error {
	acc := p.acc
	if len(p.pipeline) == 0 {
		return p.errAt("", "no delivery target: add 'deliver_to &local_routing' or pipeline directives as in an smtp block")
	}
	target, err := buildPipeline(p.node, p.pipeline, p.globals, acc.Hostname)
	if err != nil {
		return err
	}
	// Several targets for one message: a Commit that fails in the second
	// after the first stored it would be retried, and stored twice.
	perRcpt, all, known := pipelineTargets(target)
	switch {
	case !known:
		acc.Warnings = append(acc.Warnings, "cannot tell how many delivery targets the pipeline has (unknown maddy version): "+
			"if a message can reach several, a failure in one after another stored it leads to a duplicate on retry")
	case perRcpt > 1:
		return p.errAt("deliver_to", "a message can be delivered to %d targets at once; "+
			"remote_pull needs one target per message, since a failure in the second after the first stored it would store it again on retry "+
			"(route each recipient to a single target; forward copies from that target instead)", perRcpt)
	case all > 1 && len(acc.Rcpts) > 1:
		return p.errAt("rcpt_to", "the %d rcpt_to addresses may be routed to different delivery targets (%d in the pipeline); "+
			"remote_pull needs one target per message, since a failure in the second after the first stored it would store it again on retry", len(acc.Rcpts), all)
	}
	if acc.MirrorFolders || len(acc.LocalFolder) > 0 || acc.KeepFlags {
		// Folders and flags are set by the storage: the pipeline must end
		// in one (and it must have remote_pull's imap_filter, which the
		// endpoint checks once every module is configured).
		store, ok := pipelineStorage(target)
		if !ok {
			return p.errAt("local_folders", "local_folders, local_folder and keep_flags need a pipeline that delivers into one maddy storage (storage.imapsql)")
		}
		acc.Storage = store
	}
	acc.Pipeline = target
	return nil
}
