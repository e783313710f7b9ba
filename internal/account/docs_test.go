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

// The notice thresholds are stated in docs/reference.md (notify).
func TestDocumentedNoticeThresholds(t *testing.T) {
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`\b(\d+) failed polls in a row`), noticeLastingPolls)
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`\band (\d+) minutes since the last successful poll`), int(noticeLastingFor.Minutes()))
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`\bAt most (\d+) notices per account`), noticeDailyCap)
}
