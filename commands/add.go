package commands

// 'maddy remote-pull add' and 'remove': set up an account without writing
// its block by hand. Interactive in a terminal, flags for scripts. add
// finds the servers (preset or autoconfig), takes the credential (app
// password without echo, a password command, a password file, or the
// OAuth2 consent), runs check, and only then writes
// remote_pull.d/NAME.conf (and NAME.password), the index maddy.conf
// imports, and sends maddy the reload signal.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	parser "github.com/foxcpp/maddy/framework/cfgparser"
	"github.com/foxcpp/maddy/framework/config"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/safetext"
	"github.com/remote-pull/remote_pull/remotepull"
)

func addFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "provider", Usage: "gmail, outlook, icloud, yahoo, fastmail or other (default: from --user's domain)"},
		&cli.StringFlag{Name: "name", Usage: "the account's name in maddy (default: the part of --user before @)"},
		&cli.StringFlag{Name: "user", Usage: "the login name upstream (usually the email address)"},
		&cli.StringFlag{Name: "host", Usage: "the upstream server (default: the preset's, or the domain's autoconfig data)"},
		&cli.StringFlag{Name: "port", Usage: "the upstream port (default: 993 for IMAP, 995 for POP3; 143/110 with --starttls)"},
		&cli.StringFlag{Name: "protocol", Usage: "imap or pop3", Value: ""},
		&cli.BoolFlag{Name: "starttls", Usage: "connect in clear and require STARTTLS/STLS (default: implicit TLS)"},
		&cli.StringFlag{Name: "password-command", Usage: "a command that prints the password (written as password_command; split at spaces, quotes group: 'sh -c \"pass show x | head -1\"')"},
		&cli.StringFlag{Name: "password-file", Usage: "a file that holds the password (written as password_file)"},
		&cli.StringFlag{Name: "client-id", Usage: "OAuth2 client ID (Gmail, Microsoft): use OAuth2 instead of a password"},
		&cli.StringFlag{Name: "client-secret-file", Usage: "OAuth2 client secret file, for clients that have one"},
		&cli.StringFlag{Name: "oauth-token-url", Usage: "OAuth2 token endpoint, for a provider without a preset (with --client-id)"},
		&cli.StringFlag{Name: "oauth-auth-url", Usage: "OAuth2 authorization endpoint, for a provider without a preset"},
		&cli.StringSliceFlag{Name: "oauth-scopes", Usage: "OAuth2 scopes, for a provider without a preset"},
		&cli.StringSliceFlag{Name: "rcpt", Usage: "the local address(es) that receive the mail (repeat or comma-separate)"},
		&cli.StringFlag{Name: "keep", Usage: "yes: leave messages upstream (the default); no: delete each once delivered and recorded"},
		&cli.StringSliceFlag{Name: "folders", Usage: "IMAP folders to fetch (default INBOX; patterns such as * work)"},
		&cli.StringFlag{Name: "root-ca", Usage: "a CA certificate file to trust for the upstream (a private CA), written as tls_client { root_ca ... }"},
		&cli.StringFlag{Name: "deliver-to", Usage: "the account's delivery target", Value: "&local_routing"},
		&cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "do not ask: fail when something is missing"},
		&cli.StringFlag{Name: "config-dir", Usage: "where remote_pull.d/ is (default: the directory of --config)"},
		&cli.BoolFlag{Name: "no-reload", Usage: "do not send maddy the reload signal"},
		// For tests: where autoconfig data is looked up ({domain} is replaced).
		&cli.StringFlag{Name: "autoconfig-url", Hidden: true, EnvVars: []string{"REMOTE_PULL_AUTOCONFIG_URL"}},
	}
}

// asker asks for what flags did not give, when there is a terminal.
type asker struct {
	in          *bufio.Reader
	out         io.Writer
	fd          int
	interactive bool
}

func newAsker(c *cli.Context) *asker {
	fd := int(os.Stdin.Fd())
	return &asker{in: bufio.NewReader(os.Stdin), out: os.Stdout, fd: fd,
		interactive: !c.Bool("yes") && term.IsTerminal(fd)}
}

// ask returns def when not interactive; else what the user typed, or def
// for an empty line.
func (a *asker) ask(question, def string) (string, error) {
	if !a.interactive {
		return def, nil
	}
	if def != "" {
		fmt.Fprintf(a.out, "%s [%s]: ", question, def)
	} else {
		fmt.Fprintf(a.out, "%s: ", question)
	}
	line, err := a.in.ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("no answer: %w", err)
	}
	if line = strings.TrimSpace(line); line == "" {
		return def, nil
	}
	return line, nil
}

// secret reads a password without echo.
func (a *asker) secret(question string) (string, error) {
	fmt.Fprintf(a.out, "%s (not shown): ", question)
	// Ctrl-C while echo is off must not leave the terminal without echo.
	if state, err := term.GetState(a.fd); err == nil {
		sigs := make(chan os.Signal, 1)
		signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
		done := make(chan struct{})
		defer func() { signal.Stop(sigs); close(done) }()
		go func() {
			select {
			case <-sigs:
				term.Restore(a.fd, state)
				fmt.Fprintln(a.out)
				os.Exit(130)
			case <-done:
			}
		}()
	}
	b, err := term.ReadPassword(a.fd)
	fmt.Fprintln(a.out)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// missing is the error for something neither a flag nor a prompt gave.
func missing(what, flag string) error {
	return cli.Exit(fmt.Sprintf("Error: %s is required: give %s (or run in a terminal without --yes to be asked)", what, flag), 2)
}

func addCommand(c *cli.Context) error {
	a := newAsker(c)
	globals, blocks, closeAll, err := remotePullBlocks(c)
	if err != nil {
		return err
	}
	defer closeAll()
	configured, err := remotepull.AccountNames(blocks, globals)
	if err != nil {
		return cli.Exit("Error: the configuration's remote_pull blocks have a mistake; fix it first: "+err.Error(), 1)
	}

	acc, secret, err := gatherAccount(c, a)
	if err != nil {
		return err
	}
	if slices.Contains(configured, acc.Name) {
		return cli.Exit(fmt.Sprintf("Error: an account %s is already configured: choose another --name (or 'remote-pull remove %s' first)", acc.Name, acc.Name), 1)
	}
	dir := accountsDirOf(c)
	if _, err := os.Stat(filepath.Join(dir, acc.Name+".conf")); err == nil {
		return cli.Exit(fmt.Sprintf("Error: %s already exists: 'remote-pull remove %s' first", filepath.Join(dir, acc.Name+".conf"), acc.Name), 1)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return cli.Exit("Error: "+err.Error(), 1)
	}
	owner := maddyOwner(filepath.Dir(remotepull.StateDir())) // maddy's state_dir

	// The typed password goes to NAME.password, written under a temporary
	// name for check and renamed only once check passed.
	var pwTmp string
	if secret != "" {
		final := filepath.Join(dir, acc.Name+".password")
		acc.PasswordFile = final + ".new"
		pwTmp = acc.PasswordFile
		if err := writeFileAtomic(pwTmp, []byte(secret), 0o600, owner); err != nil {
			return cli.Exit("Error: writing the password file: "+err.Error(), 1)
		}
		defer os.Remove(pwTmp) // gone after the rename, or on any failure
	}
	text, err := acc.block()
	if err != nil {
		return cli.Exit("Error: "+err.Error(), 2)
	}
	nodes, err := parser.Read(strings.NewReader("remote_pull {\n"+text+"}\n"), filepath.Join(dir, acc.Name+".conf"))
	if err != nil {
		return cli.Exit("Error: the account block does not parse (a bug): "+err.Error(), 1)
	}
	parsed, err := remotepull.FindAccount(nodes, globals, acc.Name)
	if err != nil {
		return cli.Exit("Error: "+err.Error(), 1)
	}

	ctx, cancel := context.WithTimeout(c.Context, 15*time.Minute)
	defer cancel()
	if parsed.OAuth2 != nil {
		if _, err := os.Stat(parsed.OAuth2.TokenFile); err != nil {
			tokenDir := filepath.Dir(parsed.OAuth2.TokenFile)
			_, dirErr := os.Stat(tokenDir)
			if _, err := oauthLogin(ctx, parsed.OAuth2, a.in, a.out); err != nil {
				return cli.Exit("Error: OAuth2 consent failed, nothing was written: "+err.Error(), 1)
			}
			// Written by root for maddy: maddy refreshes and rewrites it.
			if owner != nil {
				if os.IsNotExist(dirErr) {
					os.Chown(tokenDir, owner.uid, owner.gid)
				}
				if err := os.Chown(parsed.OAuth2.TokenFile, owner.uid, owner.gid); err != nil {
					return cli.Exit("Error: giving the token file to maddy's user: "+err.Error(), 1)
				}
			}
		} else {
			fmt.Fprintf(a.out, "Using the token in %s (delete it for a new consent).\n", parsed.OAuth2.TokenFile)
		}
	}

	fmt.Fprintf(a.out, "Checking %s...\n", acc.Name)
	checkCtx, cancelCheck := context.WithTimeout(ctx, 3*time.Minute)
	defer cancelCheck()
	if err := remotepull.CheckAccount(checkCtx, nodes, globals, acc.Name, cleanWriter{a.out}); err != nil {
		// The whole error: it is all a script's log gets.
		return cli.Exit("check failed, nothing was written: "+safetext.Line(err.Error(), safetext.MaxStored), 1)
	}

	// Check passed: the files, each complete or not at all.
	if pwTmp != "" {
		final := strings.TrimSuffix(pwTmp, ".new")
		if err := os.Rename(pwTmp, final); err != nil {
			return cli.Exit("Error: "+err.Error(), 1)
		}
		acc.PasswordFile = final
		if text, err = acc.block(); err != nil {
			return cli.Exit("Error: "+err.Error(), 1)
		}
	}
	confPath := filepath.Join(dir, acc.Name+".conf")
	if err := writeFileAtomic(confPath, []byte(text), 0o600, owner); err != nil {
		return cli.Exit("Error: writing "+confPath+": "+err.Error(), 1)
	}
	if err := writeIndex(dir, owner); err != nil {
		os.Remove(confPath)
		return cli.Exit("Error: writing the index: "+err.Error(), 1)
	}
	fmt.Fprintf(a.out, "Wrote %s.\n", confPath)
	return afterChange(c, a.out, dir, blocks, "start polling "+acc.Name)
}

// gatherAccount takes the account's settings from the flags, the preset
// or autoconfig data, and the prompts; secret is a typed password.
func gatherAccount(c *cli.Context, a *asker) (acc *newAccount, secret string, err error) {
	acc = &newAccount{DeliverTo: c.String("deliver-to"), RootCA: c.String("root-ca"), Protocol: c.String("protocol"), Host: c.String("host"),
		Port: c.String("port"), StartTLS: c.Bool("starttls")}
	user := c.String("user")
	if user, err = a.ask("Email address or login name upstream", user); err != nil {
		return nil, "", err
	}
	if user == "" {
		return nil, "", missing("the upstream login", "--user")
	}
	acc.Username = user

	p, ok := presetByKey(c.String("provider"))
	switch {
	case c.String("provider") != "" && !ok:
		return nil, "", cli.Exit(fmt.Sprintf("Error: unknown --provider %q (gmail, outlook, icloud, yahoo, fastmail, other)", c.String("provider")), 2)
	case !ok && acc.Host == "":
		p, ok = presetForAddress(user)
	}
	if a.interactive && c.String("provider") == "" && acc.Host == "" {
		def := "other"
		if ok {
			def = p.Key
		}
		fmt.Fprintln(a.out, "Providers:")
		for _, q := range presets {
			fmt.Fprintf(a.out, "  %-9s %s\n", q.Key, q.Title)
		}
		key, err := a.ask("Provider", def)
		if err != nil {
			return nil, "", err
		}
		if p, ok = presetByKey(key); !ok {
			return nil, "", cli.Exit(fmt.Sprintf("Error: unknown provider %q", key), 2)
		}
	}
	if err := acc.findServer(c, a, p, user); err != nil {
		return nil, "", err
	}

	name := c.String("name")
	if name == "" {
		name, _, _ = strings.Cut(user, "@")
	}
	if name, err = a.ask("Account name in maddy", name); err != nil {
		return nil, "", err
	}
	if err := validName(name); err != nil {
		return nil, "", cli.Exit("Error: "+err.Error(), 2)
	}
	acc.Name = name

	acc.Rcpts = splitList(c.StringSlice("rcpt"))
	if len(acc.Rcpts) == 0 {
		r, err := a.ask("Local address that receives the mail", "")
		if err != nil {
			return nil, "", err
		}
		acc.Rcpts = splitList([]string{r})
	}
	if len(acc.Rcpts) == 0 {
		return nil, "", missing("the local recipient", "--rcpt")
	}
	switch k := c.String("keep"); k {
	case "", "yes":
	case "no":
		acc.DeleteUpstream = true
	default:
		return nil, "", cli.Exit(fmt.Sprintf("Error: --keep %q: yes or no", k), 2)
	}
	acc.Folders = splitList(c.StringSlice("folders"))
	if acc.Protocol == "imap" && len(acc.Folders) == 0 && a.interactive {
		f, err := a.ask("IMAP folders to fetch (space-separated; * for all)", "INBOX")
		if err != nil {
			return nil, "", err
		}
		acc.Folders = strings.Fields(f)
	}
	if acc.Protocol == "pop3" && len(acc.Folders) > 0 && !slices.Equal(acc.Folders, []string{"INBOX"}) {
		return nil, "", cli.Exit("Error: --folders is for IMAP accounts (POP3 has one mailbox)", 2)
	}
	secret, err = acc.credential(c, a, p)
	return acc, secret, err
}

// findServer fills protocol, host and port from the flags, the preset, or
// the domain's autoconfig data.
func (acc *newAccount) findServer(c *cli.Context, a *asker, p preset, user string) error {
	if acc.Protocol != "" && acc.Protocol != "imap" && acc.Protocol != "pop3" {
		return cli.Exit(fmt.Sprintf("Error: --protocol %q: imap or pop3", acc.Protocol), 2)
	}
	switch {
	case acc.Host != "":
	case p.Key != "" && p.Key != "other":
		if acc.Protocol == "" {
			acc.Protocol = "imap"
		}
		acc.Host = p.IMAP
		if acc.Protocol == "pop3" {
			acc.Host = p.POP3
		}
		if acc.Host == "" {
			return cli.Exit(fmt.Sprintf("Error: %s offers no %s", p.Title, strings.ToUpper(acc.Protocol)), 2)
		}
	default:
		servers, err := lookupAutoconfig(c.Context, user, c.String("autoconfig-url"))
		if err == nil {
			for _, s := range servers {
				if acc.Protocol != "" && s.Protocol != acc.Protocol {
					continue
				}
				fmt.Fprintf(a.out, "Found %s %s:%s (%s) in the autoconfig data.\n", strings.ToUpper(s.Protocol), s.Host, s.Port,
					map[bool]string{true: "STARTTLS", false: "TLS"}[s.StartTLS])
				acc.Protocol, acc.Host, acc.StartTLS = s.Protocol, s.Host, s.StartTLS
				if acc.Port == "" {
					acc.Port = s.Port
				}
				if s.Username != "" {
					fmt.Fprintf(a.out, "The login name there is %s.\n", s.Username)
					acc.Username = s.Username
				}
				break
			}
		}
		if acc.Host == "" {
			if err == nil {
				err = fmt.Errorf("no %s server in the autoconfig data", acc.Protocol)
			}
			if !a.interactive {
				return cli.Exit("Error: "+err.Error(), 1)
			}
			fmt.Fprintln(a.out, err)
		}
	}
	var err error
	if acc.Host, err = a.ask("Server", acc.Host); err != nil {
		return err
	}
	if acc.Host == "" {
		return missing("the server", "--host")
	}
	if !validHost(acc.Host) {
		return cli.Exit(fmt.Sprintf("Error: --host %q is not a host name", acc.Host), 2)
	}
	if acc.Protocol == "" {
		if acc.Protocol, err = a.ask("Protocol (imap or pop3)", "imap"); err != nil {
			return err
		}
		if acc.Protocol == "" {
			acc.Protocol = "imap"
		}
		if acc.Protocol != "imap" && acc.Protocol != "pop3" {
			return cli.Exit(fmt.Sprintf("Error: protocol %q: imap or pop3", acc.Protocol), 2)
		}
	}
	if acc.Port == "" {
		acc.Port = map[string]map[bool]string{"imap": {false: "993", true: "143"}, "pop3": {false: "995", true: "110"}}[acc.Protocol][acc.StartTLS]
	}
	return nil
}

// credential: OAuth2 with a client ID, a password command or file, or a
// typed app password (returned, to be written to NAME.password).
func (acc *newAccount) credential(c *cli.Context, a *asker, p preset) (string, error) {
	given := 0
	for _, f := range []string{"password-command", "password-file", "client-id"} {
		if c.String(f) != "" {
			given++
		}
	}
	if given > 1 {
		return "", cli.Exit("Error: give one of --password-command, --password-file and --client-id", 2)
	}
	switch {
	case c.String("client-id") != "":
		acc.ClientID, acc.ClientSecret = c.String("client-id"), c.String("client-secret-file")
		acc.TokenURL, acc.AuthURL, acc.Scopes = c.String("oauth-token-url"), c.String("oauth-auth-url"), splitList(c.StringSlice("oauth-scopes"))
		switch {
		case acc.TokenURL != "":
		case p.OAuth != "":
			acc.OAuthProvider = p.OAuth
		default:
			return "", cli.Exit("Error: --client-id needs the gmail or outlook provider, or --oauth-token-url and --oauth-auth-url", 2)
		}
		return "", nil
	case c.String("password-command") != "":
		argv, err := splitCommand(c.String("password-command"))
		if err != nil {
			return "", cli.Exit("Error: --password-command: "+err.Error(), 2)
		}
		acc.PasswordCommand = argv
		return "", nil
	case c.String("password-file") != "":
		path, err := filepath.Abs(c.String("password-file"))
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(path); err != nil {
			return "", cli.Exit("Error: --password-file: "+err.Error(), 2)
		}
		acc.PasswordFile = path
		return "", nil
	}
	if p.Note != "" && a.interactive {
		fmt.Fprintln(a.out, p.Note)
	}
	if p.OAuthOnly {
		id, err := a.ask("OAuth2 client ID", "")
		if err != nil {
			return "", err
		}
		if id == "" {
			return "", missing(p.Title+" OAuth2 client ID", "--client-id")
		}
		acc.OAuthProvider, acc.ClientID = p.OAuth, id
		return "", nil
	}
	if !a.interactive {
		return "", missing("a password", "--password-command or --password-file (or --client-id for OAuth2)")
	}
	pw, err := a.secret("Password (an app password where the provider has them)")
	if err != nil {
		return "", err
	}
	if pw == "" {
		return "", cli.Exit("Error: an empty password", 2)
	}
	return pw, nil
}

// splitCommand splits a command line at spaces, keeping what single or
// double quotes enclose together (no escapes, no variables: no shell).
func splitCommand(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	var quote rune
	for _, r := range s {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			cur.WriteRune(r)
		case r == '\'' || r == '"':
			quote, inArg = r, true
		case r == ' ' || r == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unmatched %c", quote)
	}
	if inArg {
		args = append(args, cur.String())
	}
	if len(args) == 0 {
		return nil, errors.New("empty command")
	}
	return args, nil
}

func splitList(vals []string) []string {
	var out []string
	for _, v := range vals {
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
			out = append(out, f)
		}
	}
	return out
}

func accountsDirOf(c *cli.Context) string {
	dir := c.String("config-dir")
	if dir == "" {
		dir = filepath.Dir(c.Path("config"))
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		abs = dir
	}
	return filepath.Join(abs, accountsDir)
}

// imported reports whether maddy.conf imports the index: a remote_pull
// block loaded from it, or the import line in the file itself.
func imported(c *cli.Context, dir string, blocks []config.Node) bool {
	index := filepath.Join(dir, indexFile)
	for _, b := range blocks {
		if b.File == index {
			return true
		}
	}
	raw, err := os.ReadFile(c.Path("config"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		if len(f) == 2 && f[0] == "import" {
			p := f[1]
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(c.Path("config")), p)
			}
			if abs, err := filepath.Abs(p); err == nil && (abs == index || abs+".conf" == index) {
				return true
			}
		}
	}
	return false
}

// afterChange tells how maddy gets the change: the import line on first
// use, else the reload signal to the running maddy.
func afterChange(c *cli.Context, out io.Writer, dir string, blocks []config.Node, what string) error {
	if !imported(c, dir, blocks) && strings.HasPrefix(what, "stop ") {
		return nil // maddy never read the file
	}
	if !imported(c, dir, blocks) {
		line := "import " + filepath.Join(dir, indexFile)
		if rel, err := filepath.Rel(filepath.Dir(c.Path("config")), filepath.Join(dir, indexFile)); err == nil && !strings.HasPrefix(rel, "..") {
			line = "import " + rel
		}
		fmt.Fprintf(out, "\nOne step left: add this line to %s (at the top level, outside any block), then restart maddy:\n\n    %s\n\n", c.Path("config"), line)
		return nil
	}
	if c.Bool("no-reload") {
		fmt.Fprintf(out, "Send maddy its reload signal (systemctl reload maddy, or SIGUSR2) to %s.\n", what)
		return nil
	}
	pid, ok := remotepull.RunningPID(remotepull.StateDir())
	if !ok {
		fmt.Fprintf(out, "maddy is not running remote_pull on %s: start (or restart) maddy to %s.\n", remotepull.StateDir(), what)
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
		return cli.Exit(fmt.Sprintf("Error: sending the reload signal to maddy (pid %d): %v; run systemctl reload maddy", pid, err), 1)
	}
	fmt.Fprintf(out, "Sent maddy (pid %d) the reload signal to %s; 'maddy remote-pull status' shows it.\n", pid, what)
	return nil
}

// removeCommand deletes an account added by add, reloads, and with
// --forget drops its ledger data once the running maddy stopped it.
func removeCommand(c *cli.Context) error {
	name := c.Args().First()
	if name == "" {
		return cli.Exit("Error: ACCOUNT is required", 2)
	}
	if err := validName(name); err != nil {
		return cli.Exit("Error: "+err.Error(), 2)
	}
	_, blocks, closeAll, err := remotePullBlocks(c)
	if err != nil {
		return err
	}
	defer closeAll()
	dir := accountsDirOf(c)
	confPath := filepath.Join(dir, name+".conf")
	raw, err := os.ReadFile(confPath)
	if err != nil {
		return cli.Exit(fmt.Sprintf("Error: %s: %v (only accounts written by 'remote-pull add' are removed here; edit maddy.conf for others)", confPath, err), 1)
	}
	// The password file add wrote, never one the user named.
	pwPath := filepath.Join(dir, name+".password")
	ownPassword := strings.Contains(string(raw), pwPath)
	owner := maddyOwner(filepath.Dir(remotepull.StateDir())) // maddy's state_dir
	if err := os.Remove(confPath); err != nil {
		return cli.Exit("Error: "+err.Error(), 1)
	}
	if err := writeIndex(dir, owner); err != nil {
		return cli.Exit("Error: writing the index: "+err.Error(), 1)
	}
	if ownPassword {
		os.Remove(pwPath)
	}
	fmt.Printf("Removed %s; the ledger keeps what was fetched (remove --forget drops it).\n", confPath)
	if err := afterChange(c, os.Stdout, dir, blocks, "stop "+name); err != nil {
		return err
	}
	if !c.Bool("forget") {
		return nil
	}
	return forgetWhenStopped(c.Context, name, time.Minute)
}

// forgetWhenStopped runs forget's ledger step once the running maddy has
// stopped the account (the reload stops it after any delivery under way).
func forgetWhenStopped(ctx context.Context, name string, wait time.Duration) error {
	if _, err := os.Stat(remotepull.LedgerPath()); err != nil {
		fmt.Println("No ledger yet: nothing to forget.")
		return nil
	}
	l, err := ledger.Open(remotepull.LedgerPath())
	if err != nil {
		return err
	}
	defer l.Close()
	deadline := time.Now().Add(wait)
	for {
		n, err := l.ForgetAccount(ctx, name, remotepull.Running(remotepull.StateDir()))
		if err == nil {
			fmt.Printf("forgot account %s (%d message entries)\n", name, n)
			return nil
		}
		if !errors.Is(err, ledger.ErrAccountRunning) {
			return err
		}
		if time.Now().After(deadline) {
			return cli.Exit(fmt.Sprintf("the running maddy still polls %s after %s: check its log for the reload, then 'remote-pull forget %s'", name, wait, name), 1)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
