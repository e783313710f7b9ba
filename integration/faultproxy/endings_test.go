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
	"syscall"
	"testing"
	"time"

	"github.com/remote-pull/remote_pull/integration/harness"
)

// The stream every test server sends once TLS is up: 40 pieces of 1000
// bytes, each piece its own write, so each its own TLS record.
const (
	pieceLen = 1000
	pieces   = 40
)

var payload = func() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < pieceLen*pieces; i++ {
		b.WriteString(strings.Repeat(string(rune('a'+i%26)), 10))
	}
	return b.Bytes()[:pieceLen*pieces]
}()

// certs is a CA, its server certificate for localhost and 127.0.0.1, and a
// client configuration that trusts it.
type certs struct {
	cert   tls.Certificate
	client *tls.Config
}

func newCerts(t *testing.T) certs {
	t.Helper()
	ca := harness.NewCA(t)
	cert, err := tls.LoadX509KeyPair(ca.CertFile, ca.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return certs{cert: cert, client: ca.ClientConfig()}
}

// streamServer serves, to every client: an optional plaintext dialogue
// (proto "imap": greeting, then "tag STARTTLS" → "tag OK"; "pop3": greeting,
// "STLS" → "+OK"; "tls": none, implicit TLS; "plain": no TLS at all), then
// payload in records of pieceLen, then a clean close (close_notify and FIN).
// It returns the address and the plaintext the server sends before TLS.
func streamServer(t *testing.T, cs certs, proto string) (addr string, preTLS string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	switch proto {
	case "imap":
		preTLS = "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\na OK Begin TLS negotiation now\r\n"
	case "pop3":
		preTLS = "+OK ready\r\n+OK Begin TLS negotiation\r\n"
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(20 * time.Second))
				serveStream(c, cs, proto)
			}()
		}
	}()
	return ln.Addr().String(), preTLS
}

func serveStream(c net.Conn, cs certs, proto string) {
	var w io.Writer = c
	br := bufio.NewReader(c)
	switch proto {
	case "imap":
		io.WriteString(c, "* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n")
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasSuffix(strings.TrimSpace(line), "STARTTLS") {
			return
		}
		io.WriteString(c, "a OK Begin TLS negotiation now\r\n")
	case "pop3":
		io.WriteString(c, "+OK ready\r\n")
		line, err := br.ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "STLS" {
			return
		}
		io.WriteString(c, "+OK Begin TLS negotiation\r\n")
	}
	if proto != "plain" {
		tc := tls.Server(bufConn{Conn: c, r: br}, &tls.Config{Certificates: []tls.Certificate{cs.cert}})
		if err := tc.Handshake(); err != nil {
			return
		}
		defer tc.Close() // close_notify
		w = tc
	}
	for i := 0; i < pieces; i++ {
		if _, err := w.Write(payload[i*pieceLen : (i+1)*pieceLen]); err != nil {
			return
		}
	}
}

// dialer is how a test client reaches the server through the proxy.
type dialer struct {
	proto  string // as for streamServer
	client *tls.Config
	raw    *recorder // the raw bytes the client received, when set
}

// recorder is a net.Conn that keeps a copy of what it reads.
type recorder struct {
	net.Conn
	mu  sync.Mutex
	got []byte
}

func (r *recorder) Read(b []byte) (int, error) {
	n, err := r.Conn.Read(b)
	r.mu.Lock()
	r.got = append(r.got, b[:n]...)
	r.mu.Unlock()
	return n, err
}

// open connects, does the plaintext dialogue and the TLS handshake, and
// returns the connection the payload comes on.
func (d *dialer) open(t *testing.T, addr string) net.Conn {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	var c net.Conn = raw
	if d.raw != nil {
		d.raw.Conn = raw
		c = d.raw
	}
	br := bufio.NewReader(c)
	expectLine := func(prefix string) {
		t.Helper()
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, prefix) {
			t.Fatalf("plaintext dialogue: got %q, %v; want %q...", line, err, prefix)
		}
	}
	switch d.proto {
	case "imap":
		expectLine("* OK")
		io.WriteString(c, "a STARTTLS\r\n")
		expectLine("a OK")
	case "pop3":
		expectLine("+OK")
		io.WriteString(c, "STLS\r\n")
		expectLine("+OK")
	case "plain":
		return bufConn{Conn: c, r: br}
	}
	if br.Buffered() > 0 {
		t.Fatalf("%d bytes after the plaintext dialogue", br.Buffered())
	}
	tc := tls.Client(c, d.client)
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake through the proxy: %v", err)
	}
	return tc
}

// readAll reads until an error or the deadline, returning what came and
// the error.
func readAll(c net.Conn, timeout time.Duration) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(timeout))
	var got []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// checkPrefix fails unless got is a proper prefix of the payload.
func checkPrefix(t *testing.T, got []byte, exact int) {
	t.Helper()
	if !bytes.HasPrefix(payload, got) {
		t.Fatalf("the client got %d bytes that are not a prefix of what the server sent", len(got))
	}
	if exact >= 0 && len(got) != exact {
		t.Fatalf("the client got %d bytes, want exactly %d", len(got), exact)
	}
	if len(got) == len(payload) {
		t.Fatalf("the client got the whole stream: nothing was cut")
	}
}

func session(t *testing.T, p *Proxy) Session {
	t.Helper()
	if !p.WaitIdle(5 * time.Second) {
		t.Fatalf("the proxy still has connections open")
	}
	s := p.Sessions()
	if len(s) == 0 {
		t.Fatal("no session recorded")
	}
	return s[len(s)-1]
}

// A clean session through either kind of proxy: everything arrives, with a
// clean end, and the session's byte count is what the client got.
func TestCleanSessionBytes(t *testing.T) {
	cs := newCerts(t)
	addr, pre := streamServer(t, cs, "imap")

	p, err := New(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	rec := &recorder{}
	c := (&dialer{proto: "imap", client: cs.client, raw: rec}).open(t, p.Addr)
	got, err := readAll(c, 5*time.Second)
	if err != io.EOF || !bytes.Equal(got, payload) {
		t.Fatalf("through New: %d bytes, %v", len(got), err)
	}
	c.Close()
	s := session(t, p)
	rec.mu.Lock()
	n := int64(len(rec.got))
	rec.mu.Unlock()
	if s.ServerBytes != n || s.TLSStart != int64(len(pre)) || s.Cut || s.Fault != nil {
		t.Fatalf("session %+v; the client received %d raw bytes, %d before TLS", s, n, len(pre))
	}
	if p.LastSessionBytes() != n {
		t.Fatalf("LastSessionBytes = %d, want %d", p.LastSessionBytes(), n)
	}
	if len(s.Turns) < 3 || s.Turns[0] != int64(len("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready\r\n")) {
		t.Fatalf("turns %v: want the STARTTLS command after the greeting, then the handshake", s.Turns)
	}

	pt, err := NewTLS(addr, IMAPStartTLS, cs.cert, cs.client)
	if err != nil {
		t.Fatal(err)
	}
	defer pt.Close()
	c = (&dialer{proto: "imap", client: cs.client}).open(t, pt.Addr)
	got, err = readAll(c, 5*time.Second)
	if err != io.EOF || !bytes.Equal(got, payload) {
		t.Fatalf("through NewTLS: %d bytes, %v", len(got), err)
	}
	c.Close()
	s = session(t, pt)
	if s.ServerBytes != int64(len(payload)) || s.TLSStart != int64(len(pre)) {
		t.Fatalf("session %+v, want %d plaintext bytes after TLS and %d before", s, len(payload), len(pre))
	}
}

// Each ending, through a transparent proxy, on implicit TLS and after
// STARTTLS/STLS: what the client's TLS stack reports.
func TestEndingsTransparent(t *testing.T) {
	cs := newCerts(t)
	for _, proto := range []string{"tls", "imap", "pop3"} {
		addr, pre := streamServer(t, cs, proto)
		start := int64(len(pre))
		d := &dialer{proto: proto, client: cs.client}
		// Somewhere in the middle of the payload's records, raw bytes.
		off := start + 3000 + 20*pieceLen

		t.Run(proto+"/RST", func(t *testing.T) {
			p := newProxy(t, addr, Fault{After: off, End: RST})
			got, err := readAll(d.open(t, p.Addr), 5*time.Second)
			checkPrefix(t, got, -1)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("got %v, want a connection reset", err)
			}
			if s := session(t, p); !s.Cut || s.CutAt != off {
				t.Fatalf("session %+v, want a cut at %d", s, off)
			}
		})

		t.Run(proto+"/FINRecord", func(t *testing.T) {
			p := newProxy(t, addr, Fault{After: off, End: FINRecord})
			c := d.open(t, p.Addr)
			got, err := readAll(c, 5*time.Second)
			checkPrefix(t, got, -1)
			if err != io.EOF {
				t.Fatalf("got %v, want io.EOF (a FIN at a record boundary)", err)
			}
			c.Close() // the proxy drains the client until it closes
			s := session(t, p)
			// The first boundary at or after the offset: within one record.
			if !s.Cut || s.CutAt < off || s.CutAt >= off+pieceLen+64 || s.TLSStart != start {
				t.Fatalf("session %+v, want a cut in [%d, %d), TLS from %d", s, off, off+pieceLen+64, start)
			}
		})

		t.Run(proto+"/FINMidRecord", func(t *testing.T) {
			p := newProxy(t, addr, Fault{After: off, End: FINMidRecord})
			c := d.open(t, p.Addr)
			got, err := readAll(c, 5*time.Second)
			checkPrefix(t, got, -1)
			if err != io.ErrUnexpectedEOF {
				t.Fatalf("got %v, want io.ErrUnexpectedEOF (a FIN inside a record)", err)
			}
			c.Close()
			if s := session(t, p); !s.Cut || s.CutAt != off {
				t.Fatalf("session %+v, want a cut at %d", s, off)
			}
		})

		if proto != "tls" {
			// Before STARTTLS the stream is plaintext: a FIN exactly at
			// the offset, wherever it is.
			t.Run(proto+"/FINRecord-plaintext", func(t *testing.T) {
				p := newProxy(t, addr, Fault{After: 5, End: FINRecord})
				c, err := net.Dial("tcp", p.Addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				got, err := readAll(c, 5*time.Second)
				if err != io.EOF || string(got) != pre[:5] {
					t.Fatalf("got %q, %v; want %q and io.EOF", got, err, pre[:5])
				}
			})
		}

		t.Run(proto+"/Stall", func(t *testing.T) {
			p := newProxy(t, addr, Fault{After: off, End: Stall})
			c := d.open(t, p.Addr)
			got, err := readAll(c, 500*time.Millisecond)
			checkPrefix(t, got, -1)
			if !isTimeout(err) {
				t.Fatalf("got %v, want a read timeout (a stall)", err)
			}
			// The proxy holds the connection until the client goes.
			if p.WaitIdle(200 * time.Millisecond) {
				t.Fatal("the proxy closed a stalled connection on its own")
			}
			c.Close()
			if s := session(t, p); !s.Cut || s.CutAt != off {
				t.Fatalf("session %+v, want a stall from %d", s, off)
			}
		})

		t.Run(proto+"/Drip", func(t *testing.T) {
			p := newProxy(t, addr, Fault{After: off, End: Drip})
			p.SetDrip(100, 10*time.Millisecond) // 10 kB/s: a record a tenth of a second
			c := d.open(t, p.Addr)
			begin := time.Now()
			got, err := readAll(c, 20*time.Second)
			if err != io.EOF || !bytes.Equal(got, payload) {
				t.Fatalf("a drip delivers everything in the end: %d bytes, %v", len(got), err)
			}
			// About 19 records of 1 kB remain after the offset: ~2 s.
			if d := time.Since(begin); d < time.Second {
				t.Fatalf("the rest came in %v: no drip", d)
			}
		})

		t.Run(proto+"/CloseNotify-needs-NewTLS", func(t *testing.T) {
			p, err := New(addr)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			defer func() {
				if recover() == nil {
					t.Fatal("Schedule took CloseNotify on a transparent proxy")
				}
			}()
			p.Schedule(Fault{After: 1, End: CloseNotify})
		})
	}
}

func newProxy(t *testing.T, addr string, f Fault) *Proxy {
	t.Helper()
	p, err := New(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	p.Schedule(f)
	return p
}

// Each ending through a TLS-terminating proxy: the client has exactly the
// plaintext up to the offset, then sees the ending.
func TestEndingsTerminating(t *testing.T) {
	cs := newCerts(t)
	for _, tc := range []struct {
		proto string
		mode  Mode
	}{{"tls", ImplicitTLS}, {"imap", IMAPStartTLS}, {"pop3", POP3STLS}} {
		addr, pre := streamServer(t, cs, tc.proto)
		const off = 12345
		proxy := func(t *testing.T, f Fault) *Proxy {
			p, err := NewTLS(addr, tc.mode, cs.cert, cs.client)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { p.Close() })
			p.Schedule(f)
			return p
		}
		// The client speaks TLS 1.2, whose record types are visible on the
		// wire: an alert (21) is a close_notify, data is 23.
		client := cs.client.Clone()
		client.MaxVersion = tls.VersionTLS12
		lastRecordType := func(t *testing.T, raw []byte) byte {
			t.Helper()
			var last byte
			for len(raw) >= 5 {
				n := 5 + (int(raw[3])<<8 | int(raw[4]))
				if n > len(raw) {
					break
				}
				last = raw[0]
				raw = raw[n:]
			}
			return last
		}

		for _, e := range Endings {
			t.Run(tc.proto+"/"+e.String(), func(t *testing.T) {
				p := proxy(t, Fault{After: off, End: e})
				rec := &recorder{}
				d := &dialer{proto: tc.proto, client: client, raw: rec}
				c := d.open(t, p.Addr)
				timeout := 5 * time.Second
				if e == Stall {
					timeout = 500 * time.Millisecond
				}
				if e == Drip {
					p.SetDrip(64, 20*time.Millisecond)
					timeout = time.Second // 3.2 kB/s: about 3 kB more
				}
				got, err := readAll(c, timeout)
				want := off
				if e == Drip {
					want = -1
				}
				checkPrefix(t, got, want)
				rec.mu.Lock()
				raw := append([]byte(nil), rec.got[len(pre):]...)
				rec.mu.Unlock()
				switch e {
				case RST:
					if !errors.Is(err, syscall.ECONNRESET) {
						t.Fatalf("got %v, want a connection reset", err)
					}
				case FINRecord:
					if err != io.EOF || lastRecordType(t, raw) != 23 {
						t.Fatalf("got %v, last record type %d; want io.EOF after a data record", err, lastRecordType(t, raw))
					}
				case FINMidRecord:
					if err != io.ErrUnexpectedEOF {
						t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
					}
				case CloseNotify:
					if err != io.EOF || lastRecordType(t, raw) != 21 {
						t.Fatalf("got %v, last record type %d; want io.EOF after an alert record (close_notify)", err, lastRecordType(t, raw))
					}
				case Stall:
					if !isTimeout(err) {
						t.Fatalf("got %v, want a read timeout", err)
					}
				case Drip:
					if !isTimeout(err) {
						t.Fatalf("got %v, want a read timeout while dripping", err)
					}
					if n := len(got) - off; n < 640 || n > 6400 {
						t.Fatalf("%d bytes in 1 s after the offset, want about 3,200 (64 bytes every 20 ms)", n)
					}
				}
				c.Close()
				if s := session(t, p); !s.Cut || s.CutAt != off {
					t.Fatalf("session %+v, want a cut at %d", s, off)
				}
			})
		}
	}
}

// Close ends every connection and goroutine, stalled and dripping ones
// included, at once.
func TestCloseEndsEverything(t *testing.T) {
	cs := newCerts(t)
	addr, _ := streamServer(t, cs, "tls")
	for _, e := range []Ending{Stall, Drip} {
		p, err := NewTLS(addr, ImplicitTLS, cs.cert, cs.client)
		if err != nil {
			t.Fatal(err)
		}
		p.Schedule(Fault{After: 100, End: e}, Fault{After: 100, End: e})
		d := &dialer{proto: "tls", client: cs.client}
		c1, c2 := d.open(t, p.Addr), d.open(t, p.Addr)
		c1.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 100)
		if _, err := io.ReadFull(c1, buf); err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		done := make(chan struct{})
		go func() { p.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("%v: Close still waiting after 5 s", e)
		}
		if time.Since(begin) > time.Second {
			t.Errorf("%v: Close took %v", e, time.Since(begin))
		}
		c2.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadAll(c2); isTimeout(err) {
			t.Errorf("%v: a client of a closed proxy still waits", e)
		}
	}
}

// Where the record-aware endings cut a stream of TLS records, whatever the
// chunks it arrives in: FINRecord at the first boundary at or after the
// offset, FINMidRecord at the offset or one byte past a boundary.
func TestCutPointOnRecords(t *testing.T) {
	// Records of 10, 20, 5 and 1 payload bytes after 7 plaintext bytes:
	// boundaries at 7, 22, 47, 57 and 63 (the end).
	const start = 7
	var stream []byte
	stream = append(stream, "plain\r\n"...)
	for _, n := range []int{10, 20, 5, 1} {
		stream = append(stream, 23, 3, 3, byte(n>>8), byte(n))
		stream = append(stream, bytes.Repeat([]byte{'x'}, n)...)
	}
	bounds := map[int64]bool{7: true, 22: true, 47: true, 57: true, 63: true}
	nextBound := func(off int64) int64 {
		for b := off; b <= int64(len(stream)); b++ {
			if bounds[b] {
				return b
			}
		}
		return -1
	}
	for _, chunkLen := range []int{1, 2, 3, 6, 13, 64} {
		for off := int64(0); off <= int64(len(stream)); off++ {
			for _, e := range []Ending{FINRecord, FINMidRecord} {
				want := off
				switch {
				case off <= start:
					// Plaintext (the offset is reached before TLS starts,
					// or right where it starts).
				case e == FINRecord:
					want = nextBound(off)
				case bounds[off]:
					want = off + 1
				}
				if want > int64(len(stream)) {
					want = -1 // never: the stream ends first
				}
				c := &conn{}
				f := &Fault{After: off, End: e}
				rec := records{next: -1}
				mid := int64(-1)
				got := int64(-1)
				for pos := int64(0); pos < int64(len(stream)) && got < 0; pos += int64(chunkLen) {
					data := stream[pos:min(pos+int64(chunkLen), int64(len(stream)))]
					var b []int64
					if pos+int64(len(data)) > start {
						b = rec.feed(start, pos, data)
					}
					if k := c.cutPoint(f, pos, data, start, b, &mid); k >= 0 {
						got = pos + int64(k)
					}
				}
				if got != want {
					t.Errorf("chunks of %d, %v at %d: cut at %d, want %d", chunkLen, e, off, got, want)
				}
			}
		}
	}
}

// A fault relative to a client turn hits the answer to that message, at the
// same place whatever came before.
func TestFaultRelativeToTurn(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// A greeting whose length varies, then a 100-byte answer
				// to every line.
				io.WriteString(c, strings.Repeat("g", 10+time.Now().Nanosecond()%50)+"\n")
				br := bufio.NewReader(c)
				for i := 0; ; i++ {
					if _, err := br.ReadString('\n'); err != nil {
						return
					}
					io.WriteString(c, strings.Repeat(string(rune('0'+i)), 99)+"\n")
				}
			}()
		}
	}()
	p, err := New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// The greeting is 11 to 60 bytes: the first turn at or after 1 is the
	// first command, and the one after it the second, whatever the
	// greeting's length.
	p.Schedule(Fault{Anchor: 1, Turn: 1, After: 30, End: FINRecord})
	c, err := net.Dial("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	if _, err := br.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		io.WriteString(c, "cmd\n")
		line, err := br.ReadString('\n')
		switch {
		case i == 0 && (err != nil || len(line) != 100):
			t.Fatalf("first answer: %q, %v", line, err)
		case i == 1:
			if err != io.EOF || line != strings.Repeat("1", 30) {
				t.Fatalf("second answer: %q, %v; want 30 bytes of it, then io.EOF", line, err)
			}
			c.Close()
			s := session(t, p)
			if len(s.Turns) != 2 || !s.Cut || s.CutAt != s.Turns[1]+30 {
				t.Fatalf("session %+v, want the cut 30 bytes after the second turn", s)
			}
			return
		}
	}
}
