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
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/foxcpp/maddy/framework/address"
	maddycfg "github.com/foxcpp/maddy/framework/config"
	modconfig "github.com/foxcpp/maddy/framework/config/module"
	tlscfg "github.com/foxcpp/maddy/framework/config/tls"
	"github.com/foxcpp/maddy/framework/module"

	"github.com/remote-pull/remote_pull/module/account"
	"github.com/remote-pull/remote_pull/module/source"
)

// Node is a maddy config node.
type Node = maddycfg.Node

// Block is one parsed remote_pull block.
type Block struct {
	MaxParallel int
	Accounts    []*Account
}

// Account is one parsed account block.
type Account struct {
	Name     string
	Protocol string // source.IMAP or source.POP3
	Host     string
	Port     string
	// ImplicitTLS is tls://; tcp:// means STARTTLS/STLS, which is then
	// mandatory.
	ImplicitTLS  bool
	TLS          *tls.Config
	Username     string
	Password     *Secret
	RcptTo       []string
	Keep         bool
	PollInterval time.Duration
	// Timeout: how long the upstream may send nothing while remote_pull
	// waits for it, before the connection is given up.
	Timeout time.Duration
	Folders []string
	// ExcludeFolders are patterns taken out of Folders' matches.
	ExcludeFolders []string
	Idle           bool
	// MaxAge (max_age): older messages, by INTERNALDATE, are recorded and
	// not fetched when first seen (IMAP). 0: no bound.
	MaxAge time.Duration
	// MarkSeen (mark_seen, keep yes): set \Seen upstream once delivered.
	MarkSeen bool
	// MoveTo (move_to, keep no): move delivered messages there instead of
	// deleting them.
	MoveTo string
	// DeleteAfter (delete_after, keep yes): delete upstream this long after
	// delivery. 0: never.
	DeleteAfter time.Duration
	// MirrorFolders (local_folders mirror): each upstream folder goes to
	// the same-named local folder, a SPECIAL-USE one to the local folder
	// with its attribute.
	MirrorFolders bool
	// LocalFolder (local_folder UPSTREAM LOCAL, repeatable) maps upstream
	// folders to local ones, over MirrorFolders.
	LocalFolder map[string]string
	// KeepFlags (keep_flags): the upstream copy's flags are set on the
	// delivered one.
	KeepFlags bool
	// Dedupe (dedupe message_id): a message already delivered from another
	// folder is not delivered again. The default when several folders are
	// or may be polled (foldersDedupe).
	Dedupe bool
	// Notify (notify ADDR... | off): where notices about the account go;
	// default rcpt_to, empty with notify off.
	Notify []string
	// Storage is the maddy storage the pipeline delivers into, when
	// MirrorFolders, LocalFolder or KeepFlags need it.
	Storage module.Storage
	// EnvelopeHeaders name the headers that carry the envelope recipient of
	// a catch-all mailbox; RcptTo is then the fallback.
	EnvelopeHeaders    []string
	EnvelopeDomains    []string // envelope_domains: where an envelope header's recipient may be
	MaxMessageSize     int64
	MaxMessagesPerPoll int
	FirstSyncNew       bool
	TrustedAuthRes     []string
	QuarantineFolders  []string
	// Auth is the login mechanism (source.AuthAuto...).
	Auth string
	// OAuth2 is the oauth2 block, for auth xoauth2 and oauthbearer.
	OAuth2 *OAuth2
	// Pins are tls_pin SPKI pins ("sha256/BASE64").
	Pins []string
	// Plaintext: insecure_plaintext yes on a tcp:// address, for loopback or
	// a host listed in insecure_plaintext_hosts.
	Plaintext bool
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
	Pipeline module.DeliveryTarget
	Hostname string // maddy's hostname, for trace fields
	Node     Node   // for error messages
	// Warnings are logged at every start: not errors, but worth fixing.
	Warnings []string
}

// Secret is a password given inline or read from a file. Its String never
// shows the value, so that it cannot end up in a log by accident. It is
// safe for concurrent use: a reload may replace it while a login reads it.
type Secret struct {
	mu    sync.Mutex
	value string
	file  string // absolute path, "" when given inline
}

func (s *Secret) String() string { return "<secret>" }

// Value returns the secret.
func (s *Secret) Value() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.value
}

// Reload re-reads a password file (maddy's reload signal, SIGUSR2); inline
// passwords stay as they are. On error the old value is kept.
func (s *Secret) Reload() error {
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
	AuthURL, TokenURL string
	Scopes            []string
	ClientID          string
	ClientSecret      *Secret // nil for public clients
	TokenFile         string  // absolute
	RedirectPort      int     // for the consent command's loopback redirect; 0: any
}

// accountDirectives are the directives an account block takes besides the
// pipeline ones; they may also stand in the remote_pull block as defaults.
var accountDirectives = map[string]bool{
	"imap": true, "pop3": true, "username": true, "password": true, "password_file": true,
	"rcpt_to": true, "keep": true, "poll_interval": true, "tls_client": true, "folders": true,
	"debug": true, "idle": true, "timeout": true,
	"exclude_folders": true, "max_age": true, "mark_seen": true, "move_to": true, "delete_after": true,
	"local_folders": true, "local_folder": true, "keep_flags": true, "dedupe": true, "notify": true, "disabled": true,
	"envelope_header": true, "envelope_domains": true, "max_message_size": true, "max_messages_per_poll": true,
	"first_sync": true, "trusted_authres": true, "quarantine_folders": true,
	"auth": true, "tls_pin": true, "insecure_plaintext": true, "insecure_plaintext_hosts": true,
	"oauth2": true,
}

// pipelineDirectives are what an smtp endpoint block accepts as its message
// pipeline (maddy's msgpipeline).
var pipelineDirectives = map[string]bool{
	"deliver_to": true, "check": true, "modify": true, "source_in": true, "source": true,
	"default_source": true, "dmarc": true, "reroute": true, "destination_in": true,
	"destination": true, "default_destination": true, "reject": true,
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

func parseAccount(name string, n Node, defaults []Node, globals map[string]interface{}) (*Account, error) {
	acc := &Account{Name: name, Node: n}
	var own []Node
	for _, c := range n.Children {
		if !accountDirectives[c.Name] && !pipelineDirectives[c.Name] {
			return nil, unknownDirective(c)
		}
		own = append(own, c)
	}
	merged := merge(own, defaults)

	var pipeline, settings, localFolder []Node
	for _, c := range merged {
		switch {
		case pipelineDirectives[c.Name]:
			pipeline = append(pipeline, c)
		case c.Name == "local_folder": // repeatable: read below
			localFolder = append(localFolder, c)
		default:
			settings = append(settings, c)
		}
	}

	var (
		imapAddr, pop3Addr     string
		password, passwordFile string
		keep                   = true
	)
	m := maddycfg.NewMap(globals, Node{Name: n.Name, Args: n.Args, Children: settings, File: n.File, Line: n.Line})
	m.String("imap", false, false, "", &imapAddr)
	m.String("pop3", false, false, "", &pop3Addr)
	m.String("username", false, false, "", &acc.Username)
	m.String("password", false, false, "", &password)
	m.String("password_file", false, false, "", &passwordFile)
	m.StringList("rcpt_to", false, false, nil, &acc.RcptTo)
	m.Bool("keep", false, true, &keep)
	m.Duration("poll_interval", false, false, 5*time.Minute, &acc.PollInterval)
	m.Duration("timeout", false, false, 2*time.Minute, &acc.Timeout)
	m.Custom("tls_client", true, false, func() (interface{}, error) { return &tls.Config{}, nil },
		tlscfg.TLSClientBlock, &acc.TLS)
	m.StringList("folders", false, false, []string{"INBOX"}, &acc.Folders)
	m.StringList("exclude_folders", false, false, nil, &acc.ExcludeFolders)
	var maxAge, deleteAfter string
	m.String("max_age", false, false, "", &maxAge)
	m.String("delete_after", false, false, "", &deleteAfter)
	m.Bool("mark_seen", false, false, &acc.MarkSeen)
	m.String("move_to", false, false, "", &acc.MoveTo)
	var localFolders string
	m.Enum("local_folders", false, false, []string{"inbox", "mirror"}, "inbox", &localFolders)
	var notify []string
	m.StringList("notify", false, false, nil, &notify)
	var dedupe string
	m.Enum("dedupe", false, false, []string{"none", "message_id"}, "", &dedupe)
	var keepFlags string
	m.Enum("keep_flags", false, false, []string{"yes", "no", "default"}, "default", &keepFlags)
	m.Bool("idle", false, true, &acc.Idle)
	m.StringList("envelope_header", false, false, nil, &acc.EnvelopeHeaders)
	m.StringList("envelope_domains", false, false, nil, &acc.EnvelopeDomains)
	m.DataSize("max_message_size", false, false, 32<<20, &acc.MaxMessageSize)
	m.Int("max_messages_per_poll", false, false, 0, &acc.MaxMessagesPerPoll)
	var firstSync string
	m.Enum("first_sync", false, false, []string{"all", "new"}, "all", &firstSync)
	m.StringList("trusted_authres", false, false, nil, &acc.TrustedAuthRes)
	m.StringList("quarantine_folders", false, false, nil, &acc.QuarantineFolders)
	m.Enum("auth", false, false, []string{source.AuthAuto, source.AuthPlain, source.AuthLogin, source.AuthAPOP,
		source.AuthXOAUTH2, source.AuthOAuthBearer}, source.AuthAuto, &acc.Auth)
	m.StringList("tls_pin", false, false, nil, &acc.Pins)
	m.Custom("oauth2", false, false, nil, oauth2Block, &acc.OAuth2)
	var plaintextHosts []string
	m.Bool("insecure_plaintext", false, false, &acc.Plaintext)
	m.StringList("insecure_plaintext_hosts", false, false, nil, &plaintextHosts)
	m.Bool("debug", true, false, &acc.Debug)
	m.Bool("disabled", false, false, &acc.Disabled)
	m.String("hostname", true, false, "", &acc.Hostname)
	if _, err := m.Process(); err != nil {
		return nil, err
	}
	acc.Keep = keep
	acc.FirstSyncNew = firstSync == "new"
	if len(acc.EnvelopeDomains) > 0 && len(acc.EnvelopeHeaders) == 0 {
		return nil, errAt(n, merged, "envelope_domains", "account %s: envelope_domains without envelope_header", name)
	}
	for i, d := range acc.EnvelopeDomains {
		d = strings.ToLower(strings.TrimSuffix(d, "."))
		if d == "" || strings.ContainsAny(d, "@ /") {
			return nil, errAt(n, merged, "envelope_domains", "account %s: envelope_domains: %q is not a domain", name, acc.EnvelopeDomains[i])
		}
		acc.EnvelopeDomains[i] = d
	}
	if acc.MaxMessagesPerPoll < 0 {
		return nil, errAt(n, merged, "max_messages_per_poll", "max_messages_per_poll must not be negative")
	}
	if acc.MaxMessageSize <= 0 {
		return nil, errAt(n, merged, "max_message_size", "max_message_size must be positive")
	}
	acc.canonicalFolders()
	for _, dir := range []struct {
		name  string
		value []string
	}{{"folders", acc.Folders}, {"exclude_folders", acc.ExcludeFolders}} {
		for _, f := range dir.value {
			if err := account.CheckFolderPattern(f); err != nil {
				return nil, errAt(n, merged, dir.name, "account %s: %s: %v", name, dir.name, err)
			}
		}
	}
	folders := account.NewFolderSet(acc.Folders, acc.ExcludeFolders)
	for _, q := range acc.QuarantineFolders {
		if !folders.Polls(q) {
			return nil, errAt(n, merged, "quarantine_folders", "account %s: quarantine folder %q is not in folders", name, q)
		}
	}
	acc.Dedupe = dedupe == "message_id" || (dedupe == "" && severalFolders(folders))
	acc.MirrorFolders = localFolders == "mirror"
	acc.KeepFlags = keepFlags == "yes" || (keepFlags == "default" && acc.MirrorFolders)
	var err error
	if acc.LocalFolder, err = readLocalFolder(name, localFolder); err != nil {
		return nil, err
	}
	if acc.MaxAge, err = parseAge(maxAge); err != nil {
		return nil, errAt(n, merged, "max_age", "account %s: max_age: %v", name, err)
	}
	if acc.DeleteAfter, err = parseAge(deleteAfter); err != nil {
		return nil, errAt(n, merged, "delete_after", "account %s: delete_after: %v", name, err)
	}
	switch {
	case acc.MarkSeen && !keep:
		return nil, errAt(n, merged, "mark_seen", "account %s: mark_seen is for keep yes (with keep no the messages are removed)", name)
	case acc.MoveTo != "" && keep:
		return nil, errAt(n, merged, "move_to", "account %s: move_to is for keep no (with keep yes messages stay where they are; see delete_after)", name)
	case acc.DeleteAfter > 0 && !keep:
		return nil, errAt(n, merged, "delete_after", "account %s: delete_after is for keep yes (keep no deletes at once)", name)
	}
	for _, f := range folders.Literal() {
		if acc.MoveTo != "" && account.SameFolder(f, acc.MoveTo) {
			// Moved there, and fetched from there again: twice.
			return nil, errAt(n, merged, "folders", "account %s: folders names %q, the move_to folder: delivered messages moved there would be delivered again", name, f)
		}
	}
	acc.ConfigHash = hex.EncodeToString(hashTree(merged, volatile)[:16])
	acc.Digest = hex.EncodeToString(hashTree(merged, nil))
	if acc.PollInterval < time.Second {
		return nil, errAt(n, merged, "poll_interval", "poll_interval must be at least 1s")
	}
	if acc.Timeout < time.Second {
		return nil, errAt(n, merged, "timeout", "timeout must be at least 1s")
	}

	switch {
	case imapAddr != "" && pop3Addr != "":
		return nil, maddycfg.NodeErr(n, "account %s: use either imap or pop3, not both", name)
	case imapAddr != "":
		acc.Protocol = source.IMAP
	case pop3Addr != "":
		acc.Protocol = source.POP3
	default:
		return nil, maddycfg.NodeErr(n, "account %s: no upstream: add 'imap tls://HOST:PORT' or 'pop3 tls://HOST:PORT'", name)
	}
	if err := acc.parseEndpoint(imapAddr + pop3Addr); err != nil {
		return nil, errAt(n, merged, strings.ToLower(acc.Protocol), "%v", err)
	}
	if err := acc.checkSecurity(n, merged, plaintextHosts); err != nil {
		return nil, err
	}
	if acc.Protocol == source.POP3 && (len(acc.Folders) != 1 || acc.Folders[0] != "INBOX") {
		return nil, errAt(n, merged, "folders", "account %s: POP3 has a single mailbox; 'folders' is for IMAP accounts", name)
	}
	if acc.Protocol == source.POP3 {
		for _, d := range []struct {
			name string
			set  bool
		}{{"exclude_folders", len(acc.ExcludeFolders) > 0}, {"max_age", acc.MaxAge > 0}, {"mark_seen", acc.MarkSeen}, {"move_to", acc.MoveTo != ""},
			{"local_folders", acc.MirrorFolders}, {"local_folder", len(acc.LocalFolder) > 0}, {"keep_flags", keepFlags == "yes"}} {
			if d.set {
				return nil, errAt(n, merged, d.name, "account %s: %s is for IMAP accounts (POP3 has one mailbox, no dates before download, no flags, no folders)", name, d.name)
			}
		}
	}

	if acc.Username == "" {
		return nil, maddycfg.NodeErr(n, "account %s: username is required", name)
	}
	switch {
	case password != "" && passwordFile != "":
		return nil, errAt(n, merged, "password_file", "account %s: use either password or password_file, not both", name)
	case passwordFile != "":
		path := passwordFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(maddycfg.StateDirectory, path)
		}
		v, loose, err := readSecretFile(path)
		if err != nil {
			return nil, errAt(n, merged, "password_file", "account %s: %v", name, err)
		}
		if loose {
			acc.Warnings = append(acc.Warnings, fmt.Sprintf("password file %s is readable by group or others; chmod 600 it", path))
		}
		acc.Password = &Secret{value: v, file: path}
	case password != "":
		acc.Password = &Secret{value: password}
	case acc.OAuth2 != nil:
		acc.Password = &Secret{} // the token is the credential
	default:
		return nil, maddycfg.NodeErr(n, "account %s: password or password_file is required", name)
	}

	if len(acc.RcptTo) == 0 {
		return nil, maddycfg.NodeErr(n, "account %s: rcpt_to is required: the local address(es) that receive this account's mail", name)
	}
	for i, rcpt := range acc.RcptTo {
		clean, err := address.CleanDomain(rcpt)
		if err != nil || !address.Valid(clean) {
			return nil, errAt(n, merged, "rcpt_to", "account %s: rcpt_to: invalid address %q", name, rcpt)
		}
		acc.RcptTo[i] = clean
	}

	switch {
	case len(notify) == 1 && notify[0] == "off":
	case len(notify) == 0:
		acc.Notify = acc.RcptTo
	default:
		for _, a := range notify {
			clean, err := address.CleanDomain(a)
			if err != nil || !address.Valid(clean) {
				return nil, errAt(n, merged, "notify", "account %s: notify: invalid address %q (or 'notify off')", name, a)
			}
			acc.Notify = append(acc.Notify, clean)
		}
	}

	if len(pipeline) == 0 {
		return nil, maddycfg.NodeErr(n, "account %s: no delivery target: add 'deliver_to &local_routing' or pipeline directives as in an smtp block", name)
	}
	target, err := buildPipeline(n, pipeline, globals, acc.Hostname)
	if err != nil {
		return nil, err
	}
	// Several targets for one message: a Commit that fails in the second
	// after the first stored it would be retried, and stored twice.
	perRcpt, all, known := pipelineTargets(target)
	switch {
	case !known:
		acc.Warnings = append(acc.Warnings, "cannot tell how many delivery targets the pipeline has (unknown maddy version): "+
			"if a message can reach several, a failure in one after another stored it leads to a duplicate on retry")
	case perRcpt > 1:
		return nil, errAt(n, merged, "deliver_to", "account %s: a message can be delivered to %d targets at once; "+
			"remote_pull needs one target per message, since a failure in the second after the first stored it would store it again on retry "+
			"(route each recipient to a single target; forward copies from that target instead)", name, perRcpt)
	case all > 1 && len(acc.RcptTo) > 1:
		return nil, errAt(n, merged, "rcpt_to", "account %s: the %d rcpt_to addresses may be routed to different delivery targets (%d in the pipeline); "+
			"remote_pull needs one target per message, since a failure in the second after the first stored it would store it again on retry", name, len(acc.RcptTo), all)
	}
	if acc.MirrorFolders || len(acc.LocalFolder) > 0 || acc.KeepFlags {
		// Folders and flags are set by the storage: the pipeline must end
		// in one (and it must have remote_pull's imap_filter, which the
		// endpoint checks once every module is configured).
		store, ok := pipelineStorage(target)
		if !ok {
			return nil, errAt(n, merged, "local_folders", "account %s: local_folders, local_folder and keep_flags need a pipeline that delivers into one maddy storage (storage.imapsql)", name)
		}
		acc.Storage = store
	}
	acc.Pipeline = target
	return acc, nil
}

// canonicalFolders spells INBOX so in every directive that names an
// upstream folder: in any case it is one folder (RFC 3501), and the ledger
// keys a folder by its name. A name given twice is kept once.
func (acc *Account) canonicalFolders() {
	canonical := func(names []string) []string {
		var out []string
		for _, n := range names {
			if n = account.CanonicalFolder(n); !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
		return out
	}
	acc.Folders = canonical(acc.Folders)
	acc.ExcludeFolders = canonical(acc.ExcludeFolders)
	acc.QuarantineFolders = canonical(acc.QuarantineFolders)
	acc.MoveTo = account.CanonicalFolder(acc.MoveTo)
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
		out[account.CanonicalFolder(c.Args[0])] = account.CanonicalFolder(c.Args[1])
	}
	return out, nil
}

// severalFolders: more than one folder is, or with a pattern may be,
// polled. A message the user files upstream from one to another after its
// delivery would then arrive again: dedupe is on unless set to none.
func severalFolders(fs *account.FolderSet) bool {
	return fs.Dynamic() || len(fs.Literal()) > 1
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

// checkSecurity validates auth, tls_pin and insecure_plaintext.
func (acc *Account) checkSecurity(n Node, merged []Node, plaintextHosts []string) error {
	switch acc.Auth {
	case source.AuthXOAUTH2, source.AuthOAuthBearer:
		if acc.OAuth2 == nil {
			return errAt(n, merged, "auth", "account %s: auth %s needs an oauth2 { ... } block", acc.Name, acc.Auth)
		}
		if acc.OAuth2.TokenFile == "" {
			acc.OAuth2.TokenFile = filepath.Join(maddycfg.StateDirectory, "remote_pull", acc.Name+".token")
		}
	case source.AuthAPOP:
		if acc.Protocol != source.POP3 {
			return errAt(n, merged, "auth", "account %s: auth apop is for POP3 accounts", acc.Name)
		}
	}
	if acc.OAuth2 != nil && acc.Auth != source.AuthXOAUTH2 && acc.Auth != source.AuthOAuthBearer {
		return errAt(n, merged, "oauth2", "account %s: an oauth2 block needs auth xoauth2 or auth oauthbearer", acc.Name)
	}
	for _, p := range acc.Pins {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(p, "sha256/"))
		if !strings.HasPrefix(p, "sha256/") || err != nil || len(raw) != sha256.Size {
			return errAt(n, merged, "tls_pin", "account %s: tls_pin %q is not sha256/BASE64 of a SHA-256 SPKI digest", acc.Name, p)
		}
	}
	if !acc.Plaintext {
		if len(plaintextHosts) > 0 {
			return errAt(n, merged, "insecure_plaintext_hosts", "account %s: insecure_plaintext_hosts without insecure_plaintext yes", acc.Name)
		}
		return nil
	}
	if acc.ImplicitTLS {
		return errAt(n, merged, "insecure_plaintext", "account %s: insecure_plaintext needs a tcp:// address, not tls://", acc.Name)
	}
	if len(acc.Pins) > 0 {
		return errAt(n, merged, "insecure_plaintext", "account %s: tls_pin and insecure_plaintext contradict each other", acc.Name)
	}
	if !isLoopback(acc.Host) && !slices.Contains(plaintextHosts, acc.Host) {
		return errAt(n, merged, "insecure_plaintext", "account %s: insecure_plaintext is refused for %s, which is not loopback; "+
			"list it in insecure_plaintext_hosts if you really mean to send the password unencrypted", acc.Name, acc.Host)
	}
	acc.Warnings = append(acc.Warnings, fmt.Sprintf("insecure_plaintext: the password and all mail for %s cross the network unencrypted", acc.Host))
	return nil
}

// Provider presets: endpoints and scopes of the providers that need
// OAuth2, so that an account names the provider, not its URLs.
var oauthProviders = map[string]OAuth2{
	"google": {
		AuthURL:  "https://accounts.google.com/o/oauth2/auth",
		TokenURL: "https://oauth2.googleapis.com/token",
		Scopes:   []string{"https://mail.google.com/"},
	},
	"microsoft": {
		AuthURL:  "https://login.microsoftonline.com/common/oauth2/v2.0/authorize",
		TokenURL: "https://login.microsoftonline.com/common/oauth2/v2.0/token",
		Scopes: []string{"https://outlook.office.com/IMAP.AccessAsUser.All",
			"https://outlook.office.com/POP.AccessAsUser.All", "offline_access"},
	},
}

// oauth2Block parses oauth2 { provider ...; client_id ...; ... }.
func oauth2Block(_ *maddycfg.Map, node Node) (interface{}, error) {
	o := &OAuth2{}
	var provider, secretFile, tokenFile string
	m := maddycfg.NewMap(nil, node)
	m.String("provider", false, false, "", &provider)
	m.String("token_endpoint", false, false, "", &o.TokenURL)
	m.String("auth_endpoint", false, false, "", &o.AuthURL)
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
			return nil, maddycfg.NodeErr(node, "oauth2: unknown provider %q (google, microsoft, or give token_endpoint)", provider)
		}
		o.AuthURL = cmp.Or(o.AuthURL, p.AuthURL)
		o.TokenURL = cmp.Or(o.TokenURL, p.TokenURL)
		if o.Scopes == nil {
			o.Scopes = p.Scopes
		}
	}
	if o.TokenURL == "" {
		return nil, maddycfg.NodeErr(node, "oauth2: provider or token_endpoint is required")
	}
	// The token endpoint receives the refresh token and client secret; the
	// consent URL carries the grant: neither crosses a network in clear.
	for _, ep := range []struct{ name, url string }{{"token_endpoint", o.TokenURL}, {"auth_endpoint", o.AuthURL}} {
		if ep.url == "" {
			continue
		}
		if err := httpsOrLoopback(ep.url); err != nil {
			return nil, errAt(node, node.Children, ep.name, "oauth2: %s: %v", ep.name, err)
		}
	}
	if secretFile != "" {
		if !filepath.IsAbs(secretFile) {
			secretFile = filepath.Join(maddycfg.StateDirectory, secretFile)
		}
		v, _, err := readSecretFile(secretFile)
		if err != nil {
			return nil, maddycfg.NodeErr(node, "oauth2: client_secret_file: %v", err)
		}
		o.ClientSecret = &Secret{value: v, file: secretFile}
	}
	if tokenFile != "" && !filepath.IsAbs(tokenFile) {
		tokenFile = filepath.Join(maddycfg.StateDirectory, tokenFile)
	}
	o.TokenFile = tokenFile
	return o, nil
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
	"password": true, "password_file": true, "debug": true, "poll_interval": true, "idle": true, "timeout": true,
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

// errAt reports an error at the directive that caused it (the account's own
// or the inherited default), else at the account.
func errAt(acc Node, merged []Node, directive string, format string, args ...interface{}) error {
	for _, n := range merged {
		if n.Name == directive {
			return maddycfg.NodeErr(n, format, args...)
		}
	}
	return maddycfg.NodeErr(acc, format, args...)
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
