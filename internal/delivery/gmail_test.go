package delivery

import (
	"reflect"
	"testing"
)

func TestGmailPlacements(t *testing.T) {
	inbox := Placement{}
	work := Placement{Folder: "Work/Clients", Delimiter: "/"}
	for _, c := range []struct {
		name   string
		labels []string
		want   []Placement
		flags  []string
	}{
		{"inbox", []string{`\Inbox`}, []Placement{inbox}, nil},
		{"archived", nil, []Placement{GmailArchive}, nil},
		{"starred and important only: archived", []string{`\Starred`, `\Important`}, []Placement{GmailArchive}, []string{`\Flagged`}},
		{"system folders", []string{`\Sent`, `\Draft`, `\Spam`, `\Trash`}, []Placement{
			{SpecialUse: `\Sent`, Folder: "Sent"}, {SpecialUse: `\Drafts`, Folder: "Drafts"},
			{SpecialUse: `\Junk`, Folder: "Junk"}, {SpecialUse: `\Trash`, Folder: "Trash"}}, nil},
		{"user labels, case of system labels, repeats", []string{`\inbox`, "Work/Clients", `\INBOX`, "Work/Clients", `\Starred`, `\starred`},
			[]Placement{inbox, work}, []string{`\Flagged`}},
		{"unknown system label", []string{`\Muted`, "Family"}, []Placement{{Folder: "Family", Delimiter: "/"}}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, flags := GmailPlacements(c.labels)
			if !reflect.DeepEqual(got, c.want) || !reflect.DeepEqual(flags, c.flags) {
				t.Errorf("GmailPlacements(%q) = %+v, %q; want %+v, %q", c.labels, got, flags, c.want, c.flags)
			}
		})
	}
}
