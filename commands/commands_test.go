package commands

import (
	"os"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/remote-pull/remote_pull/remotepull"
)

// Add gives an app the remote-pull commands and wraps its run action: the
// configuration path is recorded for reloads and, on Linux, maddy's
// readiness goes through remote_pull's notify socket, which is gone again
// after run.
func TestAdd(t *testing.T) {
	os.Unsetenv("NOTIFY_SOCKET")
	var sawConfig, sawSocket string
	app := cli.NewApp()
	app.Flags = []cli.Flag{&cli.PathFlag{Name: "config"}}
	app.Commands = []*cli.Command{{Name: "run", Action: func(c *cli.Context) error {
		sawConfig, sawSocket = remotepull.ConfigPath, os.Getenv("NOTIFY_SOCKET")
		return nil
	}}}
	Add(app)

	var names []string
	for _, c := range app.Commands {
		if c.Name == "remote-pull" {
			for _, s := range c.Subcommands {
				names = append(names, s.Name)
			}
		}
	}
	for _, want := range []string{"add", "remove", "status", "check", "retry", "reconcile", "forget", "oauth2-login"} {
		if !slices.Contains(names, want) {
			t.Errorf("remote-pull %s missing (have %v)", want, names)
		}
	}

	if err := app.Run([]string{"mymaddy", "--config", "/x/maddy.conf", "run"}); err != nil {
		t.Fatal(err)
	}
	if sawConfig != "/x/maddy.conf" {
		t.Errorf("run saw ConfigPath %q, want the --config path", sawConfig)
	}
	if runtime.GOOS == "linux" && sawSocket == "" {
		t.Error("run saw no NOTIFY_SOCKET: accounts are not held until maddy is ready")
	}
	if s, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
		t.Errorf("NOTIFY_SOCKET=%q left set after run", s)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"36h":                  now.Add(-36 * time.Hour),
		"2026-12-01T10:00:00Z": time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
		"2026-12-01":           time.Date(2026, 12, 1, 0, 0, 0, 0, time.Local),
		"2026-12-01 10:30":     time.Date(2026, 12, 1, 10, 30, 0, 0, time.Local),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-5h", "2026-13-01"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q) accepted", bad)
		}
	}
}
