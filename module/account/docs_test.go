package account

import (
	"regexp"
	"testing"

	"github.com/remote-pull/remote_pull/internal/testlib"
)

// The documentation states the batch size (docs/guarantees.md, the
// guides): a test, so that changing the constant without the docs fails.
func TestDocumentedBatchSize(t *testing.T) {
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`\bbatch(?:es)? of (\d+)`), batchSize)
}
