package imapsrc

import (
	"errors"
	"fmt"
	"math"
	"net"
	"sync/atomic"
)

// Limits on what the server may make the client hold in memory. go-imap
// reads every string that is not a message body (mailbox names, envelope
// fields, header sections fetched into memory) whole, however large the
// server announces it; message bodies stream to the spool and are not
// limited here.
const (
	maxLiteral = 4 << 20 // a literal that is not a message body
	maxLine    = 1 << 20 // a response line, literals excluded
)

// errOversized: the server sent more than a client should ever hold.
var errOversized = errors.New("the server sent an oversized response")

// guardedConn reads the server's responses as IMAP frames them (lines
// ending in CRLF, a line ending in {N} or {N+} announcing N octets) and
// fails the connection when a line or a literal exceeds the limits. While
// bodies is set (a body FETCH), literals may be of any size.
type guardedConn struct {
	net.Conn
	bodies *atomic.Bool

	literal int64 // octets of the current literal still to come
	line    int   // length of the current line so far
	tail    []byte
	err     error
}

func newGuardedConn(c net.Conn, bodies *atomic.Bool) *guardedConn {
	return &guardedConn{Conn: c, bodies: bodies, tail: make([]byte, 0, 32)}
}

func (g *guardedConn) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.Conn.Read(p)
	if cerr := g.scan(p[:n]); cerr != nil {
		g.err = cerr
		g.Conn.Close()
		return 0, cerr
	}
	return n, err
}

func (g *guardedConn) scan(b []byte) error {
	for len(b) > 0 {
		if g.literal > 0 {
			skip := int64(len(b))
			if skip > g.literal {
				skip = g.literal
			}
			g.literal -= skip
			b = b[skip:]
			continue
		}
		c := b[0]
		b = b[1:]
		if c != '\n' {
			if g.line++; g.line > maxLine {
				return fmt.Errorf("%w: a line of more than %d bytes", errOversized, maxLine)
			}
			if len(g.tail) == cap(g.tail) {
				copy(g.tail, g.tail[1:])
				g.tail = g.tail[:len(g.tail)-1]
			}
			g.tail = append(g.tail, c)
			continue
		}
		size, ok := literalSize(g.tail)
		g.line, g.tail = 0, g.tail[:0]
		if !ok {
			continue
		}
		limit := int64(maxLiteral)
		if g.bodies.Load() {
			limit = math.MaxInt64
		}
		if size > limit {
			return fmt.Errorf("%w: a literal of %d bytes where at most %d are expected", errOversized, size, limit)
		}
		g.literal = size
	}
	return nil
}

// literalSize reads "{N}\r" or "{N+}\r" at the end of a line.
func literalSize(tail []byte) (int64, bool) {
	t := tail
	if len(t) > 0 && t[len(t)-1] == '\r' {
		t = t[:len(t)-1]
	}
	if len(t) < 3 || t[len(t)-1] != '}' {
		return 0, false
	}
	t = t[:len(t)-1]
	if t[len(t)-1] == '+' {
		t = t[:len(t)-1]
	}
	var n int64
	i := len(t) - 1
	for ; i >= 0 && t[i] >= '0' && t[i] <= '9'; i-- {
	}
	if i < 0 || t[i] != '{' || i == len(t)-1 || len(t)-1-i > 18 {
		return 0, false
	}
	for _, d := range t[i+1:] {
		n = n*10 + int64(d-'0')
	}
	return n, true
}
