package commands

// 'maddy remote-pull status|check|retry|reconcile|forget|oauth2-login': look at and
// steer the fetched accounts. status and retry work on the ledger while
// maddy runs.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/foxcpp/maddy/framework/config"
	"github.com/urfave/cli/v2"

	"github.com/remote-pull/remote_pull/internal/account"
	"github.com/remote-pull/remote_pull/internal/ledger"
	"github.com/remote-pull/remote_pull/internal/policy"
	"github.com/remote-pull/remote_pull/internal/safetext"
	"github.com/remote-pull/remote_pull/remotepull"
)

// Command returns the "remote-pull" command and its subcommands; Add puts
// it into an app.
func Command() *cli.Command {
	return &cli.Command{
		Name:  "remote-pull",
		Usage: "Fetched accounts (remote_pull): add, remove, status, check, retry, reconcile, forget, oauth2-login",
		Subcommands: []*cli.Command{
			{
				Name:  "add",
				Usage: "Set up an account: find its servers, log in (app password, password command or OAuth2), check, write remote_pull.d/NAME.conf, reload maddy",
				Description: `In a terminal, asks for what the flags do not give; with --yes (or without a
terminal) everything missing is an error. Nothing is written unless check
passes. The account goes to remote_pull.d/NAME.conf beside maddy.conf (a typed
password to NAME.password, mode 0600), listed in remote_pull.d/accounts.conf,
which maddy.conf imports with one line (the first run prints it).`,
				Flags:  addFlags(),
				Action: addCommand,
			},
			{
				Name:      "remove",
				Usage:     "Remove an account written by add and reload maddy; its ledger data stays unless --forget",
				ArgsUsage: "ACCOUNT",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "forget", Usage: "also drop the account's ledger data, once the running maddy stopped it"},
					&cli.StringFlag{Name: "config-dir", Usage: "where remote_pull.d/ is (default: the directory of --config)"},
					&cli.BoolFlag{Name: "no-reload", Usage: "do not send maddy the reload signal"},
				},
				Action: removeCommand,
			},
			{
				Name:  "status",
				Usage: "Show every fetched account: state, last success, last error, counts, next poll",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "json", Usage: "print JSON for scripts"},
					&cli.BoolFlag{Name: "all", Usage: "also accounts removed from the configuration that still have ledger data"},
				},
				Action: statusCommand,
			},
			{
				Name:      "forget",
				Usage:     "Drop the ledger data of an account removed from the configuration and stopped by maddy (reload first)",
				ArgsUsage: "ACCOUNT",
				Action:    forgetCommand,
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
				ArgsUsage: "[--device] ACCOUNT",
				Description: `Prints a URL to open in a browser. After consent the provider redirects to
a loopback address this command listens on; when the browser runs on another
machine, paste the URL it was redirected to (or just the code) here instead.
With --device (Microsoft; any provider with a device_endpoint) it prints a
short code and an address instead: open the address on any device, type the
code and consent; the command waits for that. Google offers no device flow for
mail. The token file is written atomically with mode 0600; send maddy SIGUSR2
(or restart it) to use it.`,
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "device", Usage: "device-code flow: a code to type at the provider's address, no redirect"},
				},
				Action: oauth2LoginCommand,
			},
			{
				Name:      "retry",
				Usage:     "Make refused messages of an account eligible again (with --all, over-size ones too; with --duplicates, what dedupe took for a copy)",
				ArgsUsage: "ACCOUNT [UID...]",
				Flags: []cli.Flag{
					&cli.BoolFlag{Name: "all", Usage: "also messages left upstream for being too large"},
					&cli.BoolFlag{Name: "duplicates", Usage: "also messages dedupe recorded as duplicates (name them by UID): they are delivered although a copy came from another folder"},
					&cli.StringFlag{Name: "folder", Usage: "only this folder (needed with UIDs for IMAP accounts with several folders)"},
				},
				Action: retryCommand,
			},
			{
				Name:      "reconcile",
				Usage:     "After restoring maddy's storage from a backup: fetch again what the ledger calls delivered but the storage lacks",
				ArgsUsage: "ACCOUNT",
				Description: `Reads the account's messages the ledger recorded as delivered since --since
(the time of the restored backup), looks for each in maddy's storage (every
folder of every user) by the id of the Received field remote_pull wrote, and
makes the missing ones whose upstream copy is still there (keep yes) eligible
again: the next poll fetches them. What is present is never fetched again.
Missing messages remote_pull already deleted upstream are listed; they cannot
be fetched again (exit status 1). See docs/backup.md.`,
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "since", Required: true, Usage: "only messages delivered at or after this time: RFC 3339, YYYY-MM-DD, 'YYYY-MM-DD HH:MM' (local time) or a duration ago (36h)"},
					&cli.BoolFlag{Name: "dry-run", Usage: "report only; change nothing"},
				},
				Action: reconcileCommand,
			},
		},
	}
}

// openLedgerFile opens the ledger in the state_dir of the configuration
// already loaded.
func openLedgerFile(readOnly bool) (*ledger.Ledger, error) {
	path := remotepull.LedgerPath()
	if _, err := os.Stat(path); err != nil {
		return nil, cli.Exit(fmt.Sprintf("no remote_pull ledger at %s yet: has maddy run with a remote_pull block?", path), 1)
	}
	if readOnly {
		return ledger.OpenReadOnly(path)
	}
	return ledger.Open(path)
}

// configuredAccounts loads the configuration and returns the names of its
// remote_pull accounts; closeAll ends what loading started.
func configuredAccounts(c *cli.Context) (names []string, closeAll func(), err error) {
	globals, blocks, closeAll, err := remotePullBlocks(c)
	if err != nil {
		return nil, nil, err
	}
	names, err = remotepull.AccountNames(blocks, globals)
	if err != nil {
		closeAll()
		return nil, nil, err
	}
	return names, closeAll, nil
}

// accountStatus is one line of 'remote-pull status': what the ledger
// holds, and whether the account is in the configuration.
type accountStatus struct {
	ledger.AccountStatus
	Configured bool `json:"configured"`
	// Running: a maddy is running remote_pull on this state directory;
	// when false, State is what it last saw before it stopped.
	Running bool `json:"running"`
	// BudgetDays: at the account's download budget, about how many days
	// the bytes waiting upstream take (limits.go); 0 without a budget.
	BudgetDays float64 `json:"budget_days,omitempty"`
}

func statusCommand(c *cli.Context) error {
	names, closeAll, err := configuredAccounts(c)
	if err != nil {
		return err
	}
	defer closeAll()
	running := remotepull.Running(remotepull.StateDir())
	var saved []ledger.AccountStatus
	if _, err := os.Stat(remotepull.LedgerPath()); err == nil {
		l, err := ledger.OpenReadOnly(remotepull.LedgerPath())
		if err != nil {
			return err
		}
		saved, err = l.Statuses(c.Context)
		l.Close()
		if err != nil {
			return err
		}
	}
	byName := map[string]ledger.AccountStatus{}
	for _, st := range saved {
		byName[st.Account] = st
	}
	// Configured accounts, by name; with --all, then the removed ones that
	// still have ledger data.
	slices.Sort(names)
	var sts []accountStatus
	for _, name := range names {
		st, ok := byName[name]
		if !ok {
			st = ledger.AccountStatus{Account: name, State: "not started"}
		}
		delete(byName, name)
		sts = append(sts, accountStatus{AccountStatus: st, Configured: true, Running: running, BudgetDays: budgetDays(st)})
	}
	if c.Bool("all") {
		for _, st := range saved {
			if _, removed := byName[st.Account]; removed {
				sts = append(sts, accountStatus{AccountStatus: st, Running: running})
			}
		}
	}
	if c.Bool("json") {
		return writeStatusJSON(os.Stdout, sts)
	}
	return printStatus(os.Stdout, sts, running)
}

// writeStatusJSON writes status --json. A list is [] when empty, never
// null, so that a script's `.connections.watched | length` works on an
// account that watches nothing or was never started.
func writeStatusJSON(out io.Writer, sts []accountStatus) error {
	sts = slices.Clone(sts)
	if sts == nil {
		sts = []accountStatus{}
	}
	for i := range sts {
		c := &sts[i].Connections
		c.Watched, c.Polled = listOrEmpty(c.Watched), listOrEmpty(c.Polled)
	}
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(sts)
}

func listOrEmpty(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// printStatus writes the status table. What may quote the upstream (the
// last error, the note) goes through safetext: the ledger stores it
// cleaned, but one written by an older version may not be.
func printStatus(out io.Writer, sts []accountStatus, running bool) error {
	if !running {
		fmt.Fprintln(out, "maddy is not running remote_pull here: the states below are as it last saw them.")
	}
	if len(sts) == 0 {
		fmt.Fprintln(out, "No remote_pull account is configured.")
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ACCOUNT\tUPSTREAM\tSTATE\tLAST SUCCESS\tNEXT POLL\tDELIVERED\tREFUSED\tWAITING UPSTREAM\tLAST ERROR")
	for _, st := range sts {
		waiting := fmt.Sprintf("%d refused, %d too large", st.RefusedWaiting, st.TooLargeWaiting)
		state, next := st.State, until(st.NextPoll)
		switch {
		case !st.Configured:
			state, next = "removed from the configuration", "-"
		case !running:
			state, next = "stopped (last: "+st.State+")", "-"
		}
		delivered := fmt.Sprint(st.Delivered)
		if st.LabelCopies > 0 {
			delivered += fmt.Sprintf(" (+%d label copies)", st.LabelCopies)
		}
		fmt.Fprintf(w, "%s\t%s %s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", st.Account, st.Protocol, st.Host, state,
			ago(st.LastSuccess), next, delivered, st.Refused, waiting, shortErr(st.LastError))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	for _, st := range sts {
		if st.Note != "" {
			fmt.Fprintf(out, "note: %s: %s\n", st.Account, safetext.Line(st.Note, safetext.MaxStored))
		}
		if st.AdoptedMaxAge > 0 {
			fmt.Printf("adopted: %s: %d messages older than max_age at their folder's first sync, recorded and never fetched\n",
				st.Account, st.AdoptedMaxAge)
		}
		if p := st.Progress; running && p.Total > 0 {
			fmt.Fprintf(out, "progress: %s: %s\n", st.Account, progressLine(p))
		}
		if c := st.Connections; running && st.Configured && len(c.Watched)+len(c.Polled) > 0 {
			plan := account.ConnPlan{Max: c.Max, Watched: c.Watched, Polled: c.Polled}
			fmt.Fprintf(out, "connections: %s: %s\n", st.Account, safetext.Line(plan.String(), safetext.MaxStored))
		}
		printLimits(out, st)
	}
	return nil
}

// forgetCommand drops the ledger data of an account removed from the
// configuration. The file is not enough: the running maddy may still poll
// the account (no reload since, a reload that failed, a stop still under
// way), and its poller would fetch everything again without its ledger.
// The ledger says which accounts the running maddy runs.
func forgetCommand(c *cli.Context) error {
	name := c.Args().First()
	if name == "" {
		return cli.Exit("Error: ACCOUNT is required", 2)
	}
	names, closeAll, err := configuredAccounts(c)
	if err != nil {
		return err
	}
	defer closeAll()
	if slices.Contains(names, name) {
		return cli.Exit(fmt.Sprintf("account %s is still configured: remove it from the configuration (and reload) first", name), 1)
	}
	l, err := openLedgerFile(false)
	if err != nil {
		return err
	}
	defer l.Close()
	n, err := l.ForgetAccount(c.Context, name, remotepull.Running(remotepull.StateDir()))
	if errors.Is(err, ledger.ErrAccountRunning) {
		return cli.Exit(fmt.Sprintf("account %s is no longer in the configuration file, but the running maddy still polls it "+
			"(not reloaded since, the reload failed, or it is still stopping): reload maddy (systemctl reload maddy, or SIGUSR2), "+
			"wait for its log to say the account stopped, then forget it", name), 1)
	}
	if err != nil {
		return err
	}
	fmt.Printf("forgot account %s (%d message entries)\n", name, n)
	return nil
}

// progressLine renders a poll's progress: "1200 of 50000 (2.4%), 310
// messages/s, about 2m35s left".
func progressLine(p ledger.Progress) string {
	s := fmt.Sprintf("%d of %d (%.1f%%)", p.Done, p.Total, 100*float64(p.Done)/float64(p.Total))
	elapsed := time.Since(p.Started).Seconds()
	if p.Done == 0 || elapsed <= 0 {
		return s + ", starting"
	}
	rate := float64(p.Done) / elapsed
	if p.BytesTotal > 0 && p.BytesDone > 0 {
		// By bytes: a few large messages do not skew the estimate.
		brate := float64(p.BytesDone) / elapsed
		left := time.Duration(float64(p.BytesTotal-p.BytesDone) / brate * float64(time.Second)).Round(time.Second)
		return fmt.Sprintf("%s, %.1f of %.1f MB, %.0f messages/s, %.2f MB/s, about %s left", s,
			float64(p.BytesDone)/1e6, float64(p.BytesTotal)/1e6, rate, brate/1e6, left)
	}
	left := time.Duration(float64(p.Total-p.Done) / rate * float64(time.Second)).Round(time.Second)
	return fmt.Sprintf("%s, %.0f messages/s, about %s left", s, rate, left)
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

// shortErr is an error text for one table column or one line: cleaned
// (it may quote the upstream) and bounded.
func shortErr(s string) string {
	if s == "" {
		return "-"
	}
	return safetext.Line(s, safetext.MaxShown)
}

// cleanWriter passes what check prints through safetext: its lines quote
// the upstream (greeting, capabilities, certificate names, folder names,
// errors). Each write is a line or a few; maxCheckWrite bounds one.
type cleanWriter struct{ w io.Writer }

const maxCheckWrite = 8192

func (c cleanWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(c.w, safetext.Text(string(p), maxCheckWrite)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func checkCommand(c *cli.Context) error {
	name := c.Args().First()
	if name == "" {
		return cli.Exit("Error: ACCOUNT is required", 2)
	}
	globals, blocks, closeAll, err := remotePullBlocks(c)
	if err != nil {
		return err
	}
	defer closeAll()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := remotepull.CheckAccount(ctx, blocks, globals, name, cleanWriter{os.Stdout}); err != nil {
		return cli.Exit("check failed: "+shortErr(err.Error()), 1)
	}
	fmt.Println("ok")
	return nil
}

// remotePullBlocks loads the configuration and returns its remote_pull
// blocks.
func remotePullBlocks(c *cli.Context) (map[string]interface{}, []config.Node, func(), error) {
	globals, endpoints, _, closeAll, err := LoadConfig(c)
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
	name, device := c.Args().First(), c.Bool("device")
	// As with retry: the CLI library stops reading options at ACCOUNT,
	// and "oauth2-login ACCOUNT --device" is natural to type.
	for _, arg := range c.Args().Tail() {
		if arg != "--device" && arg != "-device" {
			return cli.Exit(fmt.Sprintf("Error: unexpected argument %q", arg), 2)
		}
		device = true
	}
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
	if acc.OAuth2.ClientCredentials {
		return cli.Exit(fmt.Sprintf("account %s uses client_credentials (app-only access): there is no consent to give and no token file; maddy asks for its token itself", name), 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	var path string
	if device {
		path, err = deviceLogin(ctx, acc.OAuth2, os.Stdout, nil)
	} else {
		path, err = oauthLogin(ctx, acc.OAuth2, os.Stdin, os.Stdout)
	}
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
	all, duplicates, folder := c.Bool("all"), c.Bool("duplicates"), c.String("folder")
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
		case arg == "--duplicates" || arg == "-duplicates":
			duplicates = true
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
	names, closeAll, err := configuredAccounts(c)
	if err != nil {
		return err
	}
	defer closeAll()
	if !slices.Contains(names, name) {
		return cli.Exit(fmt.Sprintf("no account %q in the configuration", name), 1)
	}
	l, err := openLedgerFile(false)
	if err != nil {
		return err
	}
	defer l.Close()
	// Duplicates only when asked for: a plain retry must never deliver
	// every copy dedupe held back.
	states := []ledger.State{ledger.Refused}
	if all {
		states = append(states, ledger.TooLarge)
	}
	if duplicates {
		states = append(states, ledger.Duplicate)
	}
	// The ledger keeps INBOX as INBOX, however the configuration spells it.
	n, err := l.Retry(c.Context, name, states, policy.CanonicalFolder(folder), uids)
	if err != nil {
		return err
	}
	fmt.Printf("%d message(s) of %s will be fetched again at the next poll (send maddy SIGUSR2 to poll now)\n", n, name)
	return nil
}

func reconcileCommand(c *cli.Context) error {
	name := c.Args().First()
	if name == "" || c.Args().Len() > 1 {
		return cli.Exit("Error: one ACCOUNT is required (options go before it)", 2)
	}
	since, err := parseSince(c.String("since"), time.Now())
	if err != nil {
		return cli.Exit("Error: --since: "+err.Error(), 2)
	}
	globals, blocks, closeAll, err := remotePullBlocks(c)
	if err != nil {
		return err
	}
	defer closeAll()
	l, err := openLedgerFile(c.Bool("dry-run"))
	if err != nil {
		return err
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(c.Context, time.Hour)
	defer cancel()
	rep, err := remotepull.Reconcile(ctx, blocks, globals, name, l,
		remotepull.ReconcileOptions{Since: since, DryRun: c.Bool("dry-run")})
	if err != nil && !errors.Is(err, remotepull.ErrUpstreamDeleted) {
		return cli.Exit("reconcile: "+err.Error(), 1)
	}
	fmt.Printf("%s: %d message(s) delivered since %s: %d present in maddy's storage, %d missing",
		name, rep.Checked, since.Format(time.RFC3339), rep.Present, rep.Refetch+len(rep.Gone))
	if c.Bool("dry-run") {
		fmt.Printf("; %d would be fetched again (dry run: nothing changed)\n", rep.Refetch)
	} else {
		fmt.Printf("; %d will be fetched again at the next poll (send maddy SIGUSR2 to poll now)\n", rep.Refetch)
	}
	if rep.Renumbered > 0 {
		fmt.Printf("%d message(s) delivered before their folder was renumbered upstream (UIDVALIDITY) cannot be checked\n", rep.Renumbered)
	}
	if len(rep.Gone) > 0 {
		fmt.Printf("%d missing message(s) cannot be fetched again: remote_pull deleted the upstream copy after delivering it (keep no, delete_after):\n", len(rep.Gone))
		for _, g := range rep.Gone {
			fmt.Printf("  %s\n", safetext.Line(g, safetext.MaxStored))
		}
		return cli.Exit("", 1)
	}
	return nil
}

// parseSince reads --since: a time (RFC 3339, a date, a date and a local
// time) or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("%q: a negative duration", s)
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	for _, layout := range []string{"2006-01-02 15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.Local); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q: want RFC 3339 (2026-12-01T10:00:00Z), YYYY-MM-DD, 'YYYY-MM-DD HH:MM' or a duration (36h)", s)
}
