// Package faultproxy is a TCP proxy for tests that need a bad network: it
// forwards connections to an upstream and can end them at a chosen number of
// bytes from the server, in every way a real network ends a connection (see
// Ending), or delay every chunk by a fixed latency. It listens on loopback
// only.
//
// New makes a transparent proxy: the bytes it forwards are whatever the two
// ends say, TLS included, and offsets count raw server→client bytes. NewTLS
// makes a TLS-terminating proxy (like stunnel or haproxy re-encrypting): it
// is the TLS server for the client and a TLS client to the upstream, and its
// offsets count plaintext server→client bytes once TLS is up.
package faultproxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Ending is how a connection is ended when its fault's offset is reached.
type Ending int

const (
	// RST resets the client's TCP connection (SO_LINGER 0), after a short
	// pause that lets the client read what came before.
	RST Ending = iota
	// FINRecord ends the client's connection with a clean TCP FIN at a TLS
	// record boundary: the first one at or after the offset. On a stream
	// that is still plaintext (before STARTTLS, or a plaintext protocol)
	// the FIN comes at the offset. Through NewTLS the boundary is at the
	// offset exactly.
	FINRecord
	// FINMidRecord ends the client's connection with a clean TCP FIN
	// strictly inside a TLS record: at the offset, or one byte further if
	// the offset falls on a record boundary. Through NewTLS the client has
	// all the plaintext up to the offset, then part of one more record.
	// On plaintext it is a FIN at the offset.
	FINMidRecord
	// CloseNotify (NewTLS only) sends the client a TLS close_notify alert
	// at the offset, then a FIN: a perfectly clean TLS ending.
	CloseNotify
	// Stall forwards nothing more, in either direction, from the offset
	// on, but keeps both connections open until the client closes its own
	// (or the proxy is closed).
	Stall
	// Drip forwards server→client bytes slowly from the offset on (see
	// SetDrip; by default 64 bytes every 20 ms) until the client closes.
	Drip
)

// Endings lists every Ending, in order.
var Endings = []Ending{RST, FINRecord, FINMidRecord, CloseNotify, Stall, Drip}

func (e Ending) String() string {
	switch e {
	case RST:
		return "RST"
	case FINRecord:
		return "FINRecord"
	case FINMidRecord:
		return "FINMidRecord"
	case CloseNotify:
		return "CloseNotify"
	case Stall:
		return "Stall"
	case Drip:
		return "Drip"
	}
	return fmt.Sprintf("Ending(%d)", int(e))
}

// Fault ends one connection: End, once After server→client bytes have been
// forwarded (raw bytes through New, plaintext bytes after the handshake
// through NewTLS).
//
// With Anchor > 0, After counts instead from the start of the server's
// answer to one client message: the first client turn (see Session.Turns)
// at or after server→client offset Anchor, or with Turn > 0 the Turn-th
// turn after that one. A fault placed that way stays on the answer it is
// meant to hit even when what came before varies in length from one
// connection to the next (TLS handshakes, record sizes, greetings with
// timestamps). If no such turn comes, the fault is never reached.
type Fault struct {
	After  int64
	End    Ending
	Anchor int64
	Turn   int
}

func (f Fault) String() string {
	switch {
	case f.Anchor > 0 && f.Turn > 0:
		return fmt.Sprintf("%v@%d after turn %d after the turn at or after %d", f.End, f.After, f.Turn, f.Anchor)
	case f.Anchor > 0:
		return fmt.Sprintf("%v@%d after the turn at or after %d", f.End, f.After, f.Anchor)
	}
	return fmt.Sprintf("%v@%d", f.End, f.After)
}

// Mode is how a TLS-terminating proxy (NewTLS) reaches TLS.
type Mode int

const (
	// ImplicitTLS: TLS from the first byte on both sides (imaps, pop3s).
	ImplicitTLS Mode = iota
	// IMAPStartTLS: plaintext IMAP lines are relayed until the client's
	// "tag STARTTLS" and the server's tagged OK, then TLS on both sides.
	IMAPStartTLS
	// POP3STLS: plaintext POP3 lines are relayed until the client's STLS
	// and the server's +OK, then TLS on both sides.
	POP3STLS
)

// Session describes one finished connection.
type Session struct {
	// ServerBytes is how many server→client bytes were forwarded, in the
	// offsets' unit: raw bytes (New), or plaintext bytes after the
	// handshake (NewTLS).
	ServerBytes int64
	// ClientBytes is the same for client→server.
	ClientBytes int64
	// TLSStart: through New, the server→client offset at which TLS
	// records begin (0 for implicit TLS, the length of the plaintext
	// dialogue for STARTTLS/STLS), -1 if the client never sent a
	// ClientHello. Through NewTLS, how many plaintext bytes the server
	// sent before STARTTLS/STLS took effect (not counted in offsets).
	TLSStart int64
	// Turns are the server→client offsets at which the client sent
	// something: the server's answer to one client message is the stretch
	// between two turns. Repeated values are recorded once, so that a
	// message the client wrote at once counts once however TCP split it.
	// Through New, the TLS handshake's client flights are turns too.
	Turns []int64
	// Fault is the fault this connection was given, nil for none.
	Fault *Fault
	// Cut: the fault's offset was reached and its ending applied, at
	// server→client offset CutAt.
	Cut   bool
	CutAt int64
}

// Proxy forwards every accepted connection to its target.
type Proxy struct {
	Addr   string // where clients connect, 127.0.0.1:PORT
	target string
	ln     net.Listener

	// TLS termination (NewTLS); terminate false for New.
	terminate bool
	mode      Mode
	clientTLS *tls.Config // server side, towards the client
	serverTLS *tls.Config // client side, towards the upstream

	// Legacy CutAfter: if cutAfter > 0, new connections get an RST fault
	// at cutAfter while cutsLeft != 0 (negative: no bound).
	cutAfter  atomic.Int64
	cutsLeft  atomic.Int64
	cuts      atomic.Int64 // faults applied so far
	latency   atomic.Int64 // one-way delay added to every chunk, ns
	dripBytes atomic.Int64
	dripEvery atomic.Int64 // ns

	mu       sync.Mutex
	schedule []Fault
	conns    map[*conn]struct{}
	sessions []Session
	closed   bool
	idle     *sync.Cond // signalled when a connection ends

	wg sync.WaitGroup
}

// New starts a transparent proxy to target ("host:port").
func New(target string) (*Proxy, error) {
	return start(target, func(*Proxy) {})
}

// NewTLS starts a TLS-terminating proxy to target: clients do TLS with the
// proxy, which presents serverCert (it must be valid for the name the
// client checks); the proxy does TLS with target using upstream (which must
// name the server or skip verification). All endings work on the client's
// connection; offsets count plaintext server→client bytes after the TLS
// handshake with the client (what came before STARTTLS/STLS is relayed
// untouched and never cut).
func NewTLS(target string, mode Mode, serverCert tls.Certificate, upstream *tls.Config) (*Proxy, error) {
	if mode != ImplicitTLS && mode != IMAPStartTLS && mode != POP3STLS {
		return nil, fmt.Errorf("faultproxy: unknown mode %d", mode)
	}
	if upstream == nil {
		upstream = &tls.Config{}
	}
	return start(target, func(p *Proxy) {
		p.terminate = true
		p.mode = mode
		p.clientTLS = &tls.Config{Certificates: []tls.Certificate{serverCert}}
		p.serverTLS = upstream.Clone()
	})
}

func start(target string, setup func(*Proxy)) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[*conn]struct{}{}}
	p.idle = sync.NewCond(&p.mu)
	p.cutsLeft.Store(-1)
	p.dripBytes.Store(64)
	p.dripEvery.Store(int64(20 * time.Millisecond))
	setup(p)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// CutAfter makes the next n connections (n < 0: all) break with a reset once
// the server has sent bytes to the client; 0 bytes turns cutting off.
// A fault list given to Schedule takes precedence while it lasts.
func (p *Proxy) CutAfter(bytes int64, n int) {
	p.cutsLeft.Store(int64(n))
	p.cutAfter.Store(bytes)
}

// Schedule gives the next connections their faults: each new connection
// takes the next fault in order; once the list is used up, connections
// pass cleanly (or as CutAfter says). It replaces any list not used up yet.
// CloseNotify needs a TLS-terminating proxy (NewTLS): Schedule panics if a
// transparent proxy is given one.
func (p *Proxy) Schedule(faults ...Fault) {
	for _, f := range faults {
		if f.End == CloseNotify && !p.terminate {
			panic("faultproxy: CloseNotify needs a TLS-terminating proxy (NewTLS)")
		}
		if f.End < RST || f.End > Drip {
			panic(fmt.Sprintf("faultproxy: unknown ending %d", int(f.End)))
		}
		if f.After < 0 || f.Anchor < 0 {
			panic(fmt.Sprintf("faultproxy: negative offset in %v", f))
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.schedule = append([]Fault(nil), faults...)
}

// Cuts is how many connections had their fault applied so far.
func (p *Proxy) Cuts() int { return int(p.cuts.Load()) }

// SetLatency delays every chunk in both directions by d (a round trip then
// costs 2d more).
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// SetDrip sets the pace of Drip: n bytes every d.
func (p *Proxy) SetDrip(n int, d time.Duration) {
	p.dripBytes.Store(int64(max(n, 1)))
	p.dripEvery.Store(int64(d))
}

// Sessions returns the connections that have ended, in the order they
// ended.
func (p *Proxy) Sessions() []Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Session(nil), p.sessions...)
}

// LastSessionBytes is ServerBytes of the connection that ended last, -1 if
// none has ended yet. Call WaitIdle first: the proxy may finish a
// connection a moment after the client is done with it.
func (p *Proxy) LastSessionBytes() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.sessions) == 0 {
		return -1
	}
	return p.sessions[len(p.sessions)-1].ServerBytes
}

// WaitIdle waits until no connection is open, at most timeout, and reports
// whether that happened.
func (p *Proxy) WaitIdle(timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	timer := time.AfterFunc(timeout, func() {
		p.mu.Lock()
		p.idle.Broadcast()
		p.mu.Unlock()
	})
	defer timer.Stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.conns) > 0 {
		if !time.Now().Before(deadline) {
			return false
		}
		p.idle.Wait()
	}
	return true
}

// Close stops accepting and drops every connection; it returns once every
// goroutine of the proxy has ended.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	p.closed = true
	conns := make([]*conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.teardown(false)
	}
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		c := &conn{p: p, client: client, dead: make(chan struct{})}
		c.tlsStart.Store(-1)
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			client.Close()
			return
		}
		c.fault = p.nextFault()
		p.conns[c] = struct{}{}
		p.wg.Add(1)
		p.mu.Unlock()
		go c.run()
	}
}

// nextFault picks the fault of a new connection; p.mu is held.
func (p *Proxy) nextFault() *Fault {
	if len(p.schedule) > 0 {
		f := p.schedule[0]
		p.schedule = p.schedule[1:]
		return &f
	}
	if after := p.cutAfter.Load(); after > 0 {
		if left := p.cutsLeft.Load(); left != 0 {
			if left > 0 {
				p.cutsLeft.Add(-1)
			}
			return &Fault{After: after, End: RST}
		}
	}
	return nil
}

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
