// Package safetext makes text that came from upstream (a server's error
// reply, a refusal reason quoting a header, a folder name) safe to store
// and to show: one line, bounded, without anything a terminal or a mail
// reader would act on.
//
// Upstream text is hostile: an ESC sequence in a NO reply would recolour,
// retitle or rewrite the admin's terminal when `remote-pull status`
// prints it; a BEL rings; a CR hides what came before it; a megabyte
// reply fills the ledger and every notice.
package safetext

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits for what the ledger stores and the commands show.
const (
	// MaxStored bounds an error text or a reason kept in the ledger.
	MaxStored = 1000
	// MaxShown bounds a text in one column of a table.
	MaxShown = 100
)

// replacement stands for every character that is not shown as it is.
const replacement = '\uFFFD'

// Line returns s as one line of at most max bytes (max <= 0: unbounded):
// line breaks and tabs become spaces and runs of spaces one space; other
// control characters (C0, DEL, C1: ESC, BEL, CSI...), bidirectional
// overrides and invalid UTF-8 become U+FFFD; a longer text is cut at a
// character boundary and ends in "...".
func Line(s string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, string(replacement)) {
		if r == '\n' || r == '\r' || r == '\t' || r == ' ' {
			space = true
			continue
		}
		if space && b.Len() > 0 {
			b.WriteByte(' ')
		}
		space = false
		b.WriteRune(clean(r))
	}
	return cut(b.String(), max)
}

// Text is Line for text of several lines, which keeps its line breaks (a
// notice's body, the output of `check`): every line is cleaned as Line
// cleans it, without joining spaces, and the whole is bounded by max bytes.
func Text(s string, max int) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, string(replacement)) {
		switch r {
		case '\n', '\t':
			b.WriteRune(r)
		case '\r':
			// CRLF is a line break; a lone CR would rewrite the line.
		default:
			b.WriteRune(clean(r))
		}
	}
	return cut(b.String(), max)
}

// clean returns r, or the replacement when a terminal would act on it.
func clean(r rune) rune {
	if unicode.IsControl(r) || bidi(r) {
		return replacement
	}
	return r
}

// bidi reports the Unicode controls that reorder text on display, so that
// what is shown is not what is stored (Trojan Source, CVE-2021-42574).
func bidi(r rune) bool {
	return r == '\u061C' || r == '\u200E' || r == '\u200F' ||
		('\u202A' <= r && r <= '\u202E') || ('\u2066' <= r && r <= '\u2069')
}

// cut bounds s to max bytes at a character boundary.
func cut(s string, max int) string {
	const ellipsis = "..."
	if max <= 0 || len(s) <= max {
		return s
	}
	if max <= len(ellipsis) {
		return ellipsis[:max]
	}
	n := max - len(ellipsis)
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + ellipsis
}
