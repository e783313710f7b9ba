package commands

// What 'remote-pull add' writes: the account block, in maddy's
// configuration syntax, and the files under remote_pull.d/ that
// maddy.conf imports with one line.

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

const (
	// accountsDir holds one NAME.conf per account added by the command,
	// the password files it wrote, and the index maddy.conf imports.
	accountsDir = "remote_pull.d"
	// indexFile is the one file maddy.conf imports: a remote_pull block
	// that imports every NAME.conf (maddy's import takes one file, no
	// patterns). Rewritten from the directory at every add and remove.
	indexFile = "accounts.conf"
)

// newAccount is what add gathered: enough to write the account block.
type newAccount struct {
	Name      string
	Protocol  string // imap, pop3
	Host      string
	Port      string
	StartTLS  bool
	Username  string
	Rcpts     []string
	Folders   []string
	DeliverTo string
	RootCA    string // tls_client root_ca, for a private CA
	// DeleteUpstream writes keep no.
	DeleteUpstream bool

	// One of: a password file (written by add or given), a command, or
	// OAuth2.
	PasswordFile    string
	PasswordCommand []string
	OAuthProvider   string // google, microsoft
	TokenURL        string // or the endpoints and scopes of another
	AuthURL         string
	Scopes          []string
	ClientID        string
	ClientSecret    string // client_secret_file
}

// block renders the account block. Every value is checked by quoteArg.
func (a *newAccount) block() (string, error) {
	var b strings.Builder
	var bad error
	line := func(directive string, args ...string) {
		b.WriteString("    ")
		b.WriteString(directive)
		for _, arg := range args {
			q, err := quoteArg(arg)
			if err != nil && bad == nil {
				bad = fmt.Errorf("%s: %w", directive, err)
			}
			b.WriteString(" " + q)
		}
		b.WriteString("\n")
	}
	name, err := quoteArg(a.Name)
	if err != nil {
		return "", fmt.Errorf("name: %w", err)
	}
	fmt.Fprintf(&b, "# Written by 'maddy remote-pull add'; 'maddy remote-pull remove %s' removes it.\n", a.Name)
	fmt.Fprintf(&b, "account %s {\n", name)
	scheme := "tls"
	if a.StartTLS {
		scheme = "tcp"
	}
	line(a.Protocol, scheme+"://"+a.Host+":"+a.Port)
	line("username", a.Username)
	switch {
	case a.OAuthProvider != "" || a.TokenURL != "":
		line("auth", "xoauth2")
		b.WriteString("    oauth2 {\n")
		inner := func(directive string, args ...string) {
			if len(args) > 0 && args[0] != "" {
				b.WriteString("    ")
				line(directive, args...)
			}
		}
		inner("provider", a.OAuthProvider)
		inner("token_endpoint", a.TokenURL)
		inner("auth_endpoint", a.AuthURL)
		inner("scopes", a.Scopes...)
		inner("client_id", a.ClientID)
		inner("client_secret_file", a.ClientSecret)
		b.WriteString("    }\n")
	case a.PasswordCommand != nil:
		line("password_command", a.PasswordCommand...)
	default:
		line("password_file", a.PasswordFile)
	}
	line("rcpt_to", a.Rcpts...)
	if len(a.Folders) > 0 && !slices.Equal(a.Folders, []string{"INBOX"}) {
		line("folders", a.Folders...)
	}
	if a.DeleteUpstream {
		line("keep", "no")
	}
	if a.RootCA != "" {
		b.WriteString("    tls_client {\n    ")
		line("root_ca", a.RootCA)
		b.WriteString("    }\n")
	}
	line("deliver_to", a.DeliverTo)
	b.WriteString("}\n")
	return b.String(), bad
}

// quoteArg writes a value so that maddy's lexer reads it back exactly.
// Its quotes escape only '"', so a backslash before a quote or at the end
// cannot be written; maddy expands {env:...} and $(...) in arguments.
func quoteArg(s string) (string, error) {
	switch {
	case s == "":
		return "", fmt.Errorf("empty value")
	case strings.ContainsAny(s, "\n\r\x00"):
		return "", fmt.Errorf("%q has a line break", s)
	case strings.Contains(s, "{env:") || strings.Contains(s, "$("):
		return "", fmt.Errorf("%q would be expanded by maddy ({env:...}, $(...))", s)
	case strings.HasSuffix(s, `\`) || strings.Contains(s, `\"`):
		return "", fmt.Errorf("%q has a backslash maddy's configuration cannot quote", s)
	}
	if !strings.ContainsAny(s, " \t\"#{}") {
		return s, nil
	}
	return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`, nil
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so that maddy never reads half a file; the file
// gets mode perm and, when owner is known, that owner (maddy's user).
func writeFileAtomic(path string, data []byte, perm os.FileMode, owner *fileOwner) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err := tmp.Chmod(perm); err != nil {
		return err
	}
	if owner != nil {
		if err := tmp.Chown(owner.uid, owner.gid); err != nil {
			return fmt.Errorf("giving %s to maddy's user: %w", path, err)
		}
	}
	if _, err := tmp.Write(data); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	ok = true
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// fileOwner is the user maddy runs as: the owner of its state directory.
type fileOwner struct{ uid, gid int }

// maddyOwner is the owner to give files maddy must read, or nil when
// this process could not give them away (it is not root) or need not.
func maddyOwner(stateDir string) *fileOwner {
	fi, err := os.Stat(stateDir)
	if err != nil {
		return nil
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || os.Geteuid() != 0 || int(st.Uid) == os.Geteuid() {
		return nil
	}
	return &fileOwner{uid: int(st.Uid), gid: int(st.Gid)}
}

// writeIndex rewrites the index from the NAME.conf files in dir: with
// none, an empty file (a remote_pull block without accounts would stop
// maddy's start).
func writeIndex(dir string, owner *fileOwner) error {
	names, err := managedAccounts(dir)
	if err != nil {
		return err
	}
	var b strings.Builder
	b.WriteString("# Written by 'maddy remote-pull add' and 'remove' from the files beside it; not to be edited.\n")
	if len(names) > 0 {
		b.WriteString("remote_pull {\n")
		for _, n := range names {
			fmt.Fprintf(&b, "    import %s.conf\n", n)
		}
		b.WriteString("}\n")
	}
	return writeFileAtomic(filepath.Join(dir, indexFile), []byte(b.String()), 0o644, owner)
}

// managedAccounts are the accounts with a NAME.conf in dir, sorted.
func managedAccounts(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.Type().IsRegular() && strings.HasSuffix(n, ".conf") && n != indexFile && !strings.HasPrefix(n, ".") {
			names = append(names, strings.TrimSuffix(n, ".conf"))
		}
	}
	slices.Sort(names)
	return names, nil
}

// validName: an account name is a file name here and a word in the
// configuration.
func validName(name string) error {
	if name == "" || len(name) > 64 || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "-") {
		return fmt.Errorf("account name %q: 1 to 64 characters, not starting with '.' or '-'", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_.@+", r)) {
			return fmt.Errorf("account name %q: use letters, digits and - _ . @ +", name)
		}
	}
	if name+".conf" == indexFile {
		return fmt.Errorf("account name %q is reserved", name)
	}
	return nil
}
