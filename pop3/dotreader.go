package pop3

import (
	"bufio"
	"bytes"
	"io"
)

// dotReader states.
const (
	dotBOL   = iota // at the start of a line
	dotMid          // inside a line
	dotDot          // read a "." at the start of a line
	dotDotCR        // read ".\r" at the start of a line
	dotDone         // terminator consumed or error; see err
)

// dotReader reads a multi-line reply body (RFC 1939 section 3) from br and
// undoes dot-stuffing: a line beginning with "." loses that dot, and the
// line "." ends the body with io.EOF.
//
// It is byte-exact: every byte before the terminating line, including the
// line ending that precedes it, is returned as the server sent it. Line
// endings are not rewritten, and a "." line ended by a bare LF also
// terminates, for broken servers. Lines of any length stream in chunks:
// only the "at start of line" state is kept, never a whole line.
//
// If br ends before the terminator, Read returns io.ErrUnexpectedEOF (other
// errors pass through), never io.EOF, so a truncated body cannot pass for a
// complete one. It never reads past the terminator.
type dotReader struct {
	br    *bufio.Reader
	state int
	err   error
}

func newDotReader(br *bufio.Reader) *dotReader {
	return &dotReader{br: br}
}

func (d *dotReader) Read(p []byte) (n int, err error) {
	for n < len(p) && d.state != dotDone {
		// Return what we have rather than block for more.
		if n > 0 && d.br.Buffered() == 0 {
			break
		}
		switch d.state {
		case dotBOL:
			b, err := d.br.ReadByte()
			if err != nil {
				d.fail(err)
				break
			}
			if b == '.' {
				d.state = dotDot
				continue
			}
			p[n] = b
			n++
			if b != '\n' {
				d.state = dotMid
			}
		case dotDot:
			b, err := d.br.ReadByte()
			if err != nil {
				d.fail(err)
				break
			}
			switch b {
			case '\n':
				d.finish()
			case '\r':
				d.state = dotDotCR
			default:
				// A stuffed line: the leading dot is dropped and the
				// rest of the line, from b on, is data.
				p[n] = b
				n++
				d.state = dotMid
			}
		case dotDotCR:
			b, err := d.br.Peek(1)
			if err != nil {
				d.fail(err)
				break
			}
			if b[0] == '\n' {
				d.br.Discard(1)
				d.finish()
				break
			}
			// ".\r" not followed by LF: drop the dot, keep the CR, and
			// let dotMid handle the next byte.
			p[n] = '\r'
			n++
			d.state = dotMid
		case dotMid:
			if d.br.Buffered() == 0 {
				if _, err := d.br.Peek(1); err != nil {
					d.fail(err)
					break
				}
			}
			buf, _ := d.br.Peek(d.br.Buffered())
			if room := len(p) - n; len(buf) > room {
				buf = buf[:room]
			}
			if i := bytes.IndexByte(buf, '\n'); i >= 0 {
				buf = buf[:i+1]
				d.state = dotBOL
			}
			n += copy(p[n:], buf)
			d.br.Discard(len(buf))
		}
	}
	if d.state == dotDone {
		return n, d.err
	}
	return n, nil
}

func (d *dotReader) finish() {
	d.state = dotDone
	d.err = io.EOF
}

func (d *dotReader) fail(err error) {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	d.state = dotDone
	d.err = err
}
