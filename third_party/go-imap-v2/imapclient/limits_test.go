package imapclient

import (
	"io"
	"net"
	"strings"
	"testing"
)

// A literal larger than MaxLiteralSize, or a response longer than
// MaxResponseSize, closes the connection before it is read.
func TestClientLimits(t *testing.T) {
	cases := []struct {
		name    string
		options Options
		head    string
	}{
		{"literal", Options{MaxLiteralSize: 100}, "* LIST () \"/\" {1048576}\r\n"},
		{"response", Options{MaxResponseSize: 100}, "* OK "},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			client, server := net.Pipe()
			defer server.Close()
			c := New(client, &tc.options)
			defer c.Close()
			go io.Copy(io.Discard, server)

			if _, err := io.WriteString(server, "* OK hello\r\n"+tc.head); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitGreeting(); err != nil {
				t.Fatal(err)
			}
			// net.Pipe is unbuffered: once the client has closed, the rest
			// of the response (far more than the client's read buffer)
			// cannot be written.
			_, err := io.WriteString(server, strings.Repeat("x", 1<<20)+"\r\n")
			if err == nil {
				t.Fatal("the client read the whole oversized response")
			}
			<-c.Closed()
		})
	}
}
