package config

import (
	"regexp"
	"slices"
	"sort"
	"testing"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// Every directive the parser accepts has its row in docs/reference.md, every
// row names a directive the parser accepts, and a directive that takes one
// of a few words documents exactly the words it accepts: an accepted but
// undocumented directive or value (keep_flags default, source_in,
// destination_in were) fails here.
func TestDirectivesDocumented(t *testing.T) {
	documented := testlib.ReferenceDirectives(t, "../..")
	accepted := map[string]bool{}
	for _, set := range []map[string]bool{accountDirectives, pipelineDirectives, blockDirectives} {
		for name := range set {
			accepted[name] = true
		}
	}
	for name := range accepted {
		if _, ok := documented[name]; !ok {
			t.Errorf("directive %s is accepted but has no row in docs/reference.md", name)
		}
	}
	for name, d := range documented {
		if !accepted[name] {
			t.Errorf("%s: directive %s is documented but not accepted", d.Where, name)
		}
	}
	for name, want := range enumValues {
		got := slices.Clone(documented[name].Values)
		want = slices.Clone(want)
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: %s documents the values %v; the parser accepts %v", documented[name].Where, name, got, want)
		}
	}
}

// docs/reference.md states password_command's timeout.
func TestDocumentedPasswordCommandTimeout(t *testing.T) {
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`may take (\d+) s, then it and its process group are killed`), int(passwordCommandTimeout.Seconds()))
}

// The defaults of max_connections are stated in docs/reference.md and
// the guides.
func TestDocumentedMaxConnections(t *testing.T) {
	testlib.CheckDocumented(t, "../..", regexp.MustCompile("`(\\d+)` on Gmail hosts"), gmailMaxConnections)
	testlib.CheckDocumented(t, "../..", regexp.MustCompile("`(\\d+)` on Microsoft hosts"), microsoftMaxConnections)
	testlib.CheckDocumented(t, "../..", regexp.MustCompile("`(\\d+)` on other hosts"), otherMaxConnections)
}
