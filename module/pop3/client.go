package pop3

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-sasl"
)

// Options configures a Client.
type Options struct {
	// Timeout is the longest wait for any single read or write, refreshed
	// on each one (so a long transfer that keeps moving is fine), unless
	// the context's deadline is sooner. Default 60 s.
	Timeout time.Duration
	// Trace receives the protocol exchange, commands and status lines (not
	// message bodies), with secrets replaced by "<redacted>".
	Trace io.Writer
}

// MessageInfo is one line of a LIST reply.
type MessageInfo struct {
	Num  int
	Size int64
}

// MessageUID is one line of a UIDL reply.
type MessageUID struct {
	Num int
	UID string
}

// Capabilities maps upper-cased CAPA keywords to their arguments.
type Capabilities map[string][]string

// Has reports whether the server announced the keyword.
func (c Capabilities) Has(name string) bool {
	_, ok := c[strings.ToUpper(name)]
	return ok
}

// Client is a POP3 session. It is not safe for concurrent use.
type Client struct {
	opts     Options
	raw      net.Conn // the TCP connection, closed on cancellation
	conn     net.Conn // raw, or TLS over it after StartTLS
	br       *bufio.Reader
	bw       *bufio.Writer
	greeting string

	mu       sync.Mutex
	deadline time.Time // the current operation's context deadline
	err      error     // sticky: the stream can no longer be trusted
	reading  bool      // a Retr body is open
}

// timeoutConn refreshes the deadline before every read and write.
type timeoutConn struct {
	net.Conn
	c *Client
}

func (t timeoutConn) Read(p []byte) (int, error) {
	t.Conn.SetReadDeadline(t.c.nextDeadline())
	return t.Conn.Read(p)
}

func (t timeoutConn) Write(p []byte) (int, error) {
	t.Conn.SetWriteDeadline(t.c.nextDeadline())
	return t.Conn.Write(p)
}

func (c *Client) nextDeadline() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := time.Now().Add(c.opts.Timeout)
	if !c.deadline.IsZero() && c.deadline.Before(d) {
		d = c.deadline
	}
	return d
}

// NewClient reads the server's greeting on conn (plain or already TLS).
func NewClient(conn net.Conn, opts *Options) (*Client, error) {
	c := &Client{raw: conn}
	if opts != nil {
		c.opts = *opts
	}
	if c.opts.Timeout <= 0 {
		c.opts.Timeout = 60 * time.Second
	}
	c.setConn(conn)
	line, err := c.readLine()
	if err != nil {
		c.Close()
		return nil, err
	}
	kind, text, ok := parseStatus(line)
	switch {
	case !ok:
		c.Close()
		return nil, protoErr("bad greeting", line)
	case kind == replyErr:
		c.Close()
		return nil, parseErr(text)
	case kind != replyOK:
		c.Close()
		return nil, protoErr("bad greeting", line)
	}
	c.greeting = text
	return c, nil
}

func (c *Client) setConn(conn net.Conn) {
	c.conn = conn
	c.br = bufio.NewReaderSize(timeoutConn{conn, c}, 32<<10)
	c.bw = bufio.NewWriterSize(timeoutConn{conn, c}, 4<<10)
}

// APOPTimestamp is the greeting's timestamp for APOP, "" if it has none.
func (c *Client) APOPTimestamp() string { return apopTimestamp(c.greeting) }

// TLSConnectionState reports the TLS state, if the connection is TLS.
func (c *Client) TLSConnectionState() (tls.ConnectionState, bool) {
	if tc, ok := c.conn.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// Close drops the connection without QUIT: the server rolls back every
// DELE of the session.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.mu.Unlock()
	return c.raw.Close()
}

// op brackets one operation: it refuses to start on a broken session,
// applies ctx's deadline, and closes the connection if ctx is cancelled.
// end marks the session broken after any error that leaves the stream out
// of step (everything but a -ERR reply).
func (c *Client) op(ctx context.Context) (end func(*error), err error) {
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, fmt.Errorf("pop3: session unusable: %w", err)
	}
	if c.reading {
		c.mu.Unlock()
		return nil, errors.New("pop3: a message body is still open")
	}
	c.deadline, _ = ctx.Deadline()
	c.mu.Unlock()
	stop := context.AfterFunc(ctx, func() { c.raw.Close() })
	return func(errp *error) {
		if !stop() {
			*errp = fmt.Errorf("pop3: %w", context.Cause(ctx))
		}
		var perr *Error
		var ferr *fnError
		if *errp != nil && !errors.As(*errp, &perr) && !errors.As(*errp, &ferr) {
			c.mu.Lock()
			if c.err == nil {
				c.err = *errp
			}
			c.mu.Unlock()
			c.raw.Close()
		}
	}, nil
}

func (c *Client) trace(dir, line string) {
	if c.opts.Trace != nil {
		fmt.Fprintf(c.opts.Trace, "%s %s\n", dir, line)
	}
}

// send writes one command line; shown is what the trace gets instead of
// line when line holds a secret.
func (c *Client) send(line, shown string) error {
	if shown == "" {
		shown = line
	}
	c.trace("C:", shown)
	if _, err := c.bw.WriteString(line + "\r\n"); err != nil {
		return err
	}
	return nil
}

func (c *Client) flush() error { return c.bw.Flush() }

func (c *Client) readLine() (string, error) {
	line, err := readLine(c.br, maxLine)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return line, err
}

// status reads a status line: the text after +OK, or an *Error for -ERR.
func (c *Client) status() (string, error) {
	line, err := c.readLine()
	if err != nil {
		return "", err
	}
	c.trace("S:", line)
	kind, text, ok := parseStatus(line)
	switch {
	case !ok || kind == replyCont:
		return "", protoErr("bad status line", line)
	case kind == replyErr:
		return "", parseErr(text)
	}
	return text, nil
}

// simple runs a one-line command with a one-line reply.
func (c *Client) simple(ctx context.Context, line, shown string) (text string, err error) {
	end, err := c.op(ctx)
	if err != nil {
		return "", err
	}
	defer end(&err)
	if err := c.send(line, shown); err != nil {
		return "", err
	}
	if err := c.flush(); err != nil {
		return "", err
	}
	return c.status()
}

// multi runs a command whose +OK reply is followed by a listing; each line
// (dot-unstuffed, without its line ending) goes to fn.
func (c *Client) multi(ctx context.Context, line string, fn func(string) error) (err error) {
	end, err := c.op(ctx)
	if err != nil {
		return err
	}
	defer end(&err)
	if err := c.send(line, ""); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	if _, err := c.status(); err != nil {
		return err
	}
	lines := bufio.NewReaderSize(newDotReader(c.br), 4096)
	for count := 0; ; count++ {
		l, err := readLine(lines, maxLine)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if count >= maxEntries {
			return protoErr("listing too long", l)
		}
		if err := fn(l); err != nil {
			// Keep the stream in step: read the listing to its end.
			io.Copy(io.Discard, lines)
			return err
		}
	}
}

// Capa asks for the capabilities (RFC 2449). A server without CAPA answers
// -ERR: the error then wraps ErrNoCapa.
func (c *Client) Capa(ctx context.Context) (Capabilities, error) {
	caps := Capabilities{}
	err := c.multi(ctx, "CAPA", func(l string) error {
		f := fields(l)
		if len(f) > 0 {
			caps[strings.ToUpper(f[0])] = f[1:]
		}
		return nil
	})
	var perr *Error
	if errors.As(err, &perr) {
		return nil, fmt.Errorf("%w: %v", ErrNoCapa, perr)
	}
	return caps, err
}

// StartTLS issues STLS (RFC 2595) and performs the TLS handshake; the
// session then continues over TLS. Run Capa again afterwards.
func (c *Client) StartTLS(ctx context.Context, cfg *tls.Config) (err error) {
	if _, err := c.simple(ctx, "STLS", ""); err != nil {
		return err
	}
	end, err := c.op(ctx)
	if err != nil {
		return err
	}
	defer end(&err)
	if c.br.Buffered() > 0 {
		// Data after +OK and before the handshake: an injection attempt.
		return protoErr("data after STLS reply", "")
	}
	tc := tls.Client(timeoutConn{c.raw, c}, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		return err
	}
	c.setConn(tc)
	return nil
}

// Login authenticates with USER and PASS.
func (c *Client) Login(ctx context.Context, user, pass string) error {
	if _, err := c.simple(ctx, "USER "+user, ""); err != nil {
		return err
	}
	_, err := c.simple(ctx, "PASS "+pass, "PASS <redacted>")
	return err
}

// APOP authenticates with the digest of the greeting's timestamp and the
// shared secret (RFC 1939 section 7).
func (c *Client) APOP(ctx context.Context, user, secret string) error {
	ts := c.APOPTimestamp()
	if ts == "" {
		return errors.New("pop3: the server's greeting has no APOP timestamp")
	}
	sum := md5.Sum([]byte(ts + secret))
	_, err := c.simple(ctx, "APOP "+user+" "+hex.EncodeToString(sum[:]), "APOP "+user+" <redacted>")
	return err
}

// Auth authenticates with a SASL mechanism (RFC 5034).
func (c *Client) Auth(ctx context.Context, mech sasl.Client) (err error) {
	end, err := c.op(ctx)
	if err != nil {
		return err
	}
	defer end(&err)
	name, ir, err := mech.Start()
	if err != nil {
		return err
	}
	line := "AUTH " + name
	if ir != nil {
		enc := "="
		if len(ir) > 0 {
			enc = base64.StdEncoding.EncodeToString(ir)
		}
		line += " " + enc
	}
	if err := c.send(line, "AUTH "+name+" <redacted>"); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	for {
		l, err := c.readLine()
		if err != nil {
			return err
		}
		kind, text, ok := parseStatus(l)
		if !ok {
			return protoErr("bad AUTH reply", l)
		}
		switch kind {
		case replyOK:
			c.trace("S:", l)
			return nil
		case replyErr:
			c.trace("S:", l)
			return parseErr(text)
		}
		c.trace("S:", "+ <redacted>")
		challenge, err := base64.StdEncoding.DecodeString(strings.TrimSpace(text))
		if err != nil {
			return c.cancelAuth(protoErr("bad SASL challenge", text))
		}
		resp, err := mech.Next(challenge)
		if err != nil {
			return c.cancelAuth(err)
		}
		if err := c.send(base64.StdEncoding.EncodeToString(resp), "<redacted>"); err != nil {
			return err
		}
		if err := c.flush(); err != nil {
			return err
		}
	}
}

// cancelAuth sends "*" and reads the server's -ERR, keeping the session in
// step, then returns cause as a server-side failure.
func (c *Client) cancelAuth(cause error) error {
	if err := c.send("*", ""); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	if _, err := c.status(); err != nil {
		var perr *Error
		if errors.As(err, &perr) {
			return &Error{Code: perr.Code, Text: "authentication cancelled: " + cause.Error()}
		}
		return err
	}
	return protoErr("server accepted a cancelled AUTH", "")
}

// Stat returns the number of messages and their total size.
func (c *Client) Stat(ctx context.Context) (int, int64, error) {
	text, err := c.simple(ctx, "STAT", "")
	if err != nil {
		return 0, 0, err
	}
	return parseStat(text)
}

// List returns the number and size of every message.
func (c *Client) List(ctx context.Context) ([]MessageInfo, error) {
	var out []MessageInfo
	err := c.multi(ctx, "LIST", func(l string) error {
		mi, err := parseScan(l)
		if err == nil {
			out = append(out, mi)
		}
		return err
	})
	return out, err
}

// UIDL returns every message's unique ID. A server without UIDL answers
// -ERR: the error is then an *Error.
func (c *Client) UIDL(ctx context.Context) ([]MessageUID, error) {
	var out []MessageUID
	err := c.multi(ctx, "UIDL", func(l string) error {
		mu, err := parseUID(l)
		if err == nil {
			out = append(out, mu)
		}
		return err
	})
	return out, err
}

// Retr starts streaming message num. The reader ends at the message's end;
// Close drains what is left so the session can go on. No other command may
// run while it is open.
func (c *Client) Retr(ctx context.Context, num int) (io.ReadCloser, error) {
	end, err := c.op(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.send("RETR "+strconv.Itoa(num), ""); err == nil {
		if err = c.flush(); err == nil {
			_, err = c.status()
		}
	}
	if err != nil {
		end(&err)
		return nil, err
	}
	c.mu.Lock()
	c.reading = true
	c.mu.Unlock()
	return &body{c: c, r: newDotReader(c.br), end: end}, nil
}

// body is an open RETR reply.
type body struct {
	c      *Client
	r      *dotReader
	end    func(*error)
	closed bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("pop3: read from a closed message body")
	}
	return b.r.Read(p)
}

func (b *body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	_, err := io.Copy(io.Discard, b.r)
	b.c.mu.Lock()
	b.c.reading = false
	b.c.mu.Unlock()
	b.end(&err)
	return err
}

// pipelineWindow is how many commands are sent ahead of their replies.
// They are a few bytes each, far below what socket buffers hold, so
// writing them can never block on the replies we have not read yet.
const pipelineWindow = 64

// RetrEach retrieves the messages nums in order and calls fn with each
// body, which fn may read in part or not at all (the rest is drained).
// With pipelining the RETR commands go out ahead of their replies, so a
// batch costs about one round trip instead of one per message.
//
// A -ERR for a message (deleted meanwhile, say) does not stop the others:
// it is returned in failed. If fn returns an error, RetrEach calls fn no
// more, reads the replies already asked for so the session stays usable,
// and returns that error.
func (c *Client) RetrEach(ctx context.Context, nums []int, pipelining bool, fn func(num int, body io.Reader) error) (failed map[int]error, err error) {
	end, err := c.op(ctx)
	if err != nil {
		return nil, err
	}
	defer end(&err)
	window := 1
	if pipelining {
		window = pipelineWindow
	}
	sent := 0
	var fnErr error
	for i := 0; i < len(nums); {
		// Keep up to window commands outstanding.
		for sent < len(nums) && sent-i < window && fnErr == nil {
			if err := c.send("RETR "+strconv.Itoa(nums[sent]), ""); err != nil {
				return failed, err
			}
			sent++
		}
		if err := c.flush(); err != nil {
			return failed, err
		}
		if i >= sent {
			break // fn failed and every reply asked for is read
		}
		num := nums[i]
		i++
		if _, err := c.status(); err != nil {
			var perr *Error
			if !errors.As(err, &perr) {
				return failed, err
			}
			if failed == nil {
				failed = map[int]error{}
			}
			failed[num] = perr
			continue
		}
		r := newDotReader(c.br)
		if fnErr == nil {
			fnErr = fn(num, r)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return failed, err
		}
	}
	if fnErr != nil {
		// fn's error does not break the session.
		return failed, &fnError{fnErr}
	}
	return failed, nil
}

// fnError carries a caller's error through op's bookkeeping without
// marking the session broken.
type fnError struct{ err error }

func (e *fnError) Error() string { return e.err.Error() }
func (e *fnError) Unwrap() error { return e.err }

// Dele marks messages for deletion, pipelined when allowed. The server
// deletes them only when the session ends with a successful Quit. The
// first -ERR is returned after every reply was read.
func (c *Client) Dele(ctx context.Context, nums []int, pipelining bool) (err error) {
	end, err := c.op(ctx)
	if err != nil {
		return err
	}
	defer end(&err)
	window := 1
	if pipelining {
		window = pipelineWindow
	}
	var first error
	for start := 0; start < len(nums); start += window {
		batch := nums[start:min(start+window, len(nums))]
		for _, n := range batch {
			if err := c.send("DELE "+strconv.Itoa(n), ""); err != nil {
				return err
			}
		}
		if err := c.flush(); err != nil {
			return err
		}
		for range batch {
			if _, err := c.status(); err != nil {
				var perr *Error
				if !errors.As(err, &perr) {
					return err
				}
				if first == nil {
					first = err
				}
			}
		}
	}
	return first
}

// Rset unmarks every message marked for deletion in this session.
func (c *Client) Rset(ctx context.Context) error {
	_, err := c.simple(ctx, "RSET", "")
	return err
}

// Noop does nothing but prove the connection alive.
func (c *Client) Noop(ctx context.Context) error {
	_, err := c.simple(ctx, "NOOP", "")
	return err
}

// Quit ends the session. Only a +OK to QUIT commits the session's
// deletions (the UPDATE state of RFC 1939); the connection is closed
// either way.
func (c *Client) Quit(ctx context.Context) error {
	_, err := c.simple(ctx, "QUIT", "")
	c.Close()
	return err
}
