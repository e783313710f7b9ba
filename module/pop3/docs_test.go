package pop3

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// The documentation states the POP3 pipeline depth: a test, so that
// changing maxPipeline without the docs fails. History lines are skipped.
func TestDocumentedPipelineDepth(t *testing.T) {
	re := regexp.MustCompile(`(?:up to )?(\d+) (?:commands )?ahead|up to (\d+) ` + "`RETR`" + `s in flight`)
	files, _ := filepath.Glob("../../docs/*.md")
	guides, _ := filepath.Glob("../../docs/guides/*.md")
	found := 0
	for _, f := range append(files, guides...) {
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
				n, _ := strconv.Atoi(m[1] + m[2])
				if n != maxPipeline {
					t.Errorf("%s:%d says %q; the code has %d", f, i+1, m[0], maxPipeline)
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("no documentation states the pipeline depth: the test checks nothing")
	}
}
