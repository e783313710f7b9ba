package imapclient

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// A server that answers the client's own CAPABILITY with NO: Caps returns
// nil and CapsErr the server's reply, so that the caller can act on its
// reason rather than take the server for one without capabilities.
func TestCapsErr(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	c := New(client, nil)
	defer c.Close()
	go func() {
		io.WriteString(server, "* OK hello\r\n")
		br := bufio.NewReader(server)
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		tag, _, _ := strings.Cut(line, " ")
		io.WriteString(server, tag+" NO Request is throttled. Suggested Backoff Time: 1000 milliseconds\r\n")
		io.Copy(io.Discard, br)
	}()
	if caps := c.Caps(); caps != nil {
		t.Fatalf("Caps() = %v, want nil", caps)
	}
	var imapErr *imap.Error
	if err := c.CapsErr(); !errors.As(err, &imapErr) || !strings.Contains(imapErr.Text, "Suggested Backoff Time") {
		t.Fatalf("CapsErr() = %v, want the server's NO", err)
	}
}
