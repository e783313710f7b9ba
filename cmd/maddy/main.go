// Command maddy is stock maddy 0.8.2 with the remote_pull endpoint built in.
//
// It is a drop-in replacement for the stock binary: the same global flags
// (--config, --debug), the same "run" and "version" subcommands with the same
// flags and defaults, and every stock module. Stock maddy keeps its CLI in an
// internal package, so the command tree is rebuilt here on maddy's exported
// API; remote_pull's own subcommands are added beside it.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/foxcpp/maddy"
	"github.com/foxcpp/maddy/framework/config"
	"github.com/foxcpp/maddy/framework/log"
	"github.com/urfave/cli/v2"

	"github.com/remote-pull/remote_pull/commands" // the remote-pull commands; registers the remote_pull endpoint
)

func main() {
	app := newApp()
	if err := app.Run(os.Args); err != nil {
		log.DefaultLogger.Error("app.Run failed", err)
		os.Exit(1)
	}
}

// extraCommands are subcommands contributed by other files of this package.
var extraCommands []*cli.Command

func newApp() *cli.App {
	app := cli.NewApp()
	app.Name = "maddy"
	app.Usage = "composable all-in-one mail server, with remote_pull"
	app.Description = `Maddy is a Mail Transfer Agent (MTA), Mail Delivery Agent (MDA), Mail Submission
Agent (MSA), IMAP server and a set of other essential protocols/schemes
necessary to run a secure email server, implemented in one executable.

This build adds the remote_pull endpoint, which fetches mail from POP3 and
IMAP accounts elsewhere and delivers it through maddy's own pipeline.`
	app.ExitErrHandler = func(c *cli.Context, err error) { cli.HandleExitCoder(err) }
	app.EnableBashCompletion = true
	app.Flags = []cli.Flag{
		&cli.PathFlag{
			Name:    "config",
			Usage:   "Configuration file to use",
			EnvVars: []string{"MADDY_CONFIG"},
			Value:   filepath.Join(maddy.ConfigDirectory, "maddy.conf"),
		},
		&cli.BoolFlag{
			Name:        "debug",
			Usage:       "enable debug logging early",
			Destination: &log.DefaultLogger.Debug,
		},
	}

	runFlags := []cli.Flag{
		&cli.StringFlag{
			Name:        "libexec",
			Value:       maddy.DefaultLibexecDirectory,
			Usage:       "path to the libexec directory",
			Destination: &config.LibexecDirectory,
		},
		&cli.StringSliceFlag{
			Name:  "log",
			Usage: "default logging target(s)",
			Value: cli.NewStringSlice("stderr"),
		},
		&cli.BoolFlag{
			Name:   "v",
			Usage:  "print version and build metadata, then exit",
			Hidden: true,
		},
	}
	app.Commands = []*cli.Command{
		{
			Name:   "run",
			Usage:  "Start the server",
			Flags:  runFlags,
			Action: maddy.Run,
		},
		{
			Name:  "version",
			Usage: "Print version and build metadata, then exit",
			Action: func(c *cli.Context) error {
				fmt.Println(versionString())
				return nil
			},
		},
	}
	app.Commands = append(app.Commands, extraCommands...)

	// Stock maddy still starts the server when called without a subcommand
	// (deprecated there, kept here so that this build is a true drop-in).
	app.Flags = append(app.Flags, runFlags...)
	app.Action = func(c *cli.Context) error {
		log.Println("WARNING: Starting server not via 'maddy run' is deprecated and will stop working in the next version")
		return maddy.Run(c)
	}
	// Exactly what a custom maddy build does to add remote_pull.
	commands.Add(app)
	return app
}
