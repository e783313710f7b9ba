package oauth

import (
	"regexp"
	"testing"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// The docs state when an app-only token is replaced, how much slower the
// device flow polls after slow_down, and how much of the provider's text
// it prints.
func TestDocumentedConstants(t *testing.T) {
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`\b(\d+) minutes before it expires`), int(earlyRefresh.Minutes()))
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`\b(\d+) s more at each .slow_down`), int(slowDownStep.Seconds()))
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`cleaned and bounded \((\d+) and \d+ bytes\)`), maxUserCode)
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`cleaned and bounded \(\d+ and (\d+) bytes\)`), maxURI)
}
