package main

// 'maddy remote-pull status|check|retry': look at and steer the fetched
// accounts. status and retry work on the ledger while maddy runs.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/foxcpp/maddy/framework/config"
	"github.com/urfave/cli/v2"

	remotepull "remote_pull/module"
	"remote_pull/module/ledger"
)

func init() {
	extraCommands = append(extraCommands, &cli.Command{
		Name:  "remote-pull",
		Usage: "Fetched accounts (remote_pull): status, check, retry",
		Subcommands: []*cli.Command{
			{
				Name:   "status",
				Usage:  "Show every fetched account: state, last success, last error, counts, next poll",
				Flags:  []cli.Flag{&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"}},
				Action: statusCommand,
			},
			{
				Name:      "check",
				Usage:     "Connect to an account's upstream, log in and count what would be fetched; changes nothing",
				ArgsUsage: "ACCOUNT",
				Action:    checkCommand,
			},
			{
				Name:      "oauth2-login",
				Usage:     "Ask the provider for consent and write the account's token_file",
				ArgsUsage: "ACCOUNT",
				Description: `Prints a URL to open in a browser. After consent the provider redirects to
a loopback address this command listens on; when the browser runs on another
machine, paste the URL it was redirected to (or just the code) here instead.
The token file is written atomically with mode 0600; send maddy SIGUSR2 (or
restart it) to use it.`,
				Action: oauth2LoginCommand,
			},
			{
				Name:      "retry",
				Usage:     "Make refused messages of an account eligible again (with --all, over-size ones too)",
				ArgsUsage: "ACCOUNT [UID...]",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "all", Usage: "also messages left upstream for being too large"},
					&cli.StringFlag{Name: "folder", Usage: "only this folder (needed with UIDs for IMAP accounts with several folders)"},
				},
				Action: retryCommand,
			},
		},
	})
}

// openLedger reads the configuration's globals for state_dir and opens the
// ledger there.
func openLedger(c *cli.Context, readOnly bool) (*ledger.Ledger, func(), error) {
	_, _, _, closeAll, err := loadConfig(c)
	if err != nil {
		return nil, nil, err
	}
	path := remotepull.LedgerPath()
	if _, err := os.Stat(path); err != nil {
		closeAll()
		return nil, nil, cli.Exit(fmt.Sprintf("no remote_pull ledger at %s yet: has maddy run with a remote_pull block?", path), 1)
	}
	open := ledger.Open
	if readOnly {
		open = ledger.OpenReadOnly
	}
	l, err := open(path)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return l, func() { l.Close(); closeAll() }, nil
}

func statusCommand(c *cli.Context) error {
	l, done, err := openLedger(c, true)
	if err != nil {
		return err
	}
	defer done()
	sts, err := l.Statuses(c.Context)
	if err != nil {
		return err
	}
	if c.Bool("json") {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if sts == nil {
			sts = []ledger.AccountStatus{}
		}
		return enc.Encode(sts)
	}
	if len(sts) == 0 {
		fmt.Println("No account has reported yet.")
		return nil
	}
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ACCOUNT\tUPSTREAM\tSTATE\tLAST SUCCESS\tNEXT POLL\tDELIVERED\tREFUSED\tWAITING UPSTREAM\tLAST ERROR")
	for _, st := range sts {
		waiting := fmt.Sprintf("%d refused, %d too large", st.RefusedWaiting, st.TooLargeWaiting)
		fmt.Fprintf(w, "%s\t%s %s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", st.Account, st.Protocol, st.Host, st.State,
			ago(st.LastSuccess), until(st.NextPoll), st.Delivered, st.Refused, waiting, shortErr(st.LastError))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, st := range sts {
		if st.Note != "" {
			fmt.Printf("note: %s: %s\n", st.Account, st.Note)
		}
	}
	return nil
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func until(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	if d := time.Until(t); d > 0 {
		return "in " + d.Round(time.Second).String()
	}
	return "now"
}

func shortErr(s string) string {
	if s == "" {
		return "-"
	}
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

func checkCommand(c *cli.Context) error {
	name := c.Args().First()
	if name == "" {
		return cli.Exit("Error: ACCOUNT is required", 2)
	}
	globals, endpoints, _, closeAll, err := loadConfig(c)
	if err != nil {
		return err
	}
	defer closeAll()
	var blocks []config.Node
	for _, e := range endpoints {
		if e.Cfg.Name == "remote_pull" {
			blocks = append(blocks, e.Cfg)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := remotepull.CheckAccount(ctx, blocks, globals, name, os.Stdout); err != nil {
		return cli.Exit("check failed: "+shortErr(err.Error()), 1)
	}
	fmt.Println("ok")
	return nil
}

// remotePullBlocks loads the configuration and returns its remote_pull
// blocks.
func remotePullBlocks(c *cli.Context) (map[string]interface{}, []config.Node, func(), error) {
	globals, endpoints, _, closeAll, err := loadConfig(c)
	if err != nil {
		return nil, nil, nil, err
	}
	var blocks []config.Node
	for _, e := range endpoints {
		if e.Cfg.Name == "remote_pull" {
			blocks = append(blocks, e.Cfg)
		}
	}
	return globals, blocks, closeAll, nil
}

func oauth2LoginCommand(c *cli.Context) error {
	name := c.Args().First()
	if name == "" {
		return cli.Exit("Error: ACCOUNT is required", 2)
	}
	globals, blocks, closeAll, err := remotePullBlocks(c)
	if err != nil {
		return err
	}
	defer closeAll()
	acc, err := remotepull.FindAccount(blocks, globals, name)
	if err != nil {
		return cli.Exit(err.Error(), 1)
	}
	if acc.OAuth2 == nil {
		return cli.Exit(fmt.Sprintf("account %s has no oauth2 block", name), 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	path, err := oauthLogin(ctx, acc.OAuth2, os.Stdin, os.Stdout)
	if err != nil {
		return cli.Exit("oauth2-login failed: "+err.Error(), 1)
	}
	fmt.Printf("Token saved to %s. Send maddy SIGUSR2 (or restart it) to use it.\n", path)
	return nil
}

func retryCommand(c *cli.Context) error {
	name := c.Args().First()
	if name == "" {
		return cli.Exit("Error: ACCOUNT is required", 2)
	}
	all, folder := c.Bool("all"), c.String("folder")
	// The CLI library stops reading options at ACCOUNT; "retry ACCOUNT
	// --all" is too natural to read --all as a UID, so options are taken
	// after it too. "--" ends them, for a POP3 UIDL that starts with '-'.
	var uids []string
	rest := c.Args().Tail()
	for i := 0; i < len(rest); i++ {
		switch arg := rest[i]; {
		case arg == "--":
			uids = append(uids, rest[i+1:]...)
			i = len(rest)
		case arg == "--all" || arg == "-all":
			all = true
		case arg == "--folder" || arg == "-folder":
			if i+1 == len(rest) {
				return cli.Exit("Error: --folder needs a folder name", 2)
			}
			i++
			folder = rest[i]
		case strings.HasPrefix(arg, "--folder="):
			folder = strings.TrimPrefix(arg, "--folder=")
		case strings.HasPrefix(arg, "-"):
			return cli.Exit("Error: unknown option "+arg, 2)
		default:
			uids = append(uids, arg)
		}
	}
	l, done, err := openLedger(c, false)
	if err != nil {
		return err
	}
	defer done()
	n, err := l.Retry(c.Context, name, all, folder, uids)
	if err != nil {
		return err
	}
	fmt.Printf("%d message(s) of %s will be fetched again at the next poll (send maddy SIGUSR2 to poll now)\n", n, name)
	return nil
}
