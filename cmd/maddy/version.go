package main

import (
	"fmt"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"github.com/foxcpp/maddy"
)

// Version is remote_pull's version, set at build time
// (-ldflags "-X main.Version=v1.2.3"); empty means: from the build info.
var Version string

func init() {
	// maddy's own Version is "go-build" unless its build sets it: take the
	// version of the maddy module this binary was built with.
	if maddy.Version == "go-build" {
		if v := depVersion("github.com/foxcpp/maddy"); v != "" {
			maddy.Version = v
		}
	}
}

// versionString is what 'maddy version' prints: maddy's version and
// remote_pull's, the platform, and maddy's default paths.
func versionString() string {
	return fmt.Sprintf(`maddy %s with remote_pull %s, %s/%s %s

default config: %s
default state_dir: %s
default runtime_dir: %s`,
		maddy.Version, remotePullVersion(), runtime.GOOS, runtime.GOARCH, runtime.Version(),
		filepath.Join(maddy.ConfigDirectory, "maddy.conf"), maddy.DefaultStateDirectory, maddy.DefaultRuntimeDirectory)
}

func depVersion(path string) string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, d := range info.Deps {
		if d.Path == path {
			if d.Replace != nil && d.Replace.Version != "" {
				return d.Replace.Version
			}
			return d.Version
		}
	}
	return ""
}

// remotePullVersion is Version, else the version Go recorded for the
// remote_pull module (a dependency of someone's own build, or the main
// module), else its VCS revision.
func remotePullVersion() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	if v := info.Main.Version; info.Main.Path == modulePath && v != "" && v != "(devel)" {
		return v
	}
	if v := depVersion(modulePath); v != "" {
		return v
	}
	var rev, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				modified = "+dirty"
			}
		}
	}
	if rev == "" {
		return "(devel)"
	}
	return "devel-" + rev[:min(12, len(rev))] + modified
}

// modulePath is remote_pull's Go module path.
const modulePath = "github.com/remote-pull/remote_pull"
