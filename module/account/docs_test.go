package account

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The documentation states the batch size (docs/guarantees.md, the
// guides): a test, so that changing the constant without the docs fails.
// Lines that tell history ("Before that...") are left alone.
func TestDocumentedBatchSize(t *testing.T) {
	checkDocumented(t, regexp.MustCompile(`\bbatch(?:es)? of (\d+)`), batchSize)
}

// checkDocumented finds every match of re (its first group a number) in
// the project's Markdown and fails where the number is not want.
func checkDocumented(t *testing.T, re *regexp.Regexp, want int) {
	t.Helper()
	files, _ := filepath.Glob("../../docs/*.md")
	guides, _ := filepath.Glob("../../docs/guides/*.md")
	files = append(append(files, guides...), "../../README.md")
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "Before that") {
				continue
			}
			for _, m := range re.FindAllStringSubmatch(line, -1) {
				found++
				if n, _ := strconv.Atoi(m[1]); n != want {
					t.Errorf("%s:%d says %q; the code has %d", f, i+1, m[0], want)
				}
			}
		}
	}
	if found == 0 {
		t.Fatalf("no documentation mentions it (%s): the test checks nothing", re)
	}
}
