package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	parser "github.com/foxcpp/maddy/framework/cfgparser"
	maddycfg "github.com/foxcpp/maddy/framework/config"
)

// maddy.conf.example's remote_pull block parses, with its password files
// pointed at a temporary directory.
func TestExampleConfig(t *testing.T) {
	raw, err := os.ReadFile("../../maddy.conf.example")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	text := strings.ReplaceAll(string(raw), "/etc/maddy/secrets/", dir+"/")
	for _, name := range []string{"gmail", "isp"} {
		os.WriteFile(filepath.Join(dir, name), []byte("pw\n"), 0o600)
	}
	nodes, err := parser.Read(strings.NewReader(text), "maddy.conf.example")
	if err != nil {
		t.Fatal(err)
	}
	old := maddycfg.StateDirectory
	maddycfg.StateDirectory = dir
	t.Cleanup(func() { maddycfg.StateDirectory = old })
	found := 0
	for _, n := range nodes {
		if n.Name != "remote_pull" {
			continue
		}
		// local_routing is a top-level block: stand in with an inline target.
		for i, c := range n.Children {
			if c.Name == "deliver_to" {
				n.Children[i] = Node{Name: "reject", File: c.File, Line: c.Line}
			}
		}
		b, err := Parse(n, globals, map[string]Node{})
		if err != nil {
			t.Fatal(err)
		}
		found += len(b.Accounts)
	}
	if found != 2 {
		t.Fatalf("%d accounts in the example, want 2", found)
	}
}
