package config

import (
	"os"
	"path/filepath"

	maddycfg "github.com/foxcpp/maddy/framework/config"

	"github.com/remote-pull/remote_pull/internal/source"
)

// IsFile: the account reads an mbox file or a Maildir tree.
func (acc *Account) IsFile() bool {
	return acc.Protocol == source.Mbox || acc.Protocol == source.Maildir
}

// checkFile: the mbox file or Maildir tree is there and readable, and no
// directive asks for what a file cannot do. Files are never written, so
// everything that removes, moves or flags upstream is refused, and so is
// every login setting.
func (p *accountParser) checkFile() error {
	acc := p.acc
	directive, path := "mbox", p.mbox
	acc.Protocol = source.Mbox
	if p.maildir != "" {
		directive, path = "maildir", p.maildir
		acc.Protocol = source.Maildir
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(maddycfg.StateDirectory, path)
	}
	fi, err := os.Stat(path)
	switch {
	case err != nil:
		return p.errAt(directive, "%v", err)
	case acc.Protocol == source.Mbox && !fi.Mode().IsRegular():
		return p.errAt(directive, "%s is not a file (an mbox is one file; for a directory of cur/, new/ use maildir)", path)
	case acc.Protocol == source.Maildir && !fi.IsDir():
		return p.errAt(directive, "%s is not a directory (a Maildir has cur/ and new/; for one file use mbox)", path)
	}
	if acc.Protocol == source.Maildir {
		for _, sub := range []string{"cur", "new"} {
			if fi, err := os.Stat(filepath.Join(path, sub)); err != nil || !fi.IsDir() {
				return p.errAt(directive, "%s is not a Maildir: it has no %s/ directory", path, sub)
			}
		}
	}
	if f, err := os.Open(path); err != nil {
		return p.errAt(directive, "%v", err)
	} else {
		f.Close()
	}
	acc.File, acc.Host = path, path
	if p.has("mbox_variant") && acc.Protocol != source.Mbox {
		return p.errAt("mbox_variant", "mbox_variant is for mbox accounts")
	}
	if p.own("keep") && !acc.Keep {
		return p.errAt("keep", "keep no: %s accounts never change the files they read; delete or move the file yourself once the import is done", directive)
	}
	for _, d := range []string{"move_to", "delete_after", "mark_seen", "idle", "username", "password", "password_file", "password_command", "max_connections",
		"auth", "oauth2", "tls_client", "tls_pin", "insecure_plaintext", "insecure_plaintext_hosts"} {
		if p.own(d) {
			return p.errAt(d, "%s makes no sense for a file source (%s PATH): the files are only read, with no server to log in to", d, directive)
		}
	}
	if acc.Protocol == source.Mbox {
		for _, d := range []struct {
			name string
			set  bool
		}{{"folders", len(acc.Folders) != 1 || acc.Folders[0] != "INBOX"}, {"exclude_folders", len(acc.ExcludeFolders) > 0}} {
			if d.set {
				return p.errAt(d.name, "an mbox file is one folder: %s is for maildir and IMAP accounts", d.name)
			}
		}
	}
	// Inherited from the remote_pull block, for its network accounts.
	acc.Idle, acc.Keep, acc.MarkSeen, acc.MoveTo, acc.DeleteAfter = false, true, false, "", 0
	return nil
}

// has: the account sets the directive, itself or by the remote_pull
// block's default.
func (p *accountParser) has(name string) bool {
	for _, n := range p.merged {
		if n.Name == name {
			return true
		}
	}
	return false
}

// own: the account block itself sets the directive.
func (p *accountParser) own(name string) bool {
	for _, n := range p.node.Children {
		if n.Name == name {
			return true
		}
	}
	return false
}
