// Package faultproxy is a TCP proxy for tests that need a bad network: it
// forwards connections to an upstream and can cut them after a number of
// bytes from the server, or delay every chunk by a fixed latency. It listens
// on loopback only.
package faultproxy

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards every accepted connection to Target.
type Proxy struct {
	Addr   string // where clients connect, 127.0.0.1:PORT
	target string
	ln     net.Listener

	// cutAfter: if > 0, each new connection is cut once the server has sent
	// this many bytes to the client. Cuts counts how many connections were
	// cut; cutsLeft bounds how many will be (negative: no bound).
	cutAfter atomic.Int64
	cutsLeft atomic.Int64
	cuts     atomic.Int64
	latency  atomic.Int64 // one-way delay added to every chunk, ns

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// New starts a proxy to target ("host:port").
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{Addr: ln.Addr().String(), target: target, ln: ln, conns: map[net.Conn]struct{}{}}
	p.cutsLeft.Store(-1)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// CutAfter makes the next n connections (n < 0: all) break once the server
// has sent bytes to the client; 0 bytes turns cutting off.
func (p *Proxy) CutAfter(bytes int64, n int) {
	p.cutsLeft.Store(int64(n))
	p.cutAfter.Store(bytes)
}

// Cuts is how many connections were cut so far.
func (p *Proxy) Cuts() int { return int(p.cuts.Load()) }

// SetLatency delays every chunk in both directions by d (a round trip then
// costs 2d more).
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// Close stops accepting and drops every connection.
func (p *Proxy) Close() error {
	err := p.ln.Close()
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
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
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.track(client, server)
		limit := int64(-1)
		if after := p.cutAfter.Load(); after > 0 {
			if left := p.cutsLeft.Load(); left != 0 {
				if left > 0 {
					p.cutsLeft.Add(-1)
				}
				limit = after
			}
		}
		p.wg.Add(2)
		go p.pipe(server, client, limit) // server → client, maybe cut
		go p.pipe(client, server, -1)
	}
}

func (p *Proxy) track(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		p.conns[c] = struct{}{}
	}
}

func (p *Proxy) forget(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
}

// chunk is what one Read returned, and when it is due at the other end.
type chunk struct {
	data []byte
	due  time.Time
	err  error
}

// pipe copies src to dst; with limit >= 0 it stops after limit bytes and
// breaks both connections, as a dropped link would. Latency delays each
// chunk from the moment it was read, not from when the previous one was
// written, so that a long transfer sees the added round-trip time once, as
// on a real link, and not once per chunk.
func (p *Proxy) pipe(src, dst net.Conn, limit int64) {
	defer p.wg.Done()
	defer func() {
		src.Close()
		dst.Close()
		p.forget(src)
		p.forget(dst)
	}()
	chunks := make(chan chunk, 256)
	go func() {
		defer close(chunks)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			chunks <- chunk{data: buf[:n], due: time.Now().Add(time.Duration(p.latency.Load())), err: err}
			if err != nil {
				return
			}
		}
	}()
	defer func() {
		src.Close() // ends the reader's Read; then let it finish
		for range chunks {
		}
	}()
	var sent int64
	for c := range chunks {
		if len(c.data) > 0 {
			data := c.data
			if limit >= 0 && sent+int64(len(data)) >= limit {
				data = data[:limit-sent]
			}
			time.Sleep(time.Until(c.due))
			if _, werr := dst.Write(data); werr != nil {
				return
			}
			sent += int64(len(data))
			if limit >= 0 && sent >= limit {
				p.cuts.Add(1)
				// Let the client read what came before the cut, then reset:
				// not a clean close, the client must see an error.
				time.Sleep(50 * time.Millisecond)
				if tc, ok := dst.(*net.TCPConn); ok {
					tc.SetLinger(0)
				}
				return
			}
		}
		if c.err != nil {
			if c.err != io.EOF {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				tc.CloseWrite()
			}
			return
		}
	}
}
