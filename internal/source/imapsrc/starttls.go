package imapsrc

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
)

// maxPreTLSLine bounds a line the server sends before TLS: nothing it says
// there may cost more memory than this.
const maxPreTLSLine = 8 << 10

// startTLS reads the server's greeting, asks for STARTTLS and, once the
// server agreed, secures conn. RFC 3501 has the client wait for the
// greeting (go-imap's NewStartTLS sends STARTTLS before reading it). The
// greeting is not handed on: whatever the server said before TLS, its
// capabilities included, may have been forged on the way, so the client
// starts afresh from a neutral greeting and asks for capabilities over TLS.
func startTLS(ctx context.Context, conn net.Conn, cfg *tls.Config) (net.Conn, error) {
	br := bufio.NewReaderSize(conn, 4096)
	greeting, err := readLine(br)
	if err != nil {
		return nil, fmt.Errorf("reading the greeting: %w", err)
	}
	switch {
	case strings.HasPrefix(greeting, "* OK"):
	case strings.HasPrefix(greeting, "* PREAUTH"):
		return nil, errors.New("the server sent PREAUTH on an unencrypted connection")
	default:
		return nil, fmt.Errorf("unexpected greeting %q", truncate(greeting))
	}
	if _, err := io.WriteString(conn, "T0 STARTTLS\r\n"); err != nil {
		return nil, err
	}
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		if strings.HasPrefix(line, "* ") {
			continue // untagged data (CAPABILITY, say) before the answer
		}
		if !strings.HasPrefix(line, "T0 ") {
			return nil, fmt.Errorf("unexpected reply to STARTTLS: %q", truncate(line))
		}
		if !strings.HasPrefix(strings.ToUpper(line[3:]), "OK") {
			return nil, fmt.Errorf("the server refused STARTTLS: %q", truncate(line))
		}
		break
	}
	if br.Buffered() > 0 {
		// Bytes after the OK and before the handshake would be read as if
		// they came over TLS (a STARTTLS injection).
		return nil, errors.New("the server sent data after agreeing to STARTTLS, before TLS")
	}
	tc := tls.Client(conn, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, err
	}
	return &greetedConn{Conn: tc, pending: []byte("* OK TLS established\r\n")}, nil
}

func readLine(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		frag, more, err := br.ReadLine()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		if b.Len()+len(frag) > maxPreTLSLine {
			return "", fmt.Errorf("a line before TLS longer than %d bytes", maxPreTLSLine)
		}
		b.Write(frag)
		if !more {
			return b.String(), nil
		}
	}
}

func truncate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// greetedConn gives go-imap a greeting before the TLS stream, since the
// server sent its own before STARTTLS.
type greetedConn struct {
	net.Conn
	pending []byte
}

func (c *greetedConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// ConnectionState lets callers see the TLS state through the wrapper.
func (c *greetedConn) ConnectionState() tls.ConnectionState {
	return c.Conn.(*tls.Conn).ConnectionState()
}
