package imapsrc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

func TestLiteralSize(t *testing.T) {
	for tail, want := range map[string]int64{
		"* 1 FETCH (BODY[] {123}\r": 123, "x {0}\r": 0, "x {77+}": 77, `"a {5}"`: -1, "{}": -1, "x}": -1,
		"* OK [ALERT] {12 }": -1, "{12345678901234567890}": -1,
	} {
		n, ok := literalSize([]byte(tail))
		if (want < 0) == ok || (ok && n != want) {
			t.Errorf("%q: %d %v, want %d", tail, n, ok, want)
		}
	}
}

// The framing is followed across reads of any size: a literal's content
// is skipped, not mistaken for lines.
func TestGuardFraming(t *testing.T) {
	var bodies atomic.Bool
	stream := "* 1 FETCH (UID 1 BODY[] {12}\r\nline {99999999}\r\n)\r\nA1 OK done\r\n"
	for chunk := 1; chunk <= len(stream); chunk++ {
		g := newGuardedConn(nil, &bodies)
		for i := 0; i < len(stream); i += chunk {
			if err := g.scan([]byte(stream[i:min(i+chunk, len(stream))])); err != nil {
				t.Fatalf("chunk %d: %v", chunk, err)
			}
		}
	}
	g := newGuardedConn(nil, &bodies)
	if err := g.scan([]byte(strings.Repeat("x", maxLine+1))); !errors.Is(err, errOversized) {
		t.Fatalf("long line: %v", err)
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
	if n, err := fetchOnce(t, addr, func() error { return nil }); err != nil || n != big {
		t.Fatalf("a body of %d bytes: %d, %v", big, n, err)
	}
}
