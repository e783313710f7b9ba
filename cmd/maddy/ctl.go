package main

// maddy's management commands (creds, imap-acct; imap-mboxes and imap-msgs
// are in imapctl.go) rebuilt on maddy's exported API, with stock maddy
// 0.8.2's names, flags and behaviour. Stock maddy keeps them in
// internal/cli/ctl, which cannot be imported.

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"github.com/emersion/go-imap"
	imapbackend "github.com/emersion/go-imap/backend"
	"github.com/foxcpp/maddy/framework/config"
	"github.com/foxcpp/maddy/framework/module"
	"github.com/urfave/cli/v2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/term"

	"github.com/remote-pull/remote_pull/commands"
)

// openBlock initialises the block named by --cfg-block. The returned
// function closes it, flushing its database.
func openBlock(c *cli.Context) (module.Module, func(), error) {
	globals, _, mods, closeAll, err := commands.LoadConfig(c)
	if err != nil {
		return nil, nil, err
	}
	name := c.String("cfg-block")
	if name == "" {
		closeAll()
		return nil, nil, cli.Exit("Error: cfg-block is required", 2)
	}
	for _, m := range mods {
		if m.Instance.InstanceName() != name {
			continue
		}
		if err := m.Instance.Init(config.NewMap(globals, m.Cfg)); err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("Error: module initialization failed: %w", err)
		}
		return m.Instance, func() {
			if cl, ok := m.Instance.(io.Closer); ok {
				cl.Close()
			}
			closeAll()
		}, nil
	}
	closeAll()
	return nil, nil, cli.Exit(fmt.Sprintf("Error: unknown configuration block: %s", name), 2)
}

// withUserDB is an action on the USERNAME argument and the credentials
// database --cfg-block names.
func withUserDB(fn func(c *cli.Context, db module.PlainUserDB, user string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		user := c.Args().First()
		if user == "" {
			return cli.Exit("Error: USERNAME is required", 2)
		}
		db, done, err := openUserDB(c)
		if err != nil {
			return err
		}
		defer done()
		return fn(c, db, user)
	}
}

// withStorage is an action on the USERNAME argument and the storage
// --cfg-block names.
func withStorage(fn func(c *cli.Context, st module.ManageableStorage, user string) error) cli.ActionFunc {
	return func(c *cli.Context) error {
		user := c.Args().First()
		if user == "" {
			return cli.Exit("Error: USERNAME is required", 2)
		}
		st, done, err := openStorage(c)
		if err != nil {
			return err
		}
		defer done()
		return fn(c, st, user)
	}
}

func openUserDB(c *cli.Context) (module.PlainUserDB, func(), error) {
	mod, done, err := openBlock(c)
	if err != nil {
		return nil, nil, err
	}
	db, ok := mod.(module.PlainUserDB)
	if !ok {
		done()
		return nil, nil, cli.Exit(fmt.Sprintf("Error: configuration block %s is not a local credentials store", c.String("cfg-block")), 2)
	}
	return db, done, nil
}

func openStorage(c *cli.Context) (module.ManageableStorage, func(), error) {
	mod, done, err := openBlock(c)
	if err != nil {
		return nil, nil, err
	}
	if _, ok := mod.(module.Storage); !ok {
		done()
		return nil, nil, cli.Exit(fmt.Sprintf("Error: configuration block %s is not an IMAP storage", c.String("cfg-block")), 2)
	}
	st, ok := mod.(module.ManageableStorage)
	if !ok {
		done()
		return nil, nil, cli.Exit("Error: storage backend does not support accounts management using maddy command", 2)
	}
	return st, done, nil
}

func cfgBlockFlag(def string) cli.Flag {
	return &cli.StringFlag{
		Name:    "cfg-block",
		Usage:   "Module configuration block to use",
		EnvVars: []string{"MADDY_CFGBLOCK"},
		Value:   def,
	}
}

var passwordFlag = &cli.StringFlag{
	Name:    "password",
	Aliases: []string{"p"},
	Usage:   "Use `PASSWORD` instead of reading password from stdin.\n\t\tWARNING: Provided only for debugging convenience. Don't leave your passwords in shell history!",
}

var yesFlag = &cli.BoolFlag{Name: "yes", Aliases: []string{"y"}, Usage: "Don't ask for confirmation"}

func init() {
	extraCommands = append(extraCommands, credsCommand(), imapAcctCommand())
}

func credsCommand() *cli.Command {
	return &cli.Command{
		Name:  "creds",
		Usage: "Local credentials management",
		Description: `These commands manipulate credential databases used by
maddy mail server.

Corresponding credential database should be defined in maddy.conf as
a top-level config block. By default the block name should be local_authdb (
can be changed using --cfg-block argument for subcommands).

Note that it is not enough to create user credentials in order to grant
IMAP access - IMAP account should be also created using 'imap-acct create' subcommand.
`,
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "List created credentials",
				Flags: []cli.Flag{cfgBlockFlag("local_authdb")},
				Action: func(c *cli.Context) error {
					db, done, err := openUserDB(c)
					if err != nil {
						return err
					}
					defer done()
					list, err := db.ListUsers()
					if err != nil {
						return err
					}
					printList(c, list)
					return nil
				},
			},
			{
				Name:  "create",
				Usage: "Create user account",
				Description: `Reads password from stdin.

If configuration block uses auth.pass_table, then hash algorithm can be configured
using command flags. Otherwise, these options cannot be used.
`,
				ArgsUsage: "USERNAME",
				Flags: []cli.Flag{
					cfgBlockFlag("local_authdb"),
					passwordFlag,
					&cli.StringFlag{Name: "hash", Usage: "Use specified hash algorithm. Valid values: sha256, bcrypt, argon2", Value: "bcrypt"},
					&cli.IntFlag{Name: "bcrypt-cost", Usage: "Specify bcrypt cost value", Value: bcrypt.DefaultCost},
				},
				Action: withUserDB(func(c *cli.Context, db module.PlainUserDB, user string) error {
					pass, err := password(c, "Enter password for new user")
					if err != nil {
						return err
					}
					return createUser(c, db, user, pass)
				}),
			},
			{
				Name:      "remove",
				Usage:     "Delete user account",
				ArgsUsage: "USERNAME",
				Flags:     []cli.Flag{cfgBlockFlag("local_authdb"), yesFlag},
				Action: withUserDB(func(c *cli.Context, db module.PlainUserDB, user string) error {
					if !c.Bool("yes") && !confirm("Are you sure you want to delete this user account?") {
						return errors.New("Cancelled")
					}
					return db.DeleteUser(user)
				}),
			},
			{
				Name:        "password",
				Usage:       "Change account password",
				Description: "Reads password from stdin",
				ArgsUsage:   "USERNAME",
				Flags:       []cli.Flag{cfgBlockFlag("local_authdb"), passwordFlag},
				Action: withUserDB(func(c *cli.Context, db module.PlainUserDB, user string) error {
					pass, err := password(c, "Enter new password")
					if err != nil {
						return err
					}
					return db.SetUserPassword(user, pass)
				}),
			},
		},
	}
}

// createUser honours --hash and --bcrypt-cost on auth.pass_table, whose
// CreateUserHash takes an internal options type: it is filled by reflection.
func createUser(c *cli.Context, db module.PlainUserDB, user, pass string) error {
	m := reflect.ValueOf(db).MethodByName("CreateUserHash")
	if !m.IsValid() || m.Type().NumIn() != 4 {
		if c.IsSet("hash") || c.IsSet("bcrypt-cost") {
			return cli.Exit("Error: --hash cannot be used with non-pass_table credentials DB", 2)
		}
		return db.CreateUser(user, pass)
	}
	opts := reflect.New(m.Type().In(3)).Elem()
	if f := opts.FieldByName("BcryptCost"); f.IsValid() && f.CanSet() {
		f.SetInt(int64(c.Int("bcrypt-cost")))
	}
	out := m.Call([]reflect.Value{reflect.ValueOf(user), reflect.ValueOf(pass), reflect.ValueOf(c.String("hash")), opts})
	if err, _ := out[0].Interface().(error); err != nil {
		return err
	}
	return nil
}

func imapAcctCommand() *cli.Command {
	return &cli.Command{
		Name:  "imap-acct",
		Usage: "IMAP storage accounts management",
		Description: `These subcommands can be used to list/create/delete IMAP storage
accounts for any storage backend supported by maddy.

The corresponding storage backend should be configured in maddy.conf and be
defined in a top-level configuration block. By default, the name of that
block should be local_mailboxes but this can be changed using --cfg-block
flag for subcommands.

Note that in default configuration it is not enough to create an IMAP storage
account to grant server access. Additionally, user credentials should
be created using 'creds' subcommand.
`,
		Subcommands: []*cli.Command{
			{
				Name:  "list",
				Usage: "List storage accounts",
				Flags: []cli.Flag{cfgBlockFlag("local_mailboxes")},
				Action: func(c *cli.Context) error {
					st, done, err := openStorage(c)
					if err != nil {
						return err
					}
					defer done()
					list, err := st.ListIMAPAccts()
					if err != nil {
						return err
					}
					printList(c, list)
					return nil
				},
			},
			{
				Name:  "create",
				Usage: "Create IMAP storage account",
				Description: `In addition to account creation, this command
creates a set of default folder (mailboxes) with special-use attribute set.`,
				ArgsUsage: "USERNAME",
				Flags: []cli.Flag{
					cfgBlockFlag("local_mailboxes"),
					&cli.BoolFlag{Name: "no-specialuse", Usage: "Do not create special-use folders", Value: false},
					&cli.StringFlag{Name: "sent-name", Usage: "Name of special mailbox for sent messages, use empty string to not create any", Value: "Sent"},
					&cli.StringFlag{Name: "trash-name", Usage: "Name of special mailbox for trash, use empty string to not create any", Value: "Trash"},
					&cli.StringFlag{Name: "junk-name", Usage: "Name of special mailbox for 'junk' (spam), use empty string to not create any", Value: "Junk"},
					&cli.StringFlag{Name: "drafts-name", Usage: "Name of special mailbox for drafts, use empty string to not create any", Value: "Drafts"},
					&cli.StringFlag{Name: "archive-name", Usage: "Name of special mailbox for archive, use empty string to not create any", Value: "Archive"},
				},
				Action: withStorage(func(c *cli.Context, st module.ManageableStorage, user string) error {
					return createIMAPAcct(c, st, user)
				}),
			},
			{
				Name:      "remove",
				Usage:     "Delete IMAP storage account",
				ArgsUsage: "USERNAME",
				Description: `If IMAP connections are open and using the specified account,
messages access will be killed off immediately though connection will remain open. No cleanup
or error reporting is done.`,
				Flags: []cli.Flag{cfgBlockFlag("local_mailboxes"), yesFlag},
				Action: withStorage(func(c *cli.Context, st module.ManageableStorage, user string) error {
					if !c.Bool("yes") && !confirm("Are you sure you want to delete this user account?") {
						return errors.New("Cancelled")
					}
					return st.DeleteIMAPAcct(user)
				}),
			},
			{
				Name:  "appendlimit",
				Usage: "Query or set accounts's APPENDLIMIT value",
				Description: `APPENDLIMIT value determines the size of a message that
can be saved into a mailbox using IMAP APPEND command. This does not affect the size
of messages that can be delivered to the mailbox from non-IMAP sources (e.g. SMTP).

Global APPENDLIMIT value set via server configuration takes precedence over
per-account values configured using this command.

APPENDLIMIT value (either global or per-account) cannot be larger than
4 GiB due to IMAP protocol limitations.
`,
				ArgsUsage: "USERNAME",
				Flags: []cli.Flag{
					cfgBlockFlag("local_mailboxes"),
					&cli.IntFlag{Name: "value", Aliases: []string{"v"}, Usage: "Set APPENDLIMIT to specified value (in bytes)"},
				},
				Action: withStorage(func(c *cli.Context, st module.ManageableStorage, user string) error {
					return appendLimit(c, st, user)
				}),
			},
		},
	}
}

// appendLimitUser is what imapsql's accounts offer for a per-account
// APPENDLIMIT (stock maddy copies it from go-imap-backend-tests).
type appendLimitUser interface {
	imapbackend.AppendLimitUser
	// SetMessageLimit sets the limit; nil means none.
	SetMessageLimit(val *uint32) error
}

// appendLimit prints user's APPENDLIMIT, or sets it with --value (-1: none).
func appendLimit(c *cli.Context, st module.ManageableStorage, user string) error {
	acct, err := st.GetIMAPAcct(user)
	if err != nil {
		return err
	}
	u, ok := acct.(appendLimitUser)
	if !ok {
		return cli.Exit("Error: module.Storage does not support per-user append limit", 2)
	}
	if !c.IsSet("value") {
		if lim := u.CreateMessageLimit(); lim == nil {
			fmt.Println("No limit")
		} else {
			fmt.Println(*lim)
		}
		return nil
	}
	if v := c.Int("value"); v != -1 {
		lim := uint32(v)
		return u.SetMessageLimit(&lim)
	}
	return u.SetMessageLimit(nil)
}

// specialUseUser is what imapsql's accounts offer for SPECIAL-USE folders.
type specialUseUser interface {
	CreateMailboxSpecial(name, specialUseAttr string) error
}

func createIMAPAcct(c *cli.Context, st module.ManageableStorage, user string) error {
	if err := st.CreateIMAPAcct(user); err != nil {
		return err
	}
	acct, err := st.GetIMAPAcct(user)
	if err != nil {
		return fmt.Errorf("failed to get user: %w", err)
	}
	suu, ok := acct.(specialUseUser)
	if !ok {
		fmt.Fprintf(os.Stderr, "Note: Storage backend does not support SPECIAL-USE IMAP extension")
	}
	if c.Bool("no-specialuse") {
		return nil
	}
	for _, f := range []struct{ flag, attr, what string }{
		{"sent-name", imap.SentAttr, "sent"},
		{"trash-name", imap.TrashAttr, "trash"},
		{"junk-name", imap.JunkAttr, "junk"},
		{"drafts-name", imap.DraftsAttr, "drafts"},
		{"archive-name", imap.ArchiveAttr, "archive"},
	} {
		name := c.String(f.flag)
		if name == "" {
			continue
		}
		var err error
		if suu == nil {
			err = acct.CreateMailbox(name)
		} else {
			err = suu.CreateMailboxSpecial(name, f.attr)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "Failed to create %s folder: %v", f.what, err)
		}
	}
	return nil
}

func printList(c *cli.Context, list []string) {
	if len(list) == 0 && !c.Bool("quiet") {
		fmt.Fprintln(os.Stderr, "No users.")
	}
	for _, item := range list {
		fmt.Println(item)
	}
}

// password takes --password, else reads a line from the terminal without
// echo (twice, to confirm) or, when stdin is not a terminal, from stdin.
func password(c *cli.Context, prompt string) (string, error) {
	if c.IsSet("password") {
		return c.String("password"), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && err != io.EOF {
			return "", err
		}
		return strings.TrimRight(line, "\r\n"), nil
	}
	fmt.Fprintf(os.Stderr, "%s: ", prompt)
	first, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	fmt.Fprint(os.Stderr, "Confirm password: ")
	second, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return "", err
	}
	if string(first) != string(second) {
		return "", errors.New("passwords don't match")
	}
	return string(first), nil
}

func confirm(prompt string) bool {
	fmt.Fprintf(os.Stderr, "%s [y/N]: ", prompt)
	line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(line)) {
	case "y", "yes":
		return true
	}
	return false
}
