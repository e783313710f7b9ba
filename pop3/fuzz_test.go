package pop3

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
)

// stuffForTest frames data as a POP3 multi-line reply: dot-stuffed, a CRLF
// added to a last line without one, and the terminator.
func stuffForTest(data []byte) []byte {
	var b bytes.Buffer
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line = data[:i+1]
		}
		data = data[len(line):]
		if len(line) > 0 && line[0] == '.' {
			b.WriteByte('.')
		}
		b.Write(line)
		if line[len(line)-1] != '\n' {
			b.WriteString("\r\n")
		}
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

// FuzzDotReader: stuffing then unstuffing gives back any input (with a CRLF
// added to a last line that had none), whatever the read sizes, and the
// reader stops exactly at the terminator.
func FuzzDotReader(f *testing.F) {
	for _, seed := range []string{
		"", "a", "hello\r\n", ".\r\n", "..\r\n", ".\n", "a\r\n.\r\nb\r\n", "no newline",
		".leading\r\n..two\r\n", "\r\n\r\n", "x\r", ".\r", strings.Repeat("z", 9000) + "\r\n.\r\n",
	} {
		f.Add([]byte(seed), uint8(7))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		framed := append(stuffForTest(data), "+OK next reply\r\n"...)
		br := bufio.NewReaderSize(bytes.NewReader(framed), 16)
		r := newDotReader(br)
		var got bytes.Buffer
		buf := make([]byte, int(chunk)%64+1)
		for {
			n, err := r.Read(buf)
			got.Write(buf[:n])
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
		}
		want := data
		if len(data) > 0 && data[len(data)-1] != '\n' {
			want = append(append([]byte{}, data...), "\r\n"...)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("round trip:\n got %q\nwant %q", got.Bytes(), want)
		}
		rest, _ := io.ReadAll(br)
		if string(rest) != "+OK next reply\r\n" {
			t.Fatalf("reader did not stop at the terminator; left %q", rest)
		}

		// Cut anywhere before the terminator: an error, never EOF.
		cut := framed[:len(framed)-len("+OK next reply\r\n")-1]
		r = newDotReader(bufio.NewReaderSize(bytes.NewReader(cut), 16))
		if _, err := io.Copy(io.Discard, r); err == nil {
			t.Fatalf("a cut reply read as complete: %q", cut)
		}
	})
}

// FuzzReplyParser feeds arbitrary server output to the status and listing
// parsers: they must never panic, and accepted listings must be sane.
func FuzzReplyParser(f *testing.F) {
	for _, seed := range []string{
		"+OK 2 320\r\n", "-ERR [IN-USE] locked\r\n", "-ERR [SYS/TEMP\r\n", "+ \r\n", "+OK <1.2@x> ready\r\n",
		"1 120\r\n2 200 extra\r\n.\r\n", "1 whqtswO00WBw418f9t5JxYwZ\r\n.\r\n", "99999999999999999999 1\r\n",
		"-1 5\r\n", "1\r\n", "\x00\xff\r\n", "SASL PLAIN\r\nPIPELINING\r\n.\r\n",
		"+OK <1.2@h>\r\n+OK\r\nTOP\r\n.\r\n+OK 1 5\r\n+OK\r\n1 5\r\n.\r\n+OK\r\n1 u1\r\n.\r\n+OK\r\n..a\r\n.\r\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		br := bufio.NewReader(bytes.NewReader(data))
		for {
			line, err := readLine(br, 256)
			if err != nil {
				break
			}
			if kind, text, ok := parseStatus(line); ok && kind == replyErr {
				e := parseErr(text)
				_ = e.Error()
				_ = e.Temporary()
			}
			if mi, err := parseScan(line); err == nil && (mi.Num < 1 || mi.Size < 0) {
				t.Fatalf("parseScan accepted %q as %+v", line, mi)
			}
			if mu, err := parseUID(line); err == nil && (mu.Num < 1 || mu.UID == "" || strings.ContainsAny(mu.UID, " \t\r\n")) {
				t.Fatalf("parseUID accepted %q as %+v", line, mu)
			}
			if n, size, err := parseStat(line); err == nil && (n < 0 || size < 0) {
				t.Fatalf("parseStat accepted %q", line)
			}
			_ = apopTimestamp(line)
		}

		// The same bytes as a whole server transcript, read by a client
		// running every command: any error is fine, a panic or a hang
		// is not, and accepted listings must be sane.
		c, err := NewClient(&scriptConn{r: bytes.NewReader(data)}, nil)
		if err != nil {
			return
		}
		ctx := context.Background()
		c.Capa(ctx)
		c.Stat(ctx)
		if list, err := c.List(ctx); err == nil {
			for _, mi := range list {
				if mi.Num < 1 || mi.Size < 0 {
					t.Fatalf("List accepted %+v", mi)
				}
			}
		}
		c.UIDL(ctx)
		if r, err := c.Retr(ctx, 1); err == nil {
			io.Copy(io.Discard, r)
			r.Close()
		}
		c.RetrEach(ctx, []int{1, 2, 3}, true, func(num int, body io.Reader) error {
			_, err := io.Copy(io.Discard, body)
			return err
		})
		c.Auth(ctx, sasl.NewPlainClient("", "u", "p"))
		c.Dele(ctx, []int{1, 2}, true)
		c.Quit(ctx)
	})
}

// scriptConn is a net.Conn that replays a server transcript and swallows
// what the client writes.
type scriptConn struct{ r io.Reader }

func (s *scriptConn) Read(p []byte) (int, error)       { return s.r.Read(p) }
func (s *scriptConn) Write(p []byte) (int, error)      { return len(p), nil }
func (s *scriptConn) Close() error                     { return nil }
func (s *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (s *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (s *scriptConn) SetDeadline(time.Time) error      { return nil }
func (s *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (s *scriptConn) SetWriteDeadline(time.Time) error { return nil }
