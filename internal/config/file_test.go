package config

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCheckFile(t *testing.T) {
	dir := t.TempDir()
	mbox := filepath.Join(dir, "mail.mbox")
	if err := os.WriteFile(mbox, []byte("From a Sun Dec  6 02:03:21 2026\n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	md := filepath.Join(dir, "Maildir")
	for _, sub := range []string{"cur", "new", "tmp"} {
		if err := os.MkdirAll(filepath.Join(md, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	asMbox := func(p *accountParser) { p.imap, p.password, p.acc.Username, p.mbox = "", "", "", mbox }
	asMaildir := func(p *accountParser) { p.imap, p.password, p.acc.Username, p.maildir = "", "", "", md }
	own := func(p *accountParser, name string, args ...string) {
		p.node.Children = append(p.node.Children, Node{Name: name, Args: args})
	}
	runChecks(t, (*accountParser).checkProtocol, []checkCase{
		{"mbox", asMbox, ""},
		{"maildir", asMaildir, ""},
		{"both", func(p *accountParser) { asMbox(p); p.maildir = md }, "use one of imap, pop3, mbox and maildir, not mbox and maildir"},
		{"imap and mbox", func(p *accountParser) { p.mbox = mbox }, "use one of imap, pop3, mbox and maildir, not imap and mbox"},
		{"missing file", func(p *accountParser) { asMbox(p); p.mbox = filepath.Join(dir, "nope") }, "stat " + filepath.Join(dir, "nope") + ": no such file"},
		{"mbox is a directory", func(p *accountParser) { asMbox(p); p.mbox = md }, md + " is not a file"},
		{"maildir is a file", func(p *accountParser) { asMaildir(p); p.maildir = mbox }, mbox + " is not a directory"},
		{"maildir without cur", func(p *accountParser) { asMaildir(p); p.maildir = dir }, dir + " is not a Maildir: it has no cur/"},
		{"keep no", func(p *accountParser) { asMbox(p); p.acc.Keep = false; own(p, "keep", "no") }, "keep no: mbox accounts never change the files"},
		{"keep no inherited", func(p *accountParser) { asMbox(p); p.acc.Keep = false }, ""},
		{"delete_after", func(p *accountParser) { asMaildir(p); own(p, "delete_after", "30d") }, "delete_after makes no sense for a file source"},
		{"idle", func(p *accountParser) { asMbox(p); own(p, "idle", "yes") }, "idle makes no sense for a file source"},
		{"username", func(p *accountParser) { asMbox(p); own(p, "username", "u") }, "username makes no sense for a file source"},
		{"mbox folders", func(p *accountParser) { asMbox(p); p.acc.Folders = []string{"*"} }, "an mbox file is one folder: folders"},
		{"maildir folders", func(p *accountParser) { asMaildir(p); p.acc.Folders = []string{"*"} }, ""},
		{"mbox_variant on maildir", func(p *accountParser) { asMaildir(p); own(p, "mbox_variant", "mboxo"); p.merged = p.node.Children }, "mbox_variant is for mbox accounts"},
	})
}

// A whole account block: a file account needs no credentials.
func TestFileAccountParses(t *testing.T) {
	mbox := filepath.Join(t.TempDir(), "mail.mbox")
	if err := os.WriteFile(mbox, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	n := Node{Name: "account", Args: []string{"takeout"}, File: "maddy.conf", Line: 3, Children: []Node{
		{Name: "mbox", Args: []string{mbox}},
		{Name: "rcpt_to", Args: []string{"a@example.org"}},
		{Name: "deliver_to", Args: []string{"dummy"}},
	}}
	acc, err := parseAccount("takeout", n, nil, globals)
	if err != nil {
		t.Fatal(err)
	}
	if acc.Protocol != "mbox" || acc.File != mbox || !acc.Keep || acc.Idle {
		t.Fatalf("parsed %+v", acc)
	}
	n.Children = append(n.Children, Node{Name: "password", Args: []string{"x"}, File: "maddy.conf", Line: 7})
	if _, err := parseAccount("takeout", n, nil, globals); err == nil || err.Error() != "maddy.conf:7: account takeout: password makes no sense for a file source (mbox PATH): the files are only read, with no server to log in to" {
		t.Fatalf("error %v", err)
	}
}
