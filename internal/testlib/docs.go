package testlib

import (
	"fmt"
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
	found := 0
	for _, f := range DocFiles(root) {
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

// DocFiles returns the project's Markdown that the documentation checks
// read: docs/*.md, docs/guides/*.md and README.md, from the module's root
// at root.
func DocFiles(root string) []string {
	files, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	guides, _ := filepath.Glob(filepath.Join(root, "docs", "guides", "*.md"))
	return append(append(files, guides...), filepath.Join(root, "README.md"))
}

// Documented is a directive as docs/reference.md documents it: the
// alternatives its first cell gives ("keep_flags yes\|no\|default" gives
// yes, no, default; none for "username NAME") and where.
type Documented struct {
	Values []string
	Where  string // file:line
}

// codeSpan is a Markdown code span.
var codeSpan = regexp.MustCompile("`([^`]+)`")

// ReferenceDirectives reads the directive tables of docs/reference.md (the
// sections whose title ends in "directives"): the first word of every code
// span in a row's first cell is a directive. A directive in several rows
// keeps the alternatives of all of them.
func ReferenceDirectives(t *testing.T, root string) map[string]Documented {
	t.Helper()
	path := filepath.Join(root, "docs", "reference.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Documented{}
	inTable := false
	for i, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "#") {
			inTable = strings.HasSuffix(strings.TrimSpace(line), "directives")
			continue
		}
		if !inTable || !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.ReplaceAll(line, `\|`, "\x00"), "|")
		for _, m := range codeSpan.FindAllStringSubmatch(cells[1], -1) {
			words := strings.Fields(strings.ReplaceAll(m[1], "\x00", "|"))
			d := out[words[0]]
			d.Where = fmt.Sprintf("%s:%d", path, i+1)
			if len(words) > 1 && strings.Contains(words[1], "|") {
				d.Values = append(d.Values, strings.Split(words[1], "|")...)
			}
			out[words[0]] = d
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s: no directive tables found: the check reads nothing", path)
	}
	return out
}

// CommandMention is one "maddy remote-pull COMMAND ..." in the docs: the
// command and the options written with it.
type CommandMention struct {
	Command string
	Flags   []string // without the dashes
	Where   string   // file:line
}

var (
	commandMention = regexp.MustCompile(`maddy remote-pull ([a-z][a-z0-9-]*)([^` + "`" + `#\n]*)`)
	optionWord     = regexp.MustCompile(`(?:^|[\s\[])--?([a-z][a-z0-9-]*)`)
)

// CommandMentions returns every "maddy remote-pull COMMAND" of the docs
// (DocFiles), with the options that follow it in the same code span or
// line (a shell comment, "#...", ends them).
func CommandMentions(t *testing.T, root string) []CommandMention {
	t.Helper()
	var out []CommandMention
	for _, f := range DocFiles(root) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range commandMention.FindAllStringSubmatch(line, -1) {
				c := CommandMention{Command: m[1], Where: fmt.Sprintf("%s:%d", f, i+1)}
				for _, o := range optionWord.FindAllStringSubmatch(m[2], -1) {
					c.Flags = append(c.Flags, o[1])
				}
				out = append(out, c)
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no 'maddy remote-pull' command in the docs: the check reads nothing")
	}
	return out
}

// testName is a Go test named in a code span: `TestSweep`.
var testName = regexp.MustCompile("`(Test[A-Za-z0-9_]+)`")

// CheckTestsExist fails for every test the docs name (a code span
// `TestX` in DocFiles, HACKING.md or third_party/README.md) that no
// _test.go file under root declares: a promise in docs/guarantees.md
// must name a test that runs.
func CheckTestsExist(t *testing.T, root string) {
	t.Helper()
	declared := map[string]bool{}
	decl := regexp.MustCompile(`(?m)^func (Test[A-Za-z0-9_]+)\(`)
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "bin") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range decl.FindAllStringSubmatch(string(b), -1) {
			declared[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	files := append(DocFiles(root), filepath.Join(root, "HACKING.md"), filepath.Join(root, "third_party", "README.md"))
	named := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			for _, m := range testName.FindAllStringSubmatch(line, -1) {
				named++
				if !declared[m[1]] {
					t.Errorf("%s:%d names %s, which no test file declares", f, i+1, m[1])
				}
			}
		}
	}
	if named == 0 {
		t.Fatal("the docs name no test: the check reads nothing")
	}
}
