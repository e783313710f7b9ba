package provider

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"
)

const (
	maxLine    = 64 << 10
	maxLiteral = 64 << 20
)

// conn is one client connection.
type conn struct {
	s  *Server
	nc net.Conn
	r  *bufio.Reader
	w  *bufio.Writer

	authed       bool
	notConnected bool // Microsoft over its connection cap (see login)
	sel          *view
	readOnly     bool
	known        []uint32 // UIDs the client knows, in sequence order
}

// tok is a parsed argument: an atom, a string (quoted or literal) or a
// parenthesised list.
type tok struct {
	kind byte // 'a', 's', 'l'
	s    string
	list []tok
}

func (t tok) upper() string { return strings.ToUpper(t.s) }

func (c *conn) run() {
	defer func() {
		c.nc.Close()
		c.ended()
	}()
	if c.s.cfg.Kind == Microsoft {
		c.reply("* OK The Microsoft Exchange IMAP4 service is ready.")
	} else {
		c.reply("* OK Gimap ready for requests from 127.0.0.1 (provider double)")
	}
	for {
		if c.flush() != nil {
			return
		}
		c.nc.SetReadDeadline(time.Now().Add(c.s.cfg.IdleTimeout))
		line, lits, err := c.readCommand()
		if err != nil {
			return
		}
		if !c.handle(line, lits) {
			c.hangUp()
			return
		}
	}
}

// hangUp ends the connection after the last reply: the write side is
// closed first and what the client still sends is read, so that the
// close is no reset that would discard the reply before the client read
// it.
func (c *conn) hangUp() {
	if c.flush() != nil {
		return
	}
	c.ended()
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		c.nc.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, c.r)
	}
}

// ended stops counting the connection: the session is over once the
// server hangs up (a real server's ends then, whether or not the client
// has closed its side yet), or when the connection is gone.
func (c *conn) ended() {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	if c.s.conns[c] {
		delete(c.s.conns, c)
		if c.authed {
			c.s.authed--
		}
	}
}

func (c *conn) reply(format string, args ...any) {
	fmt.Fprintf(c.w, format, args...)
	c.w.WriteString("\r\n")
}

func (c *conn) flush() error { return c.w.Flush() }

// readLine reads one CRLF-terminated line, bounded.
func (c *conn) readLine() (string, error) {
	var b []byte
	for {
		part, isPrefix, err := c.r.ReadLine()
		if err != nil {
			return "", err
		}
		b = append(b, part...)
		if len(b) > maxLine {
			return "", fmt.Errorf("line too long")
		}
		if !isPrefix {
			return string(b), nil
		}
	}
}

// readCommand reads a command with its literals ({n} and {n+}); each
// literal stands as a NUL in the line and its bytes are in lits.
func (c *conn) readCommand() (string, [][]byte, error) {
	var line strings.Builder
	var lits [][]byte
	for {
		l, err := c.readLine()
		if err != nil {
			return "", nil, err
		}
		n, sync, ok := literalAtEnd(l)
		if !ok {
			line.WriteString(l)
			return line.String(), lits, nil
		}
		line.WriteString(l[:strings.LastIndexByte(l, '{')])
		line.WriteByte(0)
		if sync {
			c.reply("+ Ready for additional command text.")
			if err := c.flush(); err != nil {
				return "", nil, err
			}
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(c.r, b); err != nil {
			return "", nil, err
		}
		lits = append(lits, b)
	}
}

// literalAtEnd parses a trailing {n} or {n+}.
func literalAtEnd(l string) (n int, sync, ok bool) {
	if !strings.HasSuffix(l, "}") {
		return 0, false, false
	}
	i := strings.LastIndexByte(l, '{')
	if i < 0 {
		return 0, false, false
	}
	num := l[i+1 : len(l)-1]
	sync = !strings.HasSuffix(num, "+")
	n, err := strconv.Atoi(strings.TrimSuffix(num, "+"))
	if err != nil || n < 0 || n > maxLiteral {
		return 0, false, false
	}
	return n, sync, true
}

// parser reads the arguments of a command.
type parser struct {
	s    string
	pos  int
	lits [][]byte
	err  error
}

func (p *parser) fail(format string, args ...any) {
	if p.err == nil {
		p.err = fmt.Errorf(format, args...)
	}
}

// next returns the next argument, ok false at the end of the line or a
// closing parenthesis.
func (p *parser) next() (tok, bool) {
	for p.pos < len(p.s) && p.s[p.pos] == ' ' {
		p.pos++
	}
	if p.pos >= len(p.s) || p.err != nil {
		return tok{}, false
	}
	switch ch := p.s[p.pos]; ch {
	case ')':
		return tok{}, false
	case '(':
		p.pos++
		var l []tok
		for {
			t, ok := p.next()
			if !ok {
				break
			}
			l = append(l, t)
		}
		if p.pos >= len(p.s) || p.s[p.pos] != ')' {
			p.fail("unbalanced parenthesis")
			return tok{}, false
		}
		p.pos++
		return tok{kind: 'l', list: l}, true
	case 0:
		p.pos++
		if len(p.lits) == 0 {
			p.fail("literal missing")
			return tok{}, false
		}
		t := tok{kind: 's', s: string(p.lits[0])}
		p.lits = p.lits[1:]
		return t, true
	case '"':
		var b strings.Builder
		for p.pos++; p.pos < len(p.s); p.pos++ {
			switch p.s[p.pos] {
			case '\\':
				p.pos++
				if p.pos < len(p.s) {
					b.WriteByte(p.s[p.pos])
				}
			case '"':
				p.pos++
				return tok{kind: 's', s: b.String()}, true
			default:
				b.WriteByte(p.s[p.pos])
			}
		}
		p.fail("unterminated quoted string")
		return tok{}, false
	default:
		// An atom; a bracketed part (BODY[HEADER.FIELDS (A B)]) may hold
		// spaces and parentheses.
		start, depth := p.pos, 0
		for ; p.pos < len(p.s); p.pos++ {
			c := p.s[p.pos]
			if c == '[' {
				depth++
			} else if c == ']' && depth > 0 {
				depth--
			} else if depth == 0 && (c == ' ' || c == '(' || c == ')') {
				break
			}
		}
		return tok{kind: 'a', s: p.s[start:p.pos]}, true
	}
}

// rest returns the remaining arguments.
func (p *parser) rest() []tok {
	var out []tok
	for {
		t, ok := p.next()
		if !ok {
			return out
		}
		out = append(out, t)
	}
}

// handle runs one command; false closes the connection.
func (c *conn) handle(line string, lits [][]byte) bool {
	p := &parser{s: line, lits: lits}
	tagTok, ok := p.next()
	if !ok || tagTok.kind != 'a' {
		c.reply("* BAD Invalid tag")
		return true
	}
	tag := tagTok.s
	nameTok, _ := p.next()
	name := nameTok.upper()
	uid := false
	if name == "UID" {
		uid = true
		t, _ := p.next()
		name = t.upper()
	}
	args := p.rest()
	if p.err != nil {
		c.reply("%s BAD Could not parse command: %v", tag, p.err)
		return true
	}

	s := c.s
	s.mu.Lock()
	s.log = append(s.log, logLine(line, name))
	now := s.cfg.Now()
	// Microsoft throttles the next command of any connection, then
	// disconnects (imapsync FAQ.Office365; imapsync#272).
	if s.cfg.Kind == Microsoft && now.Before(s.throttleTo) {
		ms := s.throttleTo.Sub(now).Milliseconds()
		s.mu.Unlock()
		c.reply("%s NO Request is throttled. Suggested Backoff Time: %d milliseconds", tag, ms)
		return false
	}
	// Gmail suspends IMAP for the account once the download budget is
	// spent (support.google.com/a/answer/1071518). LOGOUT still ends the
	// session cleanly.
	if s.cfg.Kind == Gmail && name != "LOGOUT" && s.overQuota() {
		s.overQuotas++
		s.mu.Unlock()
		c.reply("%s NO [OVERQUOTA] Account exceeded command or bandwidth limits. (Failure)", tag)
		return true
	}
	s.mu.Unlock()
	if c.notConnected && name != "LOGOUT" && name != "CAPABILITY" {
		// What Exchange Online answers a connection past its limit
		// (node-imap#523, node-imap#689).
		c.reply("%s BAD User is authenticated but not connected.", tag)
		return true
	}
	return c.dispatch(tag, name, uid, args)
}

// logLine is the command as logged: no tag, credentials and literals
// elided.
func logLine(line, name string) string {
	line = strings.ReplaceAll(line, "\x00", "{literal}")
	if i := strings.IndexByte(line, ' '); i >= 0 {
		line = line[i+1:]
	}
	switch name {
	case "LOGIN":
		f := strings.Fields(line)
		if len(f) > 2 {
			return strings.Join(f[:2], " ") + " ***"
		}
	case "AUTHENTICATE":
		f := strings.Fields(line)
		if len(f) > 2 {
			return strings.Join(f[:2], " ") + " ***"
		}
	}
	return line
}
