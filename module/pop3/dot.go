package pop3

import (
	"bufio"
	"io"
)

// dotReader streams a multi-line reply (a message from RETR, or a listing)
// up to its terminating "." line, undoing dot-stuffing: a line that begins
// with "." loses that first dot (RFC 1939 section 3). Line endings pass
// through as the server sent them. Memory stays bounded whatever the line
// length: bytes are copied from the bufio.Reader's buffer as they come.
//
// Read returns io.EOF only after the terminator; if the stream ends before
// it, Read returns io.ErrUnexpectedEOF (or the read error), so a message
// cut short is never taken for a whole one.
type dotReader struct {
	br  *bufio.Reader
	bol bool // at the beginning of a line
	err error
}

func newDotReader(br *bufio.Reader) *dotReader {
	return &dotReader{br: br, bol: true}
}

func (d *dotReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && d.err == nil {
		if d.bol {
			if done := d.lineStart(); done || d.err != nil {
				break
			}
		}
		// Copy what is buffered, up to the end of the line.
		if d.br.Buffered() == 0 {
			if _, err := d.br.Peek(1); err != nil {
				d.err = unexpected(err)
				break
			}
		}
		chunk, _ := d.br.Peek(min(d.br.Buffered(), len(p)-n))
		for i, b := range chunk {
			if b == '\n' {
				chunk = chunk[:i+1]
				d.bol = true
				break
			}
		}
		n += copy(p[n:], chunk)
		d.br.Discard(len(chunk))
	}
	if n > 0 {
		return n, nil
	}
	return 0, d.err
}

// lineStart handles the first octets of a line: the terminator ends the
// reply, a leading dot is stripped. It reports whether the reply ended.
func (d *dotReader) lineStart() (done bool) {
	b, err := d.br.Peek(1)
	if err != nil {
		d.err = unexpected(err)
		return false
	}
	d.bol = false
	if b[0] != '.' {
		return false
	}
	// Peek no further than the terminator's own length, so that a server
	// waiting for the next command after ".\n" does not block us.
	b, err = d.br.Peek(2)
	if err != nil {
		d.err = unexpected(err)
		return false
	}
	switch {
	case b[1] == '\n':
		d.br.Discard(2)
		d.err = io.EOF
		return true
	case b[1] == '\r':
		b, err = d.br.Peek(3)
		if err != nil {
			d.err = unexpected(err)
			return false
		}
		if b[2] == '\n' {
			d.br.Discard(3)
			d.err = io.EOF
			return true
		}
	}
	d.br.Discard(1) // a stuffed dot
	return false
}

// unexpected turns an EOF inside a reply into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
