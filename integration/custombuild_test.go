package integration

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// customMain is what a custom maddy build of someone else's looks like: its
// own main on maddy.Run, and remote_pull added with one import and one
// call (README, "Add remote_pull to your own maddy build").
const customMain = `package main

import (
	"os"

	"github.com/foxcpp/maddy"
	"github.com/urfave/cli/v2"

	"github.com/remote-pull/remote_pull/commands"
)

func main() {
	app := cli.NewApp()
	app.Name = "mymaddy"
	app.Flags = []cli.Flag{&cli.PathFlag{Name: "config", Value: "/etc/maddy/maddy.conf"}}
	app.Commands = []*cli.Command{{Name: "run", Action: maddy.Run}}
	commands.Add(app)
	if err := app.Run(os.Args); err != nil {
		os.Exit(1)
	}
}
`

// A second main module, which requires this checkout by a replace, builds
// with the exported commands package, and its 'remote-pull status' reads
// the accounts of a running maddy.
func TestCustomBuild(t *testing.T) {
	root := repoRoot(t)
	dir := t.TempDir()
	ourMod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	var mod strings.Builder
	mod.WriteString("module example.com/mymaddy\n\ngo 1.24\n\nrequire github.com/remote-pull/remote_pull v0.0.0\n\nreplace github.com/remote-pull/remote_pull => " + root + "\n")
	// maddy's own replace lines are needed by every build that links it
	// (../shared/notes/maddy-integration.md), and so is the patched
	// storage, by a path into this checkout; README says so.
	for _, line := range strings.Split(string(ourMod), "\n") {
		if strings.HasPrefix(line, "replace ") {
			mod.WriteString(strings.Replace(line, "=> ./", "=> "+root+"/", 1) + "\n")
		}
	}
	sum, err := os.ReadFile(filepath.Join(root, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"go.mod": []byte(mod.String()), "go.sum": sum, "main.go": []byte(customMain)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	bin := filepath.Join(dir, "mymaddy")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	// Offline: everything comes from the module cache this checkout's own
	// build filled, checked against this checkout's go.sum.
	build.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("the custom build does not build: %v\n%s", err, out)
	}

	up := newUpstream(t)
	seedN(t, up, 2, 500)
	r := startMaddy(t, up, accountConf{Name: "mine", Addr: "tls://localhost:" + port(up.IMAPSAddr), CAFile: up.CA.CAFile}.String())
	r.local(t, 2)
	out, code := r.maddy.CLIOf(t, bin, "", "remote-pull", "status", "--json")
	var sts []struct {
		Account   string `json:"account"`
		Delivered int    `json:"delivered"`
		Running   bool   `json:"running"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &sts) != nil {
		t.Fatalf("mymaddy remote-pull status --json: exit %d\n%s", code, out)
	}
	if len(sts) != 1 || sts[0].Account != "mine" || sts[0].Delivered != 2 || !sts[0].Running {
		t.Fatalf("mymaddy's status: %+v, want account mine, running, 2 delivered", sts)
	}
}

// repoRoot is this checkout's directory: the one with remote_pull's go.mod.
func repoRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatal(err)
	}
	gomod := string(bytes.TrimSpace(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("go env GOMOD: no go.mod above the test's directory")
	}
	return filepath.Dir(gomod)
}
