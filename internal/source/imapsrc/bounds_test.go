package imapsrc

import (
	"context"
	"fmt"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"

	"github.com/remote-pull/remote_pull/internal/source"
	"github.com/remote-pull/remote_pull/internal/testlib"
)

// What a hostile server may make the client hold. Each test's server
// offers far more than the bound and counts what it could write: a client
// that refuses at the announcement closes the connection, and the server's
// writes stop once the socket buffers are full.

// hugeLiteral is what a hostile server announces; refusedWithin is more
// than loopback socket buffers hold, far less than hugeLiteral.
const (
	hugeLiteral   = 64 << 20
	refusedWithin = 16 << 20
)

// filler writes n bytes, stopping when the client goes away, and returns
// how many were written.
func filler(c net.Conn, n int) int {
	chunk := []byte(strings.Repeat("x", 64<<10))
	written := 0
	for written < n {
		w, err := c.Write(chunk[:min(len(chunk), n-written)])
		written += w
		if err != nil {
			break
		}
	}
	return written
}

// bodyFetchWith answers the body FETCH with head, a hugeLiteral-byte
// literal, tail, and a message body; it reports what it wrote to sent.
func bodyFetchWith(head, tail string, sent chan<- int) func(net.Conn, string) bool {
	return func(c net.Conn, tag string) bool {
		fmt.Fprintf(c, "%s{%d}\r\n", head, hugeLiteral)
		n := filler(c, hugeLiteral)
		fmt.Fprintf(c, "%s* 1 FETCH (UID 5 BODY[] {12}\r\nSubject: x\r\n)\r\n%s OK done\r\n", tail, tag)
		sent <- n
		return true
	}
}

// Only the BODY[] literal may be of any size: a literal elsewhere in the
// body FETCH's responses (an ENVELOPE field, an untagged LIST, a section
// not asked for) is refused when announced, not read into memory, and
// nothing is delivered.
func TestBodyFetchBoundsOtherLiterals(t *testing.T) {
	cases := []struct{ name, head, tail string }{
		{"envelope", "* 1 FETCH (UID 5 ENVELOPE (", " NIL NIL NIL NIL NIL NIL NIL NIL NIL))\r\n"},
		{"untagged LIST", `* LIST () "/" `, "\r\n"},
		{"BODY[HEADER]", "* 1 FETCH (UID 5 BODY[HEADER] ", ")\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sent := make(chan int, 1)
			addr, _ := fetchServer(t, false, bodyFetchWith(tc.head, tc.tail, sent))
			_, mb := openInbox(t, testUpstream(addr, nil))
			_, _, delivered, err := fetchCount(mb, []string{"5"}, nil)
			if err == nil || len(delivered) != 0 {
				t.Fatalf("Fetch: delivered %v, err %v: want an error and nothing delivered", delivered, err)
			}
			if n := <-sent; n > refusedWithin {
				t.Fatalf("the client read %d bytes of a %d-byte literal before refusing it (%v)", n, hugeLiteral, err)
			}
		})
	}
}

// A section the client did not ask for is never taken for the message:
// only BODY[] is spooled and delivered.
func TestOnlyBodyIsDelivered(t *testing.T) {
	const body = "Subject: the message\r\n\r\nbody\r\n"
	addr, _ := fetchServer(t, false, func(c net.Conn, tag string) bool {
		fmt.Fprintf(c, "* 1 FETCH (UID 5 BODY[HEADER] {9}\r\nX: head\r\n BODY[] {%d}\r\n%s)\r\n%s OK done\r\n", len(body), body, tag)
		return true
	})
	_, mb := openInbox(t, testUpstream(addr, nil))
	var got string
	err := mb.Fetch(context.Background(), []string{"5"},
		func(r io.Reader) (source.Spooled, error) {
			b, err := io.ReadAll(r)
			return spooledBytes(b), err
		},
		func(uid string, sp source.Spooled) error { got = string(sp.(spooledBytes)); return nil })
	if err != nil || got != body {
		t.Fatalf("Fetch: %q, %v: want BODY[] %q", got, err, body)
	}
}

// A hostile server's oversized literal where no message body is expected
// (a header section fetched into memory) ends the session instead of
// filling memory; a message body of the same size streams as usual.
func TestOversizedLiteralRefused(t *testing.T) {
	const big = maxLiteral + 1
	addr, _ := fetchServer(t, false, func(c net.Conn, tag string) bool {
		fmt.Fprintf(c, "* 1 FETCH (UID 5 RFC822.SIZE 10 BODY[HEADER.FIELDS (MESSAGE-ID DATE FROM SUBJECT)] {%d}\r\n", big)
		c.Write([]byte(strings.Repeat("a", big)))
		fmt.Fprintf(c, ")\r\n%s OK done\r\n", tag)
		return true
	})
	_, mb := openInbox(t, testUpstream(addr, nil))
	ctx := context.Background()
	if _, err := mb.Fingerprints(ctx, []string{"5"}); err == nil || !strings.Contains(err.Error(), "oversized") {
		t.Fatalf("Fingerprints: %v, want the oversized-response error", err)
	}

	addr, _ = fetchServer(t, false, dripFetch(big, 1<<20, 0, 0))
	_, mb = openInbox(t, testUpstream(addr, nil))
	if n, _, _, err := fetchCount(mb, []string{"5"}, nil); err != nil || n != big {
		t.Fatalf("a body of %d bytes: %d, %v", big, n, err)
	}
}

// A response line longer than maxLine ends the session, whatever the
// command: the client does not hold it.
func TestLongLineRefused(t *testing.T) {
	sent := make(chan int, 1)
	addr, _ := fetchServer(t, false, func(c net.Conn, tag string) bool {
		io.WriteString(c, "* 1 FETCH (UID 5 FLAGS (")
		sent <- filler(c, hugeLiteral)
		return false
	})
	_, mb := openInbox(t, testUpstream(addr, nil))
	if msgs, err := mb.List(context.Background(), 1); err == nil {
		t.Fatalf("List: %+v, want an error", msgs)
	}
	if n := <-sent; n > refusedWithin {
		t.Fatalf("the client read %d bytes of one line before refusing it", n)
	}
}

// listServer answers the listing's UID FETCH with the responses resp
// writes, on a mailbox of exists messages.
func listServer(t *testing.T, exists int, resp func(c net.Conn)) string {
	addr, _ := scriptedServer(t, false, exists, func(c net.Conn, tag, cmd string) bool {
		resp(c)
		fmt.Fprintf(c, "%s OK done\r\n", tag)
		return true
	})
	return addr
}

// A listing holds no more messages than the folder says it has: FETCH
// responses beyond EXISTS are a hostile server's, refused.
func TestListingBoundedByExists(t *testing.T) {
	addr := listServer(t, 1, func(c net.Conn) {
		for uid := 1; uid <= 20000; uid++ {
			if _, err := fmt.Fprintf(c, "* %d FETCH (UID %d RFC822.SIZE 10 FLAGS (\\Seen $a $b $c))\r\n", 1, uid); err != nil {
				return
			}
		}
	})
	_, mb := openInbox(t, testUpstream(addr, nil))
	msgs, err := mb.List(context.Background(), 1)
	if err == nil || !strings.Contains(err.Error(), "EXISTS") {
		t.Fatalf("List: %d messages, err %v: want the FETCH-beyond-EXISTS error", len(msgs), err)
	}
}

// The flags kept per message are bounded in number and length.
func TestListingFlagsBounded(t *testing.T) {
	many := strings.TrimSpace(strings.Repeat("$k ", maxFlags+1))
	long := "$" + strings.Repeat("k", maxFlagLen)
	for name, flags := range map[string]string{"many": many, "long": long} {
		t.Run(name, func(t *testing.T) {
			addr := listServer(t, 1, func(c net.Conn) {
				fmt.Fprintf(c, "* 1 FETCH (UID 5 RFC822.SIZE 10 FLAGS (%s))\r\n", flags)
			})
			_, mb := openInbox(t, testUpstream(addr, nil))
			msgs, err := mb.List(context.Background(), 1)
			if err == nil || !strings.Contains(err.Error(), "flag") {
				t.Fatalf("List: %+v, err %v: want the flags error", msgs, err)
			}
		})
	}
	// At the bounds, the listing goes through.
	ok := strings.TrimSpace(strings.Repeat("$"+strings.Repeat("k", maxFlagLen-1)+" ", maxFlags))
	addr := listServer(t, 1, func(c net.Conn) {
		fmt.Fprintf(c, "* 1 FETCH (UID 5 RFC822.SIZE 10 FLAGS (%s))\r\n", ok)
	})
	_, mb := openInbox(t, testUpstream(addr, nil))
	if msgs, err := mb.List(context.Background(), 1); err != nil || len(msgs) != 1 || len(msgs[0].Flags) != maxFlags {
		t.Fatalf("List at the bounds: %d messages, %v", len(msgs), err)
	}
}

// LIST is bounded in the number of folders and the length of a name.
func TestFolderListBounded(t *testing.T) {
	cases := map[string]func(c net.Conn){
		"count": func(c net.Conn) {
			for i := 0; i <= maxFolders; i++ {
				fmt.Fprintf(c, "* LIST () \"/\" f%d\r\n", i)
			}
		},
		"name": func(c net.Conn) {
			fmt.Fprintf(c, "* LIST () \"/\" {%d}\r\n%s\r\n", maxFolderName+1, strings.Repeat("n", maxFolderName+1))
		},
	}
	for name, resp := range cases {
		t.Run(name, func(t *testing.T) {
			addr, _ := scriptedServer(t, false, 1, func(c net.Conn, tag, cmd string) bool {
				if strings.HasPrefix(cmd, "LIST") {
					resp(c)
				}
				fmt.Fprintf(c, "%s OK done\r\n", tag)
				return true
			})
			s, _ := openInbox(t, testUpstream(addr, nil))
			folders, err := s.(*Session).Folders(context.Background())
			if err == nil || !strings.Contains(err.Error(), "oversized") {
				t.Fatalf("Folders: %d, err %v: want the oversized error", len(folders), err)
			}
		})
	}
}

// The documentation states the limits (docs/reference.md, "What an
// upstream can make remote_pull hold").
func TestDocumentedBounds(t *testing.T) {
	for re, want := range map[string]int{
		`literals? (?:other than a message body )?of up to (\d+) MiB`: maxLiteral >> 20,
		`response lines? of up to (\d+) MiB`:                          maxLine >> 20,
		`up to (\d+) flags per message`:                               maxFlags,
		`flags? of up to (\d+) bytes`:                                 maxFlagLen,
		`up to (\d+),?(\d*) folders`:                                  maxFolders,
		`folder names? of up to (\d+),?(\d*) bytes`:                   maxFolderName,
	} {
		testlib.CheckDocumented(t, "../../..", regexp.MustCompile(re), want)
	}
}
