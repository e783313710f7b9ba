package commands

import (
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// Every "maddy remote-pull COMMAND --option" in the docs names a command
// and options it has, and every command has its row in docs/reference.md.
func TestCommandsDocumented(t *testing.T) {
	subs := map[string]*cli.Command{}
	for _, c := range Command().Subcommands {
		subs[c.Name] = c
	}
	inReference := map[string]bool{}
	for _, m := range testlib.CommandMentions(t, "..") {
		c, ok := subs[m.Command]
		if !ok {
			t.Errorf("%s: maddy remote-pull %s: no such command", m.Where, m.Command)
			continue
		}
		if strings.HasPrefix(m.Where, filepath.Join("..", "docs", "reference.md")+":") {
			inReference[m.Command] = true
		}
		for _, f := range m.Flags {
			if !hasFlag(c, f) {
				t.Errorf("%s: maddy remote-pull %s has no option --%s", m.Where, m.Command, f)
			}
		}
	}
	for name := range subs {
		if !inReference[name] {
			t.Errorf("maddy remote-pull %s is not in docs/reference.md", name)
		}
	}
}

func hasFlag(c *cli.Command, name string) bool {
	if name == "help" || name == "h" {
		return true
	}
	for _, f := range c.Flags {
		if slices.Contains(f.Names(), name) {
			return true
		}
	}
	return false
}

// docs/reference.md states the bounds of the autoconfig lookup.
func TestDocumentedAutoconfigBounds(t *testing.T) {
	testlib.CheckDocumented(t, "..", regexp.MustCompile(`HTTPS only, at most (\d+) KiB`), maxAutoconfig>>10)
	testlib.CheckDocumented(t, "..", regexp.MustCompile(`HTTPS only, at most \d+ KiB, (\d+) s`), int(autoconfigTimeout.Seconds()))
}
