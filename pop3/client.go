package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// DefaultTimeout is used when Options.Timeout is zero.
const DefaultTimeout = 60 * time.Second

// Options configures a Client. The zero value is usable.
type Options struct {
	// Timeout bounds each read and write on the connection when the
	// operation's context has no sooner deadline. It is refreshed on
	// every read and write, so it limits stalls, not transfer time.
	// Zero or negative means DefaultTimeout.
	Timeout time.Duration

	// Trace, if set, receives the protocol exchange, one "C: " or "S: "
	// line per command and reply line. Secrets (the PASS argument, the
	// APOP digest, AUTH payloads in both directions) are replaced by
	// "<redacted>", and message bodies are summarised by their size.
	Trace io.Writer
}

// Client is a POP3 client connection. See the package documentation.
type Client struct {
	raw     net.Conn // transport under any TLS; closed on cancellation
	conn    net.Conn // what the protocol is spoken over: raw or TLS
	br      *bufio.Reader
	bw      *bufio.Writer
	timeout time.Duration
	trace   io.Writer
	stamp   string

	// State of the operation in progress, set by begin.
	ctx context.Context
	dl  time.Time // ctx's deadline, zero if none
	// busy is set while an operation, or a Retr reader, owns the
	// connection; it also stops a RetrEach callback from interleaving
	// commands with the replies still being read.
	busy bool
	// err, once set, is returned by every later operation.
	err error
}

// timedConn refreshes the connection's deadline before each read and
// write, so a steady stream never times out but a stalled one does.
type timedConn struct{ c *Client }

func (t timedConn) Read(p []byte) (int, error) {
	t.c.conn.SetReadDeadline(t.c.deadline())
	return t.c.conn.Read(p)
}

func (t timedConn) Write(p []byte) (int, error) {
	t.c.conn.SetWriteDeadline(t.c.deadline())
	return t.c.conn.Write(p)
}

// NewClient starts a POP3 session on conn, which may already be a
// *tls.Conn (POP3S, port 995), and reads the server greeting. A -ERR
// greeting is returned as *Error. On error conn is closed.
func NewClient(conn net.Conn, opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	c := &Client{
		raw:     conn,
		conn:    conn,
		timeout: opts.Timeout,
		trace:   opts.Trace,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if tc, ok := conn.(*tls.Conn); ok {
		c.raw = tc.NetConn()
	}
	c.br = bufio.NewReaderSize(timedConn{c}, 32<<10)
	c.bw = bufio.NewWriterSize(timedConn{c}, 4<<10)

	text, err := c.readOK()
	if err != nil {
		c.Close()
		return nil, err
	}
	c.stamp = apopTimestamp(text)
	return c, nil
}

// APOPTimestamp returns the "<...@...>" timestamp from the greeting,
// or "" if there was none (and so APOP cannot be used).
func (c *Client) APOPTimestamp() string {
	return c.stamp
}

// TLSConnectionState returns the TLS state if the connection is TLS, either
// from the start or after StartTLS.
func (c *Client) TLSConnectionState() (tls.ConnectionState, bool) {
	if tc, ok := c.conn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

var errBusy = errors.New("pop3: connection busy: a message reader is still open, or called from a RetrEach callback")

// begin starts an operation under ctx. The returned end must be called
// when the operation no longer uses the connection.
func (c *Client) begin(ctx context.Context) (end func(), err error) {
	if c.err != nil {
		return nil, c.err
	}
	if c.busy {
		return nil, errBusy
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pop3: %w", err)
	}
	c.busy = true
	c.ctx = ctx
	c.dl, _ = ctx.Deadline()
	// Closing the transport is the only way to unblock a read or write
	// at once; the session is lost either way.
	stop := context.AfterFunc(ctx, func() { c.raw.Close() })
	return func() {
		if !stop() {
			c.fail(ctx.Err())
		}
		c.busy = false
		c.ctx = nil
		c.dl = time.Time{}
	}, nil
}

func (c *Client) deadline() time.Time {
	d := time.Now().Add(c.timeout)
	if !c.dl.IsZero() && c.dl.Before(d) {
		d = c.dl
	}
	return d
}

// fail makes err the client's sticky error, closes the connection and
// returns the error as callers should see it: context errors take
// precedence over the I/O error they caused, and io.EOF becomes
// io.ErrUnexpectedEOF because no reply may end a session early.
func (c *Client) fail(err error) error {
	if c.err != nil {
		return c.err
	}
	switch {
	case c.ctx != nil && c.ctx.Err() != nil:
		err = fmt.Errorf("pop3: %w", c.ctx.Err())
	case !c.dl.IsZero() && !time.Now().Before(c.dl):
		// The conn deadline fired a moment before ctx noticed.
		err = fmt.Errorf("pop3: %w", context.DeadlineExceeded)
	case err == nil:
		err = errors.New("pop3: connection lost")
	case errors.Is(err, io.EOF):
		err = fmt.Errorf("pop3: connection closed by server: %w", io.ErrUnexpectedEOF)
	case !strings.HasPrefix(err.Error(), "pop3:"):
		err = fmt.Errorf("pop3: %w", err)
	}
	c.err = err
	c.raw.Close()
	return err
}

// Close closes the connection without QUIT. The server does not enter the
// UPDATE state, so messages marked with Dele are not deleted.
func (c *Client) Close() error {
	if c.err == nil {
		c.err = net.ErrClosed
	}
	// Close the transport, not a TLS layer: a close_notify could block
	// on a stalled peer.
	return c.raw.Close()
}

func (c *Client) tracef(format string, args ...any) {
	if c.trace != nil {
		fmt.Fprintf(c.trace, format+"\n", args...)
	}
}

// writeCmd buffers one command line. If redacted is not "", it is traced
// instead of line.
func (c *Client) writeCmd(line, redacted string) error {
	if strings.ContainsAny(line, "\r\n\x00") {
		// Refuse rather than let an argument inject a command.
		return errors.New("pop3: CR, LF or NUL in command argument")
	}
	if redacted != "" {
		c.tracef("C: %s", redacted)
	} else {
		c.tracef("C: %s", line)
	}
	c.bw.WriteString(line)
	c.bw.WriteString("\r\n")
	return nil
}

func (c *Client) flush() error {
	if err := c.bw.Flush(); err != nil {
		return c.fail(err)
	}
	return nil
}

// readReply reads a status line. A -ERR is returned as *Error and leaves
// the client usable; anything else that is not +OK (or a "+ "
// continuation, if cont) is fatal.
func (c *Client) readReply(cont bool) (kind int, text string, err error) {
	line, err := readLine(c.br, maxLine)
	if err != nil {
		return 0, "", c.fail(err)
	}
	kind, text, ok := parseStatus(line)
	if !ok || (kind == replyCont && !cont) {
		return 0, "", c.fail(protoErr("bad status line", line))
	}
	if kind == replyCont && c.trace != nil {
		c.tracef("S: + <redacted>")
	} else {
		c.tracef("S: %s", line)
	}
	if kind == replyErr {
		return kind, text, parseErr(text)
	}
	return kind, text, nil
}

// readOK reads a +OK/-ERR status line and returns the text after +OK.
func (c *Client) readOK() (string, error) {
	_, text, err := c.readReply(false)
	return text, err
}

// cmd runs a command with a single-line reply.
func (c *Client) cmd(ctx context.Context, line, redacted string) (string, error) {
	end, err := c.begin(ctx)
	if err != nil {
		return "", err
	}
	defer end()
	if err := c.writeCmd(line, redacted); err != nil {
		return "", err
	}
	if err := c.flush(); err != nil {
		return "", err
	}
	return c.readOK()
}

// readListing reads the lines of a multi-line reply after its +OK and
// calls fn for each non-empty line; at most maxN lines of at most lineMax
// bytes, and maxListingBytes in all, or the server is in breach. If fn
// fails, the rest of the listing is still consumed so the connection stays
// usable.
func (c *Client) readListing(maxN, lineMax int, fn func(line string) error) error {
	lr := bufio.NewReaderSize(newDotReader(c.br), 4<<10)
	var first error
	entries, total := 0, 0
	for {
		line, err := readLine(lr, lineMax)
		if err == io.EOF {
			c.tracef("S: .")
			return first
		}
		if err != nil {
			return c.fail(err)
		}
		if first == nil {
			c.tracef("S: %s", line)
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		if entries++; entries > maxN {
			return c.fail(fmt.Errorf("%w: listing longer than %d lines", ErrProtocol, maxN))
		}
		if total += len(line); total > maxListingBytes {
			return c.fail(fmt.Errorf("%w: listing larger than %d bytes", ErrProtocol, maxListingBytes))
		}
		if first == nil {
			first = fn(line)
		}
	}
}

// Capabilities is a CAPA reply (RFC 2449): upper-cased capability keyword
// to its arguments, e.g. "SASL" -> ["PLAIN", "XOAUTH2"].
type Capabilities map[string][]string

// Has reports whether the capability name (any case) was advertised.
func (caps Capabilities) Has(name string) bool {
	_, ok := caps[strings.ToUpper(name)]
	return ok
}

// Capa asks for the server's capabilities. Servers that predate RFC 2449
// answer -ERR; then the error wraps both ErrNoCapa and the *Error, and
// plain RFC 1939 commands (Login, Stat, ...) still work.
func (c *Client) Capa(ctx context.Context) (Capabilities, error) {
	end, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer end()
	c.writeCmd("CAPA", "")
	if err := c.flush(); err != nil {
		return nil, err
	}
	if _, err := c.readOK(); err != nil {
		var perr *Error
		if errors.As(err, &perr) {
			return nil, fmt.Errorf("%w: %w", ErrNoCapa, perr)
		}
		return nil, err
	}
	caps := Capabilities{}
	err = c.readListing(maxCapaLines, maxCapaLine, func(line string) error {
		f := fields(line)
		caps[strings.ToUpper(f[0])] = f[1:]
		return nil
	})
	if err != nil {
		return nil, err
	}
	return caps, nil
}

// StartTLS sends STLS (RFC 2595) and runs the TLS handshake with cfg; from
// then on the client speaks TLS. cfg must name the server (ServerName) or
// the handshake fails. Capabilities may change under TLS, so call Capa
// again. A failed handshake leaves the client unusable.
func (c *Client) StartTLS(ctx context.Context, cfg *tls.Config) error {
	if _, ok := c.conn.(*tls.Conn); ok {
		return errors.New("pop3: TLS is already active")
	}
	end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	c.writeCmd("STLS", "")
	if err := c.flush(); err != nil {
		return err
	}
	if _, err := c.readOK(); err != nil {
		return err
	}
	// Bytes that arrived before the handshake were sent in plaintext and
	// would be read as if they came over TLS (CVE-2011-0411 style
	// injection), so refuse them.
	if c.br.Buffered() > 0 {
		return c.fail(fmt.Errorf("%w: data after STLS reply before TLS handshake", ErrProtocol))
	}
	if cfg == nil {
		cfg = &tls.Config{}
	}
	tc := tls.Client(c.raw, cfg.Clone())
	c.raw.SetDeadline(c.deadline())
	if err := tc.HandshakeContext(ctx); err != nil {
		return c.fail(fmt.Errorf("pop3: TLS handshake: %w", err))
	}
	c.conn = tc
	return nil
}

// Login authenticates with USER and PASS (RFC 1939 section 7). This sends
// the password as is; use it only over TLS unless the caller has decided
// otherwise. A rejection is returned as *Error, often with Code "AUTH",
// "IN-USE" or "LOGIN-DELAY".
func (c *Client) Login(ctx context.Context, user, pass string) error {
	if _, err := c.cmd(ctx, "USER "+user, ""); err != nil {
		return err
	}
	_, err := c.cmd(ctx, "PASS "+pass, "PASS <redacted>")
	return err
}

// Stat returns the number of messages in the maildrop and their total size
// in octets.
func (c *Client) Stat(ctx context.Context) (count int, size int64, err error) {
	text, err := c.cmd(ctx, "STAT", "")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(text)
}

// MessageInfo is one entry of a LIST reply.
type MessageInfo struct {
	Num  int   // message number, valid for this session only
	Size int64 // size in octets as the server counts it (CRLF line endings)
}

// List returns the number and size of every message not marked deleted.
func (c *Client) List(ctx context.Context) ([]MessageInfo, error) {
	var out []MessageInfo
	err := c.listCmd(ctx, "LIST", func(line string) error {
		mi, err := parseScan(line)
		out = append(out, mi)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MessageUID is one entry of a UIDL reply.
type MessageUID struct {
	Num int    // message number, valid for this session only
	UID string // unique-id, stable across sessions
}

// UIDL returns the unique-id of every message not marked deleted. A server
// without UIDL answers -ERR, returned as *Error; the client stays usable.
func (c *Client) UIDL(ctx context.Context) ([]MessageUID, error) {
	var out []MessageUID
	err := c.listCmd(ctx, "UIDL", func(line string) error {
		mu, err := parseUID(line)
		out = append(out, mu)
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (c *Client) listCmd(ctx context.Context, cmd string, fn func(string) error) error {
	end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	c.writeCmd(cmd, "")
	if err := c.flush(); err != nil {
		return err
	}
	if _, err := c.readOK(); err != nil {
		return err
	}
	return c.readListing(maxEntries, maxLine, fn)
}

// Rset unmarks all messages marked deleted in this session.
func (c *Client) Rset(ctx context.Context) error {
	_, err := c.cmd(ctx, "RSET", "")
	return err
}

// Noop does nothing; useful to check the connection is alive.
func (c *Client) Noop(ctx context.Context) error {
	_, err := c.cmd(ctx, "NOOP", "")
	return err
}

// Quit sends QUIT and closes the connection, whatever happens. Only a +OK
// reply means the server entered the UPDATE state and removed the messages
// marked by Dele; on any error the deletions may not have happened (a
// -ERR, e.g. [SYS/TEMP], says some were not). Retrieved messages whose
// deletion did not commit will be offered again next session.
func (c *Client) Quit(ctx context.Context) error {
	defer c.closeGracefully()
	_, err := c.cmd(ctx, "QUIT", "")
	return err
}

func (c *Client) closeGracefully() {
	if c.err == nil {
		c.err = net.ErrClosed
		if tc, ok := c.conn.(*tls.Conn); ok {
			// Bound the close_notify write.
			tc.SetWriteDeadline(time.Now().Add(time.Second))
			tc.Close()
		}
	}
	c.raw.Close()
}
