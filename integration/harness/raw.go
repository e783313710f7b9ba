package harness

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
)

// StripTopReceived removes the first header field of raw if it is a
// Received: field, together with its folded continuation lines (lines
// starting with space or tab), and returns the rest. Anything else is
// returned unchanged. remote_pull prepends exactly one such field.
func StripTopReceived(raw []byte) []byte { return StripTopField(raw, "Received") }

// StripTopField removes the first header field of raw, with its folded
// continuation lines, if it is named name (case-insensitive); otherwise raw
// is returned as it is.
func StripTopField(raw []byte, name string) []byte {
	prefix := []byte(strings.ToLower(name) + ":")
	if len(raw) < len(prefix) || !bytes.EqualFold(raw[:len(prefix)], prefix) {
		return raw
	}
	rest := raw
	for first := true; ; first = false {
		if !first && (len(rest) == 0 || (rest[0] != ' ' && rest[0] != '\t')) {
			return rest
		}
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil // the field was all there was
		}
		rest = rest[i+1:]
	}
}

// Delivered returns a message as remote_pull received it from the upstream,
// from the bytes maddy stored: without the Delivered-To and Return-Path
// fields maddy's storage puts on top of every delivered message, and without
// the Received field remote_pull adds. ok is false if a field is missing.
func Delivered(stored []byte) (received string, upstream []byte, ok bool) {
	afterDT := StripTopField(stored, "Delivered-To")
	if len(afterDT) == len(stored) {
		return "", stored, false
	}
	afterRP := StripTopField(afterDT, "Return-Path")
	if len(afterRP) == len(afterDT) {
		return "", afterDT, false
	}
	afterDT = afterRP
	rest := StripTopReceived(afterDT)
	if len(rest) == len(afterDT) {
		return "", afterDT, false
	}
	return string(afterDT[:len(afterDT)-len(rest)]), rest, true
}

// CRLF returns msg with every bare LF turned into CRLF: what Dovecot serves
// for a file seeded with msg.
func CRLF(msg []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(msg) + bytes.Count(msg, []byte("\n")))
	for i, c := range msg {
		if c == '\n' && (i == 0 || msg[i-1] != '\r') {
			b.WriteByte('\r')
		}
		b.WriteByte(c)
	}
	return b.Bytes()
}

// EqualReader compares got with everything want yields, streaming, and
// returns nil if they are identical or an error naming the first
// difference (offset and a few bytes of context).
func EqualReader(got []byte, want io.Reader) error {
	br := bufio.NewReaderSize(want, 64<<10)
	var off int
	buf := make([]byte, 64<<10)
	for {
		n, err := br.Read(buf)
		if n > 0 {
			if off+n > len(got) {
				return fmt.Errorf("got %d bytes, want more (at least %d)", len(got), off+n)
			}
			if !bytes.Equal(got[off:off+n], buf[:n]) {
				for k := 0; k < n; k++ {
					if got[off+k] != buf[k] {
						return fmt.Errorf("first difference at byte %d: got %q, want %q", off+k, snippet(got, off+k), snippet(buf[:n], k))
					}
				}
			}
			off += n
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if off != len(got) {
		return fmt.Errorf("got %d bytes, want %d", len(got), off)
	}
	return nil
}

func snippet(b []byte, at int) []byte {
	end := at + 20
	if end > len(b) {
		end = len(b)
	}
	return b[at:end]
}

// AsDelivered is what remote_pull hands to maddy, and maddy stores under
// its own trace fields, for a message seeded upstream as raw: Dovecot
// serves LF line endings as CRLF, and maddy, which keeps every message as
// header plus body, writes the empty line between them even for a
// header-only message that had none.
func AsDelivered(raw []byte) []byte {
	out := CRLF(raw)
	if !bytes.HasPrefix(out, []byte("\r\n")) && !bytes.Contains(out, []byte("\r\n\r\n")) {
		out = append(out, "\r\n"...)
	}
	return out
}

// SplitNotices separates remote_pull's notices to an account's owner
// (docs/reference.md, notify) from fetched mail in a local mailbox.
func SplitNotices(msgs []MailboxMessage) (fetched, notices []MailboxMessage) {
	for _, m := range msgs {
		hdr, _, _ := bytes.Cut(m.Raw, []byte("\r\n\r\n"))
		if bytes.Contains(hdr, []byte("\r\nAuto-Submitted: auto-generated")) && bytes.Contains(hdr, []byte("\r\nSubject: remote_pull: account ")) {
			notices = append(notices, m)
		} else {
			fetched = append(fetched, m)
		}
	}
	return fetched, notices
}

// Subject is the Subject field of a message's header, or "".
func Subject(raw []byte) string {
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "Subject: ") {
			return strings.TrimSpace(strings.TrimPrefix(line, "Subject: "))
		}
		if strings.TrimSpace(line) == "" {
			break
		}
	}
	return ""
}
