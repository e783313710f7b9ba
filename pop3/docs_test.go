package pop3

import (
	"regexp"
	"testing"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// The documentation states the POP3 pipeline depth: a test, so that
// changing maxPipeline without the docs fails.
func TestDocumentedPipelineDepth(t *testing.T) {
	re := regexp.MustCompile(`(?:up to )?(\d+) (?:commands )?ahead|up to (\d+) ` + "`RETR`" + `s in flight`)
	testlib.CheckDocumented(t, "..", re, maxPipeline)
}
