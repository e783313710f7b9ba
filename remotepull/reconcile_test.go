package remotepull

import (
	"strings"
	"testing"
)

func TestAddTraceIDs(t *testing.T) {
	header := "Received: from imap.example.net by mx.example.org (maddy\r\n" +
		" remote_pull) with IMAP id <acct/INBOX/7/12> for <a@example.org>;\r\n" +
		" Sun, 06 Dec 2026 02:00:00 +0000\r\n" +
		"Received: from imap.example.net by mx.example.org (maddy remote_pull) with IMAP id <other/INBOX/7/13>; Sun, 06 Dec 2026 02:00:00 +0000\r\n" +
		"Received: from evil by x with SMTP id <acct/INBOX/7/14>; Sun, 06 Dec 2026 02:00:00 +0000\r\n" +
		"Received: from imap.example.net by mx.example.org (maddy remote_pull) with POP3 id <acct/INBOX/0/UIDL%20x>; Sun, 06 Dec 2026 02:00:00 +0000\r\n" +
		"\r\n"
	ids := map[string]bool{}
	addTraceIDs(strings.NewReader(header), "acct/", ids)
	// Folded fields are unfolded; another account's ids and a field
	// remote_pull did not write are not taken.
	if len(ids) != 2 || !ids["acct/INBOX/7/12"] || !ids["acct/INBOX/0/UIDL%20x"] {
		t.Fatalf("ids = %v", ids)
	}
}
