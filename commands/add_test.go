package commands

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	parser "github.com/foxcpp/maddy/framework/cfgparser"
)

// The block add writes reads back as written, values with spaces and
// quotes included.
func TestAccountBlockParses(t *testing.T) {
	acc := &newAccount{Name: "alice", Protocol: "imap", Host: "imap.example.org", Port: "993", Username: "alice smith@example.org",
		PasswordCommand: []string{"sh", "-c", `pass show "mail/isp" | head -1`}, Rcpts: []string{"alice@example.com", "bob@example.com"},
		Folders: []string{"INBOX", "Work/*", "My Folder"}, DeliverTo: "&local_routing", RootCA: "/etc/ssl/my ca.pem",
		DeleteUpstream: true}
	text, err := acc.block()
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := parser.Read(strings.NewReader(text), "x.conf")
	if err != nil || len(nodes) != 1 {
		t.Fatalf("%v\n%s", err, text)
	}
	got := map[string][]string{}
	for _, n := range nodes[0].Children {
		got[n.Name] = n.Args
	}
	for directive, want := range map[string][]string{
		"imap": {"tls://imap.example.org:993"}, "username": {"alice smith@example.org"}, "password_command": acc.PasswordCommand,
		"rcpt_to": acc.Rcpts, "folders": acc.Folders, "deliver_to": {"&local_routing"}, "keep": {"no"},
	} {
		if !slices.Equal(got[directive], want) {
			t.Errorf("%s: %q, want %q\n%s", directive, got[directive], want, text)
		}
	}
	if nodes[0].Args[0] != "alice" {
		t.Errorf("account name %q", nodes[0].Args)
	}
}

func TestQuoteArgRefuses(t *testing.T) {
	for _, v := range []string{"", "a\nb", "{env:HOME}", "$(macro)", `ends\`, `a\"b`} {
		if q, err := quoteArg(v); err == nil {
			t.Errorf("%q written as %s", v, q)
		}
	}
	acc := &newAccount{Name: "a", Protocol: "imap", Host: "h", Port: "993", Username: "{env:USER}", PasswordFile: "/p",
		Rcpts: []string{"a@example.org"}, DeliverTo: "&local_routing"}
	if _, err := acc.block(); err == nil || !strings.Contains(err.Error(), "username") {
		t.Errorf("block with an expandable username: %v", err)
	}
}

const ispdb = `<?xml version="1.0"?>
<clientConfig version="1.1">
  <emailProvider id="example.net">
    <domain>example.net</domain>
    <incomingServer type="pop3">
      <hostname>pop.example.net</hostname><port>995</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>plain.example.net</hostname><port>143</port><socketType>plain</socketType>
      <username>%EMAILADDRESS%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imap.example.net</hostname><port>143</port><socketType>STARTTLS</socketType>
      <username>%EMAILLOCALPART%</username><authentication>password-cleartext</authentication>
    </incomingServer>
    <incomingServer type="imap">
      <hostname>imaps.example.net</hostname><port>993</port><socketType>SSL</socketType>
      <username>%EMAILADDRESS%</username><authentication>OAuth2</authentication>
    </incomingServer>
    <incomingServer type="exchange"><hostname>ews.example.net</hostname><port>443</port><socketType>SSL</socketType></incomingServer>
    <incomingServer type="imap"><hostname>bad host/</hostname><port>993</port><socketType>SSL</socketType></incomingServer>
  </emailProvider>
</clientConfig>`

// IMAP before POP3, implicit TLS before STARTTLS, never plain; the user
// name templates filled in; OAuth2-only servers said so.
func TestParseAutoconfig(t *testing.T) {
	got, err := parseAutoconfig([]byte(ispdb), "bob@example.net")
	if err != nil {
		t.Fatal(err)
	}
	want := []server{
		{Protocol: "imap", Host: "imaps.example.net", Port: "993", OAuthOnly: true},
		{Protocol: "imap", Host: "imap.example.net", Port: "143", StartTLS: true, Username: "bob"},
		{Protocol: "pop3", Host: "pop.example.net", Port: "995"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if _, err := parseAutoconfig([]byte("<clientConfig><emailProvider>"), "a@b"); err == nil {
		t.Error("truncated XML accepted")
	}
}

// The lookup asks the URLs in order, takes the first usable answer and
// bounds what it reads.
func TestLookupAutoconfig(t *testing.T) {
	var asked []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Path)
		switch r.URL.Path {
		case "/v1.1/example.net":
			w.Write([]byte(ispdb))
		case "/v1.1/huge.example":
			fmt.Fprint(w, `<clientConfig>`+strings.Repeat(" ", maxAutoconfig)+`</clientConfig>`)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	base := srv.URL + "/v1.1/{domain}"
	got, err := lookupAutoconfig(context.Background(), "bob@Example.NET", base)
	if err != nil || len(got) != 3 || got[0].Host != "imaps.example.net" {
		t.Fatalf("%+v, %v", got, err)
	}
	if _, err := lookupAutoconfig(context.Background(), "bob@unknown.example", base); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("unknown domain: %v", err)
	}
	if _, err := lookupAutoconfig(context.Background(), "bob@huge.example", base); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("huge answer: %v", err)
	}
	if _, err := lookupAutoconfig(context.Background(), "bob", base); err == nil {
		t.Error("no domain accepted")
	}
	// The default order: the domain's own, then Thunderbird's ISPDB.
	urls := autoconfigURLs("example.net", "")
	if len(urls) != 3 || !strings.HasPrefix(urls[0], "https://autoconfig.example.net/") || urls[2] != "https://autoconfig.thunderbird.net/v1.1/example.net" {
		t.Errorf("default URLs %q", urls)
	}
}

// maddy.conf imports the index with one line; the index imports every
// account file beside it; with no account left it is empty, and the
// configuration still parses.
func TestIndexImports(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, accountsDir)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"bob", "alice"} {
		acc := &newAccount{Name: name, Protocol: "pop3", Host: "h", Port: "995", Username: name, PasswordFile: "/p",
			Rcpts: []string{name + "@example.org"}, DeliverTo: "&local_routing"}
		text, _ := acc.block()
		if err := writeFileAtomic(filepath.Join(dir, name+".conf"), []byte(text), 0o600, nil); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(dir, ".carol.conf.123"), []byte("half"), 0o600) // a temporary file is no account
	if err := writeIndex(dir, nil); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(root, "maddy.conf")
	os.WriteFile(conf, []byte("hostname example.org\nimport remote_pull.d/accounts\n"), 0o644)
	read := func() []string {
		f, _ := os.Open(conf)
		defer f.Close()
		nodes, err := parser.Read(f, conf)
		if err != nil {
			t.Fatal(err)
		}
		var accounts []string
		for _, n := range nodes {
			if n.Name == "remote_pull" {
				for _, a := range n.Children {
					accounts = append(accounts, a.Args[0]+"@"+filepath.Base(a.File))
				}
			}
		}
		return accounts
	}
	if got := read(); !slices.Equal(got, []string{"alice@alice.conf", "bob@bob.conf"}) {
		t.Errorf("accounts %q", got)
	}
	for _, name := range []string{"alice", "bob"} {
		os.Remove(filepath.Join(dir, name+".conf"))
	}
	if err := writeIndex(dir, nil); err != nil {
		t.Fatal(err)
	}
	if got := read(); len(got) != 0 {
		t.Errorf("accounts after removing all: %q", got)
	}
	fi, _ := os.Stat(filepath.Join(dir, "accounts.conf"))
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("index mode %v", fi.Mode())
	}
}

func TestValidName(t *testing.T) {
	for _, ok := range []string{"alice", "alice@example.org", "work-1", "a.b_c+d"} {
		if err := validName(ok); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".hidden", "-x", "a/b", "a b", "accounts", "../x", strings.Repeat("a", 65)} {
		if validName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSplitCommand(t *testing.T) {
	for in, want := range map[string][]string{
		"pass show mail/isp":                {"pass", "show", "mail/isp"},
		`sh -c "pass show x | head -1"`:     {"sh", "-c", "pass show x | head -1"},
		`secret-tool lookup 'my service' x`: {"secret-tool", "lookup", "my service", "x"},
		`  cat   ""  `:                      {"cat", ""},
		`a"b c"d`:                           {"ab cd"},
	} {
		got, err := splitCommand(in)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("%q: %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "   ", `sh -c "unclosed`} {
		if got, err := splitCommand(bad); err == nil {
			t.Errorf("%q: %q", bad, got)
		}
	}
}

// The Gmail preset with a client ID writes an oauth2 block for the
// provider, no password.
func TestOAuthBlock(t *testing.T) {
	acc := &newAccount{Name: "g", Protocol: "imap", Host: "imap.gmail.com", Port: "993", Username: "alice@gmail.com",
		OAuthProvider: "google", ClientID: "123.apps.googleusercontent.com", ClientSecret: "/etc/maddy/secrets/google-client",
		Rcpts: []string{"alice@example.org"}, DeliverTo: "&local_routing"}
	text, err := acc.block()
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := parser.Read(strings.NewReader(text), "g.conf")
	if err != nil {
		t.Fatal(err)
	}
	var oauth2 []string
	var auth string
	for _, n := range nodes[0].Children {
		switch n.Name {
		case "auth":
			auth = n.Args[0]
		case "oauth2":
			for _, o := range n.Children {
				oauth2 = append(oauth2, o.Name+"="+strings.Join(o.Args, " "))
			}
		case "password", "password_file", "password_command":
			t.Errorf("an OAuth2 account with %s", n.Name)
		}
	}
	if want := []string{"provider=google", "client_id=123.apps.googleusercontent.com", "client_secret_file=/etc/maddy/secrets/google-client"}; auth != "xoauth2" || !slices.Equal(oauth2, want) {
		t.Errorf("auth %q, oauth2 %q\n%s", auth, oauth2, text)
	}
}

// Run as root for a maddy that runs as its own user, the files add writes
// belong to the owner of maddy's state directory.
func TestFilesGoToMaddysUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to give files away")
	}
	state := t.TempDir()
	if err := os.Chown(state, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	owner := maddyOwner(state)
	if owner == nil || owner.uid != 65534 || owner.gid != 65534 {
		t.Fatalf("owner %+v", owner)
	}
	path := filepath.Join(t.TempDir(), "alice.password")
	if err := writeFileAtomic(path, []byte("pw"), 0o600, owner); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || fi.Mode().Perm() != 0o600 {
		t.Errorf("owner %d, mode %v", st.Uid, fi.Mode())
	}
	// maddy running as root itself: nothing to give away.
	if owner := maddyOwner(t.TempDir()); owner != nil {
		t.Errorf("owner %+v for a directory of our own", owner)
	}
}
