// Package commands is remote_pull's part of the maddy command line: the
// "remote-pull" subcommands (add, remove, status, check, retry, reconcile,
// forget, oauth2-login) and what "maddy run" needs to start remote_pull's
// accounts well (held until maddy is up; a reload re-reads the remote_pull
// blocks).
//
// Stock maddy keeps its command line in an internal package, so every
// custom build has its own main on maddy.Run; such a build adds
// remote_pull with one import and one call:
//
//	app := ... // the build's urfave/cli/v2 app, with a "run" command on maddy.Run
//	commands.Add(app)
//
// Importing this package also registers the remote_pull endpoint.
package commands

import (
	"fmt"
	"os"

	"github.com/foxcpp/maddy"
	parser "github.com/foxcpp/maddy/framework/cfgparser"
	"github.com/foxcpp/maddy/framework/hooks"
	"github.com/foxcpp/maddy/framework/module"
	"github.com/urfave/cli/v2"

	"github.com/remote-pull/remote_pull/remotepull" // registers the remote_pull endpoint
)

// Add puts the "remote-pull" command into app and wraps the action of its
// "run" command, and app's own action (stock maddy's deprecated start
// without a subcommand), in Run's set-up.
func Add(app *cli.App) {
	app.Commands = append(app.Commands, Command())
	for _, c := range app.Commands {
		if c.Name == "run" && c.Action != nil {
			c.Action = wrapRun(c.Action)
		}
	}
	if app.Action != nil {
		app.Action = wrapRun(app.Action)
	}
}

// wrapRun runs action (which calls maddy.Run) with remote_pull's accounts
// held until maddy is up, and with the configuration path recorded for
// reloads.
func wrapRun(action cli.ActionFunc) cli.ActionFunc {
	return func(c *cli.Context) error {
		stop := gateOnReady()
		defer stop()
		// A reload (SIGUSR2) reads the remote_pull blocks from here again.
		remotepull.ConfigPath = c.Path("config")
		return action(c)
	}
}

// LoadConfig reads the configuration exactly as 'maddy run' does (globals,
// state directory, every block registered) without starting anything. The
// returned function runs the shutdown hooks of whatever got initialised.
func LoadConfig(c *cli.Context) (globals map[string]interface{}, endpoints, mods []maddy.ModInfo, closeAll func(), err error) {
	cfgPath := c.Path("config")
	if cfgPath == "" {
		return nil, nil, nil, nil, cli.Exit("Error: config is required", 2)
	}
	f, err := os.Open(cfgPath)
	if err != nil {
		return nil, nil, nil, nil, cli.Exit(fmt.Sprintf("Error: failed to open config: %v", err), 2)
	}
	defer f.Close()
	nodes, err := parser.Read(f, f.Name())
	if err != nil {
		return nil, nil, nil, nil, cli.Exit(fmt.Sprintf("Error: failed to parse config: %v", err), 2)
	}
	globals, nodes, err = maddy.ReadGlobals(nodes)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if err := maddy.InitDirs(); err != nil {
		return nil, nil, nil, nil, err
	}
	module.NoRun = true
	endpoints, mods, err = maddy.RegisterModules(globals, nodes)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	return globals, endpoints, mods, func() { hooks.RunHooks(hooks.EventShutdown) }, nil
}
