package pop3

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

var (
	// ErrNoCapa is returned (wrapping the server's *Error) by Client.Capa
	// when the server answers -ERR to CAPA, as pre-RFC 2449 servers do.
	ErrNoCapa = errors.New("pop3: server does not support CAPA")

	// ErrProtocol is wrapped by errors about replies that break the
	// protocol; the wrapping error says what was wrong.
	ErrProtocol = errors.New("pop3: protocol error")
)

// Limits against hostile or broken servers; generous for real ones.
const (
	// maxLine caps one status or listing line (RFC 2449 allows 512
	// octets for responses; some servers send more in greetings).
	maxLine = 64 << 10
	// maxEntries and maxListingBytes cap a LIST or UIDL listing, which is
	// kept whole, so a server streaming an endless listing cannot exhaust
	// memory. 16 MiB is half a million UIDLs of Dovecot's form.
	maxEntries      = 1 << 20
	maxListingBytes = 16 << 20
	// maxCapaLines and maxCapaLine cap a CAPA reply, which is kept whole:
	// RFC 2449 lines are at most 512 octets, and servers list a dozen.
	maxCapaLines = 256
	maxCapaLine  = 1 << 10
	// maxUIDLen caps a unique-id. RFC 1939 says 1 to 70 octets; some
	// servers exceed that, so allow some slack.
	maxUIDLen = 255
)

// Error is a -ERR reply from the server.
type Error struct {
	// Code is the RFC 2449 extended response code without brackets,
	// upper-cased ("IN-USE", "LOGIN-DELAY", "SYS/TEMP", "SYS/PERM",
	// "AUTH", ...), or "" if the reply had none.
	Code string
	// Text is the human-readable rest of the reply.
	Text string
}

// Error implements error.
func (e *Error) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("pop3: -ERR [%s] %s", e.Code, e.Text)
	}
	return "pop3: -ERR " + e.Text
}

// Temporary reports whether the server said the failure is transient
// (IN-USE, LOGIN-DELAY, SYS/TEMP or a sub-code of those), so that retrying
// later may succeed.
func (e *Error) Temporary() bool {
	for _, c := range []string{"IN-USE", "LOGIN-DELAY", "SYS/TEMP"} {
		// Response codes are hierarchical (RFC 2449 section 8).
		if e.Code == c || strings.HasPrefix(e.Code, c+"/") {
			return true
		}
	}
	return false
}

// Kinds of status lines.
const (
	replyOK   = iota // +OK
	replyErr         // -ERR
	replyCont        // "+ " SASL continuation (RFC 5034)
)

// parseStatus splits a status line (without its line ending). The status
// indicators are matched case-insensitively for leniency.
func parseStatus(line string) (kind int, text string, ok bool) {
	switch {
	case hasPrefixFold(line, "+OK"):
		return replyOK, trimLeft(line[3:]), true
	case hasPrefixFold(line, "-ERR"):
		return replyErr, trimLeft(line[4:]), true
	case line == "+":
		return replyCont, "", true
	case strings.HasPrefix(line, "+ "):
		return replyCont, line[2:], true
	}
	return 0, "", false
}

// parseErr turns the text after -ERR into an *Error, extracting a leading
// "[CODE]" (RFC 2449 section 8).
func parseErr(text string) *Error {
	if strings.HasPrefix(text, "[") {
		if i := strings.IndexByte(text, ']'); i > 1 && validCode(text[1:i]) {
			return &Error{Code: strings.ToUpper(text[1:i]), Text: trimLeft(text[i+1:])}
		}
	}
	return &Error{Text: text}
}

func validCode(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f || s[i] == '[' {
			return false
		}
	}
	return true
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

func trimLeft(s string) string {
	return strings.TrimLeft(s, " \t")
}

// fields splits on runs of spaces and tabs only: unlike strings.Fields it
// never treats non-ASCII bytes as separators, so UIDs stay byte-exact.
func fields(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' })
}

// parseNum parses a decimal number of digits only (no sign, no spaces).
func parseNum(s string) (int64, bool) {
	if s == "" || len(s) > 18 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// parseMsgNum parses a message number, which RFC 1939 makes 1-based.
func parseMsgNum(s string) (int, bool) {
	n, ok := parseNum(s)
	if !ok || n < 1 || n > 1<<31-1 {
		return 0, false
	}
	return int(n), true
}

// protoErr builds an ErrProtocol error quoting (a bounded prefix of) the
// offending text.
func protoErr(what, text string) error {
	if len(text) > 80 {
		text = text[:80] + "..."
	}
	return fmt.Errorf("%w: %s: %q", ErrProtocol, what, text)
}

var errLineTooLong = fmt.Errorf("%w: line too long", ErrProtocol)

// readLine reads one line of at most max bytes and strips its line ending
// (CRLF or bare LF). It returns io.EOF only if the input ends before any
// byte of the line, io.ErrUnexpectedEOF if it ends inside the line.
func readLine(br *bufio.Reader, max int) (string, error) {
	var buf []byte
	for {
		frag, err := br.ReadSlice('\n')
		if len(buf)+len(frag) > max+2 {
			return "", errLineTooLong
		}
		switch err {
		case nil:
			if buf == nil {
				return string(trimEOL(frag)), nil
			}
			buf = append(buf, frag...)
			return string(trimEOL(buf)), nil
		case bufio.ErrBufferFull:
			buf = append(buf, frag...)
		case io.EOF:
			if len(buf)+len(frag) == 0 {
				return "", io.EOF
			}
			return "", io.ErrUnexpectedEOF
		default:
			return "", err
		}
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// parseScan parses a LIST scan listing line: "num size [more]". RFC 1939
// allows extra information after the size, which is ignored.
func parseScan(line string) (MessageInfo, error) {
	f := fields(line)
	if len(f) < 2 {
		return MessageInfo{}, protoErr("bad LIST line", line)
	}
	num, ok1 := parseMsgNum(f[0])
	size, ok2 := parseNum(f[1])
	if !ok1 || !ok2 {
		return MessageInfo{}, protoErr("bad LIST line", line)
	}
	return MessageInfo{Num: num, Size: size}, nil
}

// parseUID parses a UIDL listing line: "num uid". The UID must be printable
// without spaces or control characters (RFC 1939: 0x21 to 0x7E; octets above
// 0x7E are tolerated).
func parseUID(line string) (MessageUID, error) {
	f := fields(line)
	if len(f) < 2 {
		return MessageUID{}, protoErr("bad UIDL line", line)
	}
	num, ok := parseMsgNum(f[0])
	uid := f[1]
	if !ok || len(uid) > maxUIDLen {
		return MessageUID{}, protoErr("bad UIDL line", line)
	}
	for i := 0; i < len(uid); i++ {
		if uid[i] < 0x21 || uid[i] == 0x7f {
			return MessageUID{}, protoErr("bad UIDL line", line)
		}
	}
	return MessageUID{Num: num, UID: uid}, nil
}

// parseStat parses the text after +OK in a STAT reply: "count size ...".
func parseStat(text string) (int, int64, error) {
	f := fields(text)
	if len(f) < 2 {
		return 0, 0, protoErr("bad STAT reply", text)
	}
	count, ok1 := parseNum(f[0])
	size, ok2 := parseNum(f[1])
	if !ok1 || !ok2 || count > 1<<31-1 {
		return 0, 0, protoErr("bad STAT reply", text)
	}
	return int(count), size, nil
}

// apopTimestamp finds the RFC 1939 section 7 timestamp, a msg-id like
// "<1896.697170952@dbc.mtview.ca.us>", in a greeting's text.
func apopTimestamp(text string) string {
	for s := text; ; {
		i := strings.IndexByte(s, '<')
		if i < 0 {
			return ""
		}
		s = s[i:]
		j := strings.IndexByte(s, '>')
		if j < 0 {
			return ""
		}
		ts := s[:j+1]
		if strings.IndexByte(ts, '@') > 0 && !strings.ContainsAny(ts[1:], " \t<") {
			return ts
		}
		s = s[1:]
	}
}
