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
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
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
