package testlib

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// CheckDocumented finds every match of re in the project's Markdown
// (docs/, docs/guides/ and README.md, from the module's root at root) and
// fails where the number in re's first non-empty group is not want. Lines
// telling history ("Before that") are skipped. A test that finds no match
// fails too: it would check nothing.
func CheckDocumented(t *testing.T, root string, re *regexp.Regexp, want int) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	guides, _ := filepath.Glob(filepath.Join(root, "docs", "guides", "*.md"))
	files = append(append(files, guides...), filepath.Join(root, "README.md"))
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
				n, _ := strconv.Atoi(strings.Join(m[1:], ""))
				if n != want {
					t.Errorf("%s:%d says %q; the code has %d", f, i+1, m[0], want)
				}
			}
		}
	}
	if found == 0 {
		t.Fatalf("no documentation matches %s: the test checks nothing", re)
	}
}
