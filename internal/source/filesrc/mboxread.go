package filesrc

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"strings"
	"time"
)

// Variant is how an mbox quotes body lines that begin with "From ".
type Variant int

const (
	// MboxRD: every line matching ^>*From  got one more '>' when written;
	// one is taken off when read. It is also how Auto reads: an mboxo file
	// reads the same unless it has a ">>From " line, which an mboxo writer
	// only leaves where the original had one, and an mboxrd writer
	// wherever the original had ">From " (a reply quoting an escaped line).
	MboxRD Variant = iota
	// MboxO: "From " lines got a '>' (">From "), ">From " lines none; only
	// ">From " is unquoted when read.
	MboxO
)

// readBuffer is the line buffer: longer lines pass through in pieces.
const readBuffer = 64 << 10

// maxCaptured bounds a captured header field (Status, X-Gmail-Labels...).
const maxCaptured = 64 << 10

// stateFields are header fields that describe the message's state in the
// mbox rather than the message: Status/X-Status/X-Keywords (flags, written
// by mutt, Dovecot, UW-IMAP...), Dovecot's X-UID, X-IMAPbase, X-IMAP and
// Content-Length, Takeout's X-Gmail-Labels and X-GM-THRID. They become
// flags and labels; the message is delivered without them, as an IMAP
// server serving the same mailbox shows it (Dovecot hides them; Gmail's
// IMAP has none), and as the same bytes whatever flags the file records,
// so that its identity survives a rewrite of the mbox with new flags.
var stateFields = map[string]bool{
	"status": true, "x-status": true, "x-keywords": true, "x-uid": true,
	"x-imapbase": true, "x-imap": true, "content-length": true,
	"x-gmail-labels": true, "x-gm-thrid": true,
}

// captured are the state fields whose values the reader keeps.
var captured = map[string]bool{
	"status": true, "x-status": true, "x-keywords": true, "x-gmail-labels": true,
	"content-length": true,
}

// Problem flags: what makes a message suspect, for the status; the
// pipeline decides whether it is refused.
const (
	probNoFromLine = 1 << iota // the file does not begin with a From line
	probNUL
	probBareCR
	probNoBody // no blank line between header and body
)

func problemText(p int) string {
	var out []string
	if p&probNoFromLine != 0 {
		out = append(out, "the file does not begin with a 'From ' line")
	}
	if p&probNoBody != 0 {
		out = append(out, "no blank line ends the header")
	}
	if p&probNUL != 0 {
		out = append(out, "NUL bytes")
	}
	if p&probBareCR != 0 {
		out = append(out, "a bare CR")
	}
	return strings.Join(out, ", ")
}

// msgReader reads one message of an mbox from br, which is at its From
// line (or at the start of a file that has none), and gives it as
// delivered: CRLF line endings, From quoting undone, stateFields left
// out. It ends (io.EOF) before the next message's From line, which it
// leaves unread, or at the end of the file. The blank line that separates
// a message from the next From line belongs to the mbox, not the message.
type msgReader struct {
	br      *bufio.Reader
	variant Variant
	// file is the whole mbox and base where br starts in it, to check a
	// Content-Length before trusting it.
	file io.ReaderAt
	base int64
	// counted is what is left of a body whose Content-Length (Dovecot,
	// mboxcl2) the file confirms: taken as it is, From lines unquoted by
	// none; -1 without one.
	counted int64

	started   bool
	fromLine  string // the From line, without its line ending ("" if none)
	consumed  int64  // bytes of the file read
	inHeader  bool
	dropping  bool // in the continuation lines of a dropped field
	capturing string
	lineStart bool // the next bytes from br begin a line
	prevCR    bool // the last piece of the current line ended in '\r'
	blank     []byte
	out       []byte
	done      bool
	problems  int
	fields    map[string]string
}

func newMsgReader(br *bufio.Reader, v Variant, file io.ReaderAt, base int64) *msgReader {
	return &msgReader{br: br, variant: v, file: file, base: base, counted: -1, inHeader: true, lineStart: true}
}

func (r *msgReader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.done {
			return 0, io.EOF
		}
		if err := r.step(); err != nil {
			return 0, err
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// start reads the From line, if the message has one.
func (r *msgReader) start() error {
	r.started = true
	head, err := r.br.Peek(5)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return err
	}
	if !bytes.Equal(head, []byte("From ")) {
		r.problems |= probNoFromLine
		return nil
	}
	var line []byte
	for {
		piece, err := r.br.ReadSlice('\n')
		r.consumed += int64(len(piece))
		if len(line) < 1024 {
			line = append(line, piece...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil && err != io.EOF {
			return err
		}
		break
	}
	r.fromLine = strings.TrimRight(string(line), "\r\n")
	return nil
}

// step reads one piece of a line and appends what it delivers to out.
func (r *msgReader) step() error {
	if !r.started {
		return r.start()
	}
	if r.counted >= 0 {
		return r.stepCounted()
	}
	if r.lineStart {
		sep, err := r.atSeparator()
		if err != nil {
			return err
		}
		if sep {
			r.end()
			return nil
		}
	}
	piece, err := r.br.ReadSlice('\n')
	r.consumed += int64(len(piece))
	switch {
	case err == io.EOF && len(piece) == 0:
		r.end()
		return nil
	case err != nil && err != io.EOF && err != bufio.ErrBufferFull:
		return err
	}
	complete := err == nil // ends in '\n'
	first := r.lineStart
	r.lineStart = complete || err == io.EOF
	if first && complete && isBlank(piece) {
		r.flushBlank()
		r.blank = piece
		if r.inHeader {
			r.inHeader, r.dropping, r.capturing = false, false, ""
			if r.counted = r.contentLength(); r.counted >= 0 {
				r.flushBlank()
				return nil
			}
		}
		if err == io.EOF {
			r.end()
		}
		return nil
	}
	r.flushBlank()
	raw := piece
	if first {
		piece = r.lineHead(piece)
	}
	if r.capturing != "" {
		r.capture(raw)
	}
	if piece != nil && !r.dropping {
		r.emit(piece, complete)
	}
	if err == io.EOF {
		r.end()
	}
	return nil
}

// contentLength is the body's length in the file as the header's
// Content-Length says, if the file confirms it: the body is followed by
// a blank line and a From line, or by the end of the file. Otherwise -1:
// the body ends at the next From line.
func (r *msgReader) contentLength() int64 {
	v := strings.TrimSpace(r.fields["content-length"])
	if r.file == nil || v == "" || len(v) > 15 || strings.Trim(v, "0123456789") != "" {
		return -1
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	end := r.base + r.consumed + n
	var next [7]byte
	got, _ := r.file.ReadAt(next[:], end)
	tail := string(next[:got])
	switch {
	case got == 0, tail == "\n" || tail == "\r\n",
		strings.HasPrefix(tail, "\nFrom "), strings.HasPrefix(tail, "\r\nFrom "):
		return n
	}
	return -1
}

// stepCounted reads a piece of a counted body, then the blank line that
// ends the message in the mbox.
func (r *msgReader) stepCounted() error {
	if r.counted == 0 {
		if b, _ := r.br.Peek(2); string(b) == "\r\n" {
			r.br.Discard(2)
			r.consumed += 2
		} else if len(b) > 0 && b[0] == '\n' {
			r.br.Discard(1)
			r.consumed++
		}
		r.end()
		return nil
	}
	buf, err := r.br.Peek(int(min(r.counted, readBuffer)))
	if len(buf) == 0 {
		if err == io.EOF || err == nil {
			r.end() // the file is shorter than Content-Length said
			return nil
		}
		return err
	}
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		buf = buf[:i+1]
	}
	complete := buf[len(buf)-1] == '\n'
	r.emit(buf, complete)
	r.br.Discard(len(buf))
	r.consumed += int64(len(buf))
	r.counted -= int64(len(buf))
	return nil
}

// lineHead handles the start of a line: header fields dropped or
// captured, From quoting undone. It returns the piece to deliver, or nil.
func (r *msgReader) lineHead(piece []byte) []byte {
	if r.inHeader {
		if len(piece) > 0 && (piece[0] == ' ' || piece[0] == '\t') {
			if r.dropping {
				return nil // a continuation line of a dropped field
			}
			return piece
		}
		r.dropping, r.capturing = false, ""
		if name, ok := fieldName(piece); ok && stateFields[name] {
			r.dropping = true
			if captured[name] {
				r.capturing = name
			}
			return nil
		}
		return unquote(piece, r.variant)
	}
	return unquote(piece, r.variant)
}

// capture keeps a dropped field's value (its name stripped).
func (r *msgReader) capture(piece []byte) {
	if r.fields == nil {
		r.fields = map[string]string{}
	}
	v, seen := r.fields[r.capturing]
	if !seen {
		if i := bytes.IndexByte(piece, ':'); i >= 0 {
			piece = piece[i+1:]
		}
	}
	if len(v)+len(piece) > maxCaptured {
		return
	}
	r.fields[r.capturing] = v + string(piece)
}

// atSeparator reports whether br is at the From line of the next message:
// a line beginning "From " after a blank line, or one that reads as a
// From line (sender and date) even without it.
func (r *msgReader) atSeparator() (bool, error) {
	head, err := r.br.Peek(5)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return false, err
	}
	if !bytes.Equal(head, []byte("From ")) {
		return false, nil
	}
	if r.blank != nil {
		return true, nil
	}
	line, err := r.br.Peek(1024)
	if err != nil && err != io.EOF && err != bufio.ErrBufferFull {
		return false, err
	}
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	_, ok := fromLineDate(string(line))
	return ok, nil
}

// end finishes the message. The blank line before the next From line is
// the mbox's; at the end of the file, a last blank line is taken for the
// same separator (mboxrd and Dovecot end every message with one).
func (r *msgReader) end() {
	if r.inHeader {
		r.problems |= probNoBody
	}
	r.blank = nil
	r.done = true
}

func (r *msgReader) flushBlank() {
	if r.blank != nil {
		r.out = append(r.out, '\r', '\n')
		r.blank = nil
	}
}

// emit appends a piece of a line with its line ending made CRLF.
func (r *msgReader) emit(piece []byte, complete bool) {
	if !complete {
		r.check(bytes.TrimSuffix(piece, []byte("\r")))
		r.out = append(r.out, piece...)
		r.prevCR = len(piece) > 0 && piece[len(piece)-1] == '\r'
		return
	}
	content := piece[:len(piece)-1]
	switch {
	case len(content) > 0 && content[len(content)-1] == '\r':
		content = content[:len(content)-1]
	case len(content) == 0 && r.prevCR:
		// The CR ended the previous piece: already delivered.
		r.out = append(r.out, '\n')
		r.prevCR = false
		return
	}
	r.check(content)
	r.out = append(r.out, content...)
	r.out = append(r.out, '\r', '\n')
	r.prevCR = false
}

// check notes NUL bytes and bare CRs in a line's content.
func (r *msgReader) check(b []byte) {
	if bytes.IndexByte(b, 0) >= 0 {
		r.problems |= probNUL
	}
	if bytes.IndexByte(b, '\r') >= 0 {
		r.problems |= probBareCR
	}
}

func isBlank(line []byte) bool {
	return len(line) == 1 || (len(line) == 2 && line[0] == '\r')
}

// fieldName is the lower-case name of the header field a line starts, if
// it starts one.
func fieldName(line []byte) (string, bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 || i > 76 {
		return "", false
	}
	name := line[:i]
	if bytes.ContainsAny(name, " \t") {
		return "", false
	}
	return strings.ToLower(string(name)), true
}

// unquote undoes the From quoting of a body line's start.
func unquote(line []byte, v Variant) []byte {
	if len(line) < 6 || line[0] != '>' {
		return line
	}
	rest := line[1:]
	if v == MboxRD {
		rest = bytes.TrimLeft(rest, ">")
	}
	if bytes.HasPrefix(rest, []byte("From ")) {
		return line[1:]
	}
	return line
}

// fromLineDate reads the date of a From line: "From SENDER DATE", the
// date as asctime, with or without a zone (mutt, Dovecot, procmail,
// Python, Google Takeout).
func fromLineDate(line string) (time.Time, bool) {
	rest, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "From ")
	if !ok {
		return time.Time{}, false
	}
	f := strings.Fields(rest)
	if len(f) < 5 {
		return time.Time{}, false
	}
	// The date is at the end; the sender may hold spaces.
	for _, n := range []int{6, 5} {
		if len(f) < n+1 {
			continue
		}
		s := strings.Join(f[len(f)-n:], " ")
		for _, layout := range fromLayouts {
			if t, err := time.Parse(layout, s); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

var fromLayouts = []string{
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 -0700 2006",
	"Mon Jan 2 15:04:05 2006 -0700",
	"Mon Jan 2 15:04:05 MST 2006",
	"Mon Jan 2 15:04 2006",
}
