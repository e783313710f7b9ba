package filesrc

import (
	"encoding/csv"
	"mime"
	"regexp"
	"slices"
	"strings"
)

// mboxFlags reads the flags mbox writers record in the header: Status (R
// read, O old), X-Status (A answered, F flagged, T draft, D deleted), and
// X-Keywords (keywords, space or comma separated: Dovecot, mutt).
func mboxFlags(status, xstatus, keywords string) []string {
	var flags []string
	if strings.ContainsRune(status, 'R') {
		flags = append(flags, `\Seen`)
	}
	for _, c := range []struct {
		letter rune
		flag   string
	}{{'A', `\Answered`}, {'F', `\Flagged`}, {'T', `\Draft`}, {'D', `\Deleted`}} {
		if strings.ContainsRune(xstatus, c.letter) {
			flags = append(flags, c.flag)
		}
	}
	for _, k := range strings.FieldsFunc(keywords, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\r' || r == '\n' }) {
		if validKeyword(k) && !hasFlag(flags, k) {
			flags = append(flags, k)
		}
	}
	return flags
}

// validKeyword: an IMAP keyword (atom, no backslash).
func validKeyword(k string) bool {
	if k == "" || len(k) > 100 {
		return false
	}
	for _, r := range k {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`(){%*"\]`, r) {
			return false
		}
	}
	return true
}

func hasFlag(flags []string, f string) bool {
	return slices.ContainsFunc(flags, func(g string) bool { return strings.EqualFold(g, f) })
}

func withoutFlag(flags []string, f string) []string {
	return slices.DeleteFunc(flags, func(g string) bool { return strings.EqualFold(g, f) })
}

// takeoutSystem maps Google Takeout's X-Gmail-Labels names of Gmail's
// system labels to their IMAP X-GM-LABELS spelling, as an IMAP account
// on the same mailbox lists them.
var takeoutSystem = map[string]string{
	"inbox": `\Inbox`, "sent": `\Sent`, "starred": `\Starred`, "important": `\Important`,
	"drafts": `\Draft`, "draft": `\Draft`, "spam": `\Spam`, "trash": `\Trash`,
}

// takeoutState are Takeout labels that are states, not labels: Opened
// and Unread say \Seen or not; Archived is the absence of Inbox;
// categories and Chat have no IMAP folder.
var takeoutState = regexp.MustCompile(`(?i)^(opened|unread|archived|chat|category .*)$`)

// takeoutLabels reads X-Gmail-Labels (comma separated, as CSV: a label
// with a comma is quoted; RFC 2047 encoded where not ASCII) into IMAP-style
// Gmail labels and flags: Unread absent → \Seen, Starred → \Flagged as
// well. IMAP keywords a client set show as "IMAP_$Forwarded": they become
// the keyword.
func takeoutLabels(field string, flags []string) (labels, out []string) {
	field = strings.Join(strings.Fields(field), " ") // unfolded
	if dec, err := (&mime.WordDecoder{}).DecodeHeader(field); err == nil {
		field = dec
	}
	rd := csv.NewReader(strings.NewReader(field))
	rd.LazyQuotes, rd.TrimLeadingSpace = true, true
	names, err := rd.Read()
	if err != nil {
		names = strings.Split(field, ",")
	}
	seen := true
	out = flags
	for _, n := range names {
		n = strings.TrimSpace(n)
		switch {
		case n == "":
		case strings.EqualFold(n, "unread"):
			seen = false
		case takeoutState.MatchString(n):
		case strings.HasPrefix(n, "IMAP_"):
			if k := strings.TrimPrefix(n, "IMAP_"); validKeyword(k) && !hasFlag(out, k) {
				out = append(out, k)
			}
		case takeoutSystem[strings.ToLower(n)] != "":
			l := takeoutSystem[strings.ToLower(n)]
			if !slices.Contains(labels, l) {
				labels = append(labels, l)
			}
			if l == `\Starred` && !hasFlag(out, `\Flagged`) {
				out = append(out, `\Flagged`)
			}
			if l == `\Draft` && !hasFlag(out, `\Draft`) {
				out = append(out, `\Draft`)
			}
		default:
			if !slices.Contains(labels, n) {
				labels = append(labels, n)
			}
		}
	}
	if seen && !hasFlag(out, `\Seen`) {
		out = append(out, `\Seen`)
	}
	return labels, out
}
