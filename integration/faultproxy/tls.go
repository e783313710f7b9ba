package faultproxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"time"
)

// setupTLS does the NewTLS part: relay the plaintext dialogue up to
// STARTTLS/STLS if any, then the TLS handshakes on both sides.
func (c *conn) setupTLS() error {
	p := c.p
	var clientR, serverR io.Reader = c.client, c.server
	if p.mode != ImplicitTLS {
		cb, sb, err := c.relayPlaintext()
		if err != nil {
			return err
		}
		clientR = io.MultiReader(bytes.NewReader(bufferedOf(cb)), c.client)
		serverR = io.MultiReader(bytes.NewReader(bufferedOf(sb)), c.server)
	}
	c.cwrap = &cutConn{Conn: c.client, r: clientR}
	c.ctls = tls.Server(c.cwrap, p.clientTLS)
	c.stls = tls.Client(bufConn{Conn: c.server, r: serverR}, p.serverTLS)
	deadline := time.Now().Add(10 * time.Second)
	c.client.SetDeadline(deadline)
	c.server.SetDeadline(deadline)
	if err := c.ctls.Handshake(); err != nil {
		return err
	}
	if err := c.stls.Handshake(); err != nil {
		return err
	}
	c.client.SetDeadline(time.Time{})
	c.server.SetDeadline(time.Time{})
	c.cr, c.cw, c.sr, c.sw = c.ctls, c.ctls, c.stls, c.stls
	return nil
}

func bufferedOf(r *bufio.Reader) []byte {
	b, _ := r.Peek(r.Buffered())
	return append([]byte(nil), b...)
}

// relayPlaintext relays lines both ways until the client asked for
// STARTTLS/STLS and the server said yes. It returns the two readers, which
// may hold bytes already read past that point.
func (c *conn) relayPlaintext() (cb, sb *bufio.Reader, err error) {
	cb, sb = bufio.NewReader(c.client), bufio.NewReader(c.server)
	var (
		mu     sync.Mutex
		expect string // the tag whose answer switches to TLS; "+" for POP3
		answer = make(chan bool, 1)
	)
	clientDone := make(chan error, 1)
	c.p.wg.Add(1)
	go func() {
		defer c.p.wg.Done()
		for {
			line, err := cb.ReadString('\n')
			if err != nil {
				clientDone <- err
				return
			}
			tag, ok := c.startTLSCommand(line)
			if ok {
				mu.Lock()
				expect = tag
				mu.Unlock()
			}
			if _, err := io.WriteString(c.server, line); err != nil {
				clientDone <- err
				return
			}
			if !ok {
				continue
			}
			// The client sends nothing more until the answer.
			select {
			case yes := <-answer:
				if yes {
					clientDone <- nil
					return
				}
			case <-c.dead:
				clientDone <- net.ErrClosed
				return
			}
		}
	}()
	for {
		line, err := sb.ReadString('\n')
		if err != nil {
			c.teardown(false)
			<-clientDone
			return nil, nil, err
		}
		// Whether this line may answer STARTTLS/STLS is decided before the
		// client sees it: once it has, it may already have sent the command
		// (after the greeting, say), whose answer is a later line.
		mu.Lock()
		tag := expect
		mu.Unlock()
		c.preTLS += int64(len(line))
		if _, err := io.WriteString(c.client, line); err != nil {
			c.teardown(false)
			<-clientDone
			return nil, nil, err
		}
		if tag == "" {
			continue
		}
		done, yes := startTLSAnswer(tag, line)
		if !done {
			continue
		}
		mu.Lock()
		expect = ""
		mu.Unlock()
		answer <- yes
		if yes {
			if err := <-clientDone; err != nil {
				return nil, nil, err
			}
			return cb, sb, nil
		}
	}
}

// startTLSCommand tells whether a client line asks for TLS, and the tag
// that the answer will carry.
func (c *conn) startTLSCommand(line string) (string, bool) {
	fields := strings.Fields(line)
	switch c.p.mode {
	case IMAPStartTLS:
		if len(fields) == 2 && strings.EqualFold(fields[1], "STARTTLS") {
			return fields[0], true
		}
	case POP3STLS:
		if len(fields) == 1 && strings.EqualFold(fields[0], "STLS") {
			return "+", true
		}
	}
	return "", false
}

// startTLSAnswer tells whether a server line answers the STARTTLS/STLS
// command with this tag, and whether it said yes.
func startTLSAnswer(tag, line string) (done, yes bool) {
	if tag == "+" {
		switch {
		case strings.HasPrefix(line, "+OK"):
			return true, true
		case strings.HasPrefix(line, "-ERR"):
			return true, false
		}
		return false, false
	}
	fields := strings.Fields(line)
	if len(fields) < 2 || fields[0] != tag {
		return false, false
	}
	return true, strings.EqualFold(fields[1], "OK")
}

// cutConn is the client's raw connection under the proxy's TLS server: on
// demand it lets only part of the next write (one TLS record) through and
// then sends a FIN.
type cutConn struct {
	net.Conn
	mu       sync.Mutex
	truncate bool
	r        io.Reader // what was buffered during the plaintext phase, then Conn
}

var errTruncated = errors.New("faultproxy: record truncated")

func (w *cutConn) truncateNext() {
	w.mu.Lock()
	w.truncate = true
	w.mu.Unlock()
}

func (w *cutConn) Read(b []byte) (int, error) { return w.r.Read(b) }

func (w *cutConn) Write(b []byte) (int, error) {
	w.mu.Lock()
	t := w.truncate
	w.mu.Unlock()
	if !t {
		return w.Conn.Write(b)
	}
	k := max(len(b)/2, min(6, len(b)-1)) // at least the header and a byte
	w.Conn.Write(b[:k])
	if tc, ok := w.Conn.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	return k, errTruncated
}

// bufConn reads what a bufio.Reader still holds, then the connection.
type bufConn struct {
	net.Conn
	r io.Reader
}

func (b bufConn) Read(p []byte) (int, error) { return b.r.Read(p) }

// records follows the TLS record boundaries of the server→client stream.
type records struct {
	next   int64 // offset of the next record header; -1 before TLS starts
	hdr    [5]byte
	hdrLen int
	last   int64 // last boundary reported, so that none is twice
	seen   bool
}

// feed takes the bytes at stream offsets [pos, pos+len(data)), TLS having
// started at offset start, and returns the record boundaries (offsets at
// which a record header begins) in [pos, pos+len(data)], in order. A
// boundary at the very end is known once the record before it is complete.
func (r *records) feed(start, pos int64, data []byte) []int64 {
	if r.next < 0 {
		r.next = start
	}
	end := pos + int64(len(data))
	if r.next+int64(r.hdrLen) < pos {
		return nil // bytes were missed: no boundaries known any more
	}
	var bounds []int64
	for {
		if r.hdrLen == 0 {
			if r.next > end {
				return bounds
			}
			if !r.seen || r.next != r.last {
				bounds = append(bounds, r.next)
				r.last, r.seen = r.next, true
			}
			if r.next == end {
				return bounds
			}
		}
		for r.hdrLen < 5 {
			i := r.next + int64(r.hdrLen) - pos
			if i >= int64(len(data)) {
				return bounds
			}
			r.hdr[r.hdrLen] = data[i]
			r.hdrLen++
		}
		r.next += 5 + (int64(r.hdr[3])<<8 | int64(r.hdr[4]))
		r.hdrLen = 0
	}
}
