package account

import (
	"os"
	"regexp"
	"strings"
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

// Every account state is in docs/reference.md's status row, and every
// state a guide's troubleshooting table ("| state | ...") explains is one
// status can show.
func TestStatesDocumented(t *testing.T) {
	known := map[string]bool{}
	for _, s := range states {
		known[string(s)] = true
	}
	b, err := os.ReadFile("../../docs/reference.md")
	if err != nil {
		t.Fatal(err)
	}
	row := ""
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "| `maddy remote-pull status") {
			row = line
		}
	}
	if row == "" {
		t.Fatal("docs/reference.md has no row for maddy remote-pull status")
	}
	for s := range known {
		if !strings.Contains(row, "`"+s+"`") {
			t.Errorf("state %q is missing from docs/reference.md's status row", s)
		}
	}
	tables := 0
	for _, f := range testlib.DocFiles("../..") {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		inStates := false
		for i, line := range strings.Split(string(b), "\n") {
			cells := strings.Split(line, "|")
			switch {
			case len(cells) < 3:
				inStates = false
			case strings.TrimSpace(cells[1]) == "state":
				inStates = true
				tables++
			case inStates && strings.HasPrefix(strings.TrimSpace(cells[1]), "`"):
				if s := strings.Trim(strings.TrimSpace(cells[1]), "`"); !known[s] {
					t.Errorf("%s:%d explains a state %q that status never shows", f, i+1, s)
				}
			}
		}
	}
	if tables == 0 {
		t.Fatal("no state table in the guides: the check reads nothing")
	}
}

// The over-quota pause is stated in docs/reference.md and the guides.
func TestDocumentedQuotaPause(t *testing.T) {
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`\bfirst over-quota pause is (\d+) hour`), int(quotaPauseMin.Hours()))
	testlib.CheckDocumented(t, "../..", regexp.MustCompile(`\bdoubling up to (\d+) hours`), int(quotaPauseMax.Hours()))
}
