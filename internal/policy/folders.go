package policy

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Folder patterns (folders, exclude_folders): a name is taken as it is; a
// name with * (any run of characters, hierarchy separators included) or ?
// (any one character) matches the upstream's selectable folders, listed
// again at every poll. INBOX is one folder in any case (RFC 3501): it is
// always named "INBOX" (CanonicalFolder), in the ledger too, and patterns
// match it case-insensitively.

// CanonicalFolder is name, or "INBOX" for INBOX in any case. Only INBOX
// itself: RFC 3501 leaves the case of its children to the server.
func CanonicalFolder(name string) string {
	if strings.EqualFold(name, "INBOX") {
		return "INBOX"
	}
	return name
}

// IsFolderPattern reports whether a folders entry is a pattern.
func IsFolderPattern(s string) bool { return strings.ContainsAny(s, "*?") }

// CheckFolderPattern rejects IMAP's own wildcard, %, which means something
// else than * there; brackets and the rest are parts of names ("[Gmail]").
func CheckFolderPattern(s string) error {
	if s == "" {
		return fmt.Errorf("an empty folder name")
	}
	if strings.Contains(s, "%") {
		return fmt.Errorf("%q: %% is not pattern syntax here (use * for any run of characters, ? for one)", s)
	}
	return nil
}

// pattern is a compiled folders entry; fold matches INBOX, whose name
// may be spelled in any case.
type pattern struct{ re, fold *regexp.Regexp }

func (p pattern) match(name string) bool {
	if name == "INBOX" {
		return p.fold.MatchString(name)
	}
	return p.re.MatchString(name)
}

func compilePattern(p string) pattern {
	re := compileRegexp(p, "")
	return pattern{re: re, fold: compileRegexp(p, "(?i)")}
}

func compileRegexp(p, flags string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(flags + "^")
	for _, r := range p {
		switch r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// FolderSet is an account's folders and exclude_folders.
type FolderSet struct {
	include      []string
	incRe, excRe []pattern
}

// NewFolderSet compiles the patterns (CheckFolderPattern has passed them).
func NewFolderSet(include, exclude []string) *FolderSet {
	fs := &FolderSet{}
	for _, p := range include {
		p = CanonicalFolder(p)
		if !slices.Contains(fs.include, p) {
			fs.include = append(fs.include, p)
			fs.incRe = append(fs.incRe, compilePattern(p))
		}
	}
	for _, p := range exclude {
		fs.excRe = append(fs.excRe, compilePattern(CanonicalFolder(p)))
	}
	return fs
}

// Dynamic: some entry is a pattern, so the upstream's folder list is needed.
func (fs *FolderSet) Dynamic() bool { return slices.ContainsFunc(fs.include, IsFolderPattern) }

// Literal is the folders named without a pattern and not excluded.
func (fs *FolderSet) Literal() []string {
	var out []string
	for _, f := range fs.include {
		if !IsFolderPattern(f) && !fs.excluded(f) {
			out = append(out, f)
		}
	}
	return out
}

// Resolve is the folders to poll given the upstream's selectable folders:
// the named ones, in order, then the matching ones in the upstream's order,
// each once, none excluded. INBOX matches case-insensitively (RFC 3501).
func (fs *FolderSet) Resolve(listed []string) []string {
	out := fs.Literal()
	for _, f := range listed {
		name := CanonicalFolder(f)
		if slices.Contains(out, name) || fs.excluded(name) {
			continue
		}
		for _, re := range fs.incRe {
			if re.match(name) {
				out = append(out, name)
				break
			}
		}
	}
	return out
}

// Polls reports whether the folder name is polled: named or matched, and
// not excluded.
func (fs *FolderSet) Polls(name string) bool {
	name = CanonicalFolder(name)
	return slices.Contains(fs.Resolve([]string{name}), name)
}

func (fs *FolderSet) excluded(name string) bool {
	for _, re := range fs.excRe {
		if re.match(name) {
			return true
		}
	}
	return false
}

// SameFolder reports whether two folder names may name one upstream
// folder, as far as can be told without asking the server: INBOX is INBOX
// in any case (CanonicalFolder); a trailing hierarchy delimiter changes
// nothing; and the INBOX part of a name below it is taken in any case too
// ("inbox.Archive", "INBOX/Archive"): RFC 3501 leaves that to the server,
// and Dovecot, Courier and Cyrus, whose personal folders live under an
// "INBOX." prefix, ignore it. Used only to keep the disposal folder out of
// the polled set, where a false match costs less than a duplicate.
func SameFolder(a, b string) bool { return canonicalFolder(a) == canonicalFolder(b) }

func canonicalFolder(name string) string {
	if len(name) > 1 {
		name = strings.TrimRight(name, "./")
	}
	if len(name) > 5 && strings.EqualFold(name[:5], "INBOX") && (name[5] == '.' || name[5] == '/') {
		name = "INBOX" + name[5:]
	}
	return CanonicalFolder(name)
}
