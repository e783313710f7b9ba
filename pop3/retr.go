package pop3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// maxPipeline bounds the commands in flight. Replies can be large, so the
// server may stop reading commands while we are not reading replies;
// keeping the unread commands to a couple of kilobytes (well under any
// socket buffer) means our writes never block on that. 128 keeps a link
// with 100 ms of round trip busy even with small messages.
const maxPipeline = 128

var (
	errReaderClosed = errors.New("pop3: read from a closed message reader")
	errBodyDone     = errors.New("pop3: message body read after the callback returned")
)

// bodyReader streams one message body to its terminator.
type bodyReader struct {
	c   *Client
	dr  *dotReader
	n   int64
	err error // sticky: io.EOF, a fatal error, or errBodyDone
}

func (c *Client) newBody() *bodyReader {
	return &bodyReader{c: c, dr: newDotReader(c.br)}
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.dr.Read(p)
	b.n += int64(n)
	switch {
	case err == io.EOF:
		b.err = io.EOF
		b.c.tracef("S: <%d octets of message data>", b.n)
		b.c.tracef("S: .")
	case err != nil:
		// Never io.EOF here: dotReader reports a cut as
		// io.ErrUnexpectedEOF, and fail keeps it so.
		b.err = b.c.fail(err)
		err = b.err
	}
	return n, err
}

// drain discards the rest of the body, leaving the connection at the next
// reply.
func (b *bodyReader) drain() error {
	_, err := io.Copy(io.Discard, b)
	return err
}

// retrReader is what Retr returns: it owns the connection until it has
// read the terminator or failed.
type retrReader struct {
	body   *bodyReader
	end    func()
	done   bool
	closed bool
}

func (r *retrReader) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errReaderClosed
	}
	n, err := r.body.Read(p)
	if err != nil {
		r.release()
	}
	return n, err
}

func (r *retrReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	err := r.body.drain()
	r.release()
	return err
}

func (r *retrReader) release() {
	if !r.done {
		r.done = true
		r.end()
	}
}

// Retr retrieves message num. The reader streams the body dot-unstuffed
// and byte-exact: every octet the server sent before the terminating "."
// line, including the line ending that precedes it (for a message whose
// last line had none, that is the CRLF the server added). It returns
// io.EOF only after the terminator; a cut connection gives
// io.ErrUnexpectedEOF or the network error.
//
// ctx governs the reads too, until the reader is done. Until then no other
// command may be sent; Close drains the rest of the body so the session
// stays usable. A -ERR (no such message) is returned as *Error.
func (c *Client) Retr(ctx context.Context, num int) (io.ReadCloser, error) {
	end, err := c.begin(ctx)
	if err != nil {
		return nil, err
	}
	c.writeCmd("RETR "+strconv.Itoa(num), "")
	if err := c.flush(); err != nil {
		end()
		return nil, err
	}
	if _, err := c.readOK(); err != nil {
		end()
		return nil, err
	}
	return &retrReader{body: c.newBody(), end: end}, nil
}

// RetrEach retrieves the messages nums in order, calling fn with each body
// (as Retr's reader, but ending at the terminator; fn need not read it all,
// and must not use it after returning).
//
// With pipelining (only if the server advertised PIPELINING), up to
// maxPipeline RETR commands are in flight, refilled as replies are read; otherwise one
// at a time.
//
// A -ERR for a message does not stop the others: it is recorded in failed
// (message number to *Error) and fn is not called for it. If fn returns an
// error, RetrEach calls fn no more, sends no more commands, reads the
// outstanding replies so the session stays usable, and returns that error
// as is. Any other error is fatal to the session.
func (c *Client) RetrEach(ctx context.Context, nums []int, pipelining bool, fn func(num int, body io.Reader) error) (failed map[int]*Error, err error) {
	return c.multiEach(ctx, "RETR", "", nums, pipelining, fn)
}

// TopEach is RetrEach for TOP num 0: fn reads each message's header
// section (and the blank line after it). TOP is optional (RFC 1939); a
// server without it answers -ERR for every message.
func (c *Client) TopEach(ctx context.Context, nums []int, pipelining bool, fn func(num int, header io.Reader) error) (failed map[int]*Error, err error) {
	return c.multiEach(ctx, "TOP", " 0", nums, pipelining, fn)
}

// multiEach runs "cmd num args" for each of nums, each answered by a
// multi-line reply handed to fn; see RetrEach.
func (c *Client) multiEach(ctx context.Context, cmd, args string, nums []int, pipelining bool, fn func(num int, body io.Reader) error) (failed map[int]*Error, err error) {
	var fnErr error
	err = c.pipeline(ctx, cmd, args, nums, pipelining, func(num int, perr *Error) (stop bool, err error) {
		if perr != nil {
			if failed == nil {
				failed = map[int]*Error{}
			}
			failed[num] = perr
			return false, nil
		}
		body := c.newBody()
		if fnErr == nil {
			fnErr = fn(num, body)
		}
		if err := body.drain(); err != nil {
			return true, err
		}
		body.err = errBodyDone
		return fnErr != nil, nil
	})
	if fnErr != nil {
		// If the session died too, the sticky error says so next time.
		return failed, fnErr
	}
	return failed, err
}

// Dele marks the messages nums deleted; they are removed only if Quit
// succeeds. With pipelining the commands are pipelined as in RetrEach. All
// replies are read; the first -ERR is returned (wrapping the *Error) after
// them, the session still usable.
func (c *Client) Dele(ctx context.Context, nums []int, pipelining bool) error {
	var first error
	err := c.pipeline(ctx, "DELE", "", nums, pipelining, func(num int, perr *Error) (bool, error) {
		if perr != nil && first == nil {
			first = fmt.Errorf("message %d: %w", num, perr)
		}
		return false, nil
	})
	if err != nil {
		return err
	}
	return first
}

// pipeline sends "cmd num args" for each of nums, at most maxPipeline (or, if
// !pipelining, one) in flight, and calls each after reading the status line
// of each reply, with the -ERR if there was one. each must consume the
// rest of a +OK reply. If each says stop, no more commands are sent but
// the outstanding replies are still handed to each. An error from each is
// returned at once.
func (c *Client) pipeline(ctx context.Context, cmd, args string, nums []int, pipelining bool, each func(num int, perr *Error) (stop bool, err error)) error {
	end, err := c.begin(ctx)
	if err != nil {
		return err
	}
	defer end()
	window := 1
	if pipelining {
		window = maxPipeline
	}
	limit, sent := len(nums), 0
	for next := 0; next < limit; next++ {
		// Refill in batches, so that a long run costs few writes.
		if inFlight := sent - next; inFlight == 0 || inFlight <= window/2 {
			for sent < limit && sent-next < window {
				c.writeCmd(cmd+" "+strconv.Itoa(nums[sent])+args, "")
				sent++
			}
			if err := c.flush(); err != nil {
				return err
			}
		}
		var perr *Error
		if _, err := c.readOK(); err != nil && !errors.As(err, &perr) {
			return err
		}
		stop, err := each(nums[next], perr)
		if err != nil {
			return err
		}
		if stop {
			limit = sent
		}
	}
	return nil
}
