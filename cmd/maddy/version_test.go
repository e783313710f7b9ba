package main

import (
	"strings"
	"testing"
)

// 'maddy version' names maddy's version (not "go-build") and remote_pull's.
func TestVersion(t *testing.T) {
	v := versionString()
	if !strings.HasPrefix(v, "maddy v0.") || !strings.Contains(v, " with remote_pull ") || strings.Contains(v, "go-build") {
		t.Fatalf("version:\n%s", v)
	}
	Version = "v9.9.9-test"
	defer func() { Version = "" }()
	if !strings.Contains(versionString(), "remote_pull v9.9.9-test") {
		t.Fatalf("the build-time version is not shown:\n%s", versionString())
	}
}
