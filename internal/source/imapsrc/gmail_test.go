package imapsrc

import (
	"context"
	"slices"
	"strings"
	"testing"
)

// On Gmail (X-GM-EXT-1) the listing asks for X-GM-MSGID and gives each
// message Gmail's ID as its GlobalID (the full 64 bits); elsewhere it does
// not ask, and there is none.
func TestListGmailMsgID(t *testing.T) {
	const date = `INTERNALDATE "01-Jan-2024 10:00:00 +0000"`
	for _, c := range []struct {
		name, caps, fetch string
		want              []string
	}{
		{"gmail", "IMAP4rev1 AUTH=PLAIN UIDPLUS X-GM-EXT-1",
			"* 1 FETCH (UID 1 RFC822.SIZE 100 FLAGS (\\Seen) " + date + " X-GM-MSGID 1278455344230334865)\r\n" +
				"* 2 FETCH (X-GM-MSGID 18446744073709551615 UID 2 RFC822.SIZE 200 FLAGS () " + date + ")\r\n",
			[]string{"gm:1278455344230334865", "gm:18446744073709551615"}},
		{"other", "IMAP4rev1 AUTH=PLAIN UIDPLUS",
			"* 1 FETCH (UID 1 RFC822.SIZE 100 FLAGS (\\Seen) " + date + ")\r\n" +
				"* 2 FETCH (UID 2 RFC822.SIZE 200 FLAGS () " + date + ")\r\n",
			[]string{"", ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			sc, addr := serveScripted(t, c.caps, map[string]string{
				"SELECT":     "* 2 EXISTS\r\n* OK [UIDVALIDITY 1] x\r\n* OK [UIDNEXT 3] x\r\n",
				"UID FETCH":  c.fetch,
				"CAPABILITY": "* CAPABILITY " + c.caps + "\r\n",
			})
			_, mb := openInbox(t, testUpstream(addr, nil))
			msgs, err := mb.List(context.Background(), 1)
			if err != nil {
				t.Fatal(err)
			}
			if len(msgs) != 2 {
				t.Fatalf("listed %d messages, want 2", len(msgs))
			}
			for i, m := range msgs {
				if m.GlobalID() != c.want[i] {
					t.Errorf("UID %s: GlobalID %q, want %q", m.UID, m.GlobalID(), c.want[i])
				}
			}
			if asked := strings.Contains(sc.commands(), "X-GM-MSGID"); asked != (c.want[0] != "") {
				t.Errorf("X-GM-MSGID asked for: %v; commands:\n%s", asked, sc.commands())
			}
		})
	}
}

// On Gmail the listing asks for X-GM-LABELS too and gives each message its
// labels as Gmail sends them, with the label of the folder listed (Gmail
// leaves it out there: INBOX's `\Inbox`, once); hostile labels (control
// characters) are left out.
func TestListGmailLabels(t *testing.T) {
	const date = `INTERNALDATE "01-Jan-2024 10:00:00 +0000"`
	caps := "IMAP4rev1 AUTH=PLAIN UIDPLUS X-GM-EXT-1"
	sc, addr := serveScripted(t, caps, map[string]string{
		"SELECT": "* 2 EXISTS\r\n* OK [UIDVALIDITY 1] x\r\n* OK [UIDNEXT 3] x\r\n",
		"UID FETCH": "* 1 FETCH (UID 1 RFC822.SIZE 100 FLAGS () " + date + " X-GM-MSGID 1 X-GM-LABELS (\\Inbox \"\\\\Starred\" Work/Clients {3}\r\na\x01b))\r\n" +
			"* 2 FETCH (UID 2 RFC822.SIZE 200 FLAGS () " + date + " X-GM-MSGID 2 X-GM-LABELS ())\r\n",
		"CAPABILITY": "* CAPABILITY " + caps + "\r\n",
		"LIST":       "* LIST (\\HasNoChildren) \"/\" INBOX\r\n* LIST (\\All) \"/\" \"[Gmail]/All Mail\"\r\n",
	})
	_, mb := openInbox(t, testUpstream(addr, nil))
	msgs, err := mb.List(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("listed %d messages, want 2", len(msgs))
	}
	if want := []string{`\Inbox`, `\Starred`, "Work/Clients"}; !slices.Equal(msgs[0].Labels(), want) {
		t.Errorf("labels %q, want %q", msgs[0].Labels(), want)
	}
	if want := []string{`\Inbox`}; !slices.Equal(msgs[1].Labels(), want) {
		t.Errorf("labels %#v of a message listed in INBOX without labels, want %q", msgs[1].Labels(), want)
	}
	if !strings.Contains(sc.commands(), "X-GM-LABELS") {
		t.Errorf("X-GM-LABELS not asked for; commands:\n%s", sc.commands())
	}
}
