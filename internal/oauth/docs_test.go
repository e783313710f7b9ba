package oauth

import (
	"regexp"
	"testing"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// The docs state when an app-only token is replaced and how much slower
// the device flow polls after slow_down.
func TestDocumentedConstants(t *testing.T) {
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`\b(\d+) minutes before it expires`), int(earlyRefresh.Minutes()))
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`\b(\d+) s more at each .slow_down`), int(slowDownStep.Seconds()))
}
