package faultproxy

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// conn is one proxied connection.
type conn struct {
	p      *Proxy
	client net.Conn // raw TCP, from the client
	server net.Conn // raw TCP, to the upstream
	fault  *Fault

	// What the pipes read and write: the raw connections, or the TLS
	// connections over them (NewTLS).
	cr, sr io.Reader
	cw, sw io.Writer
	ctls   *tls.Conn // NewTLS: the client's TLS connection
	stls   *tls.Conn // NewTLS: the upstream TLS connection
	cwrap  *cutConn  // NewTLS: under ctls, truncates a record on demand

	s2c, c2s atomic.Int64
	tlsStart atomic.Int64 // New: see Session.TLSStart
	preTLS   int64        // NewTLS: plaintext server bytes before STARTTLS
	// ended: the fault was applied; client data is no longer forwarded
	// and write errors towards the server are expected.
	ended atomic.Bool

	mu    sync.Mutex
	turns []int64
	cut   bool
	cutAt int64
	torn  bool // teardown ran: a server connection made after it is closed at once

	once sync.Once
	dead chan struct{} // closed by teardown
}

// run proxies the connection to its end.
func (c *conn) run() {
	p := c.p
	defer p.wg.Done()
	defer c.finish()

	server, err := net.DialTimeout("tcp", p.target, 10*time.Second)
	if err != nil {
		c.teardown(false)
		return
	}
	c.mu.Lock()
	if c.torn { // the proxy was closed meanwhile
		c.mu.Unlock()
		server.Close()
		return
	}
	c.server = server
	c.mu.Unlock()

	if p.terminate {
		if err := c.setupTLS(); err != nil {
			c.teardown(false)
			return
		}
	} else {
		c.cr, c.cw, c.sr, c.sw = c.client, c.client, server, server
	}

	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.serverToClient() }()
	go func() { defer wg.Done(); c.clientToServer() }()
	wg.Wait()
	c.teardown(false)
}

// finish records the session and forgets the connection.
func (c *conn) finish() {
	p := c.p
	c.mu.Lock()
	st := Session{
		ServerBytes: c.s2c.Load(),
		ClientBytes: c.c2s.Load(),
		TLSStart:    c.tlsStart.Load(),
		Turns:       append([]int64(nil), c.turns...),
		Fault:       c.fault,
		Cut:         c.cut,
		CutAt:       c.cutAt,
	}
	c.mu.Unlock()
	if p.terminate {
		st.TLSStart = c.preTLS
	}
	p.mu.Lock()
	p.sessions = append(p.sessions, st)
	delete(p.conns, c)
	p.idle.Broadcast()
	p.mu.Unlock()
}

// teardown closes both raw connections, with a reset towards the client if
// rst. Only the raw connections are closed: closing a tls.Conn would send a
// close_notify, which is an ending of its own.
func (c *conn) teardown(rst bool) {
	c.once.Do(func() {
		if rst {
			if tc, ok := c.client.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
		}
		c.client.Close()
		c.mu.Lock()
		c.torn = true
		server := c.server
		c.mu.Unlock()
		if server != nil {
			server.Close()
		}
		close(c.dead)
	})
}

// sleep waits d, or less if the connection is torn down; it reports
// whether the connection is still up.
func (c *conn) sleep(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-c.dead:
			return false
		default:
			return true
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.dead:
		return false
	case <-t.C:
		return true
	}
}

// chunk is what one Read returned, and when it is due at the other end.
type chunk struct {
	data []byte
	due  time.Time
	err  error
}

// reader reads src in its own goroutine, so that latency delays each chunk
// from the moment it was read, not from when the previous one was written:
// a long transfer sees the added round-trip time once, as on a real link.
// The channel is closed after the first error; teardown makes Read fail.
func (c *conn) reader(src io.Reader) <-chan chunk {
	chunks := make(chan chunk, 256)
	c.p.wg.Add(1)
	go func() {
		defer c.p.wg.Done()
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			select {
			case chunks <- chunk{data: buf[:n], due: time.Now().Add(time.Duration(c.p.latency.Load())), err: err}:
			case <-c.dead:
				return
			}
			if err != nil {
				return
			}
		}
	}()
	return chunks
}

// clientToServer forwards the client's bytes, notes turns and where TLS
// starts, and after a fault keeps reading the client (discarding) until it
// closes, so that the client's connection ends with its own close and not
// with a reset caused by unread data.
func (c *conn) clientToServer() {
	chunks := c.reader(c.cr)
	for ch := range chunks {
		if n := len(ch.data); n > 0 {
			at := c.s2c.Load()
			c.mu.Lock()
			if len(c.turns) == 0 || c.turns[len(c.turns)-1] != at {
				c.turns = append(c.turns, at)
			}
			c.mu.Unlock()
			if !c.p.terminate && c.tlsStart.Load() < 0 && ch.data[0] == 0x16 && (n < 2 || ch.data[1] == 0x03) {
				// A ClientHello: the server's next bytes are TLS records.
				c.tlsStart.Store(at)
			}
			if !c.ended.Load() {
				if !c.sleep(time.Until(ch.due)) {
					return
				}
				if _, err := c.sw.Write(ch.data); err != nil {
					if c.ended.Load() {
						continue
					}
					c.teardown(false)
					return
				}
				c.c2s.Add(int64(n))
			}
		}
		if ch.err != nil {
			if ch.err != io.EOF || c.ended.Load() {
				// Gone, or the fault already ended the session: close
				// everything (a Stall keeps the server connection until
				// now).
				c.teardown(false)
				return
			}
			// A clean half-close: pass it on.
			c.closeWriteServer()
			return
		}
	}
}

func (c *conn) closeWriteServer() {
	if c.stls != nil {
		c.stls.CloseWrite() // close_notify
	}
	if tc, ok := c.server.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// closeWriteClient sends the client a FIN, after a close_notify if notify
// (NewTLS only).
func (c *conn) closeWriteClient(notify bool) {
	if notify && c.ctls != nil {
		c.ctls.CloseWrite()
	}
	if tc, ok := c.client.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// s2c states after the fault's offset.
const (
	forwarding = iota
	dripping
	stalled
)

// serverToClient forwards the server's bytes and applies the fault.
func (c *conn) serverToClient() {
	chunks := c.reader(c.sr)
	var (
		pos       int64 // server→client bytes forwarded
		rec       = records{next: -1}
		state     = forwarding
		midTarget = int64(-1) // FINMidRecord on TLS records: where to cut
		f         = c.fault
	)
	for ch := range chunks {
		if state == stalled {
			continue // read and drop until the server or the client ends
		}
		data := ch.data
		if len(data) > 0 {
			if !c.sleep(time.Until(ch.due)) {
				return
			}
			var bounds []int64
			start := int64(-1) // where TLS records start, if known
			if !c.p.terminate {
				if start = c.tlsStart.Load(); start >= 0 && pos+int64(len(data)) > start {
					bounds = rec.feed(start, pos, data)
				}
			}
			if f != nil {
				k := c.cutPoint(f, pos, data, start, bounds, &midTarget)
				if k >= 0 {
					if !c.write(data[:k], state == dripping) {
						return
					}
					pos += int64(k)
					data = data[k:]
					f = nil
					switch c.applyFault(pos) {
					case stalled:
						state = stalled
						continue
					case dripping:
						state = dripping
					default:
						return
					}
				}
			}
			if !c.write(data, state == dripping) {
				return
			}
			pos += int64(len(data))
		}
		if ch.err != nil {
			if ch.err == io.EOF {
				c.closeWriteClient(true)
				return
			}
			// The upstream broke the connection: so does the proxy, a
			// reset if the upstream reset.
			c.teardown(errors.Is(ch.err, syscall.ECONNRESET))
			return
		}
	}
}

// cutPoint returns where in data (at stream offset pos) the fault applies,
// -1 if not in this chunk. TLS records start at offset start (-1: not yet,
// or not at all); bounds are the record boundaries in this chunk.
func (c *conn) cutPoint(f *Fault, pos int64, data []byte, start int64, bounds []int64, midTarget *int64) int {
	end := pos + int64(len(data))
	after := f.After
	if f.Anchor > 0 {
		c.mu.Lock()
		i, _ := slices.BinarySearch(c.turns, f.Anchor)
		i += f.Turn
		if i >= len(c.turns) {
			c.mu.Unlock()
			return -1 // the client has not said it yet
		}
		after += c.turns[i]
		c.mu.Unlock()
	}
	if start < 0 || after <= start || (f.End != FINRecord && f.End != FINMidRecord) {
		if after <= end {
			return int(max(after-pos, 0))
		}
		return -1
	}
	switch f.End {
	case FINRecord:
		for _, b := range bounds {
			if b >= after {
				return int(b - pos)
			}
		}
	case FINMidRecord:
		if *midTarget < 0 {
			if after > end {
				return -1
			}
			t := max(after, pos)
			for _, b := range bounds {
				if b == t {
					t++ // on a boundary: one byte into the record
					break
				}
			}
			*midTarget = t
		}
		if *midTarget <= end {
			return int(*midTarget - pos)
		}
	}
	return -1
}

// applyFault ends the session as the fault says, at offset pos, and returns
// the state serverToClient goes on in (forwarding means: stop).
func (c *conn) applyFault(pos int64) int {
	c.mu.Lock()
	c.cut, c.cutAt = true, pos
	c.mu.Unlock()
	c.p.cuts.Add(1)
	if c.fault.End != Drip { // a drip still forwards the client's bytes
		c.ended.Store(true)
	}
	switch c.fault.End {
	case RST:
		// Let the client read what came before the cut, then reset: not a
		// clean close, the client must see an error.
		c.sleep(50 * time.Millisecond)
		c.teardown(true)
	case FINRecord:
		c.closeWriteClient(false)
		c.server.Close()
	case FINMidRecord:
		if c.cwrap != nil {
			// Part of one more record, then the FIN: the record is sealed
			// around a byte the client never gets to decrypt.
			c.cwrap.truncateNext()
			c.ctls.Write([]byte{'\n'})
		}
		c.closeWriteClient(false)
		c.server.Close()
	case CloseNotify:
		c.closeWriteClient(true)
		c.server.Close()
	case Stall:
		return stalled
	case Drip:
		return dripping
	}
	return forwarding
}

// write sends data to the client, slowly when dripping; it counts what it
// forwards before writing it, so that the count is right by the time the
// client can answer.
func (c *conn) write(data []byte, drip bool) bool {
	if !drip {
		if len(data) == 0 {
			return true
		}
		c.s2c.Add(int64(len(data)))
		if _, err := c.cw.Write(data); err != nil {
			c.teardown(false)
			return false
		}
		return true
	}
	for len(data) > 0 {
		n := min(int(c.p.dripBytes.Load()), len(data))
		c.s2c.Add(int64(n))
		if _, err := c.cw.Write(data[:n]); err != nil {
			c.teardown(false)
			return false
		}
		data = data[n:]
		if !c.sleep(time.Duration(c.p.dripEvery.Load())) {
			return false
		}
	}
	return true
}
