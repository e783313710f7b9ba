package delivery

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-message/textproto"
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

// Key and GmailPlacementOfKey go both ways for every Gmail placement.
func TestGmailPlacementKeys(t *testing.T) {
	places, _ := GmailPlacements([]string{`\Inbox`, `\Sent`, `\Draft`, `\Spam`, `\Trash`, "Work/Clients", "label:x"})
	places = append(places, GmailArchive)
	seen := map[string]bool{}
	for _, p := range places {
		k := p.Key()
		if seen[k] {
			t.Errorf("two placements with key %q", k)
		}
		seen[k] = true
		if back := GmailPlacementOfKey(k); !reflect.DeepEqual(back, p) {
			t.Errorf("GmailPlacementOfKey(%q) = %+v, want %+v", k, back, p)
		}
	}
}

func TestReceivedDate(t *testing.T) {
	for _, c := range []struct {
		fields []string // topmost first
		want   string
	}{
		{[]string{"from a by b; Tue, 1 Mar 2011 10:00:00 +0100", "from c by a; Mon, 28 Feb 2011 09:00:00 +0000"}, "2011-03-01T10:00:00+01:00"},
		{[]string{"from a by b; Tue, 1 Mar 2011 10:00:00 +0100 (CET)"}, "2011-03-01T10:00:00+01:00"},
		{[]string{"from a by b"}, ""},
		{[]string{"from a by b; yesterday"}, ""},
		{nil, ""},
	} {
		var raw strings.Builder
		for _, f := range c.fields {
			raw.WriteString("Received: " + f + "\r\n")
		}
		raw.WriteString("Subject: x\r\n\r\n")
		h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(raw.String())))
		if err != nil {
			t.Fatal(err)
		}
		got := ReceivedDate(h)
		if (c.want == "" && !got.IsZero()) || (c.want != "" && got.Format(time.RFC3339) != c.want) {
			t.Errorf("ReceivedDate(%q) = %v, want %q", c.fields, got, c.want)
		}
	}
}
