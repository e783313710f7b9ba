package imapclient

import (
	"io"
	"net"
	"reflect"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// FETCH X-GM-LABELS: system labels as atoms or quoted strings, user
// labels as astrings and literals in modified UTF-7 (kept as sent when
// that does not decode), and an empty list.
func TestFetchGmailLabels(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	c := New(client, nil)
	defer c.Close()

	go func() {
		io.WriteString(server, "* OK hello\r\n")
		buf := make([]byte, 4096)
		n, _ := server.Read(buf)
		tag := strings.Fields(string(buf[:n]))[0]
		io.WriteString(server, `* 1 FETCH (UID 7 X-GM-LABELS (\Inbox "\\Important" Work/Clients "Caf&AOk-" {5}`+"\r\n"+`a "b) &-x &bad))`+"\r\n"+
			"* 2 FETCH (X-GM-LABELS () UID 8)\r\n"+
			tag+" OK done\r\n")
		io.Copy(io.Discard, server)
	}()
	if err := c.WaitGreeting(); err != nil {
		t.Fatal(err)
	}
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2), &imap.FetchOptions{UID: true, GmailLabels: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want 2", len(msgs))
	}
	want := []string{`\Inbox`, `\Important`, "Work/Clients", "Café", `a "b)`, "&x", "&bad"}
	if !reflect.DeepEqual(msgs[0].GmailLabels, want) {
		t.Errorf("labels %q, want %q", msgs[0].GmailLabels, want)
	}
	if msgs[1].GmailLabels == nil || len(msgs[1].GmailLabels) != 0 || msgs[1].UID != 8 {
		t.Errorf("second message: labels %q (nil: %v), UID %d; want none, not nil, UID 8", msgs[1].GmailLabels, msgs[1].GmailLabels == nil, msgs[1].UID)
	}
}
