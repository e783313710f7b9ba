package delivery

import (
	"slices"
	"strings"
)

// Gmail's system labels, as X-GM-LABELS sends them (IMAP atoms with a
// backslash; user labels are plain strings, "/" their hierarchy
// delimiter).
const (
	GmailInbox     = `\Inbox`
	GmailSent      = `\Sent`
	GmailDraft     = `\Draft`
	GmailSpam      = `\Spam`
	GmailTrash     = `\Trash`
	GmailStarred   = `\Starred`
	GmailImportant = `\Important`
)

// GmailDelimiter is the hierarchy delimiter of Gmail's label names
// ("Work/Clients").
const GmailDelimiter = "/"

// gmailSpecial maps the system labels that are folders to the local
// SPECIAL-USE folder they go to, and the name that folder gets when the
// user has none with the attribute (as Placement.SpecialUse does for a
// mirrored SPECIAL-USE folder).
var gmailSpecial = map[string]Placement{
	strings.ToLower(GmailSent):  {SpecialUse: `\Sent`, Folder: "Sent"},
	strings.ToLower(GmailDraft): {SpecialUse: `\Drafts`, Folder: "Drafts"},
	strings.ToLower(GmailSpam):  {SpecialUse: `\Junk`, Folder: "Junk"},
	strings.ToLower(GmailTrash): {SpecialUse: `\Trash`, Folder: "Trash"},
}

// GmailArchive is where a message with no folder label goes (Gmail's
// "archived": only in All Mail).
var GmailArchive = Placement{SpecialUse: `\Archive`, Folder: "Archive"}

// GmailPlacements maps a message's Gmail labels, IMAP-style as X-GM-LABELS
// gives them, to the local folders that get a copy, and the flags every
// copy gets:
//
//   - `\Inbox` → INBOX (the zero Placement);
//   - `\Sent`, `\Draft`, `\Spam`, `\Trash` → the local folder with the
//     SPECIAL-USE attribute \Sent, \Drafts, \Junk, \Trash (created with
//     that name if the user has none);
//   - `\Starred` → the \Flagged flag, on every copy; no folder;
//   - `\Important` and any other system label (`\Muted`...) → nothing:
//     Gmail's own ranking, not a place;
//   - a user label → the folder of that name, Delimiter "/" (mirrored as
//     local_folders mirror does: "Work/Clients" becomes "Work.Clients");
//   - no folder label at all (archived) → GmailArchive, the \Archive
//     folder.
//
// System labels are matched without regard to case. Placements come in
// the order of labels, without repeats; flags has no repeats. The
// placements carry no flags: the caller adds flags (these and the
// message's own, with keep_flags) to each. Callers with labels in another
// spelling (a Takeout's X-Gmail-Labels: "Inbox", "Sent", "Starred",
// "Archived"...) translate them to these first.
//
// The account loop delivers a message with labels once through maddy's
// pipeline into the first placement and stores the others as copies of
// it (internal/account, placeLabels).
func GmailPlacements(labels []string) (placements []Placement, flags []string) {
	for _, label := range labels {
		if label == "" {
			continue
		}
		var p Placement
		if strings.HasPrefix(label, `\`) {
			switch lower := strings.ToLower(label); lower {
			case strings.ToLower(GmailInbox):
				// The zero Placement: INBOX.
			case strings.ToLower(GmailStarred):
				if !slices.Contains(flags, `\Flagged`) {
					flags = append(flags, `\Flagged`)
				}
				continue
			default:
				special, ok := gmailSpecial[lower]
				if !ok {
					continue // \Important, \Muted...: no place
				}
				p = special
			}
		} else {
			p = Placement{Folder: label, Delimiter: GmailDelimiter}
		}
		if !slices.ContainsFunc(placements, func(q Placement) bool { return q.samePlace(p) }) {
			placements = append(placements, p)
		}
	}
	if len(placements) == 0 {
		placements = append(placements, GmailArchive)
	}
	return placements, flags
}

// samePlace: p and q name the same local folder.
func (p Placement) samePlace(q Placement) bool {
	return p.Folder == q.Folder && p.SpecialUse == q.SpecialUse && p.Delimiter == q.Delimiter
}

// Key names the local folder a Gmail placement stands for, as the ledger
// records the copies of a message (ledger.RecordPlaced): "INBOX", a
// SPECIAL-USE attribute (`\Sent`...), or "label:" and a user label.
func (p Placement) Key() string {
	switch {
	case p.SpecialUse != "":
		return p.SpecialUse
	case p.Folder == "":
		return "INBOX"
	}
	return "label:" + p.Folder
}

// GmailPlacementOfKey is the placement Key named, without flags.
func GmailPlacementOfKey(key string) Placement {
	if label, ok := strings.CutPrefix(key, "label:"); ok {
		return Placement{Folder: label, Delimiter: GmailDelimiter}
	}
	if key == GmailArchive.SpecialUse {
		return GmailArchive
	}
	for _, p := range gmailSpecial {
		if p.SpecialUse == key {
			return p
		}
	}
	return Placement{} // INBOX
}
